using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using HotpatchTools.Completion;
using HotpatchTools.Engine;
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
        private const string PathSet = "Path";
        private const string CatalogSet = "Catalog";

        private readonly Dictionary<string, Micropatch?> _patches = new Dictionary<string, Micropatch?>();

        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = PathSet)]
        [Alias("FullName", "PSPath")]
        [ValidateNotNullOrEmpty]
        [ArgumentCompleter(typeof(MicropatchPathCompleter))]
        public string Path { get; set; } = "";

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
            if (ParameterSetName == CatalogSet)
            {
                foreach (var id in PatchId)
                {
                    var entry = FindEntry(id);
                    if (entry == null) continue;
                    // Disabling is how an admin withdraws a patch; an operator's install by id must not bypass it.
                    if (!entry.Enabled)
                    {
                        WriteError(new ErrorRecord(new System.InvalidOperationException("Patch " + entry.PatchId + " is disabled in the catalog; Enable-Micropatch it first."),
                            "PatchDisabled", ErrorCategory.InvalidOperation, entry.PatchId));
                        continue;
                    }
                    var fromCatalog = LoadCatalogPatch(entry);
                    if (fromCatalog != null) InstallPatch(fromCatalog);
                }
                return;
            }
            var file = ResolvePaths(new[] { Path }, literal: false).FirstOrDefault();
            if (file == null) return;
            // Piped targets repeat the same file: check and parse it once per command.
            if (!_patches.TryGetValue(file, out var patch)) _patches[file] = patch = LoadPatch(file, AllowUnsigned);
            if (patch == null) return;
            InstallPatch(patch);
        }

        private void InstallPatch(Micropatch patch)
        {

            if (ProcessId != null)
            {
                // Named processes: each is checked first, so only an installable one is offered for
                // confirmation; any other gets the engine's own refusal (ExpectMismatch, UnsafeSite, ...).
                foreach (int pid in ProcessId)
                {
                    TargetStatus? status;
                    try { status = Engine.Inspect(patch, pid); }
                    catch (HotpatchException e) { WriteRefusal(e, pid, AuditRecord.ActionInstall, patch.Id, patch); continue; }
                    if (status != null) Handle(patch, status, named: true);
                }
                return;
            }

            const string activity = "Finding processes to patch";
            var targets = Engine.Scan(patch, (done, total) => Progress(1, activity, done, total, patch.Id)).ToList();
            CompleteProgress(1, activity);
            if (targets.Count == 0)
                WriteWarning("No running process has " + patch.Target.Module + " loaded; patch " + patch.Id + " was not installed anywhere.");
            foreach (var t in targets) Handle(patch, t, named: false);
        }

        private void Handle(Micropatch patch, TargetStatus t, bool named)
        {
            string where = Describe(t.ProcessId, t.ProcessName, t.Module);
            if (t.State == HotpatchTools.Engine.Patching.TargetState.Vulnerable)
            {
                InstallOne(patch, t.ProcessId, t.ProcessName, t.Module);
                return;
            }
            // In a machine-wide run, a process already patched or of another build is not news.
            if (!named && (t.State == HotpatchTools.Engine.Patching.TargetState.Patched || t.State == HotpatchTools.Engine.Patching.TargetState.Mismatch))
            {
                WriteVerbose(where + ": " + t.Reason);
                return;
            }
            WriteRefusal(new HotpatchException(t.ErrorKind ?? HotpatchErrorKind.UnsafeSite, where + ": " + t.Reason) { ProcessId = t.ProcessId }, t.ProcessId,
                AuditRecord.ActionInstall, patch.Id, patch, t.ProcessName, t.Module);
        }

        private void InstallOne(Micropatch patch, int pid, string processName, string module)
        {
            if (!ShouldWrite(Force, Describe(pid, processName, module), "Install micropatch " + patch.Id)) return;
            try
            {
                var r = Engine.Install(patch, pid);
                if (PassThru)
                    WriteObject(new MicropatchResult
                    {
                        ProcessId = pid, ProcessName = processName, PatchId = patch.Id, Module = r.Patch.Module, Result = "Installed",
                        Message = r.Patch.Sites.Count + " site(s) patched; " + r.ThreadCount + " thread(s) stopped.",
                        FreezeMilliseconds = r.FreezeTime.TotalMilliseconds, CaveAddress = "0x" + r.Patch.CaveAddress.ToString("x"),
                    });
            }
            catch (HotpatchException e)
            {
                WriteFailure(e, pid);
            }
        }
    }
}
