using System.Threading.Tasks;
using HotpatchTools.Engine.Modules;

namespace HotpatchTools.Tests
{
    public class PeImageTests : IClassFixture<PeSamples>
    {
        private const string Kernel32Path = "/usr/lib/x86_64-linux-gnu/wine/x86_64-windows/kernel32.dll";
        private readonly PeSamples _samples;

        public PeImageTests(PeSamples samples) => _samples = samples;

        private static HashSet<(string?, uint, uint, string?)> ExportSet(PeImage image) =>
            image.Exports.Select(e => (e.Name, e.Ordinal, e.Rva, e.Forwarder)).ToHashSet();

        private static void AssertBounds(PeImage image, uint rva, uint start, uint end, string? name)
        {
            Assert.True(image.TryGetFunctionBounds(rva, out ulong s, out ulong e, out string? n), "no bounds at 0x" + rva.ToString("x"));
            Assert.Equal((start, end, name), ((uint)s, (uint)e, n));
        }

        [Fact]
        public void Pe32_plus_identity()
        {
            foreach (var path in new[] { _samples.Dll64, _samples.Exe64 })
                Assert.Equal(ModuleFormat.Pe, AssertIdentity(path, 64, PeImage.MachineAmd64).Format);
        }

        [Fact]
        public void Pe32_identity()
        {
            foreach (var path in new[] { _samples.Dll32, _samples.Exe32, _samples.Stripped32 })
                AssertIdentity(path, 32, PeImage.MachineI386);
        }

        /// <summary>Bitness and machine as given, no build id, and the stamp and size objdump reads from the headers.</summary>
        private static PeImage AssertIdentity(string path, int bitness, ushort machine)
        {
            var image = PeImage.Load(path);
            Assert.Equal(bitness, image.Bitness);
            Assert.Equal(machine, image.Machine);
            Assert.Null(image.BuildId);
            Assert.Equal(PeTools.TimeDateStamp(path), image.TimeDateStamp);
            Assert.Equal(PeTools.SizeOfImage(path), image.SizeOfImage);
            return image;
        }

        [Fact]
        public void Exports_match_objdump()
        {
            foreach (var path in new[] { _samples.Dll64, _samples.Dll32, _samples.Exe64, _samples.Exe32, _samples.Stripped32 })
            {
                var image = PeImage.Load(path);
                Assert.Equal(PeTools.Exports(path).OrderBy(e => e), ExportSet(image).OrderBy(e => e));
                Assert.Equal(image.Exports.OrderBy(e => e.Ordinal).ThenBy(e => e.Name, StringComparer.Ordinal), image.Exports);
            }
        }

        [Fact]
        public void Exports_resolve_to_nm_values()
        {
            foreach (var (path, decoration) in new[] { (_samples.Dll64, ""), (_samples.Dll32, "_") })
            {
                var image = PeImage.Load(path);
                foreach (var name in new[] { "add", "use", "counter" })
                {
                    Assert.True(image.TryResolveSymbol(name, out ulong rva), name);
                    Assert.Equal(PeTools.NmRva(path, decoration + name), rva);
                }
                Assert.False(image.TryResolveSymbol("no_such_symbol", out _));
                Assert.False(image.TryResolveSymbol("", out _));

                var add = image.Exports.Single(e => e.Name == "add");
                Assert.Equal(5u, add.Ordinal);
                Assert.False(add.IsForwarder);
                Assert.Null(add.Forwarder);
            }
        }

        [Fact]
        public void Export_by_ordinal_only()
        {
            var image = PeImage.Load(_samples.Dll64);
            var hidden = Assert.Single(image.Exports, e => e.Ordinal == 9);
            Assert.Null(hidden.Name);
            Assert.False(image.TryResolveSymbol("hidden", out _));
            Assert.True(image.TryResolveSymbol("#9", out ulong rva));
            Assert.Equal(PeTools.NmRva(_samples.Dll64, "add"), rva);
            Assert.True(image.TryResolveSymbol("#5", out ulong add));
            Assert.Equal(rva, add);
            Assert.False(image.TryResolveSymbol("#3", out _));
            Assert.False(image.TryResolveSymbol("#", out _));
            Assert.False(image.TryResolveSymbol("#-5", out _));
        }

