using HotpatchTools.Engine.Platform.Linux;
using HotpatchTools.Engine.Platform.Windows;
using static HotpatchTools.Engine.Platform.HostOs;

namespace HotpatchTools.Engine.Machine
{
    /// <summary>
    /// Whether this session may change processes and the machine's trust: root on Linux, an elevated
    /// Administrator token on Windows. Checked before anything is touched, so a refusal leaves no half-done work.
    /// </summary>
    public static class Privilege
    {
        /// <summary>
        /// Only euid 0 counts. CAP_SYS_PTRACE alone would let a process write into targets, but not append to the
        /// root-owned audit log or read a trust store it could not have changed: such a session could patch without
        /// leaving a trace, which is exactly what the check is for.
        /// </summary>
        internal static bool IsElevatedEuid(uint euid) => euid == 0;

        public static bool IsElevated()
        {
            if (!IsWindows) return IsElevatedEuid(LibC.geteuid());
            if (!Win32.OpenProcessToken(Win32.GetCurrentProcess(), Win32.TOKEN_QUERY, out var token)) return false;
            try
            {
                return Win32.GetTokenInformation(token, Win32.TokenElevation, out int elevated, 4, out _) && elevated != 0;
            }
            finally { Win32.CloseHandle(token); }
        }

        /// <summary>Throws NotElevated, naming what was refused and how to run it, unless the session is elevated.</summary>
        public static void Demand(string action)
        {
            if (IsElevated()) return;
            throw new HotpatchException(HotpatchErrorKind.NotElevated, action + " needs an elevated session: " +
                (IsWindows
                    ? "run PowerShell as Administrator."
                    : "run it as root (sudo); CAP_SYS_PTRACE alone is not enough, because the audit log and the trusted publishers are root's.") +
                " Nothing was changed.");
        }
    }
}
