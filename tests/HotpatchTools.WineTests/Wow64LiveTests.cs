using System.Globalization;
using System.Management.Automation;
using System.Threading;
using HotpatchTools.Engine.Platform.Windows;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// A 32-bit target (tests/native/target.c with sites.S, built with i686 mingw by tests/wine/run.sh and run by
    /// Debian's wine32) patched live by this 64-bit program, through the engine and through the module's cmdlets.
    /// Addresses come from nm's listing and from the target's own loader (GetModuleHandle), bytes from the process.
    /// </summary>
    public abstract class Wow64TestBase : IDisposable
    {
        protected const string Guard = "cmp eax, 100\njbe resume\nmov eax, -1\nret";
        protected static readonly byte[] TripleBytes = { 0x8d, 0x04, 0x40, 0x83, 0xc0, 0x01 };
        /// <summary>spin_fn's loop (inc dword ptr [eax]; pause; jmp back): the 9 bytes a jump overwrites.</summary>
        protected const int SpinSpan = 9;

        protected readonly WindowsTarget _t;
        protected readonly HotpatchEngine _engine = new HotpatchEngine(options: new EngineOptions { ThreadWait = TimeSpan.FromSeconds(2) });
        protected readonly string _dir = Directory.CreateTempSubdirectory("hpt-wow64-").FullName;

        protected Wow64TestBase()
        {
            Assert.True(Environment.Is64BitProcess, "the patching side must be the 64-bit program");
            _t = new WindowsTarget(Target32());
        }

        public void Dispose()
        {
            _t.Dispose();
            Directory.Delete(_dir, recursive: true);
        }

        private static string Target32()
        {
            var dir = Environment.GetEnvironmentVariable("HOTPATCH_NATIVE_DIR") ?? throw new InvalidOperationException("HOTPATCH_NATIVE_DIR is not set (tests/wine/run.sh sets it).");
            var path = Path.Combine(dir, "target32.exe");
            return File.Exists(path) ? path : throw new FileNotFoundException("prebuilt 32-bit target missing", path);
        }

        /// <summary>i386 C symbols carry a leading underscore in nm's listing; the exports (what patches name) do not.</summary>
        protected ulong Symbol(string name) => _t.ModuleBase() + NativeBuild.SymbolRva(_t.ExePath, "_" + name);

        protected byte[] ReadSymbol(string name, int count) => _t.Read(Symbol(name), count);

        /// <summary>The target's loader's address of a module or of an export.</summary>
        protected ulong Loader(string what) => ulong.Parse(_t.Send("module " + what), NumberStyles.HexNumber, CultureInfo.InvariantCulture);

        protected string Yaml(string id, params (string At, byte[] Expect, string Code)[] sites)
        {
            var yaml = "format: 1\nid: " + id + "\ntitle: Test patch " + id + "\ntarget:\n  os: windows\n  arch: x86\n  module: " + _t.ModuleName + "\npatchlets:\n";
            foreach (var (at, expect, code) in sites)
            {
                yaml += "  - at: " + at + "\n    expect: " + Hex.Spaced(expect) + "\n";
                if (code.Length > 0) yaml += "    code: |\n" + string.Join("", code.Split('\n').Select(l => "      " + l + "\n"));
            }
            return yaml;
        }

        /// <summary>The absolute target of the E9 jump at address (rel32 from the end of its 5 bytes, wrapping in 32 bits).</summary>
        protected ulong JumpTarget(ulong address)
        {
            var jmp = _t.Read(address, 5);
            Assert.Equal(0xE9, jmp[0]);
            return (uint)(address + 5 + (ulong)(long)BitConverter.ToInt32(jmp, 1));
        }
    }

    /// <summary>The engine against a live 32-bit target (see <see cref="Wow64TestBase"/>).</summary>
    public sealed class Wow64LiveTests : Wow64TestBase
    {
        [Fact]
        public void The_engine_sees_a_32_bit_process_and_only_its_32_bit_modules()
        {
            using var target = new WindowsPlatform().Open(_t.Pid);
            Assert.Equal(32, target.Bitness);
            var modules = target.Modules.GetModules();
            // The loader's own bases, not a second reading of the module list.
            var exe = Assert.Single(modules, m => m.Name.Equals("target32.exe", StringComparison.OrdinalIgnoreCase));
            Assert.Equal(Loader("target32.exe"), exe.Base);
            var kernel32 = Assert.Single(modules, m => m.Name.Equals("kernel32.dll", StringComparison.OrdinalIgnoreCase));
            Assert.Equal(Loader("kernel32.dll"), kernel32.Base);
            Assert.Single(modules, m => m.Name.Equals("ntdll.dll", StringComparison.OrdinalIgnoreCase));
            Assert.All(modules, m => Assert.True(m.End <= 0x1_0000_0000UL, m.Name + " ends at 0x" + m.End.ToString("x")));
            // The file parsed for a system DLL is the 32-bit one the process mapped, and its exports agree with the loader.
            Assert.EndsWith(@"\syswow64\kernel32.dll", kernel32.ReadablePath, StringComparison.OrdinalIgnoreCase);
            var image = target.Modules.OpenImage(kernel32);
            Assert.Equal(32, image.Bitness);
            Assert.True(image.TryResolveSymbol("GetCurrentProcessId", out ulong rva), "kernel32.dll has no export GetCurrentProcessId");
            Assert.Equal(Loader("kernel32.dll!GetCurrentProcessId"), kernel32.Base + rva);
        }

        [Fact]
        public void A_patch_changes_the_32_bit_targets_behaviour_until_uninstalled()
        {
            ulong site = Symbol("triple");
            Assert.Equal(TripleBytes, _t.Read(site, 6));
            Assert.Equal(1501, _t.Call("triple", 500));

            var installed = _engine.Install(PatchFiles.Parse(Yaml("W32-GUARD", ("triple", TripleBytes, Guard))), _t.Pid);
            Assert.Equal(-1, _t.Call("triple", 500));
            Assert.Equal(16, _t.Call("triple", 5));
            // One cave, in the low 2 GB a 32-bit process can reach, and the site's rel32 jump lands inside it.
            var cave = Assert.Single(_t.CaveRegions());
            Assert.True(cave.End <= 0x8000_0000UL, "cave at 0x" + cave.Start.ToString("x"));
            ulong into = JumpTarget(site);
            Assert.True(into > cave.Start && into < cave.End, "the jump goes to 0x" + into.ToString("x") + ", outside the cave at 0x" + cave.Start.ToString("x"));
            Assert.Equal(0xCC, _t.Read(site + 5, 1)[0]); // the rest of the span: int3, never run

            var removed = _engine.Uninstall(_t.Pid, "W32-GUARD");
            Assert.True(removed.CaveFreed, removed.Message);
            Assert.Equal(TripleBytes, _t.Read(site, 6));
            Assert.Equal(1501, _t.Call("triple", 500));
            Assert.Equal(0, _t.CaveCount());
        }

        [Fact]
        public void Detours_over_an_absolute_operand_and_a_short_jcc_keep_every_result_right_under_load()
        {
            // rip_first's add eax, [g_value] holds an absolute (base-relocated) address; short_jcc's span holds a je.
            var absolute = ReadSymbol("rip_first", 6);
            Assert.Equal(new byte[] { 0x03, 0x05 }, absolute[..2]);
            Assert.Equal(Symbol("g_value"), BitConverter.ToUInt32(absolute, 2));
            var jcc = ReadSymbol("short_jcc", 7);
            Assert.Equal(new byte[] { 0x85, 0xc0, 0x74 }, jcc[..3]);
            var yaml = Yaml("W32-LOAD", ("rip_first", absolute, ""), ("short_jcc", jcc, ""), ("triple", TripleBytes, ""));

            Assert.Equal("ok", _t.Send("hammer 2"));
            for (int round = 0; round < 3; round++)
            {
                _engine.Install(PatchFiles.Parse(yaml), _t.Pid);
                foreach (var name in new[] { "rip_first", "short_jcc", "triple" }) Assert.Equal(0xE9, ReadSymbol(name, 1)[0]);
                _t.WaitForCalls(_t.Stats().Calls, "hammer threads");
                Assert.Equal(42, _t.Call("rip_first", 2));
                Assert.Equal(2, _t.Call("short_jcc", 0));
                Assert.Equal(6, _t.Call("short_jcc", 5));
                _engine.Uninstall(_t.Pid, "W32-LOAD");
                Assert.Equal(absolute, ReadSymbol("rip_first", 6));
                Assert.Equal(jcc, ReadSymbol("short_jcc", 7));
                _t.WaitForCalls(_t.Stats().Calls, "hammer threads");
            }
            _t.CalmAndFreeRetiredCaves(_engine, yaml, "W32-LOAD", minCalls: 100, "hammer threads");
        }

        [Fact]
        public void Install_refuses_while_a_32_bit_thread_spins_inside_the_span()
        {
            // The thread's place comes from its 32-bit context (Wow64GetThreadContext); a 64-bit view of it would miss the span.
            Assert.Equal("ok", _t.Send("park spin"));
            var original = ReadSymbol("spin_fn", SpinSpan);
            Assert.Equal(new byte[] { 0xff, 0x00, 0xf3, 0x90, 0xe9 }, original[..5]);

            var e = Assert.Throws<HotpatchException>(() => _engine.Install(PatchFiles.Parse(Yaml("W32-SPIN", ("spin_fn", original, ""))), _t.Pid));
            Assert.True(e.Kind == HotpatchErrorKind.ThreadInSpan, e.Kind + ": " + e.Message);
            Assert.Contains("nothing was written", e.Message, StringComparison.OrdinalIgnoreCase);
            Assert.Equal(original, ReadSymbol("spin_fn", SpinSpan));
            Assert.Equal(0, _t.CaveCount());
            // Released from the freeze: the target answers, and the spinning thread did not stop a patch elsewhere.
            Assert.Equal(16, _t.Call("triple", 5));
            _engine.Install(PatchFiles.Parse(Yaml("W32-ELSE", ("triple", TripleBytes, Guard))), _t.Pid);
            Assert.Equal(-1, _t.Call("triple", 500));
            _engine.Uninstall(_t.Pid, "W32-ELSE");
            Assert.Equal(1501, _t.Call("triple", 500));
        }

        /// <summary>x86 sites the engine must refuse as it does on x64: bounds from COFF symbols (no .pdata in a PE32).</summary>
        [Theory]
        [InlineData("branch_into", 0, 6, "branches into the overwritten bytes")]
        [InlineData("tiny", 0, 5, "run past the end of tiny")]
        [InlineData("call_inside", 6, 5, "returns to")]
        [InlineData("loop_first", 0, 5, "no near form")]
        public void Install_refuses_unsafe_x86_sites_and_writes_nothing(string function, int offset, int length, string why)
        {
            ulong at = Symbol(function) + (ulong)offset;
            var before = _t.Read(Symbol(function), 32);
            string site = offset == 0 ? function : function + "+0x" + offset.ToString("x");
            var e = Assert.Throws<HotpatchException>(() => _engine.Install(PatchFiles.Parse(Yaml("W32-REFUSE", (site, _t.Read(at, length), ""))), _t.Pid));
            Assert.Equal(HotpatchErrorKind.UnsafeSite, e.Kind);
            Assert.Contains(why, e.Message);
            Assert.Equal(before, _t.Read(Symbol(function), 32));
            Assert.Equal(0, _t.CaveCount());
            Assert.Equal(16, _t.Call("triple", 5));
        }

        [Theory]
        [InlineData("install", "freeze.held")]
        [InlineData("install", "install.after-site-1")]
        [InlineData("uninstall", "uninstall.after-site-1")]
        public void A_32_bit_target_runs_on_when_its_installer_is_killed_mid_freeze(string mode, string failPoint)
        {
            // The debug-object freeze of a WoW64 process: the system detaches a dead installer and every thread runs again.
            Assert.Equal("ok", _t.Send("hammer 2"));
            var jcc = ReadSymbol("short_jcc", 7);
            var file = PatchFiles.WriteFile(_dir, "W32-KILL", Yaml("W32-KILL", ("triple", TripleBytes, ""), ("short_jcc", jcc, "")));
            var patch = PatchFiles.Parse(File.ReadAllText(file));
            if (mode == "uninstall") _engine.Install(patch, _t.Pid);

            InstallerHost.KillAt(mode, file, _t.Pid, failPoint);

            long calls0 = _t.Stats().Calls, calls = calls0;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (calls == calls0 && clock.Elapsed < TimeSpan.FromSeconds(10)) { Thread.Sleep(20); calls = _t.Stats().Calls; }
            Assert.True(calls > calls0, mode + " killed at " + failPoint + ": the hammer threads stayed stopped");
            Assert.Equal(16, _t.Call("triple", 5));
            Assert.Equal(6, _t.Call("short_jcc", 5));
            Assert.Equal(0L, _t.Stats().Errors);

            // A fresh engine stops the process again (the dead installer's debug object is gone) and puts back every byte.
            var fresh = new HotpatchEngine(options: new EngineOptions { ThreadWait = TimeSpan.FromSeconds(5) });
            if (fresh.GetInstalled(_t.Pid).Any(p => p.PatchId == "W32-KILL" && p.State != PatchState.Retired)) fresh.Uninstall(_t.Pid, "W32-KILL");
            Assert.Equal(TripleBytes, _t.Read(Symbol("triple"), 6));
            Assert.Equal(jcc, ReadSymbol("short_jcc", 7));
            Assert.Equal("ok", _t.Send("calm"));
            Assert.Equal(0L, _t.Stats().Errors);
        }
    }
}