        [Fact]
        public void Forwarders()
        {
            foreach (var path in new[] { _samples.Dll64, _samples.Dll32 })
            {
                var image = PeImage.Load(path);
                var expected = new[]
                {
                    ("Forwarded", "kernel32.GetTickCount", "kernel32.dll", "GetTickCount"),
                    ("ByOrdinal", "ntdll.#12", "ntdll.dll", "#12"),
                    ("ApiSet", "api-ms-win-core-sysinfo-l1-1-0.dll.GetTickCount", "api-ms-win-core-sysinfo-l1-1-0.dll", "GetTickCount"),
                };
                foreach (var (name, forwarder, module, symbol) in expected)
                {
                    Assert.False(image.TryResolveSymbol(name, out _), name);
                    Assert.True(image.TryGetForwarder(name, out string targetModule, out string targetSymbol), name);
                    Assert.Equal((module, symbol), (targetModule, targetSymbol));
                    var export = image.Exports.Single(e => e.Name == name);
                    Assert.True(export.IsForwarder);
                    Assert.Equal(forwarder, export.Forwarder);
                }
                Assert.True(image.TryGetForwarder("#7", out string byOrdinal, out _));
                Assert.Equal("kernel32.dll", byOrdinal);
                Assert.False(image.TryGetForwarder("add", out _, out _));
                Assert.False(image.TryGetForwarder("no_such_symbol", out _, out _));
                Assert.Equal(3, image.Exports.Count(e => e.IsForwarder));
            }
        }

        [Fact]
        public void Pdata_bounds_match_objdump()
        {
            foreach (var path in new[] { _samples.Dll64, _samples.Exe64 })
            {
                var image = PeImage.Load(path);
                var table = PeTools.FunctionTable(path);
                Assert.NotEmpty(table);
                foreach (var (begin, end) in table)
                {
                    Assert.True(image.TryGetFunctionBounds(begin, out ulong start, out ulong stop, out _));
                    Assert.Equal((begin, end), ((uint)start, (uint)stop));
                    Assert.True(image.TryGetFunctionBounds(end - 1, out start, out _, out _));
                    Assert.Equal(begin, start);
                }

                uint add = PeTools.NmRva(path, "add");
                var entry = table.Single(t => t.Begin == add);
                AssertBounds(image, add, add, entry.End, "add");
                AssertBounds(image, entry.End - 1, add, entry.End, "add");
                uint triple = PeTools.NmRva(path, "triple");
                AssertBounds(image, triple + 1, triple, table.Single(t => t.Begin == triple).End, "triple");

                Assert.False(image.TryGetFunctionBounds(0, out _, out _, out _));
                Assert.False(image.TryGetFunctionBounds(PeTools.NmRva(path, "counter"), out _, out _, out _));
                Assert.False(image.TryGetFunctionBounds(ulong.MaxValue, out _, out _, out _));
                Assert.False(image.TryGetFunctionBounds((ulong)uint.MaxValue + 0x1000 + add, out _, out _, out _));
            }
        }

        [Fact]
        public void Pe32_bounds_come_from_the_coff_symbol_table()
        {
            var path = _samples.Exe32;
            Assert.NotEqual(0u, PeTools.Header(path).SymbolCount);
            var image = PeImage.Load(path);
            foreach (var name in new[] { "triple", "add", "use", "main", "under" })
            {
                uint start = PeTools.NmRva(path, "_" + name, name == "triple" ? 't' : 'T');
                uint end = PeTools.NextLabelAfter(path, "_" + name);
                Assert.True(end > start);
                AssertBounds(image, start, start, end, name);
                AssertBounds(image, end - 1, start, end, name);
            }

            // Past the last function of .text is the end of .text's data, not a function.
            Assert.False(image.TryGetFunctionBounds(PeTools.NmRva(path, "_counter"), out _, out _, out _));
            Assert.False(image.TryGetFunctionBounds(0, out _, out _, out _));
            var text = PeTools.Header(path).Sections[0];
            Assert.True(image.TryGetFunctionBounds(text.VirtualAddress + text.VirtualSize - 1, out _, out ulong last, out _));
            Assert.Equal(text.VirtualAddress + text.VirtualSize, last);
            Assert.False(image.TryGetFunctionBounds(text.VirtualAddress + text.VirtualSize, out _, out _, out _));
        }

