using System.Text.RegularExpressions;
using System.Threading.Tasks;
using HotpatchTools.Engine.Modules;

namespace HotpatchTools.Tests
{
    public class ElfImageTests : IClassFixture<ElfSamples>
    {
        private readonly ElfSamples _samples;

        public ElfImageTests(ElfSamples samples) => _samples = samples;

        /// <summary>The sample library as sstrip leaves it: the section header table dropped from the ELF header.</summary>
        private ElfImage WithoutSections()
        {
            var bytes = File.ReadAllBytes(_samples.SharedLibrary);
            Array.Clear(bytes, 40, 8);
            Array.Clear(bytes, 60, 4);
            return ElfImage.Parse(bytes, "no-sections.so");
        }

        private static HashSet<(string, ulong, ulong)> SymbolSet(ElfImage image) =>
            image.Symbols.Select(s => (s.Name, s.Rva, s.Size)).ToHashSet();

        [Fact]
        public void Shared_library_header_and_build_id()
        {
            var image = ElfImage.Load(_samples.SharedLibrary);
            Assert.Equal(ModuleFormat.Elf, image.Format);
            Assert.Equal(64, image.Bitness);
            Assert.Equal(3, image.ElfType);
            Assert.Null(image.TimeDateStamp);
            Assert.Null(image.SizeOfImage);
            var expected = ElfTools.ReadElfBuildId(_samples.SharedLibrary);
            Assert.Equal(40, expected.Length);
            Assert.Equal(expected, image.BuildId);
        }

        [Fact]
        public void Shared_library_symbols_match_nm()
        {
            var image = ElfImage.Load(_samples.SharedLibrary);
            var expected = ElfTools.Nm(_samples.SharedLibrary, dynamic: false).ToHashSet();
            Assert.Equal(expected.OrderBy(s => s), SymbolSet(image).OrderBy(s => s));

            foreach (var name in new[] { "add", "use", "triple", "counter", "call_local_twin" })
            {
                Assert.True(image.TryResolveSymbol(name, out ulong rva), name);
                Assert.Equal(ElfTools.NmValue(_samples.SharedLibrary, name), rva);
            }
            Assert.False(image.TryResolveSymbol("no_such_symbol", out _));
            Assert.False(image.TryResolveSymbol("", out _));

            var add = image.Symbols.Single(s => s.Name == "add");
            Assert.True(add.IsFunction);
            Assert.True(add.IsGlobal);
            Assert.False(image.Symbols.Single(s => s.Name == "counter").IsFunction);
            Assert.False(image.Symbols.Single(s => s.Name == "triple").IsGlobal);
        }

        [Fact]
        public void Global_symbol_wins_over_a_local_of_the_same_name()
        {
            var image = ElfImage.Load(_samples.SharedLibrary);
            var twins = ElfTools.Nm(_samples.SharedLibrary, dynamic: false).Where(s => s.Name == "shared_name").ToList();
            Assert.Equal(2, twins.Count);
            var global = ElfTools.NmValue(_samples.SharedLibrary, "shared_name", dynamic: true);
            Assert.True(image.TryResolveSymbol("shared_name", out ulong rva));
            Assert.Equal(global, rva);
        }

        [Fact]
        public void Function_bounds_come_from_symbol_sizes()
        {
            var image = ElfImage.Load(_samples.SharedLibrary);
            var add = ElfTools.Nm(_samples.SharedLibrary, dynamic: false).Single(s => s.Name == "add");
            Assert.True(add.Size > 1);

            foreach (var rva in new[] { add.Value, add.Value + 1, add.Value + add.Size - 1 })
            {
                Assert.True(image.TryGetFunctionBounds(rva, out ulong start, out ulong end, out string? name));
                Assert.Equal(add.Value, start);
                Assert.Equal(add.Value + add.Size, end);
                Assert.Equal("add", name);
            }
            Assert.False(image.TryGetFunctionBounds(add.Value + add.Size, out _, out _, out var after) && after == "add");

            var counter = ElfTools.NmValue(_samples.SharedLibrary, "counter");
            Assert.False(image.TryGetFunctionBounds(counter, out _, out _, out _));
            Assert.False(image.TryGetFunctionBounds(0, out _, out _, out _));
            Assert.False(image.TryGetFunctionBounds(ulong.MaxValue, out _, out _, out _));
        }

