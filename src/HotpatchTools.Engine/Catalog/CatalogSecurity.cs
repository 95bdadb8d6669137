using System;
using System.IO;
using System.Runtime.InteropServices;

namespace HotpatchTools.Engine.Catalog
{
    /// <summary>
    /// Who may change the catalog, and that its files are really only theirs: an entry anyone can write would let
    /// them run code in every process a root enforcement pass patches.
    /// </summary>
    public static class CatalogSecurity
    {
        private static bool IsWindows => RuntimeInformation.IsOSPlatform(OSPlatform.Windows);


        /// <summary>Creates the folder if needed; on Windows with an explicit ACL, because ProgramData lets every user create files.</summary>
        internal static void EnsureDirectory(string dir)
        {
            if (Directory.Exists(dir)) return;
            Directory.CreateDirectory(dir);
            if (IsWindows) ProtectWindowsDirectory(dir);
            else SetDirectoryMode(dir);
        }

        internal static void SetDirectoryMode(string dir)
        {
            if (!IsWindows) Chmod(dir, 0x1ed); // 0755
        }

        internal static void SetFileMode(string file)
        {
            if (!IsWindows) Chmod(file, 0x1a4); // 0644
        }

        /// <summary>
        /// Why a catalog path cannot be trusted, or null. On Linux: owned by root and writable by nobody else, the
        /// check sshd makes of authorized_keys. On Windows the folder's ACL is set when it is created.
        /// </summary>
        public static string? Untrusted(string path)
        {
            if (IsWindows) return null;
            if (!TryStat(path, out uint uid, out uint mode)) return path + " cannot be examined";
            if (uid != 0) return path + " is owned by uid " + uid + ", not root";
            if ((mode & 0x12) != 0) return path + " is writable by group or others (mode " + Convert.ToString(mode & 0xfff, 8) + ")";
            return null;
        }

        // ---- Linux ----

        [DllImport("libc", SetLastError = true)] private static extern int chmod([MarshalAs(UnmanagedType.LPStr)] string path, uint mode);
        [DllImport("libc", EntryPoint = "stat", SetLastError = true)] private static extern int stat_([MarshalAs(UnmanagedType.LPStr)] string path, byte[] buf);
        [DllImport("libc", EntryPoint = "__xstat", SetLastError = true)] private static extern int xstat(int version, [MarshalAs(UnmanagedType.LPStr)] string path, byte[] buf);

        private static void Chmod(string path, uint mode)
        {
            if (chmod(path, mode) != 0)
                throw new IOException("chmod " + Convert.ToString(mode, 8) + " " + path + " failed (errno " + Marshal.GetLastWin32Error() + ")");
        }

        // struct stat on x86_64: st_mode at 24, st_uid at 28 (glibc and the kernel agree). `stat` is exported
        // from glibc 2.33 on; older ones only have __xstat (version 1 on x86_64).
        private static bool TryStat(string path, out uint uid, out uint mode)
        {
            var buf = new byte[256];
            int r;
            try { r = stat_(path, buf); }
            catch (EntryPointNotFoundException) { r = xstat(1, path, buf); }
            mode = BitConverter.ToUInt32(buf, 24);
            uid = BitConverter.ToUInt32(buf, 28);
            return r == 0;
        }

        // ---- Windows ----

        private const uint DACL_SECURITY_INFORMATION = 0x4;

        [DllImport("kernel32.dll")] private static extern IntPtr LocalFree(IntPtr h);
        [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        private static extern bool ConvertStringSecurityDescriptorToSecurityDescriptorW(string sddl, uint revision, out IntPtr descriptor, IntPtr size);
        [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        private static extern bool SetFileSecurityW(string path, uint info, IntPtr descriptor);

        // SYSTEM and Administrators full control, Users read and execute; "P" cuts off inheritance from ProgramData
        // (it grants Users the right to create files and folders). Entries created later inherit these ACEs.
        private const string CatalogSddl = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)";

        private static void ProtectWindowsDirectory(string dir)
        {
            if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(CatalogSddl, 1, out var sd, IntPtr.Zero))
                throw new IOException("Cannot build the catalog's security descriptor (error " + Marshal.GetLastWin32Error() + ").");
            try
            {
                if (!SetFileSecurityW(dir, DACL_SECURITY_INFORMATION, sd))
                    throw new IOException("Cannot set the access control list of " + dir + " (error " + Marshal.GetLastWin32Error() + ").");
            }
            finally { LocalFree(sd); }
        }
    }
}
