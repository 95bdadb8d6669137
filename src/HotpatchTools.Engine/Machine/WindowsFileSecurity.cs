using System.Runtime.InteropServices;
using HotpatchTools.Engine.Platform.Windows;
using Microsoft.Win32.SafeHandles;

namespace HotpatchTools.Engine.Machine
{
    /// <summary>
    /// The Windows side of <see cref="SecureFiles"/>: whether a file or folder that decides trust could have been
    /// changed by someone other than an administrator, judged on an open handle (never through a link or junction)
    /// from its owner and every allow entry of its DACL, and the same for every folder above it up to the drive root.
    /// </summary>
    internal static class WindowsFileSecurity
    {
        // Administrators, SYSTEM, TrustedInstaller.
        private static readonly string[] AdminSids = { "S-1-5-32-544", "S-1-5-18", "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464" };

        private const uint FILE_WRITE_DATA = 0x2, FILE_APPEND_DATA = 0x4, FILE_WRITE_EA = 0x10, FILE_DELETE_CHILD = 0x40, FILE_WRITE_ATTRIBUTES = 0x100,
            DELETE = 0x10000, WRITE_DAC = 0x40000, WRITE_OWNER = 0x80000, GENERIC_ALL = 0x10000000, GENERIC_WRITE = 0x40000000;

        /// <summary>Rights that let a principal change the file or folder itself, or what it lists.</summary>
        private const uint ChangesObject = FILE_WRITE_DATA | FILE_APPEND_DATA | FILE_WRITE_EA | FILE_DELETE_CHILD | FILE_WRITE_ATTRIBUTES |
            DELETE | WRITE_DAC | WRITE_OWNER | GENERIC_ALL | GENERIC_WRITE;

        /// <summary>
        /// Rights on a folder above that let a principal swap what lies below it. Creating entries is not one of them:
        /// Users may add folders to C:\ and %ProgramData% (as anyone may to /tmp), but not remove or rename ours.
        /// </summary>
        private const uint SwapsChild = FILE_DELETE_CHILD | DELETE | WRITE_DAC | WRITE_OWNER | GENERIC_ALL | GENERIC_WRITE;

        /// <summary>The reason a trust file or folder (or one above it) is not administrators' alone, or null; null too when it does not exist.</summary>
        public static string? WhyNotAdminOnly(string path)
        {
            var full = Path.GetFullPath(path);
            using (var h = Open(full))
            {
                if (h == null) return null;
                var why = WhyNotAdminOnly(h, full, SwapsOrChanges.Changes, mustBeFile: false);
                if (why != null) return why;
            }
            return WhyParentsNotAdminOnly(full);
        }

        /// <summary>
        /// Reads a trust file through one handle: opened without following a link or junction, checked on that
        /// handle, read from it while writers are shut out.
        /// </summary>
        public static byte[] ReadAdminFile(string path)
        {
            var full = Path.GetFullPath(path);
            if (WhyParentsNotAdminOnly(full) is string why) throw new UnauthorizedAccessException(why);
            using var h = Open(full) ?? throw new FileNotFoundException(path + " does not exist", path);
            if (WhyNotAdminOnly(h, full, SwapsOrChanges.Changes, mustBeFile: true) is string own) throw new UnauthorizedAccessException(own);
            using var stream = new FileStream(h, FileAccess.Read);
            var ms = new MemoryStream();
            stream.CopyTo(ms);
            return ms.ToArray();
        }

