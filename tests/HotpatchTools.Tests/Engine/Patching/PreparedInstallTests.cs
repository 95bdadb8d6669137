namespace HotpatchTools.Tests
{
    /// <summary>
    /// An install that uses the plan its inspection made: the plan is used only while what it was made from still
    /// holds, and what it read is compared again under the freeze.
    /// </summary>
    public sealed class PreparedInstallTests : LiveEngineTest
    {
        private PatchletSpec Triple(string code = "cmp edi, 100\njbe resume\nmov eax, -1\nret") => new PatchletSpec("triple", _t.ReadSymbol("triple", 6), code);

        [Fact]
        public void A_prepared_install_installs_what_the_inspection_planned()
        {
            var patch = PatchFiles.For(_t, "T-PREP", Triple());
            using var prepared = _engine.Prepare(patch, _t.Pid)!;
            Assert.Equal(TargetState.Vulnerable, prepared.Status.State);
            var result = _engine.Install(patch, prepared.Status);
            Assert.Equal(PatchState.Installed, result.Patch.State);
            Assert.Equal(-1, _t.Call("triple", 101));
            Assert.Equal(16, _t.Call("triple", 5));
            Assert.Equal(1, _t.CaveCount());
            _engine.Uninstall(_t.Pid, "T-PREP");
            Assert.Equal(304, _t.Call("triple", 101));
        }

        [Fact]
        public void A_plan_made_before_another_session_installed_the_patch_is_not_used()
        {
            var patch = PatchFiles.For(_t, "T-PREP-TWICE", Triple());
            using var prepared = _engine.Prepare(patch, _t.Pid)!;
            new HotpatchEngine().Install(patch, _t.Pid);
            var e = Assert.Throws<HotpatchException>(() => _engine.Install(patch, prepared.Status));
            Assert.Equal(HotpatchErrorKind.AlreadyInstalled, e.Kind);
            Assert.Equal(1, _t.CaveCount());
        }

        [Fact]
        public void Bytes_another_patch_changed_after_planning_stop_the_install_with_nothing_written()
        {
            var patch = PatchFiles.For(_t, "T-PREP-LATE", Triple());
            var status = _engine.Inspect(patch, _t.Pid)!;
            Assert.Equal(TargetState.Vulnerable, status.State);
            // Another patch takes the same site after the plan was made: the module is the same, its bytes are not.
            new HotpatchEngine().Install(PatchFiles.For(_t, "T-PREP-OTHER", Triple("mov eax, 7\nret")), _t.Pid);
            var patched = _t.ReadSymbol("triple", 6);
            var e = Assert.Throws<HotpatchException>(() => _engine.Install(patch, status));
            Assert.Equal(HotpatchErrorKind.ExpectMismatch, e.Kind);
            Assert.Equal(patched, _t.ReadSymbol("triple", 6));
            Assert.Equal(7, _t.Call("triple", 5));
            Assert.Equal(1, _t.CaveCount());
        }

        [Fact]
        public void A_site_that_is_not_expect_while_another_session_writes_is_looked_at_again_once_its_lock_is_free()
        {
            // Another session in the middle of installing this very patch: it holds the target's writer lock and the
            // site holds other bytes for now. An inspection that reads then must wait for it, not report another build.
            var patch = PatchFiles.For(_t, "T-PREP-MIDWRITE", Triple());
            ulong site = _t.Symbol("triple");
            var original = _t.Read(site, 1);
            Assert.Equal(TargetState.Vulnerable, _engine.Inspect(patch, _t.Pid)!.State); // and what a first look costs is paid
            Inspection? inspection;
            using (var writer = HotpatchTools.Engine.Machine.TargetLock.Acquire(_t.Pid, TimeSpan.FromSeconds(5)))
            {
                using (var other = _engine.Platform.Open(_t.Pid)) other.Memory.Write(site, new byte[] { (byte)(original[0] ^ 0xff) });
                inspection = new Inspection(() => _engine.Inspect(patch, _t.Pid));
                // Waited on here, not awaited: the writer's lock is released by the thread that took it (a mutex on Windows).
#pragma warning disable xUnit1031
                Assert.False(inspection.Done.Wait(3000), "the inspection did not wait for the writer: " + inspection.Describe());
                using (var other = _engine.Platform.Open(_t.Pid)) other.Memory.Write(site, original);
            }
            Assert.True(inspection.Done.Wait(30000));
#pragma warning restore xUnit1031
            Assert.Equal(TargetState.Vulnerable, inspection.Status!.State);
            Assert.Equal(0, _t.CaveCount());
        }

        private sealed class Inspection
        {
            public readonly System.Threading.Tasks.Task Done;
            public TargetStatus? Status;

            public Inspection(Func<TargetStatus?> inspect) { Done = System.Threading.Tasks.Task.Run(() => { Status = inspect(); }); }

            public string Describe() => Status == null ? "(none)" : Status.State + ": " + Status.Reason;
        }
    }
}
