using System.Management.Automation;
using System.Threading;
using static HotpatchTools.Tests.Support.PSObjects;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// `supersedes`: a new version of a patch replaces the old one under one freeze, in a live target whose threads
    /// count every answer they get, so a call that saw neither version (the original code) would show.
    /// </summary>
    public sealed class SupersedeTests : LiveEngineTest
    {
        private readonly string _dir = Directory.CreateTempSubdirectory("hpt-supersede-").FullName;
        private readonly byte[] _site;

        public SupersedeTests() { _site = _t.ReadSymbol("rip_first", 6); }

        public override void Dispose()
        {
            base.Dispose();
            Directory.Delete(_dir, recursive: true);
        }

        /// <summary>rip_first(-1) answers `answer` under this patch; every other input runs the original code.</summary>
        internal static string Yaml(TargetProcess t, string id, int answer, string? supersedes = null, byte[]? expect = null) =>
            PatchFiles.Yaml(id, t.ModuleName, new[] { new PatchletSpec("rip_first", expect ?? t.ReadSymbol("rip_first", 6), "cmp edi, -1\njne resume\nmov eax, " + answer + "\nret") })
                .Replace("target:\n", supersedes == null ? "target:\n" : "supersedes: [" + supersedes + "]\ntarget:\n");

        private Engine.Format.Micropatch Patch(string id, int answer, string? supersedes = null, byte[]? expect = null) =>
            PatchFiles.Parse(Yaml(_t, id, answer, supersedes, expect ?? _site), id + ".micropatch.yaml");

        private string[] Installed() => _engine.GetInstalled(_t.Pid).Where(p => p.State == PatchState.Installed).Select(p => p.PatchId).ToArray();

        private (long Original, long Seven, long Nine, long Other) Counts()
        {
            var f = _t.Send("counts").Split(' ').Select(long.Parse).ToArray();
            return (f[0], f[1], f[2], f[3]);
        }

        [Fact]
        public void An_upgrade_under_load_replaces_the_old_version_and_no_call_sees_neither()
        {
            var site = _site;
            _engine.Install(Patch("HP-UP-1", 7), _t.Pid);
            Assert.Equal(7, _t.Call("rip_first", -1));
            Assert.Equal("ok", _t.Send("tally 4"));
            Thread.Sleep(100);

            var result = _engine.Install(Patch("HP-UP-2", 9, supersedes: "HP-UP-1"), _t.Pid);
            Thread.Sleep(100);
            Assert.Equal("ok", _t.Send("calm"));

            Assert.Equal(new[] { "HP-UP-1" }, result.Replaced);
            var (original, seven, nine, other) = Counts();
            Assert.True(seven > 0 && nine > 0, "the counting threads saw both versions: " + seven + " and " + nine);
            Assert.Equal((0L, 0L), (original, other));
            Assert.Equal(9, _t.Call("rip_first", -1));
            Assert.Equal(42, _t.Call("rip_first", 2));
            Assert.Equal(new[] { "HP-UP-2" }, Installed());
            // No cave of the old version is left installed; at most a retired one a thread was still inside.
            Assert.DoesNotContain(_engine.GetInstalled(_t.Pid), p => p.PatchId == "HP-UP-1" && p.State != PatchState.Retired);

            var status = _engine.Inspect(Patch("HP-UP-1", 7), _t.Pid)!;
            Assert.Equal(TargetState.Superseded, status.State);
            Assert.Contains("HP-UP-2", status.Reason);
            Assert.Equal(HotpatchErrorKind.AlreadyInstalled, Assert.Throws<HotpatchException>(() => _engine.Install(Patch("HP-UP-1", 7), _t.Pid)).Kind);

            _engine.Uninstall(_t.Pid, "HP-UP-2");
            Assert.Equal(39, _t.Call("rip_first", -1));
            Assert.Equal(site, _t.ReadSymbol("rip_first", 6));
        }

        [Fact]
        public void A_chain_of_versions_installs_in_turn_each_replacing_the_one_before()
        {
            var original = _t.ReadSymbol("rip_first", 6);
            _engine.Install(Patch("HP-CH-A", 5), _t.Pid);
            var inspect = _engine.Inspect(Patch("HP-CH-B", 7, supersedes: "HP-CH-A"), _t.Pid)!;
            Assert.Equal(TargetState.Vulnerable, inspect.State);
            Assert.Contains("replaces HP-CH-A", inspect.Reason);
            _engine.Install(Patch("HP-CH-B", 7, supersedes: "HP-CH-A"), _t.Pid);
            _engine.Install(Patch("HP-CH-C", 9, supersedes: "HP-CH-B"), _t.Pid);
            Assert.Equal(new[] { "HP-CH-C" }, Installed());
            Assert.Equal(9, _t.Call("rip_first", -1));
            _engine.Uninstall(_t.Pid, "HP-CH-C");
            Assert.Equal(original, _t.ReadSymbol("rip_first", 6));
            Assert.Equal(0, _t.CaveCount());
        }

        [Fact]
        public void A_refused_successor_leaves_the_old_version_installed_and_running()
        {
            _engine.Install(Patch("HP-KEEP-1", 7), _t.Pid);
            var jump = _t.ReadSymbol("rip_first", 6);

            // Another build: the successor's expect does not match the module's code.
            var e = Assert.Throws<HotpatchException>(() => _engine.Install(Patch("HP-KEEP-2", 9, supersedes: "HP-KEEP-1", expect: new byte[] { 0x90, 0x90, 0x90, 0x90, 0x90, 0x90 }), _t.Pid));
            Assert.Equal(HotpatchErrorKind.ExpectMismatch, e.Kind);
            Assert.Equal(new[] { "HP-KEEP-1" }, Installed());
            Assert.Equal(jump, _t.ReadSymbol("rip_first", 6));
            Assert.Equal(7, _t.Call("rip_first", -1));
            Assert.Equal(1, _t.CaveCount());
        }

        [Fact]
        public void A_successor_that_does_not_replace_the_installed_patch_is_refused_as_the_bytes_are_taken()
        {
            _engine.Install(Patch("HP-OTHER-1", 7), _t.Pid);
            // Same site, no `supersedes`: the site holds HP-OTHER-1's jump, not the bytes HP-OTHER-2 expects.
            var e = Assert.Throws<HotpatchException>(() => _engine.Install(Patch("HP-OTHER-2", 9), _t.Pid));
            Assert.Equal(HotpatchErrorKind.ExpectMismatch, e.Kind);
            Assert.Equal(7, _t.Call("rip_first", -1));
        }

        [Fact]
        public void Supersedes_is_checked_when_the_file_is_parsed()
        {
            Assert.Equal(new[] { "HP-P-1", "HP-P-0" }, Patch("HP-P-2", 9, supersedes: "HP-P-1, HP-P-0").Supersedes);
            foreach (var bad in new[] { "HP-P-2", "'bad id'", "HP-P-1, hp-p-1" })
            {
                var ex = Assert.ThrowsAny<HotpatchException>(() => Patch("HP-P-2", 9, supersedes: bad));
                Assert.Equal(HotpatchErrorKind.InvalidPatchFile, ex.Kind);
                Assert.Contains("supersedes[", ex.Message);
            }
        }
    }

    /// <summary>Sync-Micropatch upgrades enforced machines and never installs a superseded patch where its successor applies.</summary>
    [Collection(MachineStateCollection.Name)]
    public sealed class SupersedeCatalogTests : CatalogModuleTest
    {
        public SupersedeCatalogTests(MachineState root) : base(root, "supcat") { }

        private void Register(string path)
        {
            _sh.Run("Register-Micropatch -Path $args[0] -AllowUnsigned -Force", path);
            Assert.Empty(_sh.Errors);
        }

        [Fact]
        public void Sync_installs_only_the_newest_version_and_upgrades_a_process_running_an_old_one()
        {
            var exe = WorkflowTargets.Exe("supcat-target");
            using var fresh = TargetProcess.Start(exe);
            using var old = TargetProcess.Start(exe);
            string v1 = PatchFiles.WriteFile(_dir, "HP-SC-1", SupersedeTests.Yaml(fresh, "HP-SC-1", 7));
            string v2 = PatchFiles.WriteFile(_dir, "HP-SC-2", SupersedeTests.Yaml(fresh, "HP-SC-2", 9, supersedes: "HP-SC-1"));
            _sh.Run("Install-Micropatch -Path $args[0] -ProcessId $args[1] -AllowUnsigned -Force", v1, old.Pid);
            Assert.Empty(_sh.Errors);
            Register(v1);
            Register(v2);

            var targets = _sh.Run("Get-HotpatchTarget -Path $args[0] -ProcessId $args[1]", v1, old.Pid);
            Assert.Equal("Patched", Prop(Assert.Single(targets), "State").ToString());

            var results = _sh.Run("Sync-Micropatch -PatchId HP-SC-* -Force");
            Assert.Empty(_sh.Errors);
            var byTarget = results.Select(o => ((int)Prop(o, "ProcessId"), (string)Prop(o, "PatchId"), (string)Prop(o, "Result"))).OrderBy(x => x).ToArray();
            Assert.Equal(new[]
            {
                (fresh.Pid, "HP-SC-1", "Superseded"), (fresh.Pid, "HP-SC-2", "Applied"),
                (old.Pid, "HP-SC-1", "Superseded"), (old.Pid, "HP-SC-2", "Applied"),
            }.OrderBy(x => x).ToArray(), byTarget);
            Assert.Equal(9, fresh.Call("rip_first", -1));
            Assert.Equal(9, old.Call("rip_first", -1));

            var superseded = Assert.Single(_sh.Run("Get-HotpatchTarget -Path $args[0] -ProcessId $args[1]", v1, old.Pid));
            Assert.Equal("Superseded", Prop(superseded, "State").ToString());
            Assert.Equal(true, _sh.Run("Test-MicropatchCompliance -PatchId HP-SC-* -Quiet").Single().BaseObject);

            var again = _sh.Run("Sync-Micropatch -PatchId HP-SC-* -Force");
            Assert.DoesNotContain(again, o => Prop(o, "Result").ToString() == "Applied");
        }
    }
}
