using System.Runtime.InteropServices;

namespace HotpatchTools.Engine.Platform.Linux
{
    /// <summary>Every libc call of the engine (the Linux backend, the trust store, the audit trail, the privilege check). glibc only: "libc.so.6" names it exactly.</summary>
    internal static unsafe class LibC
    {
        private const string Lib = "libc.so.6";

        public const long PTRACE_GETREGS = 12;
        public const long PTRACE_SETREGS = 13;
        public const long PTRACE_SYSCALL = 24;
        public const int PTRACE_O_TRACESYSGOOD = 1;
        public const long PTRACE_DETACH = 17;
        public const long PTRACE_SEIZE = 0x4206;
        public const long PTRACE_INTERRUPT = 0x4207;
        public const int PTRACE_EVENT_STOP = 128;
        public const long PTRACE_GETREGSET = 0x4204;
        public const long PTRACE_GETSIGMASK = 0x420a;
        public const int NT_PRFPREG = 2, NT_X86_XSTATE = 0x202;

        public const int WNOHANG = 1;
        public const int __WALL = 0x40000000;

        public const int EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, ECHILD = 10, EAGAIN = 11, EACCES = 13, EFAULT = 14, EEXIST = 17, ENOSYS = 38;
        public const int SIGTRAP = 5, SIGSTOP = 19;

        public const int O_RDONLY = 0, O_RDWR = 2, O_CLOEXEC = 0x80000;

        [DllImport(Lib, SetLastError = true)]
        public static extern long ptrace(long request, int pid, IntPtr addr, IntPtr data);

        [DllImport(Lib, SetLastError = true)]
        public static extern int waitpid(int pid, out int status, int options);

        [DllImport(Lib, SetLastError = true)]
        public static extern IntPtr process_vm_readv(int pid, Iovec* local, UIntPtr liovcnt, Iovec* remote, UIntPtr riovcnt, UIntPtr flags);

        [DllImport(Lib, SetLastError = true)]
        public static extern int open([MarshalAs(UnmanagedType.LPStr)] string path, int flags);

        [DllImport(Lib, SetLastError = true)]
        public static extern IntPtr pwrite(int fd, byte* buf, UIntPtr count, long offset);

        [DllImport(Lib, SetLastError = true)]
        public static extern IntPtr pread(int fd, byte* buf, UIntPtr count, long offset);

        [DllImport(Lib, SetLastError = true)]
        public static extern int close(int fd);

        // Process events (the watch): the proc connector and fanotify.
        public const int AF_NETLINK = 16, SOCK_DGRAM = 2, SOCK_NONBLOCK = 0x800, SOCK_CLOEXEC = 0x80000, NETLINK_CONNECTOR = 11;
        public const int FAN_CLASS_NOTIF = 0, FAN_CLOEXEC = 1, FAN_NONBLOCK = 2, FAN_MARK_ADD = 1;
        public const ulong FAN_OPEN = 0x20;
        public const int AT_FDCWD = -100;
        public const short POLLIN = 1;

        [StructLayout(LayoutKind.Sequential)]
        public struct PollFd
        {
            public int Fd;
            public short Events;
            public short Revents;
        }

        [DllImport(Lib, SetLastError = true)]
        public static extern int socket(int domain, int type, int protocol);

        [DllImport(Lib, SetLastError = true)]
        public static extern int bind(int fd, byte* addr, int addrlen);

        [DllImport(Lib, SetLastError = true)]
        public static extern IntPtr send(int fd, byte* buf, UIntPtr len, int flags);

        [DllImport(Lib, SetLastError = true)]
        public static extern IntPtr read(int fd, byte* buf, UIntPtr count);

        [DllImport(Lib, SetLastError = true)]
        public static extern int poll(PollFd* fds, UIntPtr nfds, int timeout);

        [DllImport(Lib, SetLastError = true)]
        public static extern int fanotify_init(uint flags, uint eventFlags);

        [DllImport(Lib, SetLastError = true)]
        public static extern int fanotify_mark(int fd, uint flags, ulong mask, int dirfd, [MarshalAs(UnmanagedType.LPStr)] string path);

        [DllImport(Lib)]
        public static extern int getpid();

        [DllImport(Lib, SetLastError = true)]
        public static extern int usleep(uint microseconds);

        [DllImport(Lib)]
        public static extern uint geteuid();

        public const int SCHED_OTHER = 0, SCHED_FIFO = 1;

        /// <summary>pid 0: the calling thread.</summary>
        [DllImport(Lib, SetLastError = true)]
        public static extern int sched_setscheduler(int pid, int policy, ref int priority);

        [DllImport(Lib, SetLastError = true)]
        public static extern int sched_getscheduler(int pid);

        [DllImport(Lib, SetLastError = true)]
        public static extern int sched_getparam(int pid, out int priority);

        [StructLayout(LayoutKind.Sequential)]
        public struct Iovec
        {
            public IntPtr Base;
            public UIntPtr Length;
        }

