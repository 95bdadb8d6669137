using System;
using HotpatchTools.Engine;
using HotpatchTools.Engine.Patching;
using HotpatchTools.Tests.Support;
using Xunit;

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
    }
}
