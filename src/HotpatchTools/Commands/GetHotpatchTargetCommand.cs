using HotpatchTools.Completion;
using HotpatchTools.Engine.Patching;

namespace HotpatchTools.Commands
{
    /// <summary>Which running processes a micropatch applies to, and in what state each is.</summary>
    [Cmdlet(VerbsCommon.Get, "HotpatchTarget", DefaultParameterSetName = PathSet)]
    [OutputType(typeof(HotpatchTarget))]
    public sealed class GetHotpatchTargetCommand : CatalogCommandBase
    {
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
            ForEachPatch(PatchId, ParameterSetName == LiteralPathSet ? LiteralPath : Path, ReadPatch, Report);
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
