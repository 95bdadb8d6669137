namespace HotpatchTools.Engine.Patching
{
    public enum TargetState
    {
        /// <summary>Module, identity and every expect match, and every safety check passes: the patch can be installed.</summary>
        Vulnerable,
        /// <summary>The patch is installed: its cave is present and every site holds its jump.</summary>
        Patched,
        /// <summary>Wrong build: identity or expect bytes differ. Never written.</summary>
        Mismatch,
        /// <summary>The module matches but a safety rule refuses the site (e.g. a branch into the span).</summary>
        Unsupported,
        /// <summary>A cave of this patch exists but the sites no longer hold its jumps.</summary>
        Inconsistent,
        /// <summary>The process does not have the module loaded.</summary>
        NotLoaded,
        AccessDenied,
        /// <summary>A patch that supersedes this one is installed: nothing to do.</summary>
        Superseded,
    }

    /// <param name="ErrorKind">What installing into this target now would fail with; null when it is Vulnerable.</param>
    public sealed record TargetStatus(
        int ProcessId, string ProcessName, string Module, string ModulePath, ulong ModuleBase, string PatchId, string PatchTitle, string PatchPath,
        TargetState State, string Reason, HotpatchErrorKind? ErrorKind)
    {
        /// <summary>For a Vulnerable target, the plan the inspection made, for the install to re-check instead of planning again.</summary>
        internal PreparedInstall? Prepared { get; set; }
    }

    /// <summary>
    /// One inspection's finding (<see cref="Status"/>) and, for a Vulnerable target, what it planned: the install
    /// re-checks the plan under the target's writer lock and freeze instead of planning again. From
    /// <see cref="HotpatchEngine.Prepare"/> it also keeps the process open for that install; disposing closes it.
    /// </summary>
    public sealed class PreparedInstall : IDisposable
    {
        internal PreparedInstall(TargetStatus status) { Status = status; }

        public TargetStatus Status { get; }
        internal Format.Micropatch? Patch { get; set; }
        internal PatchPlan? Plan { get; set; }
        /// <summary>The installed patches the plan replaces, as read when it was made.</summary>
        internal List<FoundCave> Replaced { get; set; } = new List<FoundCave>();
        internal Platform.ITargetProcess? Target { get; set; }

        public void Dispose()
        {
            var target = Target;
            Target = null;
            target?.Dispose();
        }
    }

    public sealed class SiteRecord
    {
        public ulong Address { get; set; }
        public string Mode { get; set; } = "";
        public byte[] Original { get; set; } = new byte[0];
        public byte[] Written { get; set; } = new byte[0];
        /// <summary>What the site holds now, read from the process.</summary>
        public byte[] Current { get; set; } = new byte[0];
    }

    /// <summary>What a cave found in a process stands for; Removed only in an uninstall's result.</summary>
    public enum PatchState
    {
        /// <summary>Its cave is present and every site holds its jump.</summary>
        Installed,
        /// <summary>Removed, its cave kept because a thread might still return into it.</summary>
        Retired,
        /// <summary>A site lost its jump.</summary>
        Inconsistent,
        /// <summary>Uninstalled by this call.</summary>
        Removed,
        /// <summary>Its installer died before writing any site; Uninstall frees it.</summary>
        Orphaned,
    }

    public sealed record InstalledPatch(
        int ProcessId, string ProcessName, string PatchId, string FileSha256, string Module, DateTime InstalledUtc,
        ulong CaveAddress, int CaveSize, PatchState State, IReadOnlyList<SiteRecord> Sites);

    /// <param name="Replaced">Ids of the patches this install removed because the new one supersedes them.</param>
    public sealed record InstallResult(InstalledPatch Patch, TimeSpan FreezeTime, int ThreadCount, IReadOnlyList<string> Replaced);

    public sealed record UninstallResult(InstalledPatch Patch, bool CaveFreed, string Message, TimeSpan FreezeTime);

    public sealed class EngineOptions
    {
        /// <summary>How long install waits for every thread to leave the bytes it must overwrite.</summary>
        public TimeSpan ThreadWait { get; set; } = TimeSpan.FromSeconds(2);
        /// <summary>How long install and uninstall wait for another session's write to the same process to finish.</summary>
        public TimeSpan LockWait { get; set; } = TimeSpan.FromSeconds(30);
        /// <summary>How long stopping all threads may take.</summary>
        public TimeSpan StopTimeout { get; set; } = TimeSpan.FromSeconds(5);
        /// <summary>Receives one line per thing the engine did (for -Verbose).</summary>
        public Action<string>? Log { get; set; }
        /// <summary>
        /// Receives what a machine-wide sweep must not keep quiet about: processes it skipped as suspicious and how
        /// many it could not read, so that a sweep that missed processes never looks complete (for warnings).
        /// </summary>
        public Action<string>? Warn { get; set; }
        /// <summary>
        /// Receives one record per Install and Uninstall outcome, success or failure, whoever called the engine.
        /// Whatever it throws is logged and never replaces the outcome.
        /// </summary>
        public Action<Audit.AuditRecord>? Audit { get; set; }
        /// <summary>How many processes a sweep or <see cref="HotpatchEngine.RunEach{TItem, TResult}"/> works on at once; 0: one per processor.</summary>
        public int Workers { get; set; }
    }
}
