using System;
using System.IO;
using System.Runtime.InteropServices;

namespace HotpatchTools.Engine.Machine
{
    /// <summary>Machine-wide folders and files that administrators write and everyone may read.</summary>
    internal static class SecureFiles
    {
        private static bool IsWindows => RuntimeInformation.IsOSPlatform(OSPlatform.Windows);

        // SYSTEM and Administrators full control, Users read; not inherited from %ProgramData%, where Users may create files.
        private const string AdminOnlySddl = "D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FRFX;;;BU)";

        /// <summary>Creates the folder (and its parents) if needed and gives a newly created one admin-only write access.</summary>
        public static void EnsureAdminDirectory(string dir)
        {
            if (Directory.Exists(dir)) return;
            Directory.CreateDirectory(dir);
            if (IsWindows) SetWindowsAcl(dir);
            else NativeMethods.chmod(dir, Convert.ToInt32("755", 8));
        }

        public static void MakeAdminFile(string path)
        {
            if (IsWindows) SetWindowsAcl(path);
            else NativeMethods.chmod(path, Convert.ToInt32("644", 8));
        }

        private static void SetWindowsAcl(string path)
        {
            if (!NativeMethods.ConvertStringSecurityDescriptorToSecurityDescriptorW(AdminOnlySddl, 1, out var sd, IntPtr.Zero))
                throw new IOException("cannot build the security descriptor for " + path + " (error " + Marshal.GetLastWin32Error() + ")");
            try
            {
                if (!NativeMethods.SetFileSecurityW(path, NativeMethods.DACL_SECURITY_INFORMATION | NativeMethods.PROTECTED_DACL_SECURITY_INFORMATION, sd))
                    throw new IOException("cannot restrict " + path + " to administrators (error " + Marshal.GetLastWin32Error() + ")");
            }
            finally { NativeMethods.LocalFree(sd); }
        }

        /// <summary>
        /// Why a file or folder that decides trust could have been changed by someone other than root, or null.
        /// Windows relies on the ACL set at creation.
        /// </summary>
        public static string? WhyNotAdminOnly(string path)
        {
            if (IsWindows) return null;
            var st = NativeMethods.Stat(path);
            if (st == null) return null;
            if (st.Value.Uid != 0) return path + " is owned by uid " + st.Value.Uid + ", not root";
            if ((st.Value.Mode & Convert.ToInt32("022", 8)) != 0) return path + " is writable by group or others (mode " + Convert.ToString(st.Value.Mode & 0xfff, 8) + ")";
            return null;
        }
    }
}
