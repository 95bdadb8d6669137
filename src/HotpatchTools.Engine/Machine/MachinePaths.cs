using System.Runtime.InteropServices;
using static HotpatchTools.Engine.Platform.HostOs;

namespace HotpatchTools.Engine.Machine
{
    /// <summary>
    /// Where the machine-wide state lives: the patch catalog, the trusted publishers and the audit log.
    /// Everything is kept where only administrators can write; tests (and staged roll-outs) point the
    /// whole tree elsewhere with one environment variable.
    /// </summary>
    public static class MachinePaths
    {
        /// <summary>When set, every machine-wide file lives under this folder instead (tests use it).</summary>
        public const string OverrideVariable = "HOTPATCHTOOLS_MACHINE_ROOT";

        private static string? Override
        {
            get
            {
                var v = Environment.GetEnvironmentVariable(OverrideVariable);
                return string.IsNullOrEmpty(v) ? null : Path.GetFullPath(v);
            }
        }

        /// <summary>%ProgramData%\HotpatchTools on Windows, /var/lib/hotpatchtools on Linux.</summary>
        public static string StateRoot =>
            Override ?? (IsWindows
                ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.CommonApplicationData), "HotpatchTools")
                : "/var/lib/hotpatchtools");

        /// <summary>Registered patch files and their enabled/disabled state.</summary>
        public static string CatalogDirectory => Path.Combine(StateRoot, "catalog");

        /// <summary>Trusted publishers (certificate thumbprints, optional CA roots).</summary>
        public static string TrustDirectory => Path.Combine(StateRoot, "trust");

        /// <summary>%ProgramData%\HotpatchTools\Logs on Windows, /var/log/hotpatchtools on Linux.</summary>
        public static string LogDirectory =>
            Override != null ? Path.Combine(Override, "log")
            : IsWindows ? Path.Combine(StateRoot, "Logs")
            : "/var/log/hotpatchtools";

        /// <summary>One JSON object per line: every install, uninstall and refusal.</summary>
        public static string AuditLogFile => Path.Combine(LogDirectory, "audit.jsonl");
    }
}