        /// <summary>struct user_regs_struct (x86_64), 27 unsigned longs.</summary>
        [StructLayout(LayoutKind.Sequential)]
        public struct UserRegs
        {
            public ulong r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi, orig_rax,
                rip, cs, eflags, rsp, ss, fs_base, gs_base, ds, es, fs, gs;
        }

        public static bool WIFEXITED(int s) => (s & 0x7f) == 0;
        public static bool WIFSIGNALED(int s) => ((s & 0x7f) + 1) >> 1 > 0 && (s & 0x7f) != 0x7f && (s & 0x7f) != 0;
        public static bool WIFSTOPPED(int s) => (s & 0xff) == 0x7f;
        public static int WSTOPSIG(int s) => (s >> 8) & 0xff;
        public static int PtraceEvent(int s) => s >> 16;

        public static string StrError(int errno)
        {
            switch (errno)
            {
                case EPERM: return "operation not permitted";
                case ENOENT: return "no such file or directory";
                case ESRCH: return "no such process";
                case EIO: return "input/output error";
                case EACCES: return "permission denied";
                case EFAULT: return "bad address";
                case EEXIST: return "already exists";
                default: return "errno " + errno;
            }
        }

        // ---- files, locks and the system log (the trust store, the audit trail, the target lock) ----

        public const int O_WRONLY = 1, O_CREAT = 0x40, O_APPEND = 0x400, O_NONBLOCK = 0x800, O_NOFOLLOW = 0x20000;
        public const int ENOTDIR = 20;
        public const int EWOULDBLOCK = 11;
        public const int AF_UNIX = 1, MSG_NOSIGNAL = 0x4000;
        public const int LOCK_EX = 2, LOCK_NB = 4, LOCK_UN = 8;

        [DllImport(Lib, SetLastError = true)] public static extern int open([MarshalAs(UnmanagedType.LPStr)] string path, int flags, int mode);
        [DllImport(Lib, SetLastError = true)] public static extern IntPtr write(int fd, byte* buf, UIntPtr count);
        [DllImport(Lib, SetLastError = true)] public static extern int flock(int fd, int operation);

        /// <summary>struct flock of x86-64 Linux, for open-file-description (OFD) byte-range locks.</summary>
        [StructLayout(LayoutKind.Sequential)]
        public struct FlockRange
        {
            public short Type, Whence;
            public long Start, Length;
            public int Pid;
        }

        public const int F_OFD_SETLK = 37, F_WRLCK = 1, EINVAL = 22;
        [DllImport(Lib, SetLastError = true)] public static extern int fcntl(int fd, int cmd, ref FlockRange range);
        [DllImport(Lib, SetLastError = true)] public static extern int chmod([MarshalAs(UnmanagedType.LPStr)] string path, int mode);
        [DllImport(Lib, SetLastError = true)] public static extern IntPtr sendto(int fd, byte* buf, UIntPtr len, int flags, byte* addr, int addrlen);

        // glibc 2.33 and later export lstat and fstat themselves; older ones only the versioned __lxstat and __fxstat.
        [DllImport(Lib, SetLastError = true, EntryPoint = "lstat")] private static extern int lstat_(string path, byte* buf);
        [DllImport(Lib, SetLastError = true)] private static extern int __lxstat(int ver, string path, byte* buf);
        [DllImport(Lib, SetLastError = true, EntryPoint = "fstat")] private static extern int fstat_(int fd, byte* buf);
        [DllImport(Lib, SetLastError = true)] private static extern int __fxstat(int ver, int fd, byte* buf);
        [DllImport(Lib, SetLastError = true)] private static extern IntPtr realpath(string path, IntPtr resolved);
        [DllImport(Lib)] private static extern void free(IntPtr p);

        public const int S_IFMT = 0xF000, S_IFIFO = 0x1000, S_IFCHR = 0x2000, S_IFDIR = 0x4000, S_IFBLK = 0x6000, S_IFREG = 0x8000, S_IFLNK = 0xA000, S_IFSOCK = 0xC000, S_ISVTX = 0x200;

        /// <summary>
        /// Mode bits, owner and group of a symbolic link itself rather than what it points to (x86-64 struct stat:
        /// st_mode at 24, st_uid at 28, st_gid at 32), or null if it does not exist.
        /// </summary>
        public static (int Mode, uint Uid, uint Gid)? LStat(string path)
        {
            var buf = stackalloc byte[256];
            int r;
            try { r = lstat_(path, buf); }
            catch (EntryPointNotFoundException) { r = __lxstat(1, path, buf); }
            if (r != 0) return null;
            return (*(int*)(buf + 24), *(uint*)(buf + 28), *(uint*)(buf + 32));
        }

        /// <summary>Mode bits and owner of an open file, as <see cref="LStat"/>: what was opened, whatever the path names now.</summary>
        public static (int Mode, uint Uid)? FStat(int fd)
        {
            var buf = stackalloc byte[256];
            int r;
            try { r = fstat_(fd, buf); }
            catch (EntryPointNotFoundException) { r = __fxstat(1, fd, buf); }
            if (r != 0) return null;
            return (*(int*)(buf + 24), *(uint*)(buf + 28));
        }

