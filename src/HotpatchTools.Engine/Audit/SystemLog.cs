using System.Text;
using HotpatchTools.Engine.Machine;
using HotpatchTools.Engine.Platform.Linux;
using HotpatchTools.Engine.Platform.Windows;
using static HotpatchTools.Engine.Platform.HostOs;

namespace HotpatchTools.Engine.Audit
{
    /// <summary>
    /// The copy of each audit record in the system's own log: syslog (facility authpriv, tag "hotpatchtools", which
    /// journald collects too) on Linux, the Application event log (source "HotpatchTools") on Windows.
    /// </summary>
    internal static class SystemLog
    {
        public const string Tag = "hotpatchtools";
        public const string EventSource = "HotpatchTools";

        /// <summary>The Application log's event id for each result, as about_HotpatchTools_Trust documents them.</summary>
        private enum EventId : uint { Installed = 1000, Removed = 1001, Refused = 1002, Failed = 1003 }

        private const ushort EventWarningType = 2, EventInformationType = 4;
        private const int LogAuthPriv = 10 << 3, LogWarning = 4, LogNotice = 5;

        /// <summary>
        /// /dev/log, or, while HOTPATCHTOOLS_MACHINE_ROOT redirects the machine's files, syslog.sock in its log folder:
        /// a test can listen there and a redirected run never writes the real system log.
        /// </summary>
        public static string SyslogSocket =>
            string.IsNullOrEmpty(Environment.GetEnvironmentVariable(MachinePaths.OverrideVariable)) ? "/dev/log" : Path.Combine(MachinePaths.LogDirectory, "syslog.sock");

        /// <summary>Sends the record; false when there is no system log to send it to (no syslog socket, no event log).</summary>
        public static bool Send(AuditRecord record)
        {
            bool problem = record.Result == AuditResult.Refused || record.Result == AuditResult.Failed;
            string json = record.ToJson();
            if (IsWindows)
            {
                // A redirected (test) run keeps out of the machine's event log, as it keeps out of its files.
                if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(MachinePaths.OverrideVariable))) return false;
                var id = record.Result switch
                {
                    AuditResult.Installed => EventId.Installed,
                    AuditResult.Removed => EventId.Removed,
                    AuditResult.Refused => EventId.Refused,
                    _ => EventId.Failed,
                };
                return ReportEvent(problem ? EventWarningType : EventInformationType, id, json);
            }
            return SendSyslog((problem ? LogWarning : LogNotice) | LogAuthPriv, json);
        }

        private static bool ReportEvent(ushort type, EventId id, string text)
        {
            var h = Win32.RegisterEventSourceW(null, EventSource);
            if (h == IntPtr.Zero) return false;
            try { return Win32.ReportEventW(h, type, 0, (uint)id, IntPtr.Zero, 1, 0, new[] { text }, IntPtr.Zero); }
            finally { Win32.DeregisterEventSource(h); }
        }

        private static unsafe bool SendSyslog(int priority, string message)
        {
            var socketPath = SyslogSocket;
            var pathBytes = Encoding.UTF8.GetBytes(socketPath);
            if (pathBytes.Length >= 108 || !File.Exists(socketPath)) return false;
            // No openlog/syslog(3): those would change the host process's own syslog identity.
            var bytes = Encoding.UTF8.GetBytes("<" + priority + ">" + Tag + "[" + System.Diagnostics.Process.GetCurrentProcess().Id + "]: " + message);
            var addr = stackalloc byte[110];
            addr[0] = LibC.AF_UNIX;
            addr[1] = 0;
            for (int i = 0; i < pathBytes.Length; i++) addr[2 + i] = pathBytes[i];
            addr[2 + pathBytes.Length] = 0;
            int fd = LibC.socket(LibC.AF_UNIX, LibC.SOCK_DGRAM | LibC.SOCK_CLOEXEC, 0);
            if (fd < 0) return false;
            try
            {
                fixed (byte* p = bytes)
                    return (long)LibC.sendto(fd, p, (UIntPtr)bytes.Length, LibC.MSG_NOSIGNAL, addr, 2 + pathBytes.Length + 1) == bytes.Length;
            }
            finally { LibC.close(fd); }
        }
    }
}