        [Fact]
        public void Pe32_dll_bounds_name_the_export()
        {
            var image = PeImage.Load(_samples.Dll32);
            uint add = PeTools.NmRva(_samples.Dll32, "_add");
            AssertBounds(image, add + 2, add, PeTools.NextLabelAfter(_samples.Dll32, "_add"), "add");
        }

        [Fact]
        public void Coff_symbols_resolve_after_exports()
        {
            var image = PeImage.Load(_samples.Exe32);
            uint triple = PeTools.NmRva(_samples.Exe32, "_triple");
            Assert.True(image.TryResolveSymbol("triple", out ulong rva));
            Assert.Equal(triple, rva);
            Assert.True(image.TryResolveSymbol("_triple", out rva));
            Assert.Equal(triple, rva);
            Assert.True(image.TryResolveSymbol("counter", out rva));
            Assert.Equal(PeTools.NmRva(_samples.Exe32, "_counter"), rva);

            // The exported shadow, not the file-local one of the same name, whichever way it is asked for.
            uint shadow = PeTools.NmRva(_samples.Exe32, "_shadow", 'T');
            Assert.NotEqual(shadow, PeTools.NmRva(_samples.Exe32, "_shadow", 't'));
            Assert.True(image.TryResolveSymbol("shadow", out rva));
            Assert.Equal(shadow, rva);
            Assert.True(image.TryResolveSymbol("_shadow", out rva));
            Assert.Equal(shadow, rva);

            // C's under is _under in COFF and C's _under is __under: an exact COFF name wins over an undecorated one.
            uint under = PeTools.NmRva(_samples.Exe32, "_under"), underscored = PeTools.NmRva(_samples.Exe32, "__under");
            Assert.True(image.TryResolveSymbol("under", out rva));
            Assert.Equal(under, rva);
            Assert.True(image.TryResolveSymbol("_under", out rva));
            Assert.Equal(under, rva);
            Assert.True(image.TryResolveSymbol("__under", out rva));
            Assert.Equal(underscored, rva);

            var x64 = PeImage.Load(_samples.Exe64);
            Assert.True(x64.TryResolveSymbol("triple", out rva));
            Assert.Equal(PeTools.NmRva(_samples.Exe64, "triple"), rva);
            Assert.False(x64.TryResolveSymbol("_triple", out _));
        }

        [Fact]
        public void Stripped_pe32_has_exports_but_no_bounds()
        {
            Assert.Equal(0u, PeTools.Header(_samples.Stripped32).SymbolCount);
            var image = PeImage.Load(_samples.Stripped32);
            var full = PeImage.Load(_samples.Exe32);
            Assert.Equal(ExportSet(full), ExportSet(image));
            Assert.True(image.TryResolveSymbol("add", out ulong add));
            Assert.True(full.TryResolveSymbol("add", out ulong fullAdd));
            Assert.Equal(fullAdd, add);
            Assert.False(image.TryResolveSymbol("triple", out _));
            Assert.False(image.TryResolveSymbol("main", out _));
            Assert.False(image.TryGetFunctionBounds(add, out _, out _, out _));
        }

        [Fact]
        public void Loaded_layout_gives_the_same_exports_and_bounds()
        {
            foreach (var path in new[] { _samples.Dll64, _samples.Exe64 })
            {
                var file = PeImage.Load(path);
                var loadedBytes = PeTools.LoadedLayout(File.ReadAllBytes(path));
                var loaded = PeImage.FromLoadedImage(loadedBytes, Path.GetFileName(path));
                Assert.Equal(file.TimeDateStamp, loaded.TimeDateStamp);
                Assert.Equal(file.SizeOfImage, loaded.SizeOfImage);
                Assert.Equal(file.Bitness, loaded.Bitness);
                Assert.Equal(ExportSet(file), ExportSet(loaded));
                foreach (var e in file.Exports.Where(e => e.Name != null))
                {
                    Assert.Equal(file.TryResolveSymbol(e.Name!, out ulong a), loaded.TryResolveSymbol(e.Name!, out ulong b));
                    Assert.Equal(a, b);
                    Assert.Equal(file.TryGetForwarder(e.Name!, out var fm, out var fs), loaded.TryGetForwarder(e.Name!, out var lm, out var ls));
                    Assert.Equal((fm, fs), (lm, ls));
                }
                foreach (var (begin, end) in PeTools.FunctionTable(path))
                {
                    Assert.True(loaded.TryGetFunctionBounds(begin, out ulong start, out ulong stop, out _));
                    Assert.Equal((begin, end), ((uint)start, (uint)stop));
                }
                uint add = PeTools.NmRva(path, "add");
                Assert.True(loaded.TryGetFunctionBounds(add, out _, out _, out string? name));
                Assert.Equal("add", name);
                // Only exports come from a loaded image: the COFF symbol table is not mapped.
                Assert.False(loaded.TryResolveSymbol("triple", out _));
            }
        }

