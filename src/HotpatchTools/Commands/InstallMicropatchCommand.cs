using HotpatchTools.Completion;
using HotpatchTools.Engine.Audit;
using HotpatchTools.Engine.Format;
using HotpatchTools.Engine.Patching;

namespace HotpatchTools.Commands
{
    /// <summary>Installs a micropatch into running processes, all patchlets or none in each.</summary>
    [Cmdlet(VerbsLifecycle.Install, "Micropatch", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = PathSet)]
    [OutputType(typeof(MicropatchResult))]
    public sealed class InstallMicropatchCommand : CatalogCommandBase
    {
        private readonly Dictionary<string, Micropatch?> _patches = new Dictionary<string, Micropatch?>();
        private readonly HashSet<string> _disabled = new HashSet<string>(System.StringComparer.OrdinalIgnoreCase);

        /// <summary>Patch files; wildcards take every match, and several paths may be given.</summary>
        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = PathSet)]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        [ArgumentCompleter(typeof(MicropatchPathCompleter))]
        public string[] Path { get; set; } = new string[0];

        /// <summary>Patch files named exactly, wildcard characters included.</summary>
        [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = LiteralPathSet)]
        [Alias("PSPath", "FullName")]
        [ValidateNotNullOrEmpty]
        public string[] LiteralPath { get; set; } = new string[0];

        /// <summary>
        /// Catalogued patches by id (exact, ignoring case): what a JEA operator is allowed instead of -Path. Not bound
        /// from the pipeline, because Get-HotpatchTarget's objects carry both a PatchId and a Path.
        /// </summary>
        [Parameter(Mandatory = true, ParameterSetName = CatalogSet)]
        [ValidateNotNullOrEmpty]
        [ArgumentCompleter(typeof(CatalogPatchIdCompleter))]
        public string[] PatchId { get; set; } = new string[0];

        /// <summary>Only these processes; without it, every process where the patch can be installed.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [Alias("Id", "PID")]
        [ValidateRange(1, int.MaxValue)]
        [ArgumentCompleter(typeof(ProcessIdCompleter))]
        public int[]? ProcessId { get; set; }

        /// <summary>Installs a file that has no signature; tampered, badly signed and untrusted files are refused regardless.</summary>
        [Parameter(ParameterSetName = PathSet)]
        [Parameter(ParameterSetName = LiteralPathSet)]
        public SwitchParameter AllowUnsigned { get; set; }

        /// <summary>Install without asking for confirmation.</summary>
        [Parameter]
        public SwitchParameter Force { get; set; }

        [Parameter]
        public SwitchParameter PassThru { get; set; }

        /// <summary>Folders with separate debug files, searched before /usr/lib/debug and HOTPATCH_DEBUG_DIRECTORY.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string[]? DebugDirectory { get; set; }

        protected override void BeginProcessing() => RequireElevationAndAudit("Installing a micropatch");

        protected override void ProcessRecord()
        {
            using var debug = UseDebugDirectories(DebugDirectory);
            ForEachPatch(PatchId, ParameterSetName == LiteralPathSet ? LiteralPath : Path,
                // Piped targets repeat the same file: check and parse it once per command.
                file => _patches.TryGetValue(file, out var known) ? known : _patches[file] = LoadPatch(file, AllowUnsigned),
                InstallPatch, admit: entry =>
                {
                    // Disabling is how an admin withdraws a patch; an operator's install by id must not bypass it.
                    if (entry.Enabled) return true;
                    // Piped target rows repeat an entry (one per process): one error for it.
                    if (_disabled.Add(entry.PatchId))
                        WriteError(new ErrorRecord(new System.InvalidOperationException("Patch " + entry.PatchId + " is disabled in the catalog; Enable-Micropatch it first."),
                            "PatchDisabled", ErrorCategory.InvalidOperation, entry.PatchId));
                    return false;
                });
        }

        protected override void EndProcessing()
        {
            CompleteProgress(2, InstallActivity);
            // Piped targets arrive one by one: the machine-wide summary of a patch is only known here.
            foreach (var s in _summaries.Values) Summarize(s);
        }

        private const string InstallActivity = "Installing micropatches";

        /// <summary>What happened to one patch in one command, so that nothing happens without a word.</summary>
        private sealed class Summary
        {
            public Micropatch Patch = null!;
            public int Installed, AlreadyPatched, Superseded, OtherBuild, Refused, Declined;
            public bool MachineWide;
            public string? FirstMismatch;
        }

        private readonly Dictionary<string, Summary> _summaries = new Dictionary<string, Summary>(System.StringComparer.OrdinalIgnoreCase);
        private readonly HashSet<string> _badFiles = new HashSet<string>(System.StringComparer.Ordinal);
        private int _done;

        private Summary SummaryOf(Micropatch patch)
        {
            string key = patch.Id + "\n" + patch.FileSha256;
            if (!_summaries.TryGetValue(key, out var s)) _summaries[key] = s = new Summary { Patch = patch };
            return s;
        }

        private void Summarize(Summary s)
        {
            if (!s.MachineWide) return;
            int seen = s.Installed + s.AlreadyPatched + s.Superseded + s.OtherBuild + s.Refused + s.Declined;
            if (seen == 0) return; // "no process has the module loaded" was already said
            string counts = "of the " + seen + " process(es) that load " + s.Patch.Target.Module + ", installed in " + s.Installed
                + ", already installed in " + s.AlreadyPatched + (s.Superseded > 0 ? ", superseded by a newer patch in " + s.Superseded : "") + ", not matching (another build) in " + s.OtherBuild
                + ", refused in " + s.Refused + (s.Declined > 0 ? ", not confirmed in " + s.Declined : "")
                + (s.FirstMismatch != null ? "; not matching: " + s.FirstMismatch.TrimEnd('.') : "");
            if (s.Installed == 0 && s.AlreadyPatched == 0 && s.Superseded == 0 && s.Declined == 0 && s.Refused == 0)
            {
                // Every process is another build (or the patch names a symbol none has): nothing could be done at all.
                WriteError(OnThisComputer(new ErrorRecord(new HotpatchException(HotpatchErrorKind.ExpectMismatch,
                        "Patch " + s.Patch.Id + " was not installed anywhere: " + counts + " (-Verbose shows why for each)."),
                    "NothingInstalled", ErrorCategory.ObjectNotFound, s.Patch.SourceName)));
            }
            else if (s.OtherBuild > 0 || s.Refused > 0 || s.Installed == 0)
            {
                WriteWarning("Patch " + s.Patch.Id + ": " + counts + ".");
            }
            else WriteVerbose("Patch " + s.Patch.Id + ": " + counts + ".");
        }

        private void InstallPatch(Micropatch patch)
        {

            if (ProcessId != null)
            {
                // Named processes: each is checked first, so only an installable one is offered for
                // confirmation; any other gets the engine's own refusal (ExpectMismatch, UnsafeSite, ...).
                foreach (int pid in ProcessId)
                {
                    PreparedInstall? prepared;
                    try { prepared = Engine.Prepare(patch, pid); }
                    catch (HotpatchException e) { WriteRefusal(e, pid, AuditAction.Install, patch.Id, patch); continue; }
                    // The install that follows uses this inspection's plan and open process.
                    using (prepared) if (prepared != null) Handle(patch, prepared.Status, named: true);
                }
                return;
            }

            const string activity = "Finding processes to patch";
            var targets = Engine.Scan(patch, (done, total) => Progress(1, activity, done, total, patch.Id)).ToList();
            CompleteProgress(1, activity);
            if (targets.Count == 0)
                WriteWarning("No running process has " + patch.Target.Module + " loaded; patch " + patch.Id + " was not installed anywhere."
                    + (Engine.Platform.Os == TargetOs.Linux && !HotpatchTools.Engine.Machine.Privilege.IsElevated() ? " Processes of other users cannot be read from this session." : ""));
            var summary = SummaryOf(patch);
            summary.MachineWide = true;
            _done = 0;
            // One loop whether anyone is asked or not. Asked (or -WhatIf): one process at a time on this thread, each
            // install asked for, done and reported before the next is asked. Unasked: the installs run on a worker per
            // core, and each outcome is written here, in the sweep's order.
            IEnumerable<(TargetStatus Target, bool Go)> Approved()
            {
                foreach (var t in targets)
                {
                    if (_badFiles.Contains(patch.SourceName)) yield break;
                    string where = Describe(t.ProcessId, t.ProcessName, t.Module);
                    Progress(2, InstallActivity, _done++, targets.Count, patch.Id + ": " + where);
                    yield return (t, InstallDecision.For(t.State) == InstallAction.Install && ShouldWrite(Force, where, "Install micropatch " + patch.Id));
                }
            }
            foreach (var o in Engine.RunEach(Approved(), x => x.Go ? Engine.Install(patch, x.Target) : null, oneAtATime: !WritesWithoutAsking(Force)))
            {
                var t = o.Item.Target;
                if (InstallDecision.For(t.State) != InstallAction.Install) Handle(patch, t, named: false);
                else if (!o.Item.Go) summary.Declined++;
                else if (o.Error != null)
                {
                    summary.Refused++;
                    WriteFailure(o.Error, t.ProcessId);
                }
                else Installed(patch, t, o.Result!, summary);
            }
        }

        private void Handle(Micropatch patch, TargetStatus t, bool named)
        {
            string where = Describe(t.ProcessId, t.ProcessName, t.Module);
            var summary = SummaryOf(patch);
            var action = InstallDecision.For(t.State);
            if (action == InstallAction.Install)
            {
                InstallOne(patch, t, summary);
                return;
            }
            // An assembler error is the file's fault, the same in every process: one error naming the file.
            if (t.ErrorKind == HotpatchErrorKind.AssemblyError)
            {
                if (_badFiles.Add(patch.SourceName))
                    WriteFailure(new HotpatchException(HotpatchErrorKind.AssemblyError, "Patch file " + patch.SourceName + " does not assemble: " + t.Reason), patch.SourceName);
                return;
            }
            if (action == InstallAction.AlreadyPatched)
            {
                summary.AlreadyPatched++;
                // In a machine-wide run a process already patched is counted; named, it is told plainly, not as a success.
                if (!named) { WriteVerbose(where + ": already installed. " + t.Reason); return; }
                WriteRefusal(new HotpatchException(HotpatchErrorKind.AlreadyInstalled, where + ": patch " + patch.Id + " is already installed there, nothing was changed (" + t.Reason.TrimEnd('.') + ").") { ProcessId = t.ProcessId },
                    t.ProcessId, AuditAction.Install, patch.Id, patch, t.ProcessName, t.Module);
                return;
            }
            if (action == InstallAction.OtherBuild) { summary.OtherBuild++; summary.FirstMismatch ??= where + ": " + t.Reason; }
            else if (action == InstallAction.Superseded) summary.Superseded++;
            else summary.Refused++;
            // In a machine-wide run, a process of another build (or where a successor holds) is counted in the summary and named under -Verbose.
            if (!named && (action == InstallAction.OtherBuild || action == InstallAction.Superseded))
            {
                WriteVerbose(where + ": " + t.Reason);
                return;
            }
            WriteRefusal(new HotpatchException(t.ErrorKind ?? HotpatchErrorKind.UnsafeSite, where + ": " + t.Reason) { ProcessId = t.ProcessId }, t.ProcessId,
                AuditAction.Install, patch.Id, patch, t.ProcessName, t.Module);
        }

        private void InstallOne(Micropatch patch, TargetStatus t, Summary summary)
        {
            int pid = t.ProcessId;
            string processName = t.ProcessName;
            if (!ShouldWrite(Force, Describe(pid, processName, t.Module), "Install micropatch " + patch.Id)) { summary.Declined++; return; }
            InstallResult r;
            try { r = Engine.Install(patch, t); }
            catch (HotpatchException e)
            {
                summary.Refused++;
                WriteFailure(e, pid);
                return;
            }
            Installed(patch, t, r, summary);
        }

        private void Installed(Micropatch patch, TargetStatus t, InstallResult r, Summary summary)
        {
            summary.Installed++;
            if (PassThru)
                WriteObject(new MicropatchResult
                {
                    ProcessId = t.ProcessId, ProcessName = t.ProcessName, PatchId = patch.Id, Module = r.Patch.Module, Result = PatchState.Installed.ToString(),
                    Message = r.Patch.Sites.Count + " site(s) patched; " + r.ThreadCount + " thread(s) stopped."
                        + (r.Replaced.Count > 0 ? " Replaced " + string.Join(", ", r.Replaced) + "." : ""),
                    FreezeMilliseconds = r.FreezeTime.TotalMilliseconds, CaveAddress = "0x" + r.Patch.CaveAddress.ToString("x"),
                });
        }
    }
}
