using System.Globalization;
using System.Text;
using Decoder = Iced.Intel.Decoder;
using System.Text.RegularExpressions;
using HotpatchTools.Engine.Format;
using HotpatchTools.Engine.Platform;
using HotpatchTools.Engine.Platform.Offline;
using Iced.Intel;

namespace HotpatchTools.Tests
{
    public sealed class X86OfflineTests : IClassFixture<X86Images>
    {
        private const int Pid = ImageProcess.ProcessId;
        private readonly X86Images _images;

        public X86OfflineTests(X86Images images) => _images = images;

        private static readonly string[] Kinds = { X86Images.Pe, X86Images.ElfExec, X86Images.ElfShared };

        public static TheoryData<string> Images => new TheoryData<string>(Kinds);

        /// <summary>Where the bytes of an absolute operand are right as they stand: no relocation is applied offline.</summary>
        public static TheoryData<string> Unrelocated => new TheoryData<string> { X86Images.Pe, X86Images.ElfExec };

        private sealed class Offline
        {
            public Offline(X86Images images, string kind, EngineOptions? options = null)
            {
                Kind = kind;
                Images = images;
                Platform = new OfflinePlatform(images.PathOf(kind));
                Engine = new HotpatchEngine(Platform, options);
                Pristine = Snapshot();
            }

            public string Kind { get; }
            public X86Images Images { get; }
            public OfflinePlatform Platform { get; }
            public HotpatchEngine Engine { get; }
            public ImageProcess Process => Platform.Process;

            /// <summary>The image as the test found it: what an uninstall must leave.</summary>
            public List<(ulong Start, ulong End, bool Cave, string Bytes)> Pristine { get; }

            /// <summary>The address of a symbol, or of a site written as a patch writes it: symbol+0xN.</summary>
            public ulong Va(string site)
            {
                var parts = site.Split("+0x");
                return Images.Va(Kind, parts[0]) + (parts.Length == 2 ? ulong.Parse(parts[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture) : 0);
            }

            public byte[] Read(ulong address, int length)
            {
                var b = new byte[length];
                Process.Memory.Read(address, b);
                return b;
            }

            public PatchletSpec At(string symbol, int expectLength, string code = "", string mode = "insert") =>
                new PatchletSpec(symbol, Read(Va(symbol), expectLength), code, mode);

            /// <summary>A patch file for this image, as a patch author writes one for a 32-bit module.</summary>
            public Micropatch Patch(string id, params PatchletSpec[] patchlets)
            {
                var sb = new StringBuilder();
                sb.Append("format: 1\nid: ").Append(id).Append("\ntitle: x86 offline ").Append(id).Append('\n');
                sb.Append("target:\n  os: ").Append(Kind == X86Images.Pe ? "windows" : "linux").Append("\n  arch: x86\n  module: ").Append(Process.Name).Append('\n');
                sb.Append("patchlets:\n");
                foreach (var p in patchlets)
                {
                    sb.Append("  - at: ").Append(p.At).Append("\n    expect: ").Append(Hex.Spaced(p.Expect)).Append("\n    mode: ").Append(p.Mode).Append('\n');
                    if (p.Code.Length > 0)
                        sb.Append("    code: |\n").Append(string.Concat(p.Code.Split('\n').Select(l => "      " + l + "\n")));
                }
                return PatchFiles.Parse(sb.ToString(), id + ".micropatch.yaml");
            }

            public string ForeignSymbol => Kind == X86Images.Pe ? "kernel32.dll!GetTickCount" : "libc.so.6!getpid";

            /// <summary>Every mapped byte, region by region: equal snapshots mean nothing was written, allocated or left behind.</summary>
            public List<(ulong Start, ulong End, bool Cave, string Bytes)> Snapshot() =>
                Process.Memory.GetRegions().Select(r => (r.Start, r.End, r.IsAnonymousPrivate, Convert.ToHexString(Read(r.Start, (int)(r.End - r.Start))))).ToList();

            /// <summary>
            /// Checks the site holds `jmp rel32` to the cave plus int3 fill, and decodes the cave's code as 32-bit x86
            /// up to its jump back to site+span.
            /// </summary>
            public List<Instruction> Cave(InstallResult result, ulong site, int span)
            {
                var written = Read(site, span);
                Assert.Equal(0xE9, written[0]);
                Assert.All(written.Skip(5), b => Assert.Equal(0xCC, b));
                ulong code = (uint)(site + 5 + (ulong)(long)BitConverter.ToInt32(written, 1));
                Assert.InRange(code, result.Patch.CaveAddress, result.Patch.CaveAddress + (ulong)result.Patch.CaveSize - 1);
                Assert.Contains(Process.Memory.GetRegions(), r => r.IsAnonymousPrivate && r.Executable && code >= r.Start && code < r.End);

                var bytes = new byte[512];
                int n = Process.Memory.TryRead(code, bytes);
                var decoder = Decoder.Create(32, new ByteArrayCodeReader(bytes, 0, n), code);
                var listing = new List<Instruction>();
                while (true)
                {
                    decoder.Decode(out var ins);
                    Assert.False(ins.IsInvalid, "undecodable cave byte at 0x" + ins.IP.ToString("x") + " after " + string.Join("; ", listing.Select(Format)));
                    listing.Add(ins);
                    if (ins.Mnemonic == Mnemonic.Jmp && ins.Op0Kind == OpKind.NearBranch32 && ins.NearBranchTarget == site + (ulong)span) return listing;
                    Assert.True(listing.Count < 64, "no jump back to 0x" + (site + (ulong)span).ToString("x") + " in the cave");
                }
            }

            /// <summary>Installs one insert patchlet whose expect is the bytes at the symbol, and returns its cave's code.</summary>
            public (InstallResult Result, List<Instruction> Cave) InstallAt(string id, string symbol, int span, string code = "")
            {
                var result = Engine.Install(Patch(id, At(symbol, span, code)), Pid);
                return (result, Cave(result, Va(symbol), span));
            }

            public void UninstallAndCheck(string id)
            {
                var removed = Engine.Uninstall(Pid, id);
                Assert.True(removed.CaveFreed, removed.Message);
                Assert.Equal(Pristine, Snapshot());
            }

            public HotpatchException Refused(HotpatchErrorKind kind, string reason, params PatchletSpec[] patchlets)
            {
                var before = Snapshot();
                var e = Assert.ThrowsAny<HotpatchException>(() => Engine.Install(Patch("X86-REFUSE", patchlets), Pid));
                Assert.True(kind == e.Kind, "expected " + kind + ", got " + e.Kind + ": " + e.Message);
                Assert.Contains(reason, e.Message);
                Assert.Equal(before, Snapshot());
                Assert.Empty(Engine.GetInstalled(Pid));
                return e;
            }
        }

