using System;
using System.Runtime.InteropServices;

namespace HotpatchTools.Engine.Machine
{
    /// <summary>The OS calls the trust store, the audit trail and the privilege check need.</summary>
    internal static unsafe class NativeMethods
    {
        private const string LibC = "libc.so.6";

        public const int O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0x40, O_APPEND = 0x400, O_NOFOLLOW = 0x20000, O_CLOEXEC = 0x80000;
        public const int LOCK_EX = 2, LOCK_NB = 4, LOCK_UN = 8;
        public const int EINTR = 4, EACCES = 13, EPERM = 1, ENOENT = 2, EWOULDBLOCK = 11;
        public const int AF_UNIX = 1, SOCK_DGRAM = 2, SOCK_CLOEXEC = 0x80000, MSG_NOSIGNAL = 0x4000;

        [DllImport(LibC)] public static extern uint geteuid();
        [DllImport(LibC, SetLastError = true)] public static extern int open([MarshalAs(UnmanagedType.LPStr)] string path, int flags, int mode);
        [DllImport(LibC, SetLastError = true)] public static extern IntPtr write(int fd, byte* buf, UIntPtr count);
        [DllImport(LibC, SetLastError = true)] public static extern int close(int fd);
        [DllImport(LibC, SetLastError = true)] public static extern int flock(int fd, int operation);
        [DllImport(LibC, SetLastError = true)] public static extern int chmod([MarshalAs(UnmanagedType.LPStr)] string path, int mode);
        [DllImport(LibC, SetLastError = true)] public static extern int socket(int domain, int type, int protocol);
        [DllImport(LibC, SetLastError = true)] public static extern IntPtr sendto(int fd, byte* buf, UIntPtr len, int flags, byte* addr, int addrlen);

        // glibc 2.33 and later export stat itself; older ones only the versioned __xstat.
        [DllImport(LibC, SetLastError = true, EntryPoint = "stat")] private static extern int stat_(string path, byte* buf);
        [DllImport(LibC, SetLastError = true)] private static extern int __xstat(int ver, string path, byte* buf);

        [DllImport(LibC, SetLastError = true, EntryPoint = "lstat")] private static extern int lstat_(string path, byte* buf);
        [DllImport(LibC, SetLastError = true)] private static extern int __lxstat(int ver, string path, byte* buf);
        [DllImport(LibC, SetLastError = true, EntryPoint = "fstat")] private static extern int fstat_(int fd, byte* buf);
        [DllImport(LibC, SetLastError = true)] private static extern int __fxstat(int ver, int fd, byte* buf);
        [DllImport(LibC, SetLastError = true)] private static extern IntPtr realpath(string path, IntPtr resolved);
        [DllImport(LibC)] private static extern void free(IntPtr p);

        public const int S_IFMT = 0xF000, S_IFDIR = 0x4000, S_IFREG = 0x8000, S_IFLNK = 0xA000, S_ISVTX = 0x200;

        /// <summary>Mode bits, owner and group of a file (x86-64 struct stat: st_mode at 24, st_uid at 28, st_gid at 32), or null if it does not exist.</summary>
        public static (int Mode, uint Uid)? Stat(string path)
        {
            var buf = stackalloc byte[256];
            int r;
            try { r = stat_(path, buf); }
            catch (EntryPointNotFoundException) { r = __xstat(1, path, buf); }
            if (r != 0) return null;
            return (*(int*)(buf + 24), *(uint*)(buf + 28));
        }

        /// <summary>As <see cref="Stat"/>, of a symbolic link itself rather than what it points to.</summary>
        public static (int Mode, uint Uid, uint Gid)? LStat(string path)
        {
            var buf = stackalloc byte[256];
            int r;
            try { r = lstat_(path, buf); }
            catch (EntryPointNotFoundException) { r = __lxstat(1, path, buf); }
            if (r != 0) return null;
            return (*(int*)(buf + 24), *(uint*)(buf + 28), *(uint*)(buf + 32));
        }

        /// <summary>As <see cref="Stat"/>, of an open file: what was opened, whatever the path names now.</summary>
        public static (int Mode, uint Uid)? FStat(int fd)
        {
            var buf = stackalloc byte[256];
            int r;
            try { r = fstat_(fd, buf); }
            catch (EntryPointNotFoundException) { r = __fxstat(1, fd, buf); }
            if (r != 0) return null;
            return (*(int*)(buf + 24), *(uint*)(buf + 28));
        }

        /// <summary>The path with every symbolic link resolved, or null when it cannot be resolved.</summary>
        public static string? RealPath(string path)
        {
            var p = realpath(path, IntPtr.Zero);
            if (p == IntPtr.Zero) return null;
            try { return Marshal.PtrToStringAnsi(p); }
            finally { free(p); }
        }

        // ---- Windows ----

        public const uint TOKEN_QUERY = 0x0008;
        public const int TokenElevation = 20;

        [DllImport("kernel32.dll")] public static extern IntPtr GetCurrentProcess();
        [DllImport("kernel32.dll", SetLastError = true)] public static extern bool CloseHandle(IntPtr h);
        [DllImport("advapi32.dll", SetLastError = true)] public static extern bool OpenProcessToken(IntPtr process, uint access, out IntPtr token);
        [DllImport("advapi32.dll", SetLastError = true)] public static extern bool GetTokenInformation(IntPtr token, int cls, out int value, int length, out int returned);

        [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        public static extern bool ConvertStringSecurityDescriptorToSecurityDescriptorW(string sddl, uint revision, out IntPtr descriptor, IntPtr size);
        [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        public static extern bool SetFileSecurityW(string path, uint information, IntPtr descriptor);
        [DllImport("kernel32.dll")] public static extern IntPtr LocalFree(IntPtr h);

        public const uint DACL_SECURITY_INFORMATION = 0x4, PROTECTED_DACL_SECURITY_INFORMATION = 0x80000000, OWNER_SECURITY_INFORMATION = 0x1;
        public const int SE_FILE_OBJECT = 1, TokenUser = 1;

        [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        public static extern bool ConvertSidToStringSidW(IntPtr sid, out IntPtr text);
        [DllImport("advapi32.dll", SetLastError = true, EntryPoint = "GetTokenInformation")]
        public static extern bool GetTokenInformationBuffer(IntPtr token, int cls, IntPtr buffer, int length, out int returned);

        /// <summary>The string form (S-1-...) of a SID, or null.</summary>
        public static string? SidString(IntPtr sid)
        {
            if (sid == IntPtr.Zero || !ConvertSidToStringSidW(sid, out var text)) return null;
            try { return Marshal.PtrToStringUni(text); }
            finally { LocalFree(text); }
        }

        /// <summary>The SID of the user this process runs as, or null.</summary>
        public static string? CurrentUserSid()
        {
            if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, out var token)) return null;
            var buffer = Marshal.AllocHGlobal(512);
            try
            {
                // TOKEN_USER starts with the SID pointer of its SID_AND_ATTRIBUTES.
                return GetTokenInformationBuffer(token, TokenUser, buffer, 512, out _) ? SidString(Marshal.ReadIntPtr(buffer)) : null;
            }
            finally
            {
                Marshal.FreeHGlobal(buffer);
                CloseHandle(token);
            }
        }

        [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)] public static extern IntPtr RegisterEventSourceW(string? server, string source);
        [DllImport("advapi32.dll", SetLastError = true)] public static extern bool DeregisterEventSource(IntPtr h);
        [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        public static extern bool ReportEventW(IntPtr h, ushort type, ushort category, uint eventId, IntPtr sid, ushort strings, uint dataSize, string[] text, IntPtr data);
    }
}
