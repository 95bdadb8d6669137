using HotpatchTools.Engine.Patching;

namespace HotpatchTools
{
    // Flat snapshots of primitives: they keep their meaning after remoting serialization. States are strings
    // (a name of the engine's enum documenting them), so ConvertTo-Json and Export-Csv write names, not numbers.
    // They use no engine type, so listing the module's types needs nothing but this assembly.

    /// <summary>Get-HotpatchTarget: one process against one patch file.</summary>
    public sealed class HotpatchTarget
    {
        public string ComputerName { get; set; } = Environment.MachineName;
        public int ProcessId { get; set; }
        public string ProcessName { get; set; } = "";
        public string PatchId { get; set; } = "";
        public string Title { get; set; } = "";
        public string Module { get; set; } = "";
        public string ModulePath { get; set; } = "";
        /// <summary>A <see cref="Engine.Patching.TargetState"/> name.</summary>
        public string State { get; set; } = "";
        public string Reason { get; set; } = "";
        /// <summary>The patch file, so the object pipes into Install-Micropatch.</summary>
        public string Path { get; set; } = "";

        internal static HotpatchTarget From(TargetStatus s) => new HotpatchTarget
        {
            ProcessId = s.ProcessId, ProcessName = s.ProcessName, PatchId = s.PatchId, Title = s.PatchTitle, Module = s.Module,
            ModulePath = s.ModulePath, State = s.State.ToString(), Reason = s.Reason, Path = s.PatchPath,
        };
    }

    /// <summary>Get-Micropatch: a patch installed in a process, read from the process itself.</summary>
    public sealed class MicropatchInfo
    {
        public string ComputerName { get; set; } = Environment.MachineName;
        public int ProcessId { get; set; }
        public string ProcessName { get; set; } = "";
        public string PatchId { get; set; } = "";
        public string Module { get; set; } = "";
        /// <summary>A <see cref="PatchState"/> name: Installed, Retired (removed; cave kept while a thread may return into it), Inconsistent, or Orphaned (its installer died before writing any site).</summary>
        public string State { get; set; } = "";
        public DateTime InstalledTime { get; set; }
        public string FileSha256 { get; set; } = "";
        public string CaveAddress { get; set; } = "";
        public int SiteCount { get; set; }
        /// <summary>One line per site: "0xADDR: now (original)".</summary>
        public FlatStringList Sites { get; set; } = new FlatStringList();

        internal static MicropatchInfo From(InstalledPatch p) => new MicropatchInfo
        {
            ProcessId = p.ProcessId, ProcessName = p.ProcessName, PatchId = p.PatchId, Module = p.Module, State = p.State.ToString(),
            InstalledTime = p.InstalledUtc.ToLocalTime(), FileSha256 = p.FileSha256, CaveAddress = "0x" + p.CaveAddress.ToString("x"),
            SiteCount = p.Sites.Count,
            Sites = new FlatStringList(p.Sites.Select(s => "0x" + s.Address.ToString("x") + ": " + Hex.Spaced(s.Current) + " (original " + Hex.Spaced(s.Original) + ")").ToArray()),
        };
    }

    /// <summary>-PassThru of Install-Micropatch and Uninstall-Micropatch.</summary>
    public sealed class MicropatchResult
    {
        public string ComputerName { get; set; } = Environment.MachineName;
        public int ProcessId { get; set; }
        public string ProcessName { get; set; } = "";
        public string PatchId { get; set; } = "";
        public string Module { get; set; } = "";
        /// <summary>The <see cref="PatchState"/> name Installed or Removed.</summary>
        public string Result { get; set; } = "";
        public string Message { get; set; } = "";
        public double FreezeMilliseconds { get; set; }
        public string CaveAddress { get; set; } = "";
        public DateTime Timestamp { get; set; } = DateTime.Now;
    }
}