        private static string Format(Instruction ins) => InstructionText.Of(ins);

        private static string H(ulong address) => "0x" + address.ToString("x");

        private static void AssertListing(IEnumerable<Instruction> listing, params string[] expected) =>
            Assert.Equal(expected, listing.Select(Format).ToArray());

        // ---- the offline image itself ----

        [Fact]
        public void Pe32_image_is_mapped_as_the_windows_loader_maps_it()
        {
            string path = _images.PathOf(X86Images.Pe);
            var platform = new OfflinePlatform(path);
            var p = platform.Process;
            var module = Assert.Single(p.Modules.GetModules());
            ulong imageBase = PeTools.ImageBase(path);
            uint sizeOfImage = PeTools.SizeOfImage(path);

            Assert.Equal((TargetOs.Windows, 32, "sites32.dll"), (platform.Os, p.Bitness, p.Name));
            Assert.Equal((imageBase, imageBase + sizeOfImage, "sites32.dll", path), (module.Base, module.End, module.Name, module.ReadablePath));
            var listed = Assert.Single(platform.ListProcesses());
            Assert.Equal((Pid, "sites32.dll"), (listed.Id, listed.Name));
            Assert.Same(p, platform.Open(Pid));
            Assert.Equal(HotpatchErrorKind.ProcessNotFound, Assert.Throws<HotpatchException>(() => platform.Open(2)).Kind);

            var image = new byte[sizeOfImage];
            p.Memory.Read(imageBase, image);
            Assert.Equal(PeTools.LoadedLayout(File.ReadAllBytes(path)), image);
            Assert.Equal(0, p.Memory.TryRead(imageBase + sizeOfImage, new byte[1]));
            Assert.Equal(0, p.Memory.TryRead(imageBase - 1, new byte[1]));

            var regions = p.Memory.GetRegions();
            Assert.Equal(imageBase, regions[0].Start);
            Assert.Equal(imageBase + sizeOfImage, regions[^1].End);
            Assert.All(regions.Zip(regions.Skip(1)), pair => Assert.Equal(pair.First.End, pair.Second.Start));
            Assert.All(regions, r => Assert.False(r.IsAnonymousPrivate));
            var text = regions.Single(r => r.Start <= _images.Va(X86Images.Pe, "callee") && _images.Va(X86Images.Pe, "callee") < r.End);
            var data = regions.Single(r => r.Start <= _images.Va(X86Images.Pe, "g_value") && _images.Va(X86Images.Pe, "g_value") < r.End);
            Assert.Equal((true, false, true), (text.Readable, text.Writable, text.Executable));
            Assert.Equal((true, true, false), (data.Readable, data.Writable, data.Executable));

            using var sha = System.Security.Cryptography.SHA256.Create();
            Assert.Equal(Convert.ToHexString(sha.ComputeHash(File.ReadAllBytes(path))).ToLowerInvariant(), p.Modules.ComputeSha256(module));
            Assert.Equal(32, p.Modules.OpenImage(module).Bitness);
        }

