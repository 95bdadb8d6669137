using System.Runtime.InteropServices;
using HotpatchTools.Engine.Platform;
using HotpatchTools.Engine.Platform.Linux;

namespace HotpatchTools.Engine.Modules
{
    /// <summary>Opens a module file for a reader and turns every I/O failure into an error that names the file and the cause.</summary>
    internal static class ModuleFile
    {
        /// <summary>
        /// Exactly `count` bytes at `offset`, checked against the file's length before anything is allocated,
        /// so a corrupt header cannot make a reader ask for more than the file holds.
        /// </summary>
        public static byte[] ReadExact(Stream stream, ulong length, ulong offset, ulong count, string what, Func<string, ModuleFormatException> invalid)
        {
            if (offset > length || count > length - offset) throw invalid(what + " lies outside the file");
            if (count > int.MaxValue) throw invalid(what + " is too large");
            var buffer = new byte[count];
            stream.Position = (long)offset;
            int done = 0;
            while (done < buffer.Length)
            {
                int n = stream.Read(buffer, done, buffer.Length - done);
                if (n == 0) throw invalid(what + " is truncated");
                done += n;
            }
            return buffer;
        }

        /// <summary>Larger than any real module file: a file beyond it is not hashed.</summary>
        public const long MaxHashBytes = 1L << 30;
        /// <summary>How long hashing one module file may take before its identity counts as unverifiable.</summary>
        public static readonly TimeSpan MaxHashTime = TimeSpan.FromSeconds(20);

        /// <summary>
        /// SHA-256 (lowercase hex) of a module file, cached per file identity (device:inode or path, size, modification
        /// time) so a file replaced in place is hashed again. A file larger than any module, or one that takes too long
        /// to read, is refused: a local user could otherwise map a sparse file of many gigabytes under a module's name
        /// and make every sweep hash it for minutes.
        /// </summary>
        public static string Sha256(string path, string key, string displayName)
        {
            return Read(path, stream =>
            {
                long size = stream.Length;
                if (size > MaxHashBytes)
                    throw new HotpatchException(HotpatchErrorKind.IdentityMismatch,
                        displayName + " is " + size + " bytes, larger than any module (" + MaxHashBytes + "); its SHA-256 is not computed, so a patch that names one does not apply.");
                long mtime = File.GetLastWriteTimeUtc(path).Ticks;
                // A refusal is cached too: a watch must not spend the time bound on the same file in every pass.
                string hash = ModuleCache.GetOrAdd("sha|" + key + "|" + size + "|" + mtime, () =>
                {
                    var clock = System.Diagnostics.Stopwatch.StartNew();
                    using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
                    var buffer = new byte[1 << 20];
                    int n;
                    while ((n = stream.Read(buffer, 0, buffer.Length)) > 0)
                    {
                        sha.AppendData(buffer, 0, n);
                        if (clock.Elapsed > MaxHashTime) return "!could not be hashed within " + MaxHashTime.TotalSeconds + " s";
                    }
                    return Hex.Lower(sha.GetHashAndReset());
                });
                if (hash.StartsWith("!", StringComparison.Ordinal))
                    throw new HotpatchException(HotpatchErrorKind.IdentityMismatch,
                        displayName + " " + hash.Substring(1) + "; its SHA-256 is not verified, so a patch that names one does not apply.");
                return hash;
            });
        }

        /// <summary>
        /// On Linux a module's path comes from a process's memory map or a .gnu_debuglink name in a folder that process
        /// chose, and a patch file or its signature may lie in a folder others write, so a local user decides what lies there: a FIFO would block the open until someone writes to it (a sweep
        /// run as root would hang), a device would read without end. The file is opened without blocking and read only if
        /// the opened handle is a regular file, so no swap between a check and the open can change what is read.
        /// </summary>
        internal static FileStream OpenRegular(string path)
        {
            if (HostOs.IsWindows) return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            int fd = LibC.open(path, LibC.O_RDONLY | LibC.O_NONBLOCK | LibC.O_CLOEXEC, 0);
            if (fd < 0)
            {
                int errno = Marshal.GetLastWin32Error();
                if (errno == LibC.ENOENT || errno == LibC.ENOTDIR) throw new FileNotFoundException(path + ": " + LibC.StrError(errno), path);
                if (errno == LibC.EACCES || errno == LibC.EPERM) throw new UnauthorizedAccessException(path + ": " + LibC.StrError(errno));
                throw new IOException(LibC.StrError(errno));
            }
            var handle = new Microsoft.Win32.SafeHandles.SafeFileHandle((IntPtr)fd, true);
            try
            {
                var st = LibC.FStat(fd) ?? throw new IOException("it cannot be examined (fstat failed)");
                int type = st.Mode & LibC.S_IFMT;
                if (type != LibC.S_IFREG)
                    throw new IOException("it is not a regular file but " + (type == LibC.S_IFIFO ? "a FIFO" : type == LibC.S_IFDIR ? "a directory"
                        : type == LibC.S_IFCHR || type == LibC.S_IFBLK ? "a device" : type == LibC.S_IFSOCK ? "a socket" : "file type 0x" + type.ToString("x")));
                return new FileStream(handle, FileAccess.Read);
            }
            catch
            {
                handle.Dispose();
                throw;
            }
        }

        public static T Read<T>(string path, Func<FileStream, T> read)
        {
            if (path == null) throw new ArgumentNullException(nameof(path));
            FileStream stream;
            try
            {
                stream = OpenRegular(path);
            }
            catch (Exception e) when (HotpatchException.ForFile(e, path, "open", HotpatchErrorKind.ModuleNotLoaded, HotpatchErrorKind.AccessDenied,
                HotpatchErrorKind.Internal) is HotpatchException problem)
            {
                throw problem;
            }

            using (stream)
            {
                try
                {
                    return read(stream);
                }
                catch (IOException e)
                {
                    throw new HotpatchException(HotpatchErrorKind.Internal, path + ": cannot read the file: " + e.Message, e);
                }
            }
        }
    }
}
