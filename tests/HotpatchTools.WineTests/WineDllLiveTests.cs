using System.Globalization;
using System.Threading;
using Iced.Intel;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// Wine's own PE DLLs patched live inside a mingw-built target (in the Wine suite's project only): addresses come from the
    /// target's loader (GetModuleHandle / GetProcAddress) and from nm's listing of Wine's kernelbase.dll
    /// (tests/wine/run.sh), expect bytes from the live process.
    /// </summary>
    public sealed class WineDllLiveTests : IDisposable
    {
        private readonly TargetProcess _t;
        private readonly HotpatchEngine _engine = new HotpatchEngine(options: new EngineOptions { ThreadWait = TimeSpan.FromSeconds(2) });

        public WineDllLiveTests()
        {
            _t = TargetProcess.Start();
        }

        public void Dispose() => _t.Dispose();

        /// <summary>The loader's address of a module ("kernelbase.dll") or of an export ("kernel32.dll!Name"); 0 when it has none.</summary>
        private static ulong Loader(TargetProcess t, string what) => ulong.Parse(t.Send("module " + what), NumberStyles.HexNumber, CultureInfo.InvariantCulture);

        /// <summary>Whole instructions at address covering at least 5 bytes, as the live process holds them.</summary>
        private static byte[] Expect(TargetProcess t, ulong address)
        {
            var bytes = t.Read(address, 32);
            var decoder = Decoder.Create(64, new ByteArrayCodeReader(bytes));
            int length = 0;
            while (length < 5)
            {
                decoder.Decode(out var ins);
                Assert.False(ins.IsInvalid, "no instruction at 0x" + address.ToString("x") + "+" + length);
                length += ins.Length;
            }
            return bytes[..length];
        }

        private static string Yaml(string id, string module, string at, byte[] expect, string code = "")
        {
            var yaml = "format: 1\nid: " + id + "\ntitle: " + id + "\ntarget:\n  os: windows\n  arch: x64\n  module: " + module + "\npatchlets:\n"
                + "  - at: " + at + "\n    expect: " + Hex.Spaced(expect) + "\n";
            if (code.Length > 0) yaml += "    code: |\n" + string.Join("", code.Split('\n').Select(l => "      " + l + "\n"));
            return yaml;
        }

        [Fact]
        public void An_export_of_wines_kernel32_answers_what_the_patch_says_until_uninstalled()
        {
            // Wine's PE DLLs exist only in the Windows suite (tests/wine/run.sh); on Linux there is nothing to patch.
            var t = _t;
            // mingw imports GetCurrentProcessId from kernel32.dll, where Wine implements it itself (not a forwarder).
            ulong at = Loader(t, "kernel32.dll!GetCurrentProcessId");
            Assert.NotEqual(0UL, at);
            string real = t.Send("winpid");
            Assert.Equal(t.Pid.ToString(CultureInfo.InvariantCulture), real);
            var expect = Expect(t, at);

            _engine.Install(PatchFiles.Parse(Yaml("W-PID", "kernel32.dll", "GetCurrentProcessId", expect, "mov eax, 4242\nret")), t.Pid);
            Assert.Equal(0xE9, t.Read(at, 1)[0]);
            Assert.Equal("4242", t.Send("winpid"));
            Assert.Equal("4242", t.Send("winpid"));

            var removed = _engine.Uninstall(t.Pid, "W-PID");
            Assert.Equal(expect, t.Read(at, expect.Length));
            Assert.Equal(real, t.Send("winpid"));
            Assert.True(removed.CaveFreed, removed.Message);
            Assert.Equal(0, t.CaveCount());
        }

        [Fact]
        public void A_static_function_of_wines_kernelbase_takes_an_empty_detour_while_it_runs()
        {
            // Wine's PE DLLs exist only in the Windows suite (tests/wine/run.sh); on Linux there is nothing to patch.
            var t = _t;
            ulong kernelBase = Loader(t, "kernelbase.dll");
            Assert.NotEqual(0UL, kernelBase);
            // compare_string is static (named by kernelbase's COFF symbols, not exported); CompareStringEx calls it each time.
            Assert.Equal(0UL, Loader(t, "kernelbase.dll!compare_string"));
            ulong at = kernelBase + NativeBuild.SymbolRva(Path.Combine(Path.GetDirectoryName(t.ExePath)!, "kernelbase.dll"), "compare_string");
            var expect = Expect(t, at);
            Assert.Equal("1", t.Send("compare"));

            Assert.Equal("ok", t.Send("comparers 2"));
            var yaml = Yaml("W-CMP", "kernelbase.dll", "compare_string", expect);
            for (int round = 0; round < 5; round++)
            {
                _engine.Install(PatchFiles.Parse(yaml), t.Pid);
                Assert.Equal(0xE9, t.Read(at, 1)[0]);
                long calls = t.Stats().Calls;
                t.WaitForCalls(calls, "comparer threads");
                Assert.Equal("1", t.Send("compare"));
                _engine.Uninstall(t.Pid, "W-CMP");
                Assert.Equal(expect, t.Read(at, expect.Length));
                t.WaitForCalls(t.Stats().Calls, "comparer threads");
            }
            t.CalmAndFreeRetiredCaves(_engine, yaml, "W-CMP", minCalls: 10, "comparers");
            Assert.Equal(expect, t.Read(at, expect.Length));
        }
    }
}