        [Fact]
        public void Loaded_pe32_has_exports_but_no_symbols()
        {
            var file = PeImage.Load(_samples.Dll32);
            var loaded = PeImage.FromLoadedImage(PeTools.LoadedLayout(File.ReadAllBytes(_samples.Dll32)), "lib32.dll");
            Assert.Equal(32, loaded.Bitness);
            Assert.Equal(ExportSet(file), ExportSet(loaded));
            Assert.True(loaded.TryResolveSymbol("use", out ulong use));
            Assert.Equal(PeTools.NmRva(_samples.Dll32, "_use"), use);
            Assert.False(loaded.TryResolveSymbol("triple", out _));
            Assert.False(loaded.TryGetFunctionBounds(use, out _, out _, out _));
        }

        [Fact]
        public void Loaded_image_shorter_than_size_of_image_is_refused()
        {
            var loaded = PeTools.LoadedLayout(File.ReadAllBytes(_samples.Dll64));
            var e = Assert.Throws<ModuleFormatException>(() => PeImage.FromLoadedImage(loaded.Take(loaded.Length - 0x1000).ToArray(), "short.dll"));
            Assert.Contains("SizeOfImage", e.Reason);
        }

        [Fact]
        public void Parse_of_bytes_equals_load_of_the_file()
        {
            foreach (var path in new[] { _samples.Dll64, _samples.Exe32 })
            {
                var loaded = PeImage.Load(path);
                var parsed = PeImage.Parse(File.ReadAllBytes(path), Path.GetFileName(path));
                Assert.Equal(loaded.TimeDateStamp, parsed.TimeDateStamp);
                Assert.Equal(ExportSet(loaded), ExportSet(parsed));
                uint triple = PeTools.NmRva(path, loaded.Bitness == 32 ? "_triple" : "triple");
                Assert.True(parsed.TryGetFunctionBounds(triple, out ulong a, out ulong b, out string? n));
                Assert.True(loaded.TryGetFunctionBounds(triple, out ulong c, out ulong d, out string? m));
                Assert.Equal((a, b, n), (c, d, m));
            }
        }

        [Fact]
        public void Wine_kernel32()
        {
            Assert.True(File.Exists(Kernel32Path), Kernel32Path + " is missing: install Debian's libwine (apt-get install -y libwine)");
            var image = PeImage.Load(Kernel32Path);
            Assert.Equal(64, image.Bitness);
            Assert.Equal(PeTools.TimeDateStamp(Kernel32Path), image.TimeDateStamp);
            Assert.Equal(PeTools.SizeOfImage(Kernel32Path), image.SizeOfImage);

            var expected = PeTools.Exports(Kernel32Path);
            Assert.Equal(expected.OrderBy(e => e), ExportSet(image).OrderBy(e => e));

            var getpid = expected.Single(e => e.Item1 == "GetCurrentProcessId");
            Assert.Null(getpid.Item4);
            Assert.True(image.TryResolveSymbol("GetCurrentProcessId", out ulong rva));
            Assert.Equal(getpid.Item3, rva);
            var entry = PeTools.FunctionTable(Kernel32Path).Single(t => t.Begin == rva);
            AssertBounds(image, (uint)rva, entry.Begin, entry.End, "GetCurrentProcessId");

            var forwarded = expected.Where(e => e.Item4 != null).ToList();
            Assert.NotEmpty(forwarded);
            Assert.Equal(forwarded.Count, image.Exports.Count(e => e.IsForwarder));
            foreach (var f in forwarded)
            {
                Assert.False(image.TryResolveSymbol(f.Item1!, out _), f.Item1);
                Assert.True(image.TryGetForwarder(f.Item1!, out string module, out string symbol));
                int dot = f.Item4!.LastIndexOf('.');
                Assert.Equal(f.Item4.Substring(0, dot) + ".dll", module);
                Assert.Equal(f.Item4.Substring(dot + 1), symbol);
            }

            var loaded = PeImage.FromLoadedImage(PeTools.LoadedLayout(File.ReadAllBytes(Kernel32Path)), "kernel32.dll");
            Assert.Equal(ExportSet(image), ExportSet(loaded));
            AssertBounds(loaded, (uint)rva + 1, entry.Begin, entry.End, "GetCurrentProcessId");
        }

