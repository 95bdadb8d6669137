namespace HotpatchTools.Tests
{
    /// <summary>The engine against live processes compiled from tests/native: on Linux, and on Windows under Wine.</summary>
    public sealed class EngineTests : LiveEngineTest
    {
        [Fact]
        public void Insert_with_empty_code_relocates_a_rip_relative_first_instruction()
        {
            var before = _t.ReadSymbol("rip_first", 6);
            var result = _engine.Install(PatchFiles.For(_t, "T-RIP", At("rip_first", 6)), _t.Pid);

            Assert.Equal(0xE9, _t.ReadSymbol("rip_first", 1)[0]);
            Assert.Equal(42, _t.Call("rip_first", 2));
            Assert.Equal(40, _t.Call("rip_first", 0));
            Assert.Equal(1, _t.CaveCount());
            Assert.Equal(PatchState.Installed, result.Patch.State);

            var removed = _engine.Uninstall(_t.Pid, "T-RIP");
            Assert.True(removed.CaveFreed);
            Assert.Equal(before, _t.ReadSymbol("rip_first", 6));
            Assert.Equal(0, _t.CaveCount());
            Assert.Equal(42, _t.Call("rip_first", 2));
        }

        [Fact]
        public void The_reported_hold_is_the_threads_stop_to_release_within_the_call()
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var installed = _engine.Install(PatchFiles.For(_t, "T-HOLD", At("short_jcc", 7)), _t.Pid);
            var installCall = clock.Elapsed;
            clock.Restart();
            var removed = _engine.Uninstall(_t.Pid, "T-HOLD");
            var uninstallCall = clock.Elapsed;

            // Threads were really held (the stop, the compare and the write take time), and the hold is a part of the
            // call: reading the process, planning, attaching and the allocation are not in it.
            Assert.InRange(installed.FreezeTime, TimeSpan.FromTicks(1), installCall);
            Assert.InRange(removed.FreezeTime, TimeSpan.FromTicks(1), uninstallCall);
            Assert.True(installed.ThreadCount >= 1);
        }

        [Fact]
        public void Insert_relocates_a_short_jcc_inside_the_span()
        {
            _engine.Install(PatchFiles.For(_t, "T-JCC", At("short_jcc", 7)), _t.Pid);
            Assert.Equal(2, _t.Call("short_jcc", 0));
            Assert.Equal(6, _t.Call("short_jcc", 5));
            Assert.Equal(-9, _t.Call("short_jcc", -10));
            _engine.Uninstall(_t.Pid, "T-JCC");
            Assert.Equal(2, _t.Call("short_jcc", 0));
        }

        [Fact]
        public void Insert_code_runs_before_the_displaced_instructions_and_can_return_early()
        {
            var before = _t.ReadSymbol("triple", 6);
            _engine.Install(PatchFiles.For(_t, "T-CODE", At("triple", 6, PatchFiles.GuardCode)), _t.Pid);
            Assert.Equal(16, _t.Call("triple", 5));
            Assert.Equal(301, _t.Call("triple", 100));
            Assert.Equal(-1, _t.Call("triple", 101));
            _engine.Uninstall(_t.Pid, "T-CODE");
            Assert.Equal(before, _t.ReadSymbol("triple", 6));
            Assert.Equal(304, _t.Call("triple", 101));
        }

        [Fact]
        public void Insert_code_can_call_a_function_of_another_module()
        {
            // libc / kernel32 usually lie beyond rel32 reach of the cave: the call must go through an indirect slot.
            _engine.Install(PatchFiles.For(_t, "T-CALL", At("triple", 6, TestPlatform.CallProcessIdCode)), _t.Pid);
            Assert.Equal(_t.Pid, _t.Call("triple", 5));
            var removed = _engine.Uninstall(_t.Pid, "T-CALL");
            Assert.Equal(16, _t.Call("triple", 5));
            // A cave that calls out is freed only when no stack holds an address in it. The scan is conservative: a dead
            // return address into the cave, left in a frame the thread reuses while it waits, keeps it (retired) — seen
            // under load. Anything else keeping it is a failure.
            Assert.True(removed.CaveFreed || removed.Message.Contains("may return into it", StringComparison.Ordinal), removed.Message);
        }

        [Fact]
        public void Replace_assembles_code_in_place_and_fills_with_nops()
        {
            var before = _t.ReadSymbol("triple", 6);
            _engine.Install(PatchFiles.For(_t, "T-REPL", At("triple", 6, "lea eax, [rdi + rdi*2]\nadd eax, 2", mode: "replace")), _t.Pid);
            Assert.Equal(17, _t.Call("triple", 5));
            Assert.Equal(new byte[] { 0x8d, 0x04, 0x7f, 0x83, 0xc0, 0x02 }, _t.ReadSymbol("triple", 6));
            _engine.Uninstall(_t.Pid, "T-REPL");
            Assert.Equal(before, _t.ReadSymbol("triple", 6));
        }

        [Fact]
        public void Installed_state_is_read_back_from_the_process_by_a_new_engine()
        {
            var patch = PatchFiles.For(_t, "T-STATE", At("triple", 6), At("short_jcc", 7));
            _engine.Install(patch, _t.Pid);

            var fresh = new HotpatchEngine();
            var listed = Assert.Single(fresh.GetInstalled(_t.Pid));
            Assert.Equal("T-STATE", listed.PatchId);
            Assert.Equal(patch.FileSha256, listed.FileSha256);
            Assert.Equal(PatchState.Installed, listed.State);
            Assert.Equal(new[] { _t.Symbol("triple"), _t.Symbol("short_jcc") }, listed.Sites.Select(s => s.Address));
            Assert.Equal(TargetState.Patched, fresh.Inspect(patch, _t.Pid)!.State);

            var again = Assert.Throws<HotpatchException>(() => fresh.Install(patch, _t.Pid));
            Assert.Equal(HotpatchErrorKind.AlreadyInstalled, again.Kind);

            fresh.Uninstall(_t.Pid, "t-state"); // ids compare case-insensitively
            Assert.Empty(fresh.GetInstalled(_t.Pid));
            Assert.Equal(TargetState.Vulnerable, fresh.Inspect(patch, _t.Pid)!.State);
        }

        [Fact]
        public void At_accepts_a_module_relative_offset()
        {
            ulong rva = _t.Symbol("triple") - _t.ModuleBase();
            var patch = PatchFiles.For(_t, "T-RVA", new PatchletSpec("0x" + rva.ToString("x"), _t.ReadSymbol("triple", 6), "mov eax, 9\nret"));
            _engine.Install(patch, _t.Pid);
            Assert.Equal(9, _t.Call("triple", 5));
            _engine.Uninstall(_t.Pid, "T-RVA");
            Assert.Equal(16, _t.Call("triple", 5));
        }

        [Fact]
        public void Uninstall_refuses_when_something_else_changed_a_patched_site()
        {
            _engine.Install(PatchFiles.For(_t, "T-MOD", At("triple", 6)), _t.Pid);
            var site = _t.Symbol("triple");
            var foreign = new byte[] { 0x90, 0x90, 0x90, 0x90, 0x90, 0x90 };
            using (var other = _engine.Platform.Open(_t.Pid)) other.Memory.Write(site, foreign);
            var caves = _t.CaveCount();

            var e = Assert.Throws<HotpatchException>(() => _engine.Uninstall(_t.Pid, "T-MOD"));
            Assert.Equal(HotpatchErrorKind.SiteModified, e.Kind);
            Assert.Equal(foreign, _t.ReadSymbol("triple", 6));
            Assert.Equal(caves, _t.CaveCount());
            Assert.Equal(PatchState.Inconsistent, Assert.Single(_engine.GetInstalled(_t.Pid)).State);
        }

        [Fact]
        public void Uninstall_of_a_patch_that_is_not_installed_is_a_clear_error()
        {
            var e = Assert.Throws<HotpatchException>(() => _engine.Uninstall(_t.Pid, "NOPE"));
            Assert.Equal(HotpatchErrorKind.NotInstalled, e.Kind);
            Assert.Contains("NOPE", e.Message);
        }

        [Fact]
        public void Patchlets_install_all_or_nothing()
        {
            var before = _t.ReadSymbol("triple", 6);
            var good = At("triple", 6);
            var bad = new PatchletSpec("short_jcc", new byte[] { 0x85, 0xff, 0x74, 0x00, 0x00, 0x00, 0x00 });
            var e = Assert.Throws<HotpatchException>(() => _engine.Install(PatchFiles.For(_t, "T-AON", good, bad), _t.Pid));
            Assert.Equal(HotpatchErrorKind.ExpectMismatch, e.Kind);
            Assert.Equal("patchlets[1] (at short_jcc)", e.Patchlet);
            Assert.Equal(before, _t.ReadSymbol("triple", 6));
            Assert.Equal(0, _t.CaveCount());
        }

        [Fact]
        public void Stress_install_uninstall_cycles_under_8_hammering_threads()
        {
            // 200 cycles on Linux; 50 under Wine, where each stop is a debugger attach (about 10 ms on an idle
            // machine, hundreds of ms on 2 loaded cores: 200 cycles took 6 to 14 min there).
            int cycles = TestPlatform.IsWindows ? 50 : 200;
            var patch = PatchFiles.For(_t, "T-STRESS",
                At("triple", 6, "cmp edi, 100000\njbe resume\nmov eax, -1\nret"),
                At("short_jcc", 7),
                At("rip_first", 6));
            var originals = new[] { "triple", "short_jcc", "rip_first" }.Select(s => _t.ReadSymbol(s, 8)).ToArray();
            Assert.Equal("ok", _t.Send("hammer 8"));
            var (callsBefore, _) = _t.Stats();
            int retired = 0;
            // The shipped wait, not the refusal tests' short one: 8 busy threads on 2 loaded cores can leave one
            // descheduled inside a span for 300 ms (seen under Wine), which is a refusal, not a defect.
            var engine = new HotpatchEngine();
            for (int i = 0; i < cycles; i++)
            {
                engine.Install(patch, _t.Pid);
                if (!engine.Uninstall(_t.Pid, "T-STRESS").CaveFreed) retired++;
                // Retired caves are collected by later uninstalls, so they never pile up.
                Assert.True(_t.CaveCount() <= 3, "retired caves are not being collected");
            }
            var (calls, errors) = _t.Stats();
            Assert.True(_t.IsAlive);
            Assert.Equal(0, errors);
            Assert.True(calls > callsBefore, "hammer threads made no progress");
            Assert.DoesNotContain('t', _t.ThreadStates());
            Assert.Equal(originals, new[] { "triple", "short_jcc", "rip_first" }.Select(s => _t.ReadSymbol(s, 8)).ToArray());

            // Once nothing runs through the caves, one more cycle frees every retired cave.
            Assert.Equal("ok", _t.Send("calm"));
            _engine.Install(patch, _t.Pid);
            Assert.True(_engine.Uninstall(_t.Pid, "T-STRESS").CaveFreed);
            Assert.Equal(0, _t.CaveCount());
        }
    }
}
