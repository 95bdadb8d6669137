namespace HotpatchTools.Tests
{
    /// <summary>Behaviour that only Linux has: ptrace's one-tracer rule and system call restart.</summary>
    public sealed class LinuxOnlyTests : LiveEngineTest
    {
        [Fact]
        public void Install_on_a_process_traced_by_someone_else_is_Busy_and_writes_nothing()
        {
            var before = _t.ReadSymbol("triple", 6);
            var patch = PatchFiles.For(_t, "T-BUSY", At("triple", 6));
            // Another tracer holds every thread of the target stopped.
            using (new OtherTracer(_t.Pid))
            {
                var e = Assert.Throws<HotpatchException>(() => _engine.Install(patch, _t.Pid));
                Assert.Equal(HotpatchErrorKind.Busy, e.Kind);
                Assert.Contains("being traced", e.Message);
            }
            Assert.Equal(before, _t.ReadSymbol("triple", 6));
            Assert.Equal(0, _t.CaveCount());
            Assert.Equal(16, _t.Call("triple", 5));
        }
        [Fact]
        public void Install_refuses_a_thread_that_would_restart_a_syscall_inside_the_span()
        {
            // The parked thread's rip is just past the syscall, at the span's end; only rip-2 is inside.
            Assert.Equal("ok", _t.Send("park"));
            var before = _t.ReadSymbol("park_fn", 12);
            var e = Assert.Throws<HotpatchException>(() => _engine.Install(PatchFiles.For(_t, "T-PARK", At("park_fn", 6)), _t.Pid));
            Assert.Equal(HotpatchErrorKind.ThreadInSpan, e.Kind);
            Assert.Equal(before, _t.ReadSymbol("park_fn", 12));
            Assert.Equal(0, _t.CaveCount());
            Assert.DoesNotContain('t', _t.ThreadStates());
        }

        [Fact]
        public void An_injected_call_runs_in_a_quiet_thread_not_in_a_busy_one()
        {
            // Busy: a spinner and two hammers. Quiet: the main thread and one blocked in read() on a pipe. A busy thread
            // held for an injected mmap or munmap feels every microsecond of it; a blocked one does not.
            Assert.Equal("ok", _t.Send("vecspin"));
            Assert.Equal("ok", _t.Send("hammer 2"));
            Assert.Equal("ok", _t.Send("pipewait"));
            System.Threading.Thread.Sleep(300);
            int tid = HotpatchTools.Engine.Platform.Linux.LinuxFrozenProcess.QuietestThread(_t.Pid, child: false); // started through a shell: not our child
            Assert.NotEqual(0, tid);
            var call = System.IO.File.ReadAllText("/proc/" + _t.Pid + "/task/" + tid + "/syscall");
            Assert.True(call.StartsWith("0 ", StringComparison.Ordinal), "thread " + tid + " chosen, not blocked in read: " + call);

            // The chosen thread runs the cave's mmap and munmap and reads on afterwards.
            var patch = PatchFiles.For(_t, "T-QUIET", At("triple", 6));
            _engine.Install(patch, _t.Pid);
            Assert.Equal(1, _t.CaveCount());
            _engine.Uninstall(_t.Pid, "T-QUIET");
            Assert.Equal(0, _t.CaveCount());
            Assert.Equal("1", _t.Send("poke"));
            Assert.Equal(16, _t.Call("triple", 5));
            Assert.Equal("ok", _t.Send("calm"));
            Assert.Equal(0, _t.Stats().Errors);
        }
    }
}
