using System.Text.RegularExpressions;
using HotpatchTools.Engine.Modules;
using HotpatchTools.Engine.Platform.Offline;
using Iced.Intel;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// Windows DLLs nobody here wrote, patched offline and checked against objdump: Wine's own x86_64-windows
    /// builds (MinGW, with COFF symbols and .pdata) and an MSVC release DLL of the win-x64 .NET runtime pack (no
    /// symbols, chained unwind entries, leaf functions without .pdata).
    /// </summary>
    public sealed class PeVendorTests
    {
        internal const string WineDlls = "/usr/lib/x86_64-linux-gnu/wine/x86_64-windows";
        private static string KernelBase => Path.Combine(WineDlls, "kernelbase.dll");

        /// <summary>An MSVC-built DLL of the runtime pack restore brings (the SDK picks the version).</summary>
        private static string MsvcDll()
        {
            var root = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages", "microsoft.netcore.app.runtime.win-x64");
            var found = Directory.Exists(root)
                ? Directory.GetDirectories(root).Select(d => Path.Combine(d, "runtimes", "win-x64", "native", "System.IO.Compression.Native.dll")).Where(File.Exists).OrderBy(p => p).LastOrDefault()
                : null;
            Assert.True(found != null, "needs the win-x64 runtime pack in " + root + " (restore brings it: see the PackageDownload in the test project)");
            return found!;
        }

        private static string Yaml(string id, string module, string at, byte[] expect, string code = "", string? function = null)
        {
            var yaml = "format: 1\nid: " + id + "\ntitle: " + id + "\ntarget:\n  os: windows\n  arch: x64\n  module: " + module + "\npatchlets:\n"
                + "  - at: " + at + "\n    expect: " + Hex.Spaced(expect) + "\n";
            if (function != null) yaml += "    function: " + function + "\n";
            if (code.Length > 0) yaml += "    code: |\n" + string.Join("", code.Split('\n').Select(l => "      " + l + "\n"));
            return yaml;
        }

        /// <summary>
        /// objdump's interpreted .pdata: [begin, end) as RVAs, and for entries whose unwind data is chained, the
        /// entry it continues (objdump prints shared unwind data once: "also used for function at").
        /// </summary>
        private static (List<(ulong Start, ulong End)> Entries, Dictionary<ulong, ulong> ChainedTo) ObjdumpPdata(string path, ulong imageBase)
        {
            string text = NativeBuild.Run("objdump", "-p", path);
            var table = text.Substring(text.IndexOf("The Function Table", StringComparison.Ordinal));
            var rows = Regex.Matches(table, @"^ [0-9a-f]+:\s+([0-9a-f]{16}) ([0-9a-f]{16}) ([0-9a-f]{16})$", RegexOptions.Multiline)
                .Select(m => (Start: Convert.ToUInt64(m.Groups[1].Value, 16) - imageBase, End: Convert.ToUInt64(m.Groups[2].Value, 16) - imageBase, Unwind: Convert.ToUInt64(m.Groups[3].Value, 16) - imageBase)).ToList();
            var chainOfUnwind = new Dictionary<ulong, ulong>();
            foreach (Match m in Regex.Matches(text, @"\(rva: ([0-9a-f]+)\): [0-9a-f]{16} - [0-9a-f]{16}\n\tVersion: \d+, Flags: UNW_FLAG_CHAININFO\n(?:\t[^\n]*\n)*?\tChain: start: ([0-9a-f]+),"))
                chainOfUnwind[Convert.ToUInt64(m.Groups[1].Value, 16)] = Convert.ToUInt64(m.Groups[2].Value, 16);
            var chained = new Dictionary<ulong, ulong>();
            foreach (var r in rows)
                if (chainOfUnwind.TryGetValue(r.Unwind, out var up)) chained[r.Start] = up;
            return (rows.Select(r => (r.Start, r.End)).ToList(), chained);
        }

        private static ulong ImageBase(string path) =>
            Convert.ToUInt64(Regex.Match(NativeBuild.Run("objdump", "-p", path), @"ImageBase\s+([0-9a-f]+)").Groups[1].Value, 16);

        /// <summary>Whole instructions from rva covering at least 5 bytes, as the offline image holds them.</summary>
        private static byte[] Expect(OfflinePlatform platform, ulong address)
        {
            var bytes = new byte[32];
            platform.Process.Memory.Read(address, bytes);
            var decoder = Decoder.Create(64, new ByteArrayCodeReader(bytes));
            int length = 0;
            while (length < 5) { decoder.Decode(out var ins); length += ins.Length; }
            return bytes[..length];
        }

        [Fact]
        public void Every_pdata_entry_of_wines_kernelbase_is_a_function_as_objdump_lists_it()
        {
            Assert.True(File.Exists(KernelBase), "needs Wine's PE DLLs (apt-get install wine64)");
            var image = PeImage.Load(KernelBase);
            var (entries, _) = ObjdumpPdata(KernelBase, ImageBase(KernelBase));
            Assert.True(entries.Count > 1000, "objdump lists " + entries.Count + " .pdata entries");
            foreach (var (start, end) in entries)
            {
                Assert.True(image.TryGetFunctionBounds(end - 1, out var s, out var e, out _));
                Assert.Equal((start, end), (s, e));
            }
        }

        [Fact]
        public void Chained_unwind_entries_of_an_msvc_dll_belong_to_their_primary_function()
        {
            string dll = MsvcDll();
            var image = PeImage.Load(dll);
            var (entries, chained) = ObjdumpPdata(dll, ImageBase(dll));
            Assert.True(chained.Count > 10, "objdump shows " + chained.Count + " chained entries");
            ulong Primary(ulong start) => chained.TryGetValue(start, out var up) ? Primary(up) : start;
            foreach (var (start, _) in entries)
                Assert.Equal(Primary(start), image.PrimaryOf((uint)start));
            var part = chained.Keys.First();
            Assert.True(image.TryGetFunctionBounds(part, out var s, out _, out var name));
            Assert.Equal(part, s);
            Assert.Contains("chained part", name);
        }

        [Fact]
        public void An_export_of_wines_kernelbase_changes_and_is_restored_offline()
        {
            var platform = new OfflinePlatform(KernelBase);
            var engine = new HotpatchEngine(platform);
            var module = platform.Process.Modules.GetModules().Single();
            Assert.True(platform.Process.Image.TryResolveSymbol("GetTickCount64", out var rva));
            Assert.True(platform.Process.Image.TryGetFunctionBounds(rva, out var start, out _, out _));
            Assert.Equal(rva, start);
            ulong at = module.Base + rva;
            var expect = Expect(platform, at);
            var patch = PatchFiles.Parse(Yaml("W-TICK", "KernelBase.dll", "GetTickCount64", expect, "mov rax, 12345\nret"));
            engine.Install(patch, platform.Process.Id);
            var now = new byte[expect.Length];
            platform.Process.Memory.Read(at, now);
            Assert.Equal(0xe9, now[0]);
            engine.Uninstall(platform.Process.Id, "W-TICK");
            platform.Process.Memory.Read(at, now);
            Assert.Equal(expect, now);
        }

        [Fact]
        public void An_internal_function_of_wines_kernelbase_is_bounded_by_its_pdata_entry()
        {
            var platform = new OfflinePlatform(KernelBase);
            var image = platform.Process.Image;
            var pe = (PeImage)image;
            // get_language_sort is static: a COFF symbol, not an export.
            Assert.True(image.TryResolveSymbol("get_language_sort", out var rva));
            Assert.DoesNotContain(pe.Exports, e => e.Rva == rva);
            var (entries, _) = ObjdumpPdata(KernelBase, ImageBase(KernelBase));
            var entry = entries.Single(e => e.Start == rva);
            Assert.True(image.TryGetFunctionBounds(rva + 1, out var s, out var end, out var name));
            Assert.Equal((entry.Start, entry.End, "get_language_sort"), (s, end, name));

            var module = platform.Process.Modules.GetModules().Single();
            var expect = Expect(platform, module.Base + rva);
            var engine = new HotpatchEngine(platform);
            engine.Install(PatchFiles.Parse(Yaml("W-SORT", "kernelbase.dll", "get_language_sort", expect)), platform.Process.Id);
            engine.Uninstall(platform.Process.Id, "W-SORT");
        }

        [Fact]
        public void A_leaf_function_of_an_msvc_dll_without_pdata_needs_a_declared_function()
        {
            string dll = MsvcDll();
            var platform = new OfflinePlatform(dll);
            var pe = (PeImage)platform.Process.Image;
            var module = platform.Process.Modules.GetModules().Single();
            // A leaf export: no .pdata entry, no symbols; its bounds are what the author reads in the disassembly.
            var leaf = pe.Exports.Where(e => !e.IsForwarder && e.Name != null && !pe.TryGetFunctionBounds(e.Rva, out _, out _, out _))
                .Select(e => (e.Name!, e.Rva, End: LeafEnd(platform, module.Base + e.Rva)))
                .First(l => l.End != null);
            ulong end = leaf.End!.Value - module.Base;
            var expect = Expect(platform, module.Base + leaf.Rva);
            var engine = new HotpatchEngine(platform);

            var refused = Assert.Throws<HotpatchException>(() => engine.Install(PatchFiles.Parse(Yaml("M-LEAF", "System.IO.Compression.Native.dll", leaf.Item1, expect)), platform.Process.Id));
            Assert.Equal(HotpatchErrorKind.UnsafeSite, refused.Kind);
            Assert.Contains("no function", refused.Message);

            string declared = "{ start: " + leaf.Item1 + ", end: 0x" + end.ToString("x") + " }";
            engine.Install(PatchFiles.Parse(Yaml("M-LEAF", "system.io.compression.native.dll", leaf.Item1, expect, function: declared)), platform.Process.Id);
            engine.Uninstall(platform.Process.Id, "M-LEAF");
        }

        /// <summary>The end of a function that runs straight to a ret, at least 5 bytes, with no branch or call; null otherwise.</summary>
        private static ulong? LeafEnd(OfflinePlatform platform, ulong address)
        {
            var bytes = new byte[64];
            platform.Process.Memory.Read(address, bytes);
            var decoder = Decoder.Create(64, new ByteArrayCodeReader(bytes), address);
            while (decoder.IP < address + 60)
            {
                decoder.Decode(out var ins);
                if (ins.IsInvalid || (ins.FlowControl != FlowControl.Next && ins.FlowControl != FlowControl.Return)) return null;
                if (ins.FlowControl == FlowControl.Return) return ins.NextIP - address >= 6 ? ins.NextIP : null;
            }
            return null;
        }
    }
}
