namespace HotpatchTools.Tests
{
    /// <summary>Every refusal the spec lists, against a live target: a clear error, and not one byte changed.</summary>
    public sealed class RefusalTests : LiveEngineTest
    {
        internal HotpatchException Refused(string function, int length, string yaml, HotpatchErrorKind kind, string messagePart, bool staticRefusal = true)
        {
            var before = _t.ReadSymbol(function, length + 16);
            var e = Assert.Throws<HotpatchException>(() => _engine.Install(PatchFiles.Parse(yaml), _t.Pid));
            Assert.Equal(kind, e.Kind);
            Assert.Contains(messagePart, e.Message);
            Assert.Equal(before, _t.ReadSymbol(function, length + 16));
            Assert.Equal(0, _t.CaveCount());
            Assert.True(_t.IsAlive);
            Assert.DoesNotContain('t', _t.ThreadStates());
            // A thread's position is transient; every other refusal is visible to discovery as well.
            if (staticRefusal) Assert.NotEqual(TargetState.Vulnerable, _engine.Inspect(PatchFiles.Parse(yaml), _t.Pid)!.State);
            return e;
        }

        private string Module => _t.ModuleName;

        private string Yaml(string at, byte[] expect, string code = "", string? identity = null) =>
            PatchFiles.Yaml("T-REFUSE", Module, new[] { new PatchletSpec(at, expect, code) }, identity);

        [Fact]
        public void Install_refuses_when_expect_bytes_differ()
        {
            var e = Refused("triple", 6, Yaml("triple", new byte[] { 0x8d, 0x04, 0x7f, 0x83, 0xc0, 0x02 }), HotpatchErrorKind.ExpectMismatch, "83 c0 01");
            Assert.Equal("patchlets[0] (at triple)", e.Patchlet);
        }

        [Fact]
        public void Install_refuses_an_identity_mismatch()
        {
            var (line, field) = TestPlatform.WrongIdentity;
            Refused("triple", 6, Yaml("triple", _t.ReadSymbol("triple", 6), identity: line), HotpatchErrorKind.IdentityMismatch, field);
        }

        [Fact]
        public void Install_refuses_a_sha256_mismatch()
        {
            Refused("triple", 6, Yaml("triple", _t.ReadSymbol("triple", 6), identity: "sha256: " + new string('0', 64)), HotpatchErrorKind.IdentityMismatch, "sha256");
        }

        [Fact]
        public void Install_refuses_when_code_branches_into_the_span()
        {
            var site = _t.Symbol("triple");
            Refused("triple", 6, Yaml("triple", _t.ReadSymbol("triple", 6), "jmp 0x" + (site + 3).ToString("x")), HotpatchErrorKind.UnsafeSite, "inside the bytes");
        }

        /// <summary>
        /// Sites refused although expect is what the target holds there, by case: the function whose first bytes must
        /// stay unchanged, and how many; the patchlet's at; where its expect is read (offset into the function,
        /// length); the error kind and a part of its message.
        /// </summary>
        private static readonly Dictionary<string, (string Function, int CheckedLength, string At, int ExpectOffset, int ExpectLength, HotpatchErrorKind Kind, string MessagePart)> RefusedSites = new()
        {
            ["expect shorter than the overwritten instructions"] = ("triple", 6, "triple", 0, 5, HotpatchErrorKind.UnsafeSite, "covering 6 bytes"),
            ["a branch in the function targets the span"] = ("branch_into", 7, "branch_into", 0, 7, HotpatchErrorKind.UnsafeSite, "branches into the overwritten bytes"),
            ["the span runs past the end of the function"] = ("tiny", 6, "tiny", 0, 6, HotpatchErrorKind.UnsafeSite, "run past the end of tiny"),
            ["a call returns into the span"] = ("call_inside", 12, "call_inside+0x7", 7, 5, HotpatchErrorKind.UnsafeSite, "returns to"),
            ["a loop whose target leaves the copied bytes"] = ("loop_first", 5, "loop_first", 0, 5, HotpatchErrorKind.UnsafeSite, "no near form"),
            ["a site that is not an instruction boundary"] = ("triple", 8, "triple+0x1", 1, 6, HotpatchErrorKind.UnsafeSite, "instruction boundary"),
            ["an unknown symbol"] = ("triple", 6, "no_such_function", 0, 6, HotpatchErrorKind.IdentityMismatch, "no_such_function"),
        };

        public static TheoryData<string> RefusedSiteCases => new TheoryData<string>(RefusedSites.Keys);