        [Fact]
        public void Pie_executable_uses_vaddr_as_rva()
        {
            var image = ElfImage.Load(_samples.PieExecutable);
            Assert.Equal(3, image.ElfType);
            Assert.Equal(ElfTools.ReadElfBuildId(_samples.PieExecutable), image.BuildId);
            Assert.Equal(ElfTools.Nm(_samples.PieExecutable, dynamic: false).ToHashSet().OrderBy(s => s), SymbolSet(image).OrderBy(s => s));
            Assert.True(image.TryResolveSymbol("main", out ulong main));
            Assert.Equal(ElfTools.NmValue(_samples.PieExecutable, "main"), main);
            Assert.True(image.TryGetFunctionBounds(main + 2, out ulong start, out _, out string? name));
            Assert.Equal(main, start);
            Assert.Equal("main", name);
        }

        [Fact]
        public void Non_pie_executable_rva_is_vaddr_minus_image_base()
        {
            Assert.Matches(@"LOAD\s+0x0+ 0x0+400000 ", NativeBuild.Run("readelf", "-lW", _samples.NonPieExecutable));
            var image = ElfImage.Load(_samples.NonPieExecutable);
            Assert.Equal(2, image.ElfType);
            Assert.Equal(64, image.Bitness);
            Assert.Equal(ElfTools.ReadElfBuildId(_samples.NonPieExecutable), image.BuildId);

            var expected = ElfTools.Nm(_samples.NonPieExecutable, dynamic: false).Select(s => (s.Name, s.Value - 0x400000, s.Size));
            Assert.Equal(expected.ToHashSet().OrderBy(s => s), SymbolSet(image).OrderBy(s => s));

            foreach (var name in new[] { "main", "helper" })
            {
                Assert.True(image.TryResolveSymbol(name, out ulong rva));
                Assert.Equal(ElfTools.NmValue(_samples.NonPieExecutable, name) - 0x400000, rva);
                Assert.True(image.TryGetFunctionBounds(rva, out ulong start, out _, out string? bounded));
                Assert.Equal(rva, start);
                Assert.Equal(name, bounded);
            }
        }

        [Fact]
        public void Stripped_library_still_has_dynamic_symbols_and_build_id()
        {
            Assert.DoesNotContain(".symtab", NativeBuild.Run("readelf", "-SW", _samples.Stripped));
            var image = ElfImage.Load(_samples.Stripped);
            Assert.Equal(ElfTools.ReadElfBuildId(_samples.SharedLibrary), image.BuildId);
            Assert.Equal(ElfTools.Nm(_samples.Stripped, dynamic: true).ToHashSet().OrderBy(s => s), SymbolSet(image).OrderBy(s => s));
            Assert.True(image.TryResolveSymbol("add", out ulong add));
            Assert.Equal(ElfTools.NmValue(_samples.SharedLibrary, "add"), add);
            Assert.False(image.TryResolveSymbol("triple", out _));
            Assert.True(image.TryGetFunctionBounds(add + 1, out _, out _, out string? name));
            Assert.Equal("add", name);
        }

        [Fact]
        public void Build_id_comes_from_program_headers_when_there_are_no_sections()
        {
            var image = WithoutSections();
            Assert.Equal(ElfTools.ReadElfBuildId(_samples.SharedLibrary), image.BuildId);
            Assert.Empty(image.Symbols);
            Assert.False(image.TryResolveSymbol("add", out _));
        }

        [Theory]
        [InlineData("/usr/lib/x86_64-linux-gnu/libz.so.1")]
        [InlineData(ElfTools.Libc)]
        [InlineData("/usr/bin/python3")]
        public void Fdes_of_distribution_binaries_are_those_readelf_shows(string path)
        {
            var image = ElfImage.Load(path);
            var want = InRvas(image, ElfTools.ReadElfFdes(path));
            Assert.True(want.Count > 50, path + " has " + want.Count + " FDEs");
            Assert.Equal(want, image.FdeRanges().ToList());
        }

