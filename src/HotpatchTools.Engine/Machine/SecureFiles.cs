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
            else Chmod(dir, "755");
        }

        public static void MakeAdminFile(string path)
        {
            if (IsWindows) SetWindowsAcl(path);
            else Chmod(path, "644");
        }

        private static void Chmod(string path, string octal)
        {
            if (NativeMethods.chmod(path, Convert.ToInt32(octal, 8)) != 0)
                throw new IOException("chmod " + octal + " " + path + " failed (errno " + Marshal.GetLastWin32Error() + ")");
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

        // Administrators, SYSTEM, TrustedInstaller.
        private static readonly string[] AdminOwners = { "S-1-5-32-544", "S-1-5-18", "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464" };

        /// <summary>
        /// Why a file or folder that decides trust or holds the audit trail could have been changed by someone other
        /// than an administrator, or null. Linux: owned by root and not writable by group or others. Windows: owned by
        /// Administrators, SYSTEM or TrustedInstaller (or by this elevated user), so that a user who created the folder
        /// under %ProgramData% before HotpatchTools did is caught; the DACL is the one set when it was created.
        /// </summary>
        public static string? WhyNotAdminOnly(string path)
        {
            if (IsWindows)
            {
                if (!File.Exists(path) && !Directory.Exists(path)) return null;
                var owner = NativeMethods.OwnerSid(path);
                if (owner == null) return "the owner of " + path + " cannot be read";
                if (Array.IndexOf(AdminOwners, owner) >= 0) return null;
                if (Privilege.IsElevated() && owner == NativeMethods.CurrentUserSid()) return null;
                return path + " is owned by " + owner + ", not by Administrators or SYSTEM";
            }
            var st = NativeMethods.Stat(path);
            if (st == null) return null;
            if (st.Value.Uid != 0) return path + " is owned by uid " + st.Value.Uid + ", not root";
            if ((st.Value.Mode & Convert.ToInt32("022", 8)) != 0) return path + " is writable by group or others (mode " + Convert.ToString(st.Value.Mode & 0xfff, 8) + ")";
            return null;
        }
    }
}
