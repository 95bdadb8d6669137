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

        /// <summary>Folders with separate debug files, searched before /usr/lib/debug and HOTPATCH_DEBUG_DIRECTORY.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string[]? DebugDirectory { get; set; }

        protected override void ProcessRecord()
        {
            using var debug = UseDebugDirectories(DebugDirectory);
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
            foreach (var status in Engine.Scan(patch, (done, total) => Progress(1, activity, done, total, patch.Id)))
                WriteObject(HotpatchTarget.From(status));
            CompleteProgress(1, activity);
        }
    }
}
