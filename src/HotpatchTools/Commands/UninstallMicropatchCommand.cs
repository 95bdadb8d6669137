using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using HotpatchTools.Completion;
using HotpatchTools.Engine;
using HotpatchTools.Engine.Audit;

namespace HotpatchTools.Commands
{
    /// <summary>Removes installed micropatches: original bytes back, cave freed when no thread can be in it.</summary>
    [Cmdlet(VerbsLifecycle.Uninstall, "Micropatch", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
    [Alias("Remove-Micropatch")]
    [OutputType(typeof(MicropatchResult))]
    public sealed class UninstallMicropatchCommand : HotpatchCommandBase
    {
        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
        [ValidateNotNullOrEmpty]
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

        protected override void ProcessRecord()
        {
            var targets = new List<(int Pid, string Name, string PatchId, string Module)>();
            if (ProcessId != null)
            {
                foreach (int pid in ProcessId)
                    foreach (var id in PatchId)
                    {
                        try
                        {
                            var installed = Engine.GetInstalled(pid).FirstOrDefault(p => string.Equals(p.PatchId, id, System.StringComparison.OrdinalIgnoreCase) && p.State != "Retired");
                            if (installed == null)
                                WriteRefusal(new HotpatchException(HotpatchErrorKind.NotInstalled, "Patch " + id + " is not installed in process " + pid + ".") { ProcessId = pid }, pid,
                                    AuditRecord.ActionUninstall, id);
                            else
                                targets.Add((pid, installed.ProcessName, installed.PatchId, installed.Module));
                        }
                        catch (HotpatchException e) { WriteRefusal(e, pid, AuditRecord.ActionUninstall, id); }
                    }
            }
            else
            {
                const string activity = "Finding installed micropatches";
                var all = Engine.Platform.ListProcesses();
                for (int i = 0; i < all.Count; i++)
                {
                    Progress(2, activity, i, all.Count, "pid " + all[i].Id);
                    try
                    {
                        foreach (var p in Engine.GetInstalled(all[i].Id))
                            if (p.State != "Retired" && PatchId.Any(id => string.Equals(id, p.PatchId, System.StringComparison.OrdinalIgnoreCase)))
                                targets.Add((p.ProcessId, p.ProcessName, p.PatchId, p.Module));
                    }
                    catch (HotpatchException) { }
                }
                CompleteProgress(2, activity);
                if (targets.Count == 0) WriteWarning("Patch " + string.Join(", ", PatchId) + " is not installed in any running process.");
            }

            foreach (var t in targets)
            {
                if (!ShouldWrite(Force, Describe(t.Pid, t.Name, t.Module), "Uninstall micropatch " + t.PatchId)) continue;
                try
                {
                    var r = Engine.Uninstall(t.Pid, t.PatchId);
                    if (!r.CaveFreed) WriteWarning(Describe(t.Pid, t.Name, t.Module) + ": " + r.Message);
                    if (PassThru)
                        WriteObject(new MicropatchResult
                        {
                            ProcessId = t.Pid, ProcessName = t.Name, PatchId = t.PatchId, Module = t.Module, Result = "Removed", Message = r.Message,
                            FreezeMilliseconds = r.FreezeTime.TotalMilliseconds, CaveAddress = "0x" + r.Patch.CaveAddress.ToString("x"),
                        });
                }
                catch (HotpatchException e) { WriteFailure(e, t.Pid); }
            }
        }
    }
}