        [Theory]
        [InlineData(X86Images.ElfExec)]
        [InlineData(X86Images.ElfShared)]
        public void Elf32_segments_are_mapped_as_mmap_maps_them(string kind)
        {
            string path = _images.PathOf(kind);
            var platform = new OfflinePlatform(path);
            var p = platform.Process;
            Assert.Equal((TargetOs.Linux, 32), (platform.Os, p.Bitness));

            var file = File.ReadAllBytes(path);
            var loads = Regex.Matches(NativeBuild.Run("readelf", "-lW", path), @"^\s+LOAD\s+0x([0-9a-f]+) 0x([0-9a-f]+) 0x[0-9a-f]+ 0x([0-9a-f]+) 0x([0-9a-f]+) (.{3})", RegexOptions.Multiline)
                .Select(m => (Offset: Hex64(m.Groups[1].Value), Vaddr: Hex64(m.Groups[2].Value), FileSize: Hex64(m.Groups[3].Value), MemSize: Hex64(m.Groups[4].Value), Flags: m.Groups[5].Value))
                .ToList();
            Assert.NotEmpty(loads);
            ulong bias = kind == X86Images.ElfShared ? ImageProcess.ElfBase32 : 0;
            Assert.Equal(loads.Min(l => l.Vaddr) & ~0xfffUL, p.Module.Base - bias);
            foreach (var l in loads)
            {
                var mem = new byte[l.MemSize];
                p.Memory.Read(bias + l.Vaddr, mem);
                Assert.Equal(file.Skip((int)l.Offset).Take((int)l.FileSize), mem.Take((int)l.FileSize));
                Assert.All(mem.Skip((int)l.FileSize), b => Assert.Equal(0, b));
                if (l.MemSize == 0) continue;
                var r = p.Memory.GetRegions().Single(r => r.Start <= bias + l.Vaddr && bias + l.Vaddr < r.End);
                Assert.Equal((l.Flags[0] == 'R', l.Flags[1] == 'W', l.Flags[2] == 'E'), (r.Readable, r.Writable, r.Executable));
            }
            var callee = new byte[8];
            p.Memory.Read(_images.Va(kind, "callee"), callee);
            Assert.Equal(new byte[] { 0x8b, 0x44, 0x24, 0x04, 0x83, 0xc0, 0x07, 0xc3 }, callee);
        }

        [Fact]
        public void An_elf_with_its_program_header_count_in_section_0_is_mapped_from_that_count()
        {
            // e_phnum 0xffff (PN_XNUM) says the count is in section 0's sh_info, as the gABI allows for 65535 or more.
            var bytes = File.ReadAllBytes(_images.PathOf(X86Images.ElfShared));
            int sectionTable = (int)BitConverter.ToUInt32(bytes, 32);
            BitConverter.GetBytes((uint)BitConverter.ToUInt16(bytes, 44)).CopyTo(bytes, sectionTable + 28);
            BitConverter.GetBytes((ushort)0xffff).CopyTo(bytes, 44);
            var dir = Directory.CreateTempSubdirectory("hpt-xnum-").FullName;
            try
            {
                var path = Path.Combine(dir, Path.GetFileName(_images.PathOf(X86Images.ElfShared)));
                File.WriteAllBytes(path, bytes);
                var extended = new OfflinePlatform(path).Process;
                var plain = new OfflinePlatform(_images.PathOf(X86Images.ElfShared)).Process;
                Assert.Equal((plain.Module.Base, plain.Module.End), (extended.Module.Base, extended.Module.End));
                var callee = new byte[8];
                extended.Memory.Read(_images.Va(X86Images.ElfShared, "callee"), callee);
                Assert.Equal(new byte[] { 0x8b, 0x44, 0x24, 0x04, 0x83, 0xc0, 0x07, 0xc3 }, callee);
            }
            finally { Directory.Delete(dir, recursive: true); }
        }

