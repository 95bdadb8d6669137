using System.Runtime.InteropServices;
using HotpatchTools.Engine.Platform.Linux;
using HotpatchTools.Engine.Platform.Windows;
using static HotpatchTools.Engine.Platform.HostOs;

namespace HotpatchTools.Engine.Machine
{
    /// <summary>Machine-wide folders and files that administrators write and everyone may read.</summary>
    internal static class SecureFiles
    {
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
            if (LibC.chmod(path, Convert.ToInt32(octal, 8)) != 0)
                throw new IOException("chmod " + octal + " " + path + " failed (errno " + Marshal.GetLastWin32Error() + ")");
        }

        private static void SetWindowsAcl(string path)
        {
            if (!Win32.ConvertStringSecurityDescriptorToSecurityDescriptorW(AdminOnlySddl, 1, out var sd, IntPtr.Zero))
                throw new IOException("cannot build the security descriptor for " + path + " (error " + Marshal.GetLastWin32Error() + ")");
            try
            {
                if (!Win32.SetFileSecurityW(path, Win32.DACL_SECURITY_INFORMATION | Win32.PROTECTED_DACL_SECURITY_INFORMATION, sd))
                    throw new IOException("cannot restrict " + path + " to administrators (error " + Marshal.GetLastWin32Error() + ")");
            }
            finally { Win32.LocalFree(sd); }
        }

        /// <summary>
        /// Why a file or folder that decides trust or holds the audit trail could have been changed by someone other
        /// than an administrator, or null. Linux: owned by root and not writable by group or others. Windows: owned by
        /// Administrators, SYSTEM or TrustedInstaller (or by this elevated user), so that a user who created the folder
        /// under %ProgramData% before HotpatchTools did is caught, and no one else given a right to change it. Both:
        /// the path itself is no link, and no folder above it lets anyone else swap it.
        /// </summary>
        public static string? WhyNotAdminOnly(string path)
        {
            if (IsWindows) return WindowsFileSecurity.WhyNotAdminOnly(path);
            // The file itself, not what a link planted in its place points to.
            var st = LibC.LStat(path);
            if (st == null) return null;
            if ((st.Value.Mode & LibC.S_IFMT) == LibC.S_IFLNK) return path + " is a symbolic link";
            return WhyNotRootOnly(path, st.Value.Mode, st.Value.Uid) ?? WhyParentsNotRootOnly(path);
        }

        private static string? WhyNotRootOnly(string path, int mode, uint uid)
        {
            if (uid != 0) return path + " is owned by uid " + uid + ", not root";
            if ((mode & Convert.ToInt32("022", 8)) != 0) return path + " is writable by group or others (mode " + Convert.ToString(mode & 0xfff, 8) + ")";
            return null;
        }

        /// <summary>
        /// Every folder above the path, as written and with links resolved, up to /, the way sshd's StrictModes checks a
        /// user's files: owned by root, and writable by no one else, except a sticky folder such as /tmp (where no one can
        /// rename or remove what root owns) and a folder writable by a system group (gid below 1000, such as /var/log's
        /// syslog group on Debian). Whoever can write a parent can swap what lies below it.
        /// </summary>
        private static string? WhyParentsNotRootOnly(string path)
        {
            var full = Path.GetFullPath(path);
            return FirstProblemAbove(full, LibC.RealPath(full), StringComparison.Ordinal, dir =>
            {
                var st = LibC.LStat(dir);
                if (st == null) return null;
                var (mode, uid, gid) = st.Value;
                if (uid != 0) return dir + " (above " + path + ") is owned by uid " + uid + ", not root";
                if ((mode & LibC.S_IFMT) == LibC.S_IFLNK) return null; // a root-owned link; its target's folders are checked as `real`
                bool sticky = (mode & LibC.S_ISVTX) != 0;
                if ((mode & 2) != 0 && !sticky) return dir + " (above " + path + ") is writable by everyone (mode " + Convert.ToString(mode & 0xfff, 8) + ")";
                if ((mode & 16) != 0 && !sticky && gid >= 1000) return dir + " (above " + path + ") is writable by group " + gid + " (mode " + Convert.ToString(mode & 0xfff, 8) + ")";
                return null;
            });
        }

        /// <summary>
        /// The first reason <paramref name="why"/> gives for a folder above the path, nearest first, up to the root: above
        /// the path as written and, where links lead elsewhere, above <paramref name="real"/> (where they lead) too, since
        /// whoever can swap either can swap what lies below. Each system judges a folder its own way.
        /// </summary>
        internal static string? FirstProblemAbove(string full, string? real, StringComparison sameName, Func<string, string?> why)
        {
            foreach (var start in real == null || string.Equals(real, full, sameName) ? new[] { full } : new[] { full, real })
                for (var dir = Path.GetDirectoryName(start); !string.IsNullOrEmpty(dir); dir = Path.GetDirectoryName(dir))
                    if (why(dir!) is string reason) return reason;
            return null;
        }

        /// <summary>
        /// Reads a file that decides trust through one handle: opened without following a link, and checked (owner, mode,
        /// a regular file) on that handle, so the file checked is the file read.
        /// </summary>
        public static byte[] ReadAdminFile(string path)
        {
            if (IsWindows) return WindowsFileSecurity.ReadAdminFile(path);
            if (WhyParentsNotRootOnly(path) is string why) throw new UnauthorizedAccessException(why);
            int fd = LibC.open(path, LibC.O_RDONLY | LibC.O_NOFOLLOW | LibC.O_CLOEXEC, 0);
            if (fd < 0)
            {
                int errno = Marshal.GetLastWin32Error();
                if (errno == LibC.ENOENT) throw new FileNotFoundException(path + " does not exist", path);
                throw new UnauthorizedAccessException(path + " cannot be opened without following a link (errno " + errno + ")");
            }
            using var stream = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle((IntPtr)fd, true), FileAccess.Read);
            var st = LibC.FStat(fd) ?? throw new IOException(path + " cannot be examined");
            if ((st.Mode & LibC.S_IFMT) != LibC.S_IFREG) throw new UnauthorizedAccessException(path + " is not a regular file");
            if (WhyNotRootOnly(path, st.Mode, st.Uid) is string own) throw new UnauthorizedAccessException(own);
            var ms = new MemoryStream();
            stream.CopyTo(ms);
            return ms.ToArray();
        }
    }
}