        [Fact]
        public void Load_of_a_missing_file_is_not_a_format_error()
        {
            var path = Path.Combine(_samples.Dir, "missing.dll");
            var e = Assert.Throws<HotpatchException>(() => PeImage.Load(path));
            Assert.IsNotType<ModuleFormatException>(e);
            Assert.Equal(HotpatchErrorKind.ModuleNotLoaded, e.Kind);
            Assert.Equal(path + ": file not found", e.Message);
        }

        /// <summary>
        /// A small PE32+ with one section holding an export table of <paramref name="names"/> names (all of one function)
        /// that start <paramref name="step"/> bytes apart in a string of <paramref name="nameLength"/> letters.
        /// </summary>
        private static byte[] ExportNamesSharingOneString(int names, int nameLength, int step, int coffSymbols = 0)
        {
            const int raw = 0x200, rva = 0x1000;
            int namesAt = 0x30, ordinalsAt = namesAt + 4 * names, stringAt = ordinalsAt + 2 * names;
            int sectionSize = (stringAt + nameLength + 1 + 0x1ff) & ~0x1ff;
            int symbolsAt = raw + sectionSize, stringsAt = symbolsAt + 18 * coffSymbols;
            var b = new byte[coffSymbols == 0 ? raw + sectionSize : stringsAt + 4 + nameLength + 1];
            void Put(int at, ulong value, int size) { for (int i = 0; i < size; i++) b[at + i] = (byte)(value >> (8 * i)); }
            b[0] = (byte)'M'; b[1] = (byte)'Z'; Put(0x3c, 0x40, 4);
            b[0x40] = (byte)'P'; b[0x41] = (byte)'E';
            Put(0x44, PeImage.MachineAmd64, 2); Put(0x46, 1, 2); Put(0x54, 240, 2); Put(0x56, 0x2022, 2);
            const int opt = 0x58;
            Put(opt, 0x20b, 2); Put(opt + 24, 0x180000000, 8); Put(opt + 32, 0x1000, 4); Put(opt + 36, 0x200, 4);
            Put(opt + 56, (ulong)(rva + sectionSize), 4); Put(opt + 60, raw, 4); Put(opt + 68, 3, 2); Put(opt + 108, 16, 4);
            Put(opt + 112, rva, 4); Put(opt + 116, 40, 4);
            const int section = opt + 240;
            "edata"u8.ToArray().CopyTo(b, section);
            Put(section + 8, (ulong)sectionSize, 4); Put(section + 12, rva, 4); Put(section + 16, (ulong)sectionSize, 4); Put(section + 20, raw, 4);
            Put(section + 36, 0x40000040, 4);
            Put(raw + 16, 1, 4); Put(raw + 20, 1, 4); Put(raw + 24, (ulong)names, 4);
            Put(raw + 28, rva + 0x28, 4); Put(raw + 32, (ulong)(rva + namesAt), 4); Put(raw + 36, (ulong)(rva + ordinalsAt), 4);
            Put(raw + 0x28, rva + 0x28, 4);
            for (int i = 0; i < names; i++) Put(raw + namesAt + 4 * i, (ulong)(rva + stringAt + (long)i * step % nameLength), 4);
            for (int i = 0; i < nameLength; i++) b[raw + stringAt + i] = (byte)'a';
            if (coffSymbols > 0)
            {
                Put(0x4c, (ulong)symbolsAt, 4); Put(0x50, (ulong)coffSymbols, 4);
                for (int i = 0; i < coffSymbols; i++)
                {
                    int at = symbolsAt + 18 * i;
                    Put(at + 4, (ulong)(4 + (long)i * step % nameLength), 4); Put(at + 12, 1, 2); b[at + 16] = 2;
                }
                Put(stringsAt, (ulong)(4 + nameLength + 1), 4);
                for (int i = 0; i < nameLength; i++) b[stringsAt + 4 + i] = (byte)'a';
            }
            return b;
        }