        /// <summary>A non-PIE executable's RVAs count from its load address, readelf's addresses from 0.</summary>
        private static List<(ulong Start, ulong End)> InRvas(ElfImage image, List<(ulong Start, ulong End)> fdes)
        {
            if (image.ElfType != 2) return fdes;
            ulong loadBase = fdes.Min(r => r.Start) - image.FdeRanges().Min(r => r.Start);
            Assert.Equal(0UL, loadBase & 0xfff);
            return fdes.Select(r => (r.Start - loadBase, r.End - loadBase)).ToList();
        }

        [Fact]
        public void Fdes_of_our_libraries_are_those_readelf_shows()
        {
            foreach (var path in new[] { _samples.SharedLibrary, _samples.SharedLibrary32, _samples.PieExecutable, _samples.NonPieExecutable, _samples.Stripped })
            {
                var image = ElfImage.Load(path);
                var want = InRvas(image, ElfTools.ReadElfFdes(path));
                Assert.NotEmpty(want);
                Assert.Equal(want, image.FdeRanges().ToList());
            }
        }

        [Fact]
        public void A_static_function_of_a_stripped_library_is_bounded_by_its_fde()
        {
            // triple is static: stripped, no symbol names it, its FDE still bounds it.
            ulong triple = ElfTools.NmValue(_samples.SharedLibrary, "triple");
            ulong size = ElfTools.Nm(_samples.SharedLibrary, dynamic: false).Single(s => s.Name == "triple").Size;
            var image = ElfImage.Load(_samples.Stripped);
            Assert.True(image.TryGetFunctionBounds(triple + 1, out ulong start, out ulong end, out string? name));
            Assert.Equal(triple, start);
            Assert.Equal(triple + size, end);
            Assert.Null(name);
        }

        [Fact]
        public void Fdes_come_from_eh_frame_hdr_when_there_are_no_sections()
        {
            var image = WithoutSections();
            Assert.Equal(ElfImage.Load(_samples.SharedLibrary).FdeRanges().ToList(), image.FdeRanges().ToList());
            Assert.NotEmpty(image.FdeRanges());
        }

        [Fact]
        public void Soname_is_read_and_absent_where_the_linker_set_none()
        {
            Assert.Equal("libz.so.1", ElfImage.Load("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13").Soname);
            Assert.Equal("libc.so.6", ElfImage.Load(ElfTools.Libc).Soname);
            Assert.Null(ElfImage.Load(_samples.SharedLibrary).Soname);
        }

        [Fact]
        [Trait("Category", Fuzz.Category)]
        public async Task Random_mutations_of_eh_frame_give_ranges_or_a_format_error()
        {
            var original = File.ReadAllBytes(_samples.SharedLibrary);
            var m = Regex.Match(NativeBuild.Run("readelf", "-SW", _samples.SharedLibrary), @"\.eh_frame\s+PROGBITS\s+[0-9a-f]+ ([0-9a-f]+) ([0-9a-f]+)");
            int offset = Convert.ToInt32(m.Groups[1].Value, 16), size = Convert.ToInt32(m.Groups[2].Value, 16);
            Assert.True(size > 0);
            var rng = new Random(Fuzz.Seed(4343));
            int cases = Fuzz.Cases(2000);
            var (parsed, refused) = await Fuzz.ParseOrRefuse<ModuleFormatException>(cases, _ =>
                {
                    var bytes = (byte[])original.Clone();
                    for (int e = 1 + rng.Next(4); e > 0; e--)
                    {
                        int at = offset + rng.Next(size);
                        bytes[at] = rng.Next(3) switch { 0 => (byte)rng.Next(256), 1 => (byte)(bytes[at] ^ (1 << rng.Next(8))), _ => 0xff };
                    }
                    return bytes;
                },
                (iteration, bytes) =>
                {
                    var image = ElfImage.Parse(bytes, "fuzz.so");
                    foreach (var r in image.FdeRanges()) Assert.True(r.End > r.Start);
                    image.TryGetFunctionBounds((ulong)rng.Next(0x10000), out _, out _, out _);
                },
                (iteration, bytes) => Fuzz.SaveInput("ehframe", iteration, bytes, ".so"));
            Assert.True(parsed > 0 && refused > 0, $"parsed {parsed}, refused {refused}");
        }

