using HotpatchTools.Completion;

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
            var all = ProcessId == null ? Engine.Platform.ListProcesses() : null;
            var pids = ProcessId ?? all!.Select(p => p.Id).ToArray();
            var names = new System.Collections.Generic.Dictionary<int, string>();
            foreach (var p in all ?? new HotpatchTools.Engine.Platform.ProcessInfo[0]) names[p.Id] = p.Name;
            var denied = new System.Collections.Generic.List<string>();
            // This process itself cannot be opened (ptrace); that is the documented blind spot, not a gap in the sweep.
            int self = System.Diagnostics.Process.GetCurrentProcess().Id;
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
                    // Named processes must answer; in a machine-wide sweep, exited processes are not news, but a
                    // process that could not be read or was not read (forged caves) is: the sweep is incomplete.
                    if (ProcessId != null) WriteFailure(e, pids[i]);
                    else if (e.Kind == HotpatchErrorKind.SuspiciousProcess) WriteWarning(e.Message);
                    else if (e.Kind == HotpatchErrorKind.AccessDenied && pids[i] != self) denied.Add(pids[i] + " (" + (names.TryGetValue(pids[i], out var n) ? n : "") + ")");
                }
            }
            if (ProcessId == null)
            {
                CompleteProgress(2, activity);
                Engine.WarnUnreadable(denied);
            }
        }
    }
}