        private static ulong Hex64(string s) => ulong.Parse(s, NumberStyles.HexNumber, CultureInfo.InvariantCulture);

        // ---- installs: the cave's code, decoded as 32-bit x86 ----

        [Theory]
        [MemberData(nameof(Images))]
        public void A_call_rel32_first_instruction_is_relocated_to_the_same_callee(string kind)
        {
            var o = new Offline(_images, kind);
            ulong site = o.Va("call_first");
            var (result, cave) = o.InstallAt("X86-CALL", "call_first", 5);

            AssertListing(cave, "call " + H(o.Va("callee")), "jmp " + H(site + 5));
            Assert.Equal(Code.Call_rel32_32, cave[0].Code);
            Assert.Equal(PatchState.Installed, result.Patch.State);
            o.UninstallAndCheck("X86-CALL");
        }

        [Theory]
        [MemberData(nameof(Images))]
        public void A_short_jcc_in_the_span_becomes_a_near_jcc_to_the_same_target(string kind)
        {
            var o = new Offline(_images, kind);
            ulong site = o.Va("short_jcc");
            var (_, cave) = o.InstallAt("X86-JCC", "short_jcc", 7);

            AssertListing(cave, "test eax, eax", "je " + H(site + 8), "lea eax, [eax+1]", "jmp " + H(site + 7));
            Assert.Equal(Code.Je_rel32_32, cave[1].Code);
            o.UninstallAndCheck("X86-JCC");
        }

        [Theory]
        [MemberData(nameof(Unrelocated))]
        public void An_absolute_memory_operand_is_copied_byte_for_byte(string kind)
        {
            var o = new Offline(_images, kind);
            ulong site = o.Va("abs_mem");
            var original = o.Read(site, 5);
            var (_, cave) = o.InstallAt("X86-ABS", "abs_mem", 5);

            AssertListing(cave, "mov eax, [" + H(o.Va("g_value")) + "]", "jmp " + H(site + 5));
            Assert.Equal(original, o.Read(cave[0].IP, cave[0].Length));
            o.UninstallAndCheck("X86-ABS");
        }

        [Theory]
        [MemberData(nameof(Images))]
        public void Patch_code_runs_first_and_jbe_resume_reaches_the_relocated_span(string kind)
        {
            var o = new Offline(_images, kind);
            ulong site = o.Va("guarded");
            var (_, cave) = o.InstallAt("X86-GUARD", "guarded", 7, "cmp dword ptr [esp+4], 100\njbe resume\nmov eax, -1\nret");

            AssertListing(cave,
                "cmp dword ptr [esp+4], 0x64", "jbe " + H(cave[4].IP), "mov eax, 0xffffffff", "ret",
                "mov eax, [esp+4]", "lea eax, [eax+eax*2]", "jmp " + H(site + 7));
            o.UninstallAndCheck("X86-GUARD");
        }

        [Theory]
        [MemberData(nameof(Images))]
        public void Patch_code_calls_and_reads_symbols_of_the_module_at_their_absolute_addresses(string kind)
        {
            var o = new Offline(_images, kind);
            ulong site = o.Va("guarded");
            var (_, cave) = o.InstallAt("X86-SYM", "guarded", 7, "push dword ptr [esp+4]\ncall callee\nadd esp, 4\nadd eax, dword ptr [g_value]\nret");

            AssertListing(cave,
                "push dword ptr [esp+4]", "call " + H(o.Va("callee")), "add esp, 4", "add eax, [" + H(o.Va("g_value")) + "]", "ret",
                "mov eax, [esp+4]", "lea eax, [eax+eax*2]", "jmp " + H(site + 7));
            Assert.Equal(Register.None, cave[3].MemoryBase);
            o.UninstallAndCheck("X86-SYM");
        }

