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
    public sealed class GetHotpatchTargetCommand : HotpatchCommandBase
    {
        private const string PathSet = "Path";
        private const string LiteralPathSet = "LiteralPath";

        [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        [ArgumentCompleter(typeof(MicropatchPathCompleter))]
        public string[] Path { get; set; } = new string[0];

        [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
        [Alias("PSPath", "FullName")]
        [ValidateNotNullOrEmpty]
        public string[] LiteralPath { get; set; } = new string[0];

        /// <summary>Only these processes; without it, every process that has the patch's module loaded.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [Alias("Id", "PID")]
        [ValidateRange(1, int.MaxValue)]
        [ArgumentCompleter(typeof(ProcessIdCompleter))]
        public int[]? ProcessId { get; set; }

        protected override void ProcessRecord()
        {
            bool literal = ParameterSetName == LiteralPathSet;
            foreach (var file in ResolvePaths(literal ? LiteralPath : Path, literal))
            {
                var patch = ReadPatch(file);
                if (patch == null) continue;
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
                    continue;
                }
                const string activity = "Scanning processes";
                foreach (var status in Engine.Scan(patch, (done, total) => Progress(1, activity, done, total, patch.Id)))
                    WriteObject(HotpatchTarget.From(status));
                CompleteProgress(1, activity);
            }
        }
    }
}