        /// <summary>
        /// Opens (creating if needed) a file to append to, through a handle that is not a link or junction and that only
        /// administrators can change; the caller's checks of the folder stand for the folders above.
        /// </summary>
        public static FileStream OpenAdminFileForAppend(string path)
        {
            var full = Path.GetFullPath(path);
            var h = Win32.CreateFileW(full, FILE_WRITE_DATA | FILE_APPEND_DATA | READ_CONTROL | SYNCHRONIZE, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, IntPtr.Zero,
                OPEN_ALWAYS, FILE_FLAG_OPEN_REPARSE_POINT, IntPtr.Zero);
            if (h.IsInvalid)
            {
                int error = Marshal.GetLastWin32Error();
                h.Dispose();
                if (error == ERROR_ACCESS_DENIED) throw new UnauthorizedAccessException("cannot write " + path + ": access denied");
                throw new IOException("cannot open " + path + " (error " + error + ")");
            }
            if (WhyNotAdminOnly(h, full, SwapsOrChanges.Changes, mustBeFile: true) is string why)
            {
                h.Dispose();
                throw new UnauthorizedAccessException(why);
            }
            var stream = new FileStream(h, FileAccess.Write);
            // Writers take turns under the caller's machine-wide mutex, so the end found here is the end written to.
            stream.Seek(0, SeekOrigin.End);
            return stream;
        }

        private enum SwapsOrChanges { Swaps, Changes }

        /// <summary>
        /// Every folder above the path up to its root, as written and as the system resolves it (links and junctions
        /// followed), owned by administrators and with no one else able to remove, rename or re-permission what it holds.
        /// </summary>
        private static string? WhyParentsNotAdminOnly(string full) =>
            SecureFiles.FirstProblemAbove(full, FinalPath(full), StringComparison.OrdinalIgnoreCase, dir =>
            {
                using var h = Open(dir);
                if (h == null) return null;
                return WhyNotAdminOnly(h, dir, SwapsOrChanges.Swaps, mustBeFile: false) is string why ? why + " (above " + full + ")" : null;
            });

        private static string? WhyNotAdminOnly(SafeFileHandle h, string path, SwapsOrChanges rule, bool mustBeFile)
        {
            if (!Win32.GetFileInformationByHandle(h, out var info)) return path + " cannot be examined (error " + Marshal.GetLastWin32Error() + ")";
            // A folder above may be a junction an administrator made (its target's folders are checked too); the file or folder itself may not.
            if (rule == SwapsOrChanges.Changes && (info.Attributes & FILE_ATTRIBUTE_REPARSE_POINT) != 0) return path + " is a link or junction";
            if (mustBeFile && (info.Attributes & FILE_ATTRIBUTE_DIRECTORY) != 0) return path + " is not a regular file";

            if (Win32.GetSecurityInfo(h, Win32.SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, out var owner, IntPtr.Zero, out var dacl, IntPtr.Zero, out var sd) != 0)
                return "the owner and permissions of " + path + " cannot be read";
            try
            {
                string? ownerSid = Win32.SidString(owner);
                if (ownerSid == null) return "the owner of " + path + " cannot be read";
                if (!IsAdmin(ownerSid)) return path + " is owned by " + ownerSid + ", not by Administrators or SYSTEM";
                // No DACL at all grants everyone everything.
                if (dacl == IntPtr.Zero) return path + " has no access control list: everyone may change it";
                uint forbidden = rule == SwapsOrChanges.Changes ? ChangesObject : SwapsChild;
                return WhoElseMayWrite(dacl, forbidden) is string sid
                    ? path + " may be " + (rule == SwapsOrChanges.Changes ? "changed" : "emptied, renamed or re-permissioned") + " by " + sid + ", not only by Administrators or SYSTEM"
                    : null;
            }
            finally { Win32.LocalFree(sd); }
        }

        private static bool IsAdmin(string sid) =>
            Array.IndexOf(AdminSids, sid) >= 0 || (ElevatedUser.Value is string me && sid == me);

        // A process's token does not change its user or elevation: asked once, not for every entry of every folder.
        private static readonly Lazy<string?> ElevatedUser = new Lazy<string?>(() => Privilege.IsElevated() ? Win32.CurrentUserSid() : null);