        [Theory]
        [MemberData(nameof(Images))]
        public void Replace_assembles_at_the_site_and_fills_with_nops(string kind)
        {
            var o = new Offline(_images, kind);
            ulong site = o.Va("guarded");
            var result = o.Engine.Install(o.Patch("X86-REPL", o.At("guarded", 7, "mov eax, [esp+4]\nadd eax, eax", "replace")), Pid);

            Assert.Equal(new byte[] { 0x8b, 0x44, 0x24, 0x04, 0x01, 0xc0, 0x90 }, o.Read(site, 7));
            Assert.Equal(PatchState.Installed, Assert.Single(o.Engine.GetInstalled(Pid)).State);
            Assert.Equal("Replace", Assert.Single(result.Patch.Sites).Mode);
            o.UninstallAndCheck("X86-REPL");
        }

        [Theory]
        [MemberData(nameof(Images))]
        public void Several_patchlets_share_one_cave_and_are_removed_together(string kind)
        {
            var o = new Offline(_images, kind);
            var result = o.Engine.Install(o.Patch("X86-MULTI", o.At("call_first", 5), o.At("short_jcc", 7), o.At("guarded", 7, "xor eax, eax\nret")), Pid);

            AssertListing(o.Cave(result, o.Va("call_first"), 5), "call " + H(o.Va("callee")), "jmp " + H(o.Va("call_first") + 5));
            AssertListing(o.Cave(result, o.Va("short_jcc"), 7), "test eax, eax", "je " + H(o.Va("short_jcc") + 8), "lea eax, [eax+1]", "jmp " + H(o.Va("short_jcc") + 7));
            AssertListing(o.Cave(result, o.Va("guarded"), 7), "xor eax, eax", "ret", "mov eax, [esp+4]", "lea eax, [eax+eax*2]", "jmp " + H(o.Va("guarded") + 7));
            Assert.Single(o.Process.Memory.GetRegions(), r => r.IsAnonymousPrivate);
            o.UninstallAndCheck("X86-MULTI");
        }

        // ---- refusals: the error kind, and not one byte changed ----

        [Theory]
        [MemberData(nameof(Images))]
        public void Refuses_expect_that_differs(string kind)
        {
            var o = new Offline(_images, kind);
            var spec = o.At("guarded", 7);
            var wrong = (byte[])spec.Expect.Clone();
            wrong[6] ^= 0xff;
            o.Refused(HotpatchErrorKind.ExpectMismatch, "not the expected", spec with { Expect = wrong });
        }

        /// <summary>
        /// Sites refused on every image although expect is the image's bytes, by case: the patchlet (at, expect length,
        /// code); the error kind; and what the message must say, where {symbol+N} stands for that address.
        /// </summary>
        private static readonly Dictionary<string, (string At, int ExpectLength, string Code, HotpatchErrorKind Kind, string Reason)> UnsafeSites = new()
        {
            ["expect shorter than the span"] = ("guarded", 4, "", HotpatchErrorKind.UnsafeSite, "covering 7 bytes; extend expect"),
            ["a branch of the function into the span"] = ("branch_into", 6, "", HotpatchErrorKind.UnsafeSite, "branches into the overwritten bytes at {branch_into+4}"),
            ["a branch of the patch code into the span"] = ("guarded", 7, "jmp guarded+0x4", HotpatchErrorKind.UnsafeSite, "its code branches to {guarded+4}"),
            ["a call that returns into the span"] = ("call_inside+0x6", 5, "", HotpatchErrorKind.UnsafeSite, "returns to {call_inside+8}"),
            ["a loop that leaves the span"] = ("loop_first", 5, "", HotpatchErrorKind.UnsafeSite, "has no near form"),
            ["a span past the end of the function"] = ("tiny", 8, "", HotpatchErrorKind.UnsafeSite, "run past the end of tiny"),
        };

        public static TheoryData<string, string> UnsafeSitesOnEveryImage
        {
            get
            {
                var data = new TheoryData<string, string>();
                foreach (var kind in Kinds)
                    foreach (var @case in UnsafeSites.Keys)
                        data.Add(kind, @case);
                return data;
            }
        }

        [Theory]
        [MemberData(nameof(UnsafeSitesOnEveryImage))]
        public void Refuses_an_unsafe_site(string kind, string @case)
        {
            var (at, expectLength, code, error, reason) = UnsafeSites[@case];
            var o = new Offline(_images, kind);
            var message = Regex.Replace(reason, @"\{(\w+)\+(\d+)\}", m => H(o.Va(m.Groups[1].Value) + ulong.Parse(m.Groups[2].Value)));
            o.Refused(error, message, o.At(at, expectLength, code));
        }

