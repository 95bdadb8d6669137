using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading;
using HotpatchTools.Engine.Platform.Linux;
using static HotpatchTools.Engine.Platform.HostOs;

namespace HotpatchTools.Engine.Machine
{
    /// <summary>
    /// One writer per target process at a time, across threads, processes and sessions: every install and uninstall
    /// holds it from reading the caves to the last unmap. Without it an uninstall that decided to free a cave could
    /// unmap, later, a new cave another session had mapped at the same address meanwhile, and the target crashed.
    /// On Linux one byte per pid of one file under the machine root, locked as an open-file-description lock (so two
    /// threads of one session exclude each other as two sessions do): creating a file per process cost a machine-wide
    /// install more than the rest of a small process's install. Where the kernel has no OFD locks (before 3.15), and
    /// on Windows, a lock file per process (pid and start time, so a reused pid is another file): flock on Linux, an
    /// exclusive share mode on Windows. Those files stay while their process lives (deleting a flock file races with a
    /// waiter that opened it); those of processes that are gone are removed by later acquisitions.
    /// </summary>
    internal sealed class TargetLock : IDisposable
    {
        public static string Directory => Path.Combine(MachinePaths.StateRoot, "locks");

        private int _fd = -1;
        private FileStream? _stream;

        private TargetLock() { }

        /// <summary>Waits up to `timeout` for the process's lock; Busy when another session holds it that long.</summary>
        public static TargetLock Acquire(int pid, TimeSpan timeout)
        {
            string dir = Directory;
            try { SecureFiles.EnsureAdminDirectory(dir); }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException)
            {
                throw new HotpatchException(HotpatchErrorKind.AccessDenied,
                    "Cannot write to process " + pid + ": its writer's lock in " + dir + " cannot be created (" + e.Message + "); run as root or an elevated Administrator.", e) { ProcessId = pid };
            }
            // A folder another user could write would let them hold (or swap) every process's lock.
            if (SecureFiles.WhyNotAdminOnly(dir) is string why)
                throw new HotpatchException(HotpatchErrorKind.AccessDenied, "The lock folder cannot be trusted: " + why + ".") { ProcessId = pid };
            string? file = null;
            string File() => file ??= Path.Combine(dir, pid.ToString(CultureInfo.InvariantCulture) + "-" + StartTime(pid) + ".lock");
            var clock = Stopwatch.StartNew();
            var held = new TargetLock();
            int wait = 1;
            while (!(IsWindows ? held.TryWindows(File())
                     : Volatile.Read(ref _noRanges) == 0 ? held.TryRange(Path.Combine(dir, "processes.lock"), pid)
                     : held.TryLinux(File(), pid)))
            {
                if (clock.Elapsed > timeout)
                    throw new HotpatchException(HotpatchErrorKind.Busy,
                        "Another session has been installing or removing a patch in process " + pid + " for " + timeout.TotalSeconds.ToString("0", CultureInfo.InvariantCulture) +
                        " s; nothing was done. Try again when it has finished.") { ProcessId = pid };
                Thread.Sleep(wait);
                wait = Math.Min(wait * 2, 20);
            }
            if (StaleSweepDue()) RemoveStale(dir);
            return held;
        }

        /// <summary>Set once the kernel refuses OFD locks: every later acquisition uses a file per process.</summary>
        private static int _noRanges;

        private void OpenOnce(string path, int pid)
        {
            if (_fd >= 0) return;
            // O_NOFOLLOW: the folder is root's, but a link planted in it must still not be followed.
            _fd = LibC.open(path, LibC.O_RDWR | LibC.O_CREAT | LibC.O_CLOEXEC | LibC.O_NOFOLLOW, Convert.ToInt32("600", 8));
            if (_fd < 0)
                throw new HotpatchException(HotpatchErrorKind.AccessDenied,
                    "Cannot write to process " + pid + ": the writer's lock " + path + " cannot be opened (errno " + Marshal.GetLastWin32Error() + "); run as root.") { ProcessId = pid };
        }

