using System.Threading;
using HotpatchTools.Engine.Modules;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// Debian's own CPython with the distribution's zlib: binaries nobody here wrote, stripped of .symtab, found by
    /// the names admins use (the SONAME ldd prints) and bounded by what the distribution ships (.eh_frame).
    /// </summary>
    [Collection("vendor binaries")]
    public sealed class VendorBinaryTests : IDisposable
    {
        internal const string Python = "/usr/bin/python3";
        internal const string Zlib = "/usr/lib/x86_64-linux-gnu/libz.so.1";

        // Decompresses and checks on one thread (inflate_fast runs on every call) while the main thread answers.
        private const string Script = @"
import sys, zlib, threading
data = b''.join(b'%d,' % i for i in range(200000))
comp = zlib.compress(data, 6)
ok = bad = 0
def load():
    global ok, bad
    while True:
        if zlib.decompress(comp) == data: ok += 1
        else: bad += 1
        junk = [bytearray(600 + (i * 37) % 4000) for i in range(64)]
        del junk
threading.Thread(target=load, daemon=True).start()
print('ready python', flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == 'crc': print(zlib.crc32(b'hello'), flush=True)
    elif cmd[0] == 'stats': print(ok, bad, flush=True)
";

        private readonly LinuxTarget _py;
        private readonly HotpatchEngine _engine = new HotpatchEngine(options: new EngineOptions { ThreadWait = TimeSpan.FromSeconds(2) });

        public VendorBinaryTests()
        {
            Assert.True(File.Exists(Python) && File.Exists(Zlib), "needs Debian's python3 and zlib1g (apt-get install python3 zlib1g)");
            _py = new LinuxTarget(Python, "-u", "-c", Script);
        }

        public void Dispose() => _py.Dispose();

        private (long Ok, long Bad) Stats()
        {
            var parts = _py.Send("stats").Split(' ');
            return (long.Parse(parts[0]), long.Parse(parts[1]));
        }

        /// <summary>The file's bytes at an RVA: what the patch author reads with objdump.</summary>
        private static byte[] FileBytes(string path, ulong rva, int count)
        {
            var image = ElfImage.Load(path);
            var segment = image.CodeSegments.First(s => rva >= s.Rva && rva - s.Rva < s.FileSize);
            using var f = File.OpenRead(path);
            f.Position = (long)(segment.FileOffset + (rva - segment.Rva));
            var buffer = new byte[count];
            f.ReadExactly(buffer);
            return buffer;
        }

        private string Yaml(string id, string at, byte[] expect, string code) =>
            PatchFiles.Yaml(id, "libz.so.1", new[] { new PatchletSpec(at, expect, code) }, "buildId: " + ElfImage.Load(Zlib).BuildId);

        [Fact]
        public void Zlib_is_found_by_its_soname_and_an_export_changes_and_is_restored()
        {
            Assert.Equal("libz.so.1", ElfImage.Load(Zlib).Soname);
            string before = _py.Send("crc");
            Assert.Equal("907060870", before);
            ElfImage.Load(Zlib).TryResolveSymbol("crc32", out var crc32);
            // mov edx, edx; jmp crc32_z@plt: 7 bytes, the whole of crc32.
            var patch = PatchFiles.Parse(Yaml("V-CRC32", "crc32", FileBytes(Zlib, crc32, 7), "mov eax, 0x12345678\nret"));
            _engine.Install(patch, _py.Pid);
            Assert.Equal("305419896", _py.Send("crc"));
            _engine.Uninstall(_py.Pid, "V-CRC32");
            Assert.Equal(before, _py.Send("crc"));
            Assert.Equal(0, _py.CaveCount());
        }

        [Fact]
        public void The_internal_inflate_fast_is_bounded_by_its_fde_and_takes_a_detour_under_load()
        {
            var image = ElfImage.Load(Zlib);
            // inflate_fast is static: no symbol names it. Of the unnamed functions inflate calls it is the largest
            // (inflate_table is the other); objdump and readelf find it and its bounds, so a zlib update moves nothing here.
            var (inflateFast, fdeEnd) = ElfTools.UnnamedCallees(Zlib, "inflate").OrderByDescending(f => f.End - f.Start).First();
            Assert.True(fdeEnd - inflateFast > 0x800, "inflate_fast is a few kilobytes; found 0x" + inflateFast.ToString("x") + "..0x" + fdeEnd.ToString("x"));
            Assert.False(image.Symbols.Any(s => s.Rva == inflateFast), "inflate_fast is not exported: .eh_frame is all that bounds it");
            Assert.True(image.TryGetFunctionBounds(inflateFast + 1, out var start, out var end, out _));
            Assert.Equal(inflateFast, start);
            Assert.Equal(fdeEnd, end);
            // The whole instructions the jump overwrites, as objdump lists them; the engine's file reader agrees.
            var expect = Convert.FromHexString(ElfTools.ObjdumpBytes("objdump", Zlib, inflateFast, 5).Replace(" ", ""));
            Assert.Equal(expect, FileBytes(Zlib, inflateFast, expect.Length));

            var patch = PatchFiles.Parse(Yaml("V-INFLATE-FAST", "0x" + inflateFast.ToString("x"), expect, ""));
            var first = Stats();
            for (int cycle = 0; cycle < 5; cycle++)
            {
                _engine.Install(patch, _py.Pid);
                Assert.True(Progresses(), "python stopped decompressing with the detour installed");
                _engine.Uninstall(_py.Pid, "V-INFLATE-FAST");
            }
            var last = Stats();
            Assert.Equal(0, last.Bad);
            Assert.True(last.Ok > first.Ok);
            Assert.True(_py.IsAlive);
            Assert.Equal(0, _py.CaveCount());
        }

        /// <summary>Python's results keep coming: waits for more, up to a bound that a loaded machine does not reach.</summary>
        private bool Progresses()
        {
            var before = Stats();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (clock.Elapsed < TimeSpan.FromSeconds(10))
            {
                Thread.Sleep(20);
                if (Stats().Ok > before.Ok) return true;
            }
            return false;
        }

        [Fact]
        public void Glibcs_static_int_malloc_is_named_through_libc6_dbg_and_survives_install_cycles_under_load()
        {
            var stripped = ElfImage.Load(ElfTools.Libc);
            Assert.False(stripped.TryResolveSymbol("_int_malloc", out _), "libc.so.6 itself does not name _int_malloc");
            var image = DebugFiles.Attach(stripped, ElfTools.Libc);
            Assert.True(image.DebugFile != null, "needs Debian's libc6-dbg (apt-get install libc6-dbg): no debug file for build-id " + stripped.BuildId);
            Assert.StartsWith("/usr/lib/debug/.build-id/", image.DebugFile);
            Assert.True(image.TryResolveSymbol("_int_malloc", out var rva));
            Assert.True(image.TryGetFunctionBounds(rva, out var start, out var end, out var name));
            Assert.Equal(("_int_malloc", rva), (name, start));
            Assert.True(end - start > 1000);

            // test rsi, rsi; js ...: 9 bytes, the js relocated into the cave.
            var expect = FileBytes(ElfTools.Libc, rva, 9);
            var yaml = PatchFiles.Yaml("V-INT-MALLOC", "libc.so.6", new[] { new PatchletSpec("_int_malloc", expect) }, "buildId: " + stripped.BuildId);
            var patch = PatchFiles.Parse(yaml);
            var first = Stats();
            for (int cycle = 0; cycle < 20; cycle++)
            {
                _engine.Install(patch, _py.Pid);
                Assert.True(Progresses(), "python stopped decompressing (and allocating) with the detour installed, cycle " + cycle);
                _engine.Uninstall(_py.Pid, "V-INT-MALLOC");
            }
            Thread.Sleep(100);
            var last = Stats();
            Assert.Equal(0, last.Bad);
            Assert.True(last.Ok > first.Ok);
            Assert.Equal("907060870", _py.Send("crc"));
            Assert.True(_py.IsAlive);
            Assert.Equal(0, _py.CaveCount());
        }
    }
}
