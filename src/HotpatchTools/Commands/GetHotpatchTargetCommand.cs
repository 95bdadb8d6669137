using System.Linq;
using System.Management.Automation;
using HotpatchTools.Completion;
using HotpatchTools.Engine;
using HotpatchTools.Engine.Patching;

namespace HotpatchTools.Commands
{
    /// <summary>Which running processes a micropatch applies to, and in what state each is.</summary>
    [Cmdlet(VerbsCommon.Get, "HotpatchTarget", DefaultParameterSetName = PathSet)]
    [OutputType(typeof(HotpatchTarget))]
    public sealed class GetHotpatchTargetCommand : CatalogCommandBase
    {
        private const string PathSet = "Path";
        private const string LiteralPathSet = "LiteralPath";
        private const string CatalogSet = "Catalog";

        [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        [ArgumentCompleter(typeof(MicropatchPathCompleter))]
        public string[] Path { get; set; } = new string[0];

        [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
        [Alias("PSPath", "FullName")]
        [ValidateNotNullOrEmpty]
        public string[] LiteralPath { get; set; } = new string[0];

        /// <summary>Patches of the machine catalog, by id (what a JEA operator, who may not name files, uses).</summary>
        [Parameter(Mandatory = true, ParameterSetName = CatalogSet)]
        [ValidateNotNullOrEmpty]
        [ArgumentCompleter(typeof(CatalogPatchIdCompleter))]
        public string[] PatchId { get; set; } = new string[0];

        /// <summary>Only these processes; without it, every process that has the patch's module loaded.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [Alias("Id", "PID")]
        [ValidateRange(1, int.MaxValue)]
        [ArgumentCompleter(typeof(ProcessIdCompleter))]
        public int[]? ProcessId { get; set; }

        protected override void ProcessRecord()
        {
            if (ParameterSetName == CatalogSet)
            {
                foreach (var id in PatchId)
                {
                    var entry = FindEntry(id);
                    var patch = entry == null ? null : LoadCatalogPatch(entry);
                    if (patch != null) Report(patch);
                }
                return;
            }
            bool literal = ParameterSetName == LiteralPathSet;
            foreach (var file in ResolvePaths(literal ? LiteralPath : Path, literal))
            {
                var patch = ReadPatch(file);
                if (patch != null) Report(patch);
            }
        }

        private void Report(HotpatchTools.Engine.Format.Micropatch patch)
        {
            if (ProcessId != null)
            {
                // Each named process answers for itself: one that is gone is an error record, not the end of the command.
                foreach (int pid in ProcessId)
                {
                    TargetStatus? status;
                    try { status = Engine.Inspect(patch, pid); }
                    catch (HotpatchException e) { WriteFailure(e, pid); continue; }
                    if (status == null) continue;
                    if (status.State == HotpatchTools.Engine.Patching.TargetState.AccessDenied)
                        WriteFailure(new HotpatchException(HotpatchErrorKind.AccessDenied, status.Reason) { ProcessId = pid }, pid);
                    WriteObject(HotpatchTarget.From(status));
                }
                return;
            }
            const string activity = "Scanning processes";
            int shown = 0;
            foreach (var status in Engine.Scan(patch, (done, total) => Progress(1, activity, done, total, patch.Id)))
            {
                WriteObject(HotpatchTarget.From(status));
                shown++;
            }
            CompleteProgress(1, activity);
            ReportUnreadable(patch, shown);
        }

        /// <summary>
        /// Outside an elevated session the sweep skips every process whose memory map this user cannot read: name
        /// them under -Verbose, and when nothing at all was shown, say why instead of returning nothing.
        /// </summary>
        private void ReportUnreadable(HotpatchTools.Engine.Format.Micropatch patch, int shown)
        {
            if (!System.Runtime.InteropServices.RuntimeInformation.IsOSPlatform(System.Runtime.InteropServices.OSPlatform.Linux)
                || HotpatchTools.Engine.Machine.Privilege.IsElevated()) return;
            var skipped = Engine.Platform.ListProcesses().Where(p => !MapsReadable(p.Id)).ToList();
            foreach (var p in skipped) WriteVerbose("skipped process " + p.Id + " (" + p.Name + "): this user cannot read its memory map.");
            if (shown == 0 && skipped.Count > 0)
                WriteWarning("No process is shown for " + patch.Id + ", but " + skipped.Count + " process(es) of other users could not be read from this session, which is not elevated; run as root to see them (-Verbose names them).");
        }

        private static bool MapsReadable(int pid)
        {
            try
            {
                using var f = new System.IO.FileStream("/proc/" + pid + "/maps", System.IO.FileMode.Open, System.IO.FileAccess.Read, System.IO.FileShare.ReadWrite, 1);
                f.ReadByte();
                return true;
            }
            catch (System.Exception e) when (e is System.IO.IOException || e is System.UnauthorizedAccessException) { return false; }
        }
    }
}