        [Fact]
        public void Export_names_that_all_name_one_long_string_are_refused_not_copied_once_each()
        {
            // Sane: 200 short names into the same string are read.
            var fine = PeImage.Parse(ExportNamesSharingOneString(200, 64, 1), "shared-names.dll");
            Assert.Equal(64, fine.Exports.Select(e => e.Name).Distinct().Count());
            // 4000 names of (almost all of) one 16 KB string would be 64 MB of names from a 40 KB file.
            MalformedModules.Refused(PeImage.Parse, "PE", ExportNamesSharingOneString(4000, 16 << 10, 3), "bomb.dll", "twice the image's size");
            // The same through the COFF symbol table: 4000 symbols (72 KB) naming one 16 KB string.
            var coff = PeImage.Parse(ExportNamesSharingOneString(1, 64, 1, coffSymbols: 200), "coff-names.dll");
            Assert.True(coff.TryResolveSymbol(new string('a', 60), out _));
            MalformedModules.Refused(PeImage.Parse, "PE", ExportNamesSharingOneString(1, 16 << 10, 3, coffSymbols: 4000), "coff-bomb.dll", "twice the image's size");
        }

        [Fact]
        public void A_module_whose_loader_entry_claims_gigabytes_is_not_read_from_memory()
        {
            // Windows reads an unreadable module's image from the process, SizeOfImage long as the PEB's loader entry says.
            var module = new HotpatchTools.Engine.Platform.LoadedModule { Name = "forged.dll", Base = 0x7ff600000000, End = 0x7ff600000000 + 0xfff00000UL };
            var e = Assert.Throws<ModuleFormatException>(() => HotpatchTools.Engine.Platform.Windows.WindowsTargetProcess.LoadedImageSize(module, 4242));
            Assert.Equal("forged.dll in process 4242: not a valid PE file: the loader lists it with SizeOfImage 0xfff00000, not between 1 byte and 1024 MiB; its image is not read from memory", e.Message);
            module.End = module.Base + 0x2d000;
            Assert.Equal(0x2d000, HotpatchTools.Engine.Platform.Windows.WindowsTargetProcess.LoadedImageSize(module, 4242));
        }

        [Fact]
        public void Malformed_files_are_format_errors()
        {
            var good = File.ReadAllBytes(_samples.Dll64);
            var h = PeTools.Header(good);

            void Refused(byte[] bytes, string reason) => MalformedModules.Refused(PeImage.Parse, "PE", bytes, "bad.dll", reason);
            byte[] With(Action<byte[]> edit) => MalformedModules.With(good, edit);

            void Put(byte[] b, int at, uint value) => BitConverter.GetBytes(value).CopyTo(b, at);

            Refused(new byte[0], "too short");
            Refused(System.Text.Encoding.ASCII.GetBytes("MZ not really a PE file"), "");
            Refused(good.Take(0x100).ToArray(), "");
            Refused(With(b => b[h.CoffHeader - 4] = (byte)'X'), "");
            Refused(With(b => b[0] = (byte)'X'), "bad magic (expected MZ)");
            Refused(With(b => { b[h.CoffHeader] = 0x4c; b[h.CoffHeader + 1] = 0x01; }), "machine 0x14c");
            Refused(With(b => b[h.CoffHeader + 16] = 0xf8), "SizeOfOptionalHeader");
            Refused(good.Take(good.Length - 0x1000).ToArray(), "outside the file");
            Refused(With(b => Put(b, h.OptionalHeader + 56, 0x1000)), "SizeOfImage");

            uint exportDirectory = h.Directory(good, 0);
            int export = (int)h.FileOffset(exportDirectory);
            Refused(With(b => Put(b, h.DataDirectories, 0x7ff00000)), "export directory");
            Refused(With(b => Put(b, export + 20, 0x10000000)), "export address table");
            Refused(With(b => Put(b, export + 24, 0x1000000)), "export name table");
            uint ordinals = BitConverter.ToUInt32(good, export + 36);
            Refused(With(b => { b[h.FileOffset(ordinals)] = 0xff; b[h.FileOffset(ordinals) + 1] = 0xff; }), "ordinal index");
            var forwarder = PeImage.Load(_samples.Dll64).Exports.Single(e => e.Name == "Forwarded");
            Refused(With(b => b[h.FileOffset(forwarder.Rva) + "kernel32".Length] = (byte)'_'), "not MODULE.SYMBOL");

            int pdata = (int)h.FileOffset(h.Directory(good, 3));
            Refused(With(b => Put(b, pdata + 4, BitConverter.ToUInt32(good, pdata) - 1)), "exception directory entry 0");
            Refused(With(b => Put(b, pdata + 12, 0)), "out of order");

            Refused(With(b => Put(b, h.CoffHeader + 8, (uint)good.Length - 17)), "COFF symbol table");
            Refused(With(b => Put(b, h.CoffHeader + 12, h.SymbolCount + 1000)), "COFF");
        }