        [Theory]
        [MemberData(nameof(RefusedSiteCases))]
        public void Install_refuses_the_site(string @case)
        {
            var (function, checkedLength, at, expectOffset, expectLength, kind, messagePart) = RefusedSites[@case];
            Refused(function, checkedLength, Yaml(at, _t.Read(_t.Symbol(function) + (ulong)expectOffset, expectLength)), kind, messagePart);
        }

        /// <summary>spin_fn's loop: the 9 bytes a jump overwrites, which a spinning thread never leaves (tests/native/sites.S).</summary>
        private const int SpinSpan = 9;

        [Fact]
        public void Install_refuses_after_a_bounded_wait_when_a_thread_spins_inside_the_span()
        {
            // "ok" comes only once the thread is proven inside the span: a write here is the engine's fault.
            Assert.Equal("ok", _t.Send("park spin"));
            // The bound is what this machine measures: the wait, plus the retries' stops and sleeps (each retry
            // stops the process once and sleeps at most 50 ms), with room for a loaded machine.
            var freeze = MeasuredFreeze();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            Refused("spin_fn", SpinSpan, Yaml("spin_fn", _t.ReadSymbol("spin_fn", SpinSpan)), HotpatchErrorKind.ThreadInSpan, "nothing was written", staticRefusal: false);
            clock.Stop();
            var wait = TimeSpan.FromMilliseconds(300);
            Assert.True(clock.Elapsed >= wait, "refused after " + clock.Elapsed.TotalMilliseconds + " ms, before the wait of " + wait.TotalMilliseconds + " ms was over");
            // The sleeps between attempts grow by 5 ms each, so about 11 attempts fit in 300 ms, each stopping the
            // process once: 70 measured stops, one last sleep and 2 s for a loaded machine are ample.
            var bound = wait + TimeSpan.FromTicks(freeze.Ticks * 70) + TimeSpan.FromMilliseconds(100) + TimeSpan.FromSeconds(2);
            Assert.True(clock.Elapsed < bound, "refused after " + clock.Elapsed.TotalMilliseconds + " ms; bound " + bound.TotalMilliseconds + " ms (one stop measured " + freeze.TotalMilliseconds + " ms)");
        }

        /// <summary>The longest of three plain stop-and-release cycles of the target, as the engine does them.</summary>
        private TimeSpan MeasuredFreeze()
        {
            var longest = TimeSpan.Zero;
            using var target = _engine.Platform.Open(_t.Pid);
            for (int i = 0; i < 3; i++)
            {
                var sw = System.Diagnostics.Stopwatch.StartNew();
                target.Threads.Freeze(TimeSpan.FromSeconds(10)).Dispose();
                if (sw.Elapsed > longest) longest = sw.Elapsed;
            }
            return longest;
        }

        [Fact]
        public void Every_stop_sees_the_thread_that_spins_inside_the_span()
        {
            // The other explanation of a missed ThreadInSpan: a stop that does not report a thread, or reports where
            // it was rather than where it is. The spinning thread never leaves its span, so every stop must show it there.
            Assert.Equal("ok", _t.Send("park spin"));
            ulong lo = _t.Symbol("spin_fn"), hi = lo + SpinSpan;
            using var target = _engine.Platform.Open(_t.Pid);
            for (int i = 0; i < 40; i++)
            {
                using var frozen = target.Threads.Freeze(TimeSpan.FromSeconds(10));
                int inside = frozen.Threads.Count(t => t.ResumeIp >= lo && t.ResumeIp < hi);
                Assert.True(inside == 1, "stop " + i + ": " + inside + " threads inside the span; threads at " +
                    string.Join(", ", frozen.Threads.Select(t => t.Id + "@0x" + t.ResumeIp.ToString("x"))));
            }
        }

        [Fact]
        public void Install_refuses_a_module_that_is_not_loaded()
        {
            var yaml = PatchFiles.Yaml("T-REFUSE", "libnothere.so", new[] { new PatchletSpec("f", new byte[] { 0x90, 0x90, 0x90, 0x90, 0x90 }) });
            var e = Assert.Throws<HotpatchException>(() => _engine.Install(PatchFiles.Parse(yaml), _t.Pid));
            Assert.Equal(HotpatchErrorKind.ModuleNotLoaded, e.Kind);
            Assert.Equal(TargetState.NotLoaded, _engine.Inspect(PatchFiles.Parse(yaml), _t.Pid)!.State);
        }

        [Fact]
        public void Install_on_a_missing_process_is_a_clear_error()
        {
            var yaml = Yaml("triple", _t.ReadSymbol("triple", 6));
            var e = Assert.Throws<HotpatchException>(() => _engine.Install(PatchFiles.Parse(yaml), 0x3fffffff));
            Assert.Equal(HotpatchErrorKind.ProcessNotFound, e.Kind);
        }
    }
}