        [Fact]
        public void Missing_build_id_is_null()
        {
            var image = ElfImage.Load(_samples.NoBuildId);
            Assert.Null(image.BuildId);
            Assert.True(image.TryResolveSymbol("add", out _));
        }

        /// <summary>Loads a shared object, checking its header against readelf: the bitness, ET_DYN and the build-id.</summary>
        private static ElfImage LoadSharedObject(string path, int bitness)
        {
            var image = ElfImage.Load(path);
            Assert.Equal(bitness, image.Bitness);
            Assert.Equal(3, image.ElfType);
            Assert.Equal(ElfTools.ReadElfBuildId(path), image.BuildId);
            return image;
        }

        [Fact]
        public void Elf32_shared_library()
        {
            var image = LoadSharedObject(_samples.SharedLibrary32, 32);
            Assert.Equal(ElfTools.Nm(_samples.SharedLibrary32, dynamic: false).ToHashSet().OrderBy(s => s), SymbolSet(image).OrderBy(s => s));
            Assert.True(image.TryResolveSymbol("add", out ulong add));
            Assert.Equal(ElfTools.NmValue(_samples.SharedLibrary32, "add"), add);
            Assert.True(image.TryGetFunctionBounds(add + 3, out ulong start, out _, out _));
            Assert.Equal(add, start);
        }

        [Fact]
        public void Parse_of_bytes_equals_load_of_the_file()
        {
            var loaded = ElfImage.Load(_samples.SharedLibrary);
            var parsed = ElfImage.Parse(File.ReadAllBytes(_samples.SharedLibrary), "libtest.so");
            Assert.Equal(loaded.BuildId, parsed.BuildId);
            Assert.Equal(SymbolSet(loaded), SymbolSet(parsed));
        }

        [Fact]
        public void System_libc()
        {
            var image = LoadSharedObject(ElfTools.Libc, 64);
            Assert.NotNull(image.BuildId);

            Assert.True(image.TryResolveSymbol("getpid", out ulong getpid));
            Assert.Equal(ElfTools.NmValue(ElfTools.Libc, "getpid", dynamic: true), getpid);
            Assert.True(image.TryGetFunctionBounds(getpid, out ulong start, out ulong end, out _));
            Assert.Equal(getpid, start);
            Assert.True(end > start);

            // TLS symbols have no address in the image; nm cannot tell them apart, readelf can.
            var tls = NativeBuild.Run("readelf", "-sW", "--dyn-syms", ElfTools.Libc).Split('\n')
                .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Where(f => f.Length >= 8 && f[3] == "TLS")
                .Select(f => f[7].Split('@')[0]).ToHashSet();
            Assert.NotEmpty(tls);
            var expected = ElfTools.Nm(ElfTools.Libc, dynamic: true).Where(s => !tls.Contains(s.Name)).ToHashSet();
            Assert.Equal(expected.OrderBy(s => s), SymbolSet(image).OrderBy(s => s));
        }

        [Fact]
        public void Versioned_name_resolves_to_its_default_version()
        {
            var image = ElfImage.Load(ElfTools.Libc);
            var versions = NativeBuild.Run("nm", "-D", "--defined-only", ElfTools.Libc).Split('\n')
                .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Where(f => f.Length == 3 && f[2].StartsWith("realpath@"))
                .ToDictionary(f => f[2], f => Convert.ToUInt64(f[0], 16));
            var defaultVersion = Assert.Single(versions, v => v.Key.Contains("@@"));
            Assert.Contains(versions, v => !v.Key.Contains("@@") && v.Value != defaultVersion.Value);
            Assert.True(image.TryResolveSymbol("realpath", out ulong rva));
            Assert.Equal(defaultVersion.Value, rva);
        }

