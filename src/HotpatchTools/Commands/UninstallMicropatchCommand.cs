using HotpatchTools.Completion;
using HotpatchTools.Engine.Patching;
using HotpatchTools.Engine.Audit;

namespace HotpatchTools.Commands
{
    /// <summary>Removes installed micropatches: original bytes back, cave freed when no thread can be in it.</summary>
    [Cmdlet(VerbsLifecycle.Uninstall, "Micropatch", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
    [Alias("Remove-Micropatch")]
    [OutputType(typeof(MicropatchResult))]
    public sealed class UninstallMicropatchCommand : HotpatchCommandBase
    {
        /// <summary>Patch ids; wildcards take every installed patch they match.</summary>
        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
        [ValidateNotNullOrEmpty]
        [SupportsWildcards]
        [ArgumentCompleter(typeof(PatchIdCompleter))]
        public string[] PatchId { get; set; } = new string[0];

        /// <summary>Only these processes; without it, every process where the patch is installed.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [Alias("Id", "PID")]
        [ValidateRange(1, int.MaxValue)]
        [ArgumentCompleter(typeof(ProcessIdCompleter))]
        public int[]? ProcessId { get; set; }

        [Parameter]
        public SwitchParameter Force { get; set; }

        [Parameter]
        public SwitchParameter PassThru { get; set; }

        protected override void BeginProcessing() => RequireElevationAndAudit("Uninstalling a micropatch");

        // Callers still returning into a cave are common after a long-running patch: one summary, not one warning each.
        private readonly List<string> _kept = new List<string>();
        private const string UninstallActivity = "Uninstalling micropatches";

        protected override void EndProcessing()
        {
            CompleteProgress(3, UninstallActivity);
            if (_kept.Count == 0) return;
            WriteWarning(_kept.Count + " process(es) may still have a thread returning into the patch's code, so their cave was kept (retired, harmless) and is freed by a later uninstall or when the process exits; the sites are restored in all of them. "
                + (_kept.Count == 1 ? _kept[0] : "-Verbose names each."));
        }

        protected override void ProcessRecord()
        {
            var patterns = PatchId.Select(id => new WildcardPattern(id, WildcardOptions.IgnoreCase)).ToList();
            var targets = new List<(int Pid, string Name, string PatchId, string Module)>();
            if (ProcessId != null)
            {
                foreach (int pid in ProcessId)
                {
                    IReadOnlyList<InstalledPatch> all;
                    try { all = Engine.GetInstalled(pid); }
                    catch (HotpatchException e) { foreach (var id in PatchId) WriteRefusal(e, pid, AuditAction.Uninstall, id); continue; }
                    var installed = all.Where(p => p.State != PatchState.Retired).ToList();
                    for (int i = 0; i < PatchId.Length; i++)
                    {
                        var matched = installed.Where(p => patterns[i].IsMatch(p.PatchId)).ToList();
                        // Get-Micropatch lists a retired patch too: removing everything it lists must not be an error for what is already removed.
                        // Named on the command line, a patch that is not installed stays an error.
                        var retired = MyInvocation.ExpectingInput && matched.Count == 0 ? all.FirstOrDefault(p => p.State == PatchState.Retired && patterns[i].IsMatch(p.PatchId)) : null;
                        if (retired != null)
                            WriteVerbose(Describe(pid, retired.ProcessName, retired.Module) + ": patch " + retired.PatchId
                                + " is already removed; its cave is kept (retired) while a thread may return into it, and is freed by a later uninstall or when the process exits.");
                        else if (matched.Count == 0)
                            WriteRefusal(new HotpatchException(HotpatchErrorKind.NotInstalled, "Patch " + PatchId[i] + " is not installed in process " + pid + ".") { ProcessId = pid }, pid,
                                AuditAction.Uninstall, PatchId[i]);
                        foreach (var p in matched)
                            if (!targets.Any(t => t.Pid == pid && t.PatchId == p.PatchId)) targets.Add((pid, p.ProcessName, p.PatchId, p.Module));
                    }
                }
            }
            else
            {
                const string activity = "Finding installed micropatches";
                var all = Engine.Platform.ListProcesses();
                int done = 0;
                // Reading changes nothing: the processes are read on a worker per core, in order here.
                foreach (var o in Engine.RunEach(all, p => Engine.GetInstalled(p.Id)))
                {
                    Progress(2, activity, done++, all.Count, "pid " + o.Item.Id);
                    foreach (var p in o.Result ?? new List<HotpatchTools.Engine.Patching.InstalledPatch>())
                        if (p.State != PatchState.Retired && patterns.Any(w => w.IsMatch(p.PatchId)))
                            targets.Add((p.ProcessId, p.ProcessName, p.PatchId, p.Module));
                }
                CompleteProgress(2, activity);
                // Each id on its own: "-PatchId HP-A, HP-B" where only HP-A is installed anywhere must not pass over HP-B in silence.
                var missing = PatchId.Where((id, i) => !targets.Any(t => patterns[i].IsMatch(t.PatchId))).ToList();
                if (missing.Count > 0) WriteWarning("Patch " + string.Join(", ", missing) + " is not installed in any running process.");
            }

            // One loop whether anyone is asked or not. Asked (or -WhatIf): one process at a time on this thread, each
            // removal asked for, done and reported before the next is asked. Unasked: the removals run on a worker per
            // core, and each outcome is written here, in order.
            int n = 0;
            IEnumerable<(int Pid, string Name, string PatchId, string Module, bool Go)> Approved()
            {
                foreach (var t in targets)
                {
                    string where = Describe(t.Pid, t.Name, t.Module);
                    Progress(3, UninstallActivity, n++, targets.Count, t.PatchId + ": " + where);
                    yield return (t.Pid, t.Name, t.PatchId, t.Module, ShouldWrite(Force, where, "Uninstall micropatch " + t.PatchId));
                }
            }
            foreach (var o in Engine.RunEach(Approved(), x => x.Go ? Engine.Uninstall(x.Pid, x.PatchId) : null, oneAtATime: !WritesWithoutAsking(Force)))
            {
                var t = o.Item;
                if (o.Error != null) WriteFailure(o.Error, t.Pid);
                else if (o.Result != null) Removed((t.Pid, t.Name, t.PatchId, t.Module), o.Result);
            }
        }

        private void Removed((int Pid, string Name, string PatchId, string Module) t, UninstallResult r)
        {
            if (!r.CaveFreed)
            {
                _kept.Add(Describe(t.Pid, t.Name, t.Module) + ": " + r.Message);
                WriteVerbose(_kept[_kept.Count - 1]);
            }
            if (PassThru)
                WriteObject(new MicropatchResult
                {
                    ProcessId = t.Pid, ProcessName = t.Name, PatchId = t.PatchId, Module = t.Module, Result = PatchState.Removed.ToString(), Message = r.Message,
                    FreezeMilliseconds = r.FreezeTime.TotalMilliseconds, CaveAddress = "0x" + r.Patch.CaveAddress.ToString("x"),
                });
        }
    }
}