        [Fact]
        [Trait("Category", Fuzz.Category)]
        public async Task Random_mutations_give_an_image_or_a_format_error()
        {
            var dll64 = File.ReadAllBytes(_samples.Dll64);
            var inputs = new (byte[] Bytes, bool Loaded, int[] Hot)[]
            {
                (dll64, false, HotOffsets(dll64, loaded: false)),
                (File.ReadAllBytes(_samples.Exe32), false, HotOffsets(File.ReadAllBytes(_samples.Exe32), loaded: false)),
                (PeTools.LoadedLayout(dll64), true, HotOffsets(dll64, loaded: true)),
            };
            var rng = new Random(Fuzz.Seed(4243));
            int cases = Fuzz.Cases(2000);
            // A third of the edits anywhere, the rest where a wrong byte changes what the reader does.
            var (parsed, refused) = await Fuzz.ParseOrRefuse<ModuleFormatException>(cases,
                iteration =>
                {
                    var input = inputs[iteration % inputs.Length];
                    return Fuzz.Mutate(input.Bytes, rng, 4, (r, length) => r.Next(3) == 0 ? r.Next(length) : input.Hot[r.Next(input.Hot.Length)], wordSize: 4);
                },
                (iteration, bytes) =>
                {
                    var image = inputs[iteration % inputs.Length].Loaded ? PeImage.FromLoadedImage(bytes, "fuzz.dll") : PeImage.Parse(bytes, "fuzz.dll");
                    foreach (var e in image.Exports)
                    {
                        if (e.Name == null) continue;
                        image.TryResolveSymbol(e.Name, out _);
                        image.TryGetForwarder(e.Name, out _, out _);
                        image.TryGetFunctionBounds(e.Rva, out _, out _, out _);
                    }
                },
                (iteration, bytes) => Fuzz.SaveInput("pe", iteration, bytes, ".bin") + ", loaded layout: " + inputs[iteration % inputs.Length].Loaded);
            Assert.True(parsed > 100 && refused > 100, $"parsed {parsed}, refused {refused}");
        }

        /// <summary>Where a wrong byte changes what the reader does: headers, export tables, .pdata, COFF symbols.</summary>
        private static int[] HotOffsets(byte[] file, bool loaded)
        {
            var h = PeTools.Header(file);
            int At(uint rva) => loaded ? (int)rva : (int)h.FileOffset(rva);
            var hot = new List<int>();
            hot.AddRange(Enumerable.Range(0, (int)h.SizeOfHeaders));
            uint exportDirectory = h.Directory(file, 0);
            int export = (int)h.FileOffset(exportDirectory);
            hot.AddRange(Enumerable.Range(At(exportDirectory), 40));
            foreach (int field in new[] { 28, 32, 36 })
                hot.AddRange(Enumerable.Range(At(BitConverter.ToUInt32(file, export + field)), 32));
            if (h.Machine == PeImage.MachineAmd64)
                hot.AddRange(Enumerable.Range(At(h.Directory(file, 3)), 240));
            if (!loaded && h.SymbolCount > 0)
                hot.AddRange(Enumerable.Range((int)h.SymbolTable, Math.Min(18 * 400, file.Length - (int)h.SymbolTable)));
            return hot.ToArray();
        }
    }
}
