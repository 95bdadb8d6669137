using HotpatchTools.Engine.Catalog;

namespace HotpatchTools
{
    // Flat snapshots for the catalog, enforcement and compliance cmdlets (see OutputTypes.cs for why flat).

    /// <summary>Get-MicropatchCatalog and -PassThru of the catalog cmdlets: one registered patch.</summary>
    public sealed class MicropatchCatalogEntry
    {
        public string ComputerName { get; set; } = Environment.MachineName;
        public string PatchId { get; set; } = "";
        public string Title { get; set; } = "";
        public string Module { get; set; } = "";
        /// <summary>Whether Sync-Micropatch applies it; Enable-Micropatch and Disable-Micropatch switch it.</summary>
        public bool Enabled { get; set; }
        /// <summary>Registered with -AllowUnsigned: enforced though unsigned (a signature it has must still verify).</summary>
        public bool AllowUnsigned { get; set; }
        /// <summary>What the catalog's copy must still hash to whenever it is loaded; a changed copy is refused.</summary>
        public string FileSha256 { get; set; } = "";
        /// <summary>When it was registered, in local time.</summary>
        public DateTime RegisteredTime { get; set; }
        /// <summary>The catalog's copy of the patch file.</summary>
        public string Path { get; set; } = "";
        /// <summary>True when a detached signature (.sig) was registered with the file.</summary>
        public bool HasSignature { get; set; }
        /// <summary>Where the file was registered from.</summary>
        public string SourcePath { get; set; } = "";

        internal static MicropatchCatalogEntry From(CatalogEntry e) => new MicropatchCatalogEntry
        {
            PatchId = e.PatchId, Title = e.Title, Module = e.Module, Enabled = e.Enabled, AllowUnsigned = e.AllowUnsigned, FileSha256 = e.FileSha256,
            RegisteredTime = e.RegisteredUtc.ToLocalTime(), Path = e.PatchPath, HasSignature = e.SignaturePath != null, SourcePath = e.SourcePath,
        };
    }

    /// <summary>Sync-Micropatch: one patch in one process.</summary>
    public sealed class MicropatchSyncResult
    {
        public string ComputerName { get; set; } = Environment.MachineName;
        public string PatchId { get; set; } = "";
        public int ProcessId { get; set; }
        public string ProcessName { get; set; } = "";
        public string Module { get; set; } = "";
        /// <summary>An <see cref="EnforcementOutcome"/> name.</summary>
        public string Result { get; set; } = "";
        public string Reason { get; set; } = "";
        /// <summary>For Failed and Mismatch: the stable name of the failure (ExpectMismatch, UnsafeSite, ...); else empty.</summary>
        public string ErrorId { get; set; } = "";
        public DateTime Timestamp { get; set; }

        internal static MicropatchSyncResult From(EnforcementResult r) => new MicropatchSyncResult
        {
            PatchId = r.PatchId, ProcessId = r.ProcessId, ProcessName = r.ProcessName, Module = r.Module,
            Result = r.Outcome.ToString(), Reason = r.Reason == Enforcer.NotConfirmed ? "Not patched (-WhatIf or not confirmed)." : r.Reason,
            ErrorId = r.ErrorKind?.ToString() ?? "", Timestamp = r.TimestampUtc.ToLocalTime(),
        };
    }

    /// <summary>Test-MicropatchCompliance: is this machine protected by its catalog?</summary>
    public sealed class MicropatchCompliance
    {
        public string ComputerName { get; set; } = Environment.MachineName;
        public bool Compliant { get; set; }
        /// <summary>Enabled catalog patches that were checked.</summary>
        public int PatchCount { get; set; }
        /// <summary>Process-and-patch pairs where the patch is installed.</summary>
        public int Patched { get; set; }
        /// <summary>Pairs where the patch could be installed but is not.</summary>
        public int Vulnerable { get; set; }
        /// <summary>Pairs where the patch cannot be installed (a safety rule, an inconsistent site, an error).</summary>
        public int Failed { get; set; }
        /// <summary>Pairs of another build of the module: the patch does not apply; not counted against the machine.</summary>
        public int Mismatch { get; set; }
        /// <summary>Processes whose modules could not be read.</summary>
        public int Unreadable { get; set; }
        public bool Elevated { get; set; }
        /// <summary>Why the machine is not compliant (one line each), then notes.</summary>
        public FlatStringList Details { get; set; } = new FlatStringList();
        public DateTime Timestamp { get; set; } = DateTime.Now;
    }
}
