using System.Management.Automation;
using HotpatchTools.Engine.Catalog;
using static HotpatchTools.Tests.Support.PSObjects;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// Catalog, enforcement and compliance on either platform: these also run under Wine (tests/wine/run.sh),
    /// where the catalog folder gets its access list, elevation is read from the process token, state files are
    /// replaced with ReplaceFile and the enforcer reads module lists through EnumProcessModulesEx.
    /// </summary>
    [Collection(MachineStateCollection.Name)]
    public sealed class PortableWorkflowTests : CatalogModuleTest
    {
        public PortableWorkflowTests(MachineState root) : base(root, "portable") { }

        [Fact]
        public void Register_sync_and_compliance_through_the_cmdlets()
        {
            using var t = TargetProcess.Start(WorkflowTargets.PortableExe());
            var before = t.ReadSymbol("triple", 6);
            var path = PatchFiles.WriteFile(_dir, "HP-PORT-1", WorkflowTargets.GuardYaml("HP-PORT-1", t.ModuleName));

            var entry = _sh.Run("Register-Micropatch -Path $args[0] -AllowUnsigned -Force -PassThru", path).Single();
            Assert.Empty(_sh.Errors);
            Assert.True(File.Exists((string)Prop(entry, "Path")));
            Assert.Equal(false, Prop(_sh.Run("Disable-Micropatch HP-PORT-1 -Force -PassThru").Single(), "Enabled"));
            Assert.Equal(true, Prop(_sh.Run("Enable-Micropatch HP-PORT-1 -Force -PassThru").Single(), "Enabled"));
            Assert.Empty(_sh.Errors);

            Assert.Equal(false, _sh.Run("Test-MicropatchCompliance -PatchId HP-PORT-1 -Quiet").Single().BaseObject);
            var applied = _sh.Run("Sync-Micropatch -PatchId HP-PORT-1 -Force").Single();
            Assert.Empty(_sh.Errors);
            Assert.Equal(t.Pid, Prop(applied, "ProcessId"));
            Assert.Equal("Applied", Prop(applied, "Result").ToString());
            Assert.Equal(-1, t.Call("triple", 500));
            Assert.Equal("AlreadyPatched", Prop(_sh.Run("Sync-Micropatch -PatchId HP-PORT-1 -Force").Single(), "Result").ToString());
            Assert.Equal(true, _sh.Run("Test-MicropatchCompliance -PatchId HP-PORT-1 -Quiet").Single().BaseObject);

            _sh.Run("Unregister-Micropatch HP-PORT-1 -Force; Uninstall-Micropatch -PatchId HP-PORT-1 -ProcessId $args[0] -Force", t.Pid);
            Assert.Empty(_sh.Errors);
            Assert.Empty(_sh.Run("Get-MicropatchCatalog"));
            Assert.Equal(before, t.ReadSymbol("triple", 6));
        }

        [Fact]
        public void An_incremental_pass_skips_an_unchanged_process_and_patches_a_new_one()
        {
            var exe = WorkflowTargets.PortableExe();
            using var a = TargetProcess.Start(exe);
            var patch = WorkflowTargets.Guard("T-PORT-INCR", a.ModuleName);
            var enforcer = new Enforcer(new HotpatchEngine());

            var first = enforcer.Run(new[] { patch }, incremental: true);
            Assert.Equal(new[] { (a.Pid, EnforcementOutcome.Applied) }, first.Results.Select(r => (r.ProcessId, r.Outcome)));
            var quiet = enforcer.Run(new[] { patch }, incremental: true);
            Assert.Empty(quiet.Results);
            Assert.Equal(1, quiet.Unchanged);

            using var b = TargetProcess.Start(exe);
            var next = enforcer.Run(new[] { patch }, incremental: true);
            Assert.Equal(new[] { (b.Pid, EnforcementOutcome.Applied) }, next.Results.Select(r => (r.ProcessId, r.Outcome)));
            Assert.Equal(-1, b.Call("triple", 500));
        }
    }
}