        /// <summary>The first principal other than an administrator that an allow entry gives one of the rights, or null.</summary>
        private static unsafe string? WhoElseMayWrite(IntPtr dacl, uint forbidden)
        {
            // ACL: revision, pad, size (u16), count (u16), pad (u16); then entries of header (type, flags, size u16), mask, SID.
            // The ACL comes from the system, yet every entry is checked to lie inside it before it is read.
            byte* acl = (byte*)dacl;
            int aclSize = *(ushort*)(acl + 2), count = *(ushort*)(acl + 4);
            int offset = 8;
            for (int i = 0; i < count; i++)
            {
                if (offset + 8 > aclSize) return "an unreadable entry";
                byte type = acl[offset], flags = acl[offset + 1];
                int size = *(ushort*)(acl + offset + 2);
                if (size < 8 || offset + size > aclSize) return "an unreadable entry";
                uint mask = *(uint*)(acl + offset + 4);
                // Allow entries only (a deny entry takes rights away), and not those that only pass on to what is created below.
                if (type == ACCESS_ALLOWED_ACE_TYPE && (flags & INHERIT_ONLY_ACE) == 0 && (mask & forbidden) != 0)
                {
                    string sid = Win32.SidString((IntPtr)(acl + offset + 8)) ?? "an unreadable SID";
                    if (!IsAdmin(sid)) return sid;
                }
                else if (type != ACCESS_ALLOWED_ACE_TYPE && type != ACCESS_DENIED_ACE_TYPE && (flags & INHERIT_ONLY_ACE) == 0)
                {
                    // Object and callback entries can grant rights under conditions this check does not evaluate.
                    return "an access entry of type " + type;
                }
                offset += size;
            }
            return null;
        }

        /// <summary>A handle to the file or folder itself (not what a link names), or null when it does not exist.</summary>
        private static SafeFileHandle? Open(string path)
        {
            // Writers are shut out while a trust file is checked and read; FILE_SHARE_DELETE keeps an atomic replace possible.
            var h = Win32.CreateFileW(path, GENERIC_READ | READ_CONTROL, FILE_SHARE_READ | FILE_SHARE_DELETE,
                IntPtr.Zero, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT, IntPtr.Zero);
            if (!h.IsInvalid) return h;
            int error = Marshal.GetLastWin32Error();
            h.Dispose();
            if (error == ERROR_FILE_NOT_FOUND || error == ERROR_PATH_NOT_FOUND) return null;
            if (error == ERROR_ACCESS_DENIED) throw new UnauthorizedAccessException(path + " cannot be opened to check who may change it: access denied");
            throw new IOException(path + " cannot be opened to check who may change it (error " + error + ")");
        }

        /// <summary>The path as the system resolves it, links and junctions followed, or null.</summary>
        private static string? FinalPath(string path)
        {
            using var h = Win32.CreateFileW(path, 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, IntPtr.Zero, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, IntPtr.Zero);
            if (h.IsInvalid) return null;
            var buffer = new char[1024];
            uint n = Win32.GetFinalPathNameByHandleW(h, buffer, (uint)buffer.Length, 0);
            if (n == 0 || n >= buffer.Length) return null;
            var text = new string(buffer, 0, (int)n);
            if (text.StartsWith(@"\\?\UNC\", StringComparison.Ordinal)) return @"\\" + text.Substring(8);
            return text.StartsWith(@"\\?\", StringComparison.Ordinal) ? text.Substring(4) : text;
        }

        private const uint GENERIC_READ = 0x80000000, READ_CONTROL = 0x20000, SYNCHRONIZE = 0x100000;
        private const uint FILE_SHARE_READ = 1, FILE_SHARE_WRITE = 2, FILE_SHARE_DELETE = 4, OPEN_EXISTING = 3, OPEN_ALWAYS = 4;
        private const uint FILE_FLAG_BACKUP_SEMANTICS = 0x02000000, FILE_FLAG_OPEN_REPARSE_POINT = 0x00200000;
        private const uint FILE_ATTRIBUTE_DIRECTORY = 0x10, FILE_ATTRIBUTE_REPARSE_POINT = 0x400;
        private const int ERROR_FILE_NOT_FOUND = 2, ERROR_PATH_NOT_FOUND = 3, ERROR_ACCESS_DENIED = 5;
        private const uint OWNER_SECURITY_INFORMATION = 1, DACL_SECURITY_INFORMATION = 4;
        private const byte ACCESS_ALLOWED_ACE_TYPE = 0, ACCESS_DENIED_ACE_TYPE = 1, INHERIT_ONLY_ACE = 0x8;
    }
}