        [Fact]
        public void Load_of_a_missing_file_is_not_a_format_error()
        {
            var path = Path.Combine(_samples.Dir, "missing.so");
            var e = Assert.Throws<HotpatchException>(() => ElfImage.Load(path));
            Assert.IsNotType<ModuleFormatException>(e);
            Assert.Equal(path + ": file not found", e.Message);
        }

        [Fact]
        public void Section_headers_that_list_one_symbol_table_thousands_of_times_are_refused_not_read_each_time()
        {
            // Sane: the table listed twice (as a .dynsym and .symtab can overlap) is read.
            Assert.Empty(ElfImage.Parse(SymbolsSharingOneName(4000, 1, -1, tableCopies: 1), "twice.so").Symbols);
            // 20,000 copies of a 96 KB table: 2 GB read and 80 million symbols walked, from a 1.4 MB file.
            var clock = System.Diagnostics.Stopwatch.StartNew();
            MalformedModules.Refused(ElfImage.Parse, "ELF", SymbolsSharingOneName(4000, 1, -1, tableCopies: 20000), "copies.so", "three times the file's size");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), "refusing took " + clock.Elapsed);
        }

        [Fact]
        public async Task A_folder_scanned_for_module_files_may_hold_a_FIFO()
        {
            var dir = Directory.CreateTempSubdirectory("hpt-scan-").FullName;
            var fifo = Path.Combine(dir, "a-fifo");
            try
            {
                File.Copy(_samples.SharedLibrary, Path.Combine(dir, "lib.so"));
                NativeBuild.Run("mkfifo", fifo);
                var scan = Task.Run(() => HotpatchTools.Engine.Authoring.OfflineCheck.ModuleFiles(dir).ToList());
                if (await Task.WhenAny(scan, Task.Delay(TimeSpan.FromSeconds(10))) != scan)
                {
                    using (new FileStream(fifo, FileMode.Open, FileAccess.Write)) { }
                    Assert.Fail("the scan blocked on a FIFO");
                }
                Assert.Equal(new[] { Path.Combine(dir, "lib.so") }, await scan);
            }
            finally { Directory.Delete(dir, recursive: true); }
        }

        /// <summary>File offset of the section header of <paramref name="name"/> in an ELF64 file.</summary>
        private static int SectionHeader(byte[] elf, string name)
        {
            int table = (int)BitConverter.ToUInt64(elf, 40), count = BitConverter.ToUInt16(elf, 60);
            int names = (int)BitConverter.ToUInt64(elf, table + 64 * BitConverter.ToUInt16(elf, 62) + 24);
            for (int i = 0; i < count; i++)
            {
                int at = names + (int)BitConverter.ToUInt32(elf, table + 64 * i);
                if (System.Text.Encoding.ASCII.GetString(elf, at, Array.IndexOf(elf, (byte)0, at) - at) == name) return table + 64 * i;
            }
            throw new InvalidOperationException("no section " + name);
        }

        [Fact]
        public void Notes_are_walked_as_binutils_walks_them()
        {
            // Without section headers the build-id comes from the PT_NOTE segments, the first of them libc's 8-aligned
            // .note.gnu.property, whose descriptor starts 16 bytes in.
            var libc = File.ReadAllBytes(ElfTools.Libc);
            Array.Clear(libc, 40, 8);
            Array.Clear(libc, 60, 4);
            Assert.Equal(ElfTools.ReadElfBuildId(ElfTools.Libc), ElfImage.Parse(libc, "libc-sstripped.so").BuildId);

            // A note section whose one note (not a build-id) ends unpadded at the end of the section: nothing follows it.
            var good = File.ReadAllBytes(_samples.SharedLibrary);
            int header = SectionHeader(good, ".note.gnu.build-id");
            int notes = (int)BitConverter.ToUInt64(good, header + 24);
            var odd = MalformedModules.With(good, b =>
            {
                BitConverter.GetBytes(17u).CopyTo(b, notes + 4);
                BitConverter.GetBytes(1u).CopyTo(b, notes + 8);
                BitConverter.GetBytes(16UL + 17).CopyTo(b, header + 32);
            });
            Assert.Null(ElfImage.Parse(odd, "odd-note.so").BuildId);
        }

        [Fact]
        public async Task A_FIFO_or_device_named_as_a_module_is_refused_without_blocking()
        {
            // A process (or the folder its .gnu_debuglink is looked up in) can name a FIFO: opening one to read blocks
            // until a writer comes, which would hang a sweep.
            var fifo = Path.Combine(_samples.Dir, "fifo-" + Guid.NewGuid().ToString("N") + ".so");
            NativeBuild.Run("mkfifo", fifo);
            try
            {
                var load = Task.Run(() => Assert.Throws<HotpatchException>(() => ElfImage.Load(fifo)));
                if (await Task.WhenAny(load, Task.Delay(TimeSpan.FromSeconds(10))) != load)
                {
                    using (new FileStream(fifo, FileMode.Open, FileAccess.Write)) { }
                    Assert.Fail("opening a FIFO as a module blocked");
                }
                var e = await load;
                Assert.Equal(fifo + ": cannot open the file: it is not a regular file but a FIFO", e.Message);
            }
            finally { File.Delete(fifo); }
            Assert.Equal("/dev/zero: cannot open the file: it is not a regular file but a device",
                Assert.Throws<HotpatchException>(() => PeImage.Load("/dev/zero")).Message);
            Assert.Equal(_samples.Dir + ": cannot open the file: it is not a regular file but a directory",
                Assert.Throws<HotpatchException>(() => ElfImage.Load(_samples.Dir)).Message);
        }

        [Fact]
        public void Malformed_files_are_format_errors()
        {
            var good = File.ReadAllBytes(_samples.SharedLibrary);

            void Refused(byte[] bytes, string reason) => MalformedModules.Refused(ElfImage.Parse, "ELF", bytes, "bad.so", reason);
            byte[] With(Action<byte[]> edit) => MalformedModules.With(good, edit);

            Refused(new byte[0], "too short");
            Refused(System.Text.Encoding.ASCII.GetBytes("#!/bin/sh\necho not an ELF file\n"), "bad magic");
            Refused(good.Take(40).ToArray(), "ELF header");
            Refused(good.Take(good.Length - 100).ToArray(), "outside the file");
            Refused(With(b => b[4] = 7), "class");
            Refused(With(b => b[5] = 2), "little-endian");
            Refused(With(b => b[4] = 1), "i386");
            Refused(With(b => b[16] = 1), "e_type");
            Refused(With(b => { b[60] = 0xfe; b[61] = 0xff; }), "section header table");
            Refused(With(b => { b[56] = 0xfe; b[57] = 0xff; }), "program header table");
            Refused(With(b => { for (int i = 40; i < 48; i++) b[i] = 0xff; }), "outside the file");
            Refused(With(b => { b[58] = 8; }), "e_shentsize");
        }

        /// <summary>
        /// A small ELF64 whose symbols all name one long string: <paramref name="symbols"/> functions (at distinct
        /// addresses, so none is a duplicate) whose names start <paramref name="step"/> bytes apart in a string of
        /// <paramref name="nameLength"/> letters (all nameless for a negative step), and <paramref name="tableCopies"/>
        /// more section headers that list the same symbol table again.
        /// </summary>
        private static byte[] SymbolsSharingOneName(int symbols, int nameLength, int step, int tableCopies = 0)
        {
            var strtab = new byte[nameLength + 2];
            for (int i = 1; i <= nameLength; i++) strtab[i] = (byte)'a';
            var shstrtab = System.Text.Encoding.ASCII.GetBytes("\0.symtab\0.strtab\0.shstrtab\0");
            int strtabAt = 64 + 56, symtabAt = strtabAt + strtab.Length, shstrtabAt = symtabAt + 24 * symbols;
            int sectionsAt = (shstrtabAt + shstrtab.Length + 7) & ~7, length = sectionsAt + (4 + tableCopies) * 64;
            var b = new byte[length];
            void Put(int at, ulong value, int size) { for (int i = 0; i < size; i++) b[at + i] = (byte)(value >> (8 * i)); }
            new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F', 2, 1, 1 }.CopyTo(b, 0);
            Put(16, 3, 2); Put(18, 62, 2); Put(20, 1, 4); Put(32, 64, 8); Put(40, (ulong)sectionsAt, 8);
            Put(52, 64, 2); Put(54, 56, 2); Put(56, 1, 2); Put(58, 64, 2); Put(60, (ulong)(4 + tableCopies), 2); Put(62, 3, 2);
            Put(64, 1, 4); Put(68, 5, 4); Put(64 + 32, (ulong)length, 8); Put(64 + 40, (ulong)length, 8); Put(64 + 48, 0x1000, 8);
            strtab.CopyTo(b, strtabAt);
            for (int i = 1; i < symbols; i++)
            {
                int at = symtabAt + 24 * i;
                Put(at, step < 0 ? 0 : (ulong)(1 + (long)i * step % nameLength), 4); b[at + 4] = 0x12; Put(at + 6, 1, 2); Put(at + 8, (ulong)(0x1000 + i), 8); Put(at + 16, 1, 8);
            }
            shstrtab.CopyTo(b, shstrtabAt);
            void Section(int index, uint name, uint type, int offset, int size, uint link, ulong entrySize)
            {
                int at = sectionsAt + 64 * index;
                Put(at, name, 4); Put(at + 4, type, 4); Put(at + 24, (ulong)offset, 8); Put(at + 32, (ulong)size, 8); Put(at + 40, link, 4); Put(at + 56, entrySize, 8);
            }
            Section(1, 1, 2, symtabAt, 24 * symbols, 2, 24);
            Section(2, 9, 3, strtabAt, strtab.Length, 0, 0);
            Section(3, 17, 3, shstrtabAt, shstrtab.Length, 0, 0);
            for (int i = 0; i < tableCopies; i++) Section(4 + i, 1, 2, symtabAt, 24 * symbols, 2, 24);
            return b;
        }

        [Fact]
        public void Symbols_that_all_name_one_long_string_are_refused_not_copied_once_each()
        {
            // Sane: 200 short names into the same string, as suffix sharing does, are read.
            var fine = ElfImage.Parse(SymbolsSharingOneName(200, 64, 1), "shared-names.so");
            Assert.Equal(64, fine.Symbols.Select(s => s.Name).Distinct().Count());
            // 4000 symbols naming (almost all of) one 16 KB string would be 64 MB of names from a 112 KB file.
            MalformedModules.Refused(ElfImage.Parse, "ELF", SymbolsSharingOneName(4000, 16 << 10, 3), "bomb.so", "twice the file's size");
        }

        [Fact]
        [Trait("Category", Fuzz.Category)]
        public async Task Random_mutations_give_an_image_or_a_format_error()
        {
            var original = File.ReadAllBytes(_samples.SharedLibrary);
            var rng = new Random(Fuzz.Seed(4242));
            // Half the edits in the ELF header and program headers, where a wrong byte changes what the reader does.
            var (parsed, refused) = await Fuzz.ParseOrRefuse<ModuleFormatException>(Fuzz.Cases(2000),
                _ => Fuzz.Mutate(original, rng, 6, (r, length) => r.Next(Math.Min(length, r.Next(2) == 0 ? 64 + 56 * 12 : length)), wordSize: 8),
                (_, bytes) => ElfImage.Parse(bytes, "fuzz.so"),
                (iteration, bytes) => Fuzz.SaveInput("elf", iteration, bytes, ".so"));
            Assert.True(parsed > 0 && refused > 0, $"parsed {parsed}, refused {refused}");
        }
    }
}