        [DllImport(Lib, SetLastError = true, EntryPoint = "stat")] private static extern int stat_(string path, byte* buf);
        [DllImport(Lib, SetLastError = true)] private static extern int __xstat(int ver, string path, byte* buf);

        /// <summary>
        /// The size and the modification and change times of the file a path names, links followed (x86-64 struct stat:
        /// st_size at 48, st_mtim at 88, st_ctim at 104), as one string; null when it cannot be examined. Device and inode
        /// name a file only while it exists: this tells it from a file that took its inode after it was deleted, or that
        /// was written over in place.
        /// </summary>
        public static string? FileStamp(string path)
        {
            var buf = stackalloc byte[256];
            int r;
            try { r = stat_(path, buf); }
            catch (EntryPointNotFoundException) { r = __xstat(1, path, buf); }
            if (r != 0) return null;
            return *(long*)(buf + 48) + ":" + *(long*)(buf + 88) + "." + *(long*)(buf + 96) + ":" + *(long*)(buf + 104) + "." + *(long*)(buf + 112);
        }

        [DllImport(Lib, SetLastError = true, EntryPoint = "readlink")] private static extern IntPtr readlink_(string path, byte* buf, UIntPtr size);

        /// <summary>What one symbolic link holds (one system call, where realpath takes one per path component); null when it cannot be read.</summary>
        public static string? ReadLink(string path)
        {
            const int Size = 4096;
            var buf = stackalloc byte[Size];
            long n = (long)readlink_(path, buf, (UIntPtr)Size);
            return n < 0 || n >= Size ? null : System.Text.Encoding.UTF8.GetString(buf, (int)n);
        }

        /// <summary>
        /// A whole /proc file, read with open/read/close: File.ReadAllText adds an fstat, two flocks and a reader, and a
        /// machine-wide install reads a dozen such files per process. Fails as File.ReadAllText does (FileNotFound for a
        /// process that is gone, UnauthorizedAccess, IOException).
        /// </summary>
        /// <param name="limit">The most bytes read: the maps of a process are as long as it makes them (every mapping of a
        /// file with a 4 KB path adds a 4 KB line), and a sweep run as root must not hold what a local user chose to fill.</param>
        /// <exception cref="ProcFileTooLargeException">The file holds more than <paramref name="limit"/> bytes.</exception>
        public static string ReadProcFile(string path, int limit = SmallProcFileLimit)
        {
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
            {
                int errno = Marshal.GetLastWin32Error();
                if (errno == ENOENT || errno == ESRCH) throw new System.IO.FileNotFoundException(path + ": " + StrError(errno), path);
                if (errno == EACCES || errno == EPERM) throw new UnauthorizedAccessException(path + ": " + StrError(errno));
                throw new System.IO.IOException(path + ": " + StrError(errno));
            }
            try
            {
                var buffer = new byte[Math.Min(4096, limit + 1)];
                int length = 0;
                while (true)
                {
                    // One byte past the limit tells a file of exactly `limit` bytes from a longer one.
                    if (length > limit) throw new ProcFileTooLargeException(path, limit);
                    if (length == buffer.Length) Array.Resize(ref buffer, (int)Math.Min((long)buffer.Length * 2, (long)limit + 1));
                    long n;
                    fixed (byte* b = buffer) n = (long)read(fd, b + length, (UIntPtr)(buffer.Length - length));
                    if (n < 0)
                    {
                        int errno = Marshal.GetLastWin32Error();
                        if (errno == EINTR) continue;
                        if (errno == ESRCH || errno == ENOENT) throw new System.IO.FileNotFoundException(path + ": " + StrError(errno), path);
                        if (errno == EACCES || errno == EPERM) throw new UnauthorizedAccessException(path + ": " + StrError(errno));
                        throw new System.IO.IOException(path + ": " + StrError(errno));
                    }
                    if (n == 0) break;
                    length += (int)n;
                }
                return System.Text.Encoding.UTF8.GetString(buffer, 0, length);
            }
            finally { close(fd); }
        }

        /// <summary>Far above what the kernel writes in stat, status, comm or schedstat.</summary>
        public const int SmallProcFileLimit = 1 << 20;

        /// <summary>The path with every symbolic link resolved, or null when it cannot be resolved.</summary>
        public static string? RealPath(string path)
        {
            var p = realpath(path, IntPtr.Zero);
            if (p == IntPtr.Zero) return null;
            try { return Marshal.PtrToStringAnsi(p); }
            finally { free(p); }
        }
    }

    /// <summary>A /proc file longer than its caller's limit: nothing of it was used.</summary>
    internal sealed class ProcFileTooLargeException : System.IO.IOException
    {
        public ProcFileTooLargeException(string path, int limit) : base(path + " is larger than " + (limit >> 20) + " MiB.") { }
    }
}
