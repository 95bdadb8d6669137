using System.Text;
using HotpatchTools.Engine.Machine;
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
                return Platform.Windows.EventLog.Report(EventSource, problem ? Platform.Windows.EventLog.Warning : Platform.Windows.EventLog.Information, (uint)id, json);
            }
            // No openlog/syslog(3): those would change the host process's own syslog identity.
            var socket = SyslogSocket;
            if (!File.Exists(socket)) return false;
            int priority = (problem ? LogWarning : LogNotice) | LogAuthPriv;
            var datagram = Encoding.UTF8.GetBytes("<" + priority + ">" + Tag + "[" + System.Diagnostics.Process.GetCurrentProcess().Id + "]: " + json);
            return Platform.Linux.UnixDatagram.Send(socket, datagram);
        }
    }
}
