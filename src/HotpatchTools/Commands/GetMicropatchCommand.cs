using System.Linq;
using System.Management.Automation;
using HotpatchTools.Completion;
using HotpatchTools.Engine;

namespace HotpatchTools.Commands
{
    /// <summary>Micropatches installed in running processes, read from the processes themselves.</summary>
    [Cmdlet(VerbsCommon.Get, "Micropatch")]
    [OutputType(typeof(MicropatchInfo))]
    public sealed class GetMicropatchCommand : HotpatchCommandBase
    {
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
        [Alias("Id", "PID")]
        [ValidateRange(1, int.MaxValue)]
        [ArgumentCompleter(typeof(ProcessIdCompleter))]
        public int[]? ProcessId { get; set; }

        /// <summary>Only these patch ids (wildcards allowed).</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [SupportsWildcards]
        [ArgumentCompleter(typeof(PatchIdCompleter))]
        public string[]? PatchId { get; set; }

        protected override void ProcessRecord()
        {
            var patterns = PatchId?.Select(p => new WildcardPattern(p, WildcardOptions.IgnoreCase)).ToList();
            var pids = ProcessId ?? Engine.Platform.ListProcesses().Select(p => p.Id).ToArray();
            const string activity = "Reading installed micropatches";
            for (int i = 0; i < pids.Length; i++)
            {
                if (ProcessId == null) Progress(2, activity, i, pids.Length, "pid " + pids[i]);
                try
                {
                    foreach (var p in Engine.GetInstalled(pids[i]))
                        if (patterns == null || patterns.Any(w => w.IsMatch(p.PatchId)))
                            WriteObject(MicropatchInfo.From(p));
                }
                catch (HotpatchException e)
                {
                    // Named processes must answer; in a machine-wide sweep, exited or foreign processes are not news.
                    if (ProcessId != null) WriteFailure(e, pids[i]);
                }
            }
            if (ProcessId == null) CompleteProgress(2, activity);
        }
    }
}