        [Theory]
        [MemberData(nameof(Images))]
        public void Refuses_code_naming_a_module_that_is_not_loaded(string kind)
        {
            var o = new Offline(_images, kind);
            o.Refused(HotpatchErrorKind.AssemblyError, o.ForeignSymbol, o.At("guarded", 7, "call " + o.ForeignSymbol));
        }

        [Theory]
        [MemberData(nameof(Images))]
        public void Refuses_a_patch_for_the_other_architecture(string kind)
        {
            var o = new Offline(_images, kind);
            // PatchFiles writes x64 patches for this machine's OS; only the OS is made the image's.
            var x64 = PatchFiles.Parse(PatchFiles.Yaml("X86-ARCH", o.Process.Name, new[] { o.At("guarded", 7) })
                .Replace("os: " + TestPlatform.Os, "os: " + o.Platform.Os.FileName()));
            var e = Assert.Throws<HotpatchException>(() => o.Engine.Install(x64, Pid));
            Assert.Equal(HotpatchErrorKind.IdentityMismatch, e.Kind);
            Assert.Contains("is 32-bit", e.Message);
            Assert.Equal(o.Pristine, o.Snapshot());
        }

        // ---- threads the test places in the imagined process ----

        [Theory]
        [MemberData(nameof(Images))]
        public void A_thread_inside_the_span_blocks_the_install_and_nothing_is_written(string kind)
        {
            var o = new Offline(_images, kind, new EngineOptions { ThreadWait = TimeSpan.FromMilliseconds(50) });
            ulong inside = o.Va("guarded") + 4;
            o.Process.SimulatedThreads.Add(new ThreadSnapshot { Id = 7, Ip = inside, ResumeIp = inside });
            var e = o.Refused(HotpatchErrorKind.ThreadInSpan, "thread 7 stayed at " + H(inside), o.At("guarded", 7));
            Assert.Contains("nothing was written", e.Message);
        }

        /// <summary>
        /// A thread inside callee, called from the relocated call in the cave: its stack holds a 4-byte return
        /// address into the cave, so uninstall must keep the cave (retired) until a later uninstall finds it unused.
        /// </summary>
        [Theory]
        [MemberData(nameof(Images))]
        public void A_4_byte_return_address_on_a_32_bit_stack_keeps_the_cave(string kind)
        {
            var o = new Offline(_images, kind);
            var original = o.Read(o.Va("call_first"), 5);
            var call = o.InstallAt("X86-STACK", "call_first", 5).Cave[0];

            // Neighbours that are not zero: an 8-byte read at either 8-byte slot around it sees no cave address.
            const ulong stack = 0x2000_0000;
            Assert.True(o.Process.Memory.TryAllocateAt(stack, 4096));
            ulong esp = stack + 4096 - 16;
            var frame = new byte[16];
            BitConverter.GetBytes(0x1111_1111u).CopyTo(frame, 0);
            BitConverter.GetBytes((uint)call.NextIP).CopyTo(frame, 4);
            BitConverter.GetBytes(0x2222_2222u).CopyTo(frame, 8);
            BitConverter.GetBytes(0x3333_3333u).CopyTo(frame, 12);
            o.Process.Memory.Write(esp, frame);
            o.Process.SimulatedThreads.Add(new ThreadSnapshot { Id = 9, Ip = o.Va("callee"), ResumeIp = o.Va("callee"), StackPointer = esp });

            var removed = o.Engine.Uninstall(Pid, "X86-STACK");
            Assert.False(removed.CaveFreed, removed.Message);
            Assert.Contains("may return into it", removed.Message);
            Assert.Equal(original, o.Read(o.Va("call_first"), 5));
            Assert.Equal(PatchState.Retired, Assert.Single(o.Engine.GetInstalled(Pid)).State);

            // Once the thread has returned, the next uninstall collects the retired cave.
            o.Process.SimulatedThreads.Clear();
            o.Process.Memory.Free(stack, 4096);
            o.Engine.Install(o.Patch("X86-NEXT", o.At("guarded", 7)), Pid);
            o.UninstallAndCheck("X86-NEXT");
        }
    }
}