        private bool TryRange(string path, int pid)
        {
            OpenOnce(path, pid);
            var range = new LibC.FlockRange { Type = LibC.F_WRLCK, Whence = 0, Start = pid, Length = 1 };
            if (LibC.fcntl(_fd, LibC.F_OFD_SETLK, ref range) == 0) return true;
            int errno = Marshal.GetLastWin32Error();
            if (errno == LibC.EAGAIN || errno == LibC.EACCES || errno == LibC.EINTR) return false;
            if (errno == LibC.EINVAL)
            {
                // No OFD locks in this kernel: from now on a file per process, this one's at the next try.
                Volatile.Write(ref _noRanges, 1);
                LibC.close(_fd);
                _fd = -1;
                return false;
            }
            throw new HotpatchException(HotpatchErrorKind.Internal, "Locking byte " + pid + " of " + path + " failed (errno " + errno + ").") { ProcessId = pid };
        }

        private bool TryLinux(string path, int pid)
        {
            OpenOnce(path, pid);
            if (LibC.flock(_fd, LibC.LOCK_EX | LibC.LOCK_NB) == 0) return true;
            int errno = Marshal.GetLastWin32Error();
            if (errno == LibC.EWOULDBLOCK || errno == LibC.EINTR) return false;
            throw new HotpatchException(HotpatchErrorKind.Internal, "flock of " + path + " failed (errno " + errno + ").") { ProcessId = pid };
        }

        private bool TryWindows(string path)
        {
            try
            {
                _stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
                return true;
            }
            catch (IOException) { return false; }
            catch (UnauthorizedAccessException e)
            {
                throw new HotpatchException(HotpatchErrorKind.AccessDenied, "Cannot open the writer's lock " + path + ": " + e.Message + "; run as an elevated Administrator.", e);
            }
        }

        /// <summary>Start time of a process, so that a lock never outlives its process's identity; "0" when unknown.</summary>
        private static string StartTime(int pid)
        {
            try
            {
                if (IsWindows)
                {
                    using var p = Process.GetProcessById(pid);
                    return p.StartTime.ToUniversalTime().Ticks.ToString(CultureInfo.InvariantCulture);
                }
                var stat = LibC.ReadProcFile("/proc/" + pid + "/stat");
                var fields = stat.Substring(stat.LastIndexOf(')') + 2).Split(' ');
                return fields.Length > 19 ? fields[19] : "0";
            }
            catch (Exception e) when (e is IOException || e is ArgumentException || e is InvalidOperationException || e is UnauthorizedAccessException || e is System.ComponentModel.Win32Exception)
            {
                return "0";
            }
        }

        private static long _lastSweep = -1;

        /// <summary>
        /// At most one sweep a second per engine process: a machine-wide install takes a lock per process, and a sweep
        /// (list the folder, read a /proc stat per file) cost more than the rest of a small process's install. Files left
        /// meanwhile are only files; the next sweep takes them.
        /// </summary>
        private static bool StaleSweepDue()
        {
            long now = Stopwatch.GetTimestamp(), last = Interlocked.Read(ref _lastSweep);
            if (last >= 0 && now - last < Stopwatch.Frequency) return false;
            return Interlocked.CompareExchange(ref _lastSweep, now, last) == last;
        }

        /// <summary>Lock files of processes that are gone (or whose pid now names another process).</summary>
        private static void RemoveStale(string dir)
        {
            if (IsWindows) return; // deleted on close
            string[] files;
            try { files = System.IO.Directory.GetFiles(dir, "*.lock"); }
            catch (IOException) { return; }
            // Bounded work per acquisition, from a random place so that every file is looked at in time.
            int start = files.Length == 0 ? 0 : new Random().Next(files.Length);
            for (int i = 0; i < Math.Min(files.Length, 256); i++)
            {
                var f = files[(start + i) % files.Length];
                var name = Path.GetFileNameWithoutExtension(f);
                int dash = name.IndexOf('-');
                if (dash <= 0 || !int.TryParse(name.Substring(0, dash), NumberStyles.None, CultureInfo.InvariantCulture, out int pid)) continue;
                if (StartTime(pid) == name.Substring(dash + 1)) continue;
                try { File.Delete(f); }
                catch (Exception e) when (e is IOException || e is UnauthorizedAccessException) { }
            }
        }

        public void Dispose()
        {
            if (_fd >= 0) { LibC.close(_fd); _fd = -1; } // releases the flock
            _stream?.Dispose();
            _stream = null;
        }
    }
}
