using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using HotpatchTools.Engine.Machine;
using HotpatchTools.Engine.Platform.Linux;
using static HotpatchTools.Engine.Platform.HostOs;

namespace HotpatchTools.Engine.Audit
{
    /// <summary>
    /// A JSON-lines audit file. Each record is appended with one write of one whole line, so any number of writers
    /// in any number of processes never interleave inside a line: on Linux O_APPEND plus an exclusive flock around
    /// the write, on Windows a machine-wide mutex around an append.
    /// </summary>
    public sealed class AuditLog
    {
        public AuditLog(string path) { Path = path; }

        public static AuditLog Machine => new AuditLog(MachinePaths.AuditLogFile);

        public string Path { get; }

        public void Append(AuditRecord record) => AppendLine(record.ToJson());

        /// <summary>Opens the log for appending and writes nothing: fails now, before a change, rather than after it.</summary>
        public void EnsureWritable() => Write(new byte[0]);

        internal void AppendLine(string json) => Write(new UTF8Encoding(false).GetBytes(json + "\n"));

        private void Write(byte[] bytes)
        {
            var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path));
            if (!string.IsNullOrEmpty(dir)) SecureFiles.EnsureAdminDirectory(dir!);
            // A log someone else could edit is no trail: refuse to add to it rather than lend it credibility.
            var why = (string.IsNullOrEmpty(dir) ? null : SecureFiles.WhyNotAdminOnly(dir!)) ?? SecureFiles.WhyNotAdminOnly(Path);
            if (why != null) throw new UnauthorizedAccessException("the audit log could have been changed by non-administrators: " + why);
            if (IsWindows) WriteWindows(bytes);
            else WriteUnix(bytes);
        }

        private unsafe void WriteUnix(byte[] bytes)
        {
            // O_NOFOLLOW: a link planted as audit.jsonl would make root append to whatever it names.
            int fd = LibC.open(Path, LibC.O_WRONLY | LibC.O_APPEND | LibC.O_CREAT | LibC.O_CLOEXEC | LibC.O_NOFOLLOW, Convert.ToInt32("644", 8));
            if (fd < 0) throw Error(Marshal.GetLastWin32Error());
            try
            {
                // The file opened, not the path: root's, a regular file, writable by no one else.
                var st = LibC.FStat(fd);
                if (st == null || (st.Value.Mode & LibC.S_IFMT) != LibC.S_IFREG || st.Value.Uid != 0 || (st.Value.Mode & Convert.ToInt32("022", 8)) != 0)
                    throw new UnauthorizedAccessException("the audit log " + Path + " is not a regular file that only root can write");
                if (bytes.Length == 0) return;
                while (LibC.flock(fd, LibC.LOCK_EX) != 0)
                    if (Marshal.GetLastWin32Error() != LibC.EINTR) throw Error(Marshal.GetLastWin32Error());
                fixed (byte* p = bytes)
                {
                    int done = 0;
                    while (done < bytes.Length)
                    {
                        long n = (long)LibC.write(fd, p + done, (UIntPtr)(bytes.Length - done));
                        if (n < 0)
                        {
                            int errno = Marshal.GetLastWin32Error();
                            if (errno == LibC.EINTR) continue;
                            throw Error(errno);
                        }
                        done += (int)n;
                    }
                }
            }
            finally
            {
                LibC.close(fd); // also releases the flock
            }
        }

        private Exception Error(int errno) =>
            errno == LibC.EACCES || errno == LibC.EPERM
                ? new UnauthorizedAccessException("cannot write the audit log " + Path + ": permission denied (errno " + errno + ")")
                : (Exception)new IOException("cannot write the audit log " + Path + ": errno " + errno);

        private void WriteWindows(byte[] bytes)
        {
            // Global\ so that every session's writers, services included, take turns.
            using (var mutex = new Mutex(false, @"Global\HotpatchTools.AuditLog"))
            {
                try { mutex.WaitOne(); } catch (AbandonedMutexException) { /* the previous owner died; the file is still whole lines */ }
                try
                {
                    // Not through a link planted as audit.jsonl, and only a file administrators alone can change.
                    using (var f = WindowsFileSecurity.OpenAdminFileForAppend(Path))
                    {
                        if (bytes.Length == 0) return;
                        f.Write(bytes, 0, bytes.Length);
                        f.Flush(true);
                    }
                }
                finally { mutex.ReleaseMutex(); }
            }
        }

        /// <summary>The records of the log, oldest first; lines that are no record are counted in <paramref name="unreadable"/>.</summary>
        public List<AuditRecord> Read(out int unreadable)
        {
            unreadable = 0;
            var records = new List<AuditRecord>();
            if (!File.Exists(Path)) return records;
            using (var f = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
            using (var reader = new StreamReader(f, new UTF8Encoding(false)))
            {
                string? line;
                while ((line = reader.ReadLine()) != null)
                {
                    if (line.Trim().Length == 0) continue;
                    var r = AuditRecord.FromJson(line);
                    if (r == null) unreadable++;
                    else records.Add(r);
                }
            }
            return records;
        }
    }
}
