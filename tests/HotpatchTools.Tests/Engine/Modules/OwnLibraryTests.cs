using HotpatchTools.Engine.Modules;

namespace HotpatchTools.Tests
{
    [Collection(DebugDirectoryCollection.Name)]
    public sealed class OwnLibraryTests : IClassFixture<OwnLibraries>
    {
        private readonly OwnLibraries _libs;
        private readonly HotpatchEngine _engine = new HotpatchEngine(options: new EngineOptions { ThreadWait = TimeSpan.FromSeconds(2) });

        public OwnLibraryTests(OwnLibraries libs) => _libs = libs;

        private LinuxTarget Host(params string[] libs) => new LinuxTarget(_libs.HostExe, libs);

        private static string Yaml(string id, string module, string at, byte[] expect, string code, string mode = "insert", string? function = null)
        {
            var yaml = "format: 1\nid: " + id + "\ntitle: " + id + "\ntarget:\n  os: linux\n  arch: x64\n  module: " + module + "\npatchlets:\n"
                + "  - at: " + at + "\n    expect: " + Hex.Spaced(expect) + "\n    mode: " + mode + "\n";
            if (function != null) yaml += "    function: " + function + "\n";
            if (code.Length > 0) yaml += "    code: |\n" + string.Join("", code.Split('\n').Select(l => "      " + l + "\n"));
            return yaml;
        }

        [Fact]
        public void An_insert_at_an_endbr64_keeps_it_and_a_replace_that_drops_it_is_refused()
        {
            var twice = OwnLibraries.Symbol(_libs.Cet, "twice");
            var expect = OwnLibraries.Expect(_libs.Cet, twice.Rva, 5, skipEndbr: true);
            Assert.Equal(new byte[] { 0xf3, 0x0f, 0x1e, 0xfa }, expect[..4]);
            using var host = Host(_libs.Cet);
            Assert.Equal("52", host.Send("twice 4"));
            var patch = PatchFiles.Parse(Yaml("C-ENDBR", "libcet.so", "twice", expect, "mov eax, 77\nret"));

            var site = new Engine.Inspection.ProcessInspector(HotpatchEngine.CurrentPlatform()).GetSites(patch, host.Pid).Single();
            Assert.Contains("Keeps the endbr", site.Plan);
            Assert.Null(site.Refusal);

            _engine.Install(patch, host.Pid);
            Assert.Equal("77", host.Send("twice 4"));
            ulong at = ModuleBase(host.Pid, "libcet.so") + twice.Rva;
            var now = host.Read(at, expect.Length);
            Assert.Equal(expect[..4], now[..4]);
            Assert.Equal(0xe9, now[4]);
            _engine.Uninstall(host.Pid, "C-ENDBR");
            Assert.Equal("52", host.Send("twice 4"));
            Assert.Equal(expect, host.Read(at, expect.Length));

            var seven = OwnLibraries.Symbol(_libs.Cet, "seven");
            var sevenExpect = OwnLibraries.Expect(_libs.Cet, seven.Rva, 10);
            var drop = Assert.Throws<HotpatchException>(() => _engine.Install(PatchFiles.Parse(Yaml("C-DROP", "libcet.so", "seven", sevenExpect, "mov eax, 5\nret", "replace")), host.Pid));
            Assert.Equal(HotpatchErrorKind.UnsafeSite, drop.Kind);
            Assert.Contains("endbr64", drop.Message);
            Assert.Equal(sevenExpect, host.Read(ModuleBase(host.Pid, "libcet.so") + seven.Rva, sevenExpect.Length));

            _engine.Install(PatchFiles.Parse(Yaml("C-KEEP", "libcet.so", "seven", sevenExpect, "endbr64\nmov eax, 5\nret", "replace")), host.Pid);
            Assert.Equal("5", host.Send("seven 9"));
            _engine.Uninstall(host.Pid, "C-KEEP");
            Assert.Equal((9 * 7 + 3 - 9 / 5 + (9 >> 2)).ToString(), host.Send("seven 9"));
        }

        [Fact]
        public void A_static_function_is_named_through_the_debug_file_the_debuglink_points_to()
        {
            Assert.DoesNotContain(".symtab", NativeBuild.Run("readelf", "-SW", _libs.Split));
            var hidden = OwnLibraries.Symbol(_libs.SplitFull, "hidden_scale");
            var expect = OwnLibraries.Expect(_libs.Split, hidden.Rva, 5);
            using var host = Host(_libs.Split);
            Assert.Equal("52", host.Send("twice 4"));
            _engine.Install(PatchFiles.Parse(Yaml("D-LINK", "libsplit.so", "hidden_scale", expect, "mov eax, 1000\nret")), host.Pid);
            Assert.Equal("2000", host.Send("twice 4"));
            _engine.Uninstall(host.Pid, "D-LINK");
            Assert.Equal("52", host.Send("twice 4"));
        }

        [Fact]
        public void A_static_function_is_named_through_a_build_id_debug_file_in_a_configured_folder_and_only_there()
        {
            var hidden = OwnLibraries.Symbol(_libs.ByIdFull, "hidden_scale");
            var expect = OwnLibraries.Expect(_libs.ById, hidden.Rva, 5);
            using var host = Host(_libs.ById);
            var patch = PatchFiles.Parse(Yaml("D-BYID", "libbyid.so", "hidden_scale", expect, "mov eax, 1000\nret"));
            var missing = Assert.Throws<HotpatchException>(() => _engine.Install(patch, host.Pid));
            Assert.Contains("no symbol 'hidden_scale'", missing.Message);

            Environment.SetEnvironmentVariable(DebugFiles.EnvironmentVariable, _libs.DebugRoot);
            try
            {
                _engine.Install(patch, host.Pid);
                Assert.Equal("2000", host.Send("twice 4"));
                _engine.Uninstall(host.Pid, "D-BYID");
                Assert.Equal("52", host.Send("twice 4"));
            }
            finally
            {
                Environment.SetEnvironmentVariable(DebugFiles.EnvironmentVariable, null);
            }
        }

        [Fact]
        public void Get_MicropatchSite_takes_a_DebugDirectory_for_this_command_only()
        {
            var hidden = OwnLibraries.Symbol(_libs.ByIdFull, "hidden_scale");
            var expect = OwnLibraries.Expect(_libs.ById, hidden.Rva, 5);
            using var host = Host(_libs.ById);
            string file = Path.Combine(_libs.Dir, "D-PARAM.micropatch.yaml");
            File.WriteAllText(file, Yaml("D-PARAM", "libbyid.so", "hidden_scale", expect, "mov eax, 1000\nret"));
            using var sh = new ModuleShell();

            var without = sh.Run("Get-MicropatchSite -Path $args[0] -ProcessId $args[1]", file, host.Pid).Single();
            Assert.Contains("no symbol 'hidden_scale'", (string)without.Properties["Plan"].Value);
            var with = sh.Run("Get-MicropatchSite -Path $args[0] -ProcessId $args[1] -DebugDirectory $args[2]", file, host.Pid, _libs.DebugRoot).Single();
            Assert.Equal("hidden_scale", (string)with.Properties["Symbol"].Value);
            Assert.Equal("", with.Properties["Refusal"].Value?.ToString() ?? "");

            // What Install-Micropatch -DebugDirectory does around the engine call (the cmdlet would write the machine's audit log).
            using (DebugFiles.Use(new[] { _libs.DebugRoot }))
                _engine.Install(PatchFiles.Parse(File.ReadAllText(file)), host.Pid);
            Assert.Equal("2000", host.Send("twice 4"));
            _engine.Uninstall(host.Pid, "D-PARAM");
            Assert.Equal("52", host.Send("twice 4"));
            // The setting ended with the command.
            Assert.DoesNotContain(_libs.DebugRoot, DebugFiles.Directories());
        }

        [Fact]
        public void A_debug_file_of_another_build_is_not_used()
        {
            // The split library's debug file, copied under the build-id of another build.
            string id = ElfImage.Load(_libs.NoFde).BuildId!;
            string root = Path.Combine(_libs.Dir, "wrongdebug");
            Directory.CreateDirectory(Path.Combine(root, ".build-id", id[..2]));
            File.Copy(Path.Combine(_libs.Dir, "libsplit.so.debug"), Path.Combine(root, ".build-id", id[..2], id[2..] + ".debug"), true);
            Environment.SetEnvironmentVariable(DebugFiles.EnvironmentVariable, root);
            try
            {
                var image = DebugFiles.Attach(ElfImage.Load(_libs.NoFde), _libs.NoFde);
                Assert.Null(image.DebugFile);
                Assert.False(image.TryResolveSymbol("hidden_scale", out _));
            }
            finally
            {
                Environment.SetEnvironmentVariable(DebugFiles.EnvironmentVariable, null);
            }
        }

        [Fact]
        public void Without_symbols_or_fdes_a_site_needs_a_declared_function_that_holds_the_span()
        {
            var hidden = OwnLibraries.Symbol(_libs.NoFdeFull, "hidden_scale");
            // The crt objects bring a few FDEs of their own; none covers the library's code.
            Assert.False(ElfImage.Load(_libs.NoFde).TryGetFunctionBounds(hidden.Rva + 1, out _, out _, out _));
            var expect = OwnLibraries.Expect(_libs.NoFde, hidden.Rva, 5);
            using var host = Host(_libs.NoFde);
            string at = "0x" + hidden.Rva.ToString("x");

            var refused = Assert.Throws<HotpatchException>(() => _engine.Install(PatchFiles.Parse(Yaml("N-NONE", "libnofde.so", at, expect, "mov eax, 1000\nret")), host.Pid));
            Assert.Equal(HotpatchErrorKind.UnsafeSite, refused.Kind);
            Assert.Contains("no function of libnofde.so is known", refused.Message);

            string tooShort = "{ start: " + at + ", end: 0x" + (hidden.Rva + 3).ToString("x") + " }";
            var shortRefused = Assert.Throws<HotpatchException>(() => _engine.Install(PatchFiles.Parse(Yaml("N-SHORT", "libnofde.so", at, expect, "mov eax, 1000\nret", function: tooShort)), host.Pid));
            Assert.Contains("does not contain the overwritten bytes", shortRefused.Message);

            string declared = "{ start: " + at + ", end: 0x" + (hidden.Rva + hidden.Size).ToString("x") + " }";
            _engine.Install(PatchFiles.Parse(Yaml("N-DECL", "libnofde.so", at, expect, "mov eax, 1000\nret", function: declared)), host.Pid);
            Assert.Equal("2000", host.Send("twice 4"));
            _engine.Uninstall(host.Pid, "N-DECL");
            Assert.Equal("52", host.Send("twice 4"));
            Assert.Equal(0, host.CaveCount());
        }

        [Fact]
        public void A_cold_part_elsewhere_in_the_module_that_jumps_into_the_span_is_refused()
        {
            var hot = OwnLibraries.Symbol(_libs.ColdFull, "hot");
            var fdes = ElfImage.Load(_libs.Cold).FdeRanges().ToList();
            Assert.Contains(fdes, f => f.Start == hot.Rva);
            Assert.True(fdes.Count >= 2, "hot and its cold part each have an FDE");
            var expect = OwnLibraries.Expect(_libs.Cold, hot.Rva, 5);
            using var host = Host(_libs.Cold);
            Assert.Equal("5", host.Send("hot 4"));
            Assert.Equal("1", host.Send("hot -9")); // through the cold part and back
            var e = Assert.Throws<HotpatchException>(() => _engine.Install(PatchFiles.Parse(Yaml("K-COLD", "libcold.so", "hot", expect, "")), host.Pid));
            Assert.Equal(HotpatchErrorKind.UnsafeSite, e.Kind);
            Assert.Contains("outside hot", e.Message);
            Assert.Contains("targets 0x" + (ModuleBase(host.Pid, "libcold.so") + hot.Rva + 2).ToString("x"), e.Message);
            Assert.Equal(expect, host.Read(ModuleBase(host.Pid, "libcold.so") + hot.Rva, expect.Length));
            Assert.Equal(0, host.CaveCount());
        }

        [Fact]
        public void A_process_that_rewrote_its_copy_of_a_library_hides_no_branch_from_the_checks_made_for_other_processes()
        {
            string lib = _libs.ColdOwn, name = Path.GetFileName(lib);
            var hot = OwnLibraries.Symbol(_libs.ColdOwnFull, "hot");
            var cold = Assert.Single(ElfImage.Load(lib).FdeRanges(), f => f.Start != hot.Rva);
            var expect = OwnLibraries.Expect(lib, hot.Rva, 5);
            using var forger = Host(lib);
            using var honest = Host(lib);
            // The forger's owner rewrites its own copy so that the cold part returns instead of jumping back into hot's
            // first bytes (the test writes it as root; the process could as well, after an mprotect of its own).
            using (var p = HotpatchEngine.CurrentPlatform().Open(forger.Pid))
                p.Memory.Write(ModuleBase(forger.Pid, name) + cold.Start, new byte[] { 0x31, 0xc0, 0xc3 }); // xor eax, eax; ret
            Assert.Equal(("0", "1"), (forger.Send("hot -9"), honest.Send("hot -9")));
            var patch = PatchFiles.Parse(Yaml("K-OWN", name, "hot", expect, ""));

            // A sweep may meet the forger first: the index it builds is the file's, which holds the jump back all the same.
            var seen = new Engine.Inspection.ProcessInspector(HotpatchEngine.CurrentPlatform()).GetSites(patch, forger.Pid).Single();
            Assert.Equal(HotpatchErrorKind.UnsafeSite, seen.Refusal);
            var e = Assert.Throws<HotpatchException>(() => _engine.Install(patch, honest.Pid));
            Assert.Equal(HotpatchErrorKind.UnsafeSite, e.Kind);
            Assert.Contains("outside hot", e.Message);
            Assert.Equal(expect, honest.Read(ModuleBase(honest.Pid, name) + hot.Rva, expect.Length));
            Assert.Equal(0, honest.CaveCount());
        }

        [Fact]
        public void A_library_written_over_in_place_is_read_again_not_served_from_the_cache_of_its_inode()
        {
            string lib = Path.Combine(_libs.Dir, "libstamp-" + Guid.NewGuid().ToString("n")[..8] + ".so"), name = Path.GetFileName(lib);
            File.Copy(_libs.DupA, lib);
            string idA = ElfImage.Load(_libs.DupA).BuildId!, idB = ElfImage.Load(_libs.DupB).BuildId!;
            Assert.True(ElfImage.Load(_libs.DupB).TryResolveSymbol("twice", out var rva));
            var expect = OwnLibraries.Expect(_libs.DupB, rva, 5);
            string yaml = Yaml("S-STAMP", name, "twice", expect, "mov eax, 77\nret").Replace("  module: " + name + "\n", "  module: " + name + "\n  identity:\n    buildId: " + idB + "\n");
            using (var first = Host(lib))
            {
                // The engine parses (and caches) build A while a process maps it.
                var e = Assert.Throws<HotpatchException>(() => _engine.Install(PatchFiles.Parse(yaml), first.Pid));
                Assert.Equal(HotpatchErrorKind.IdentityMismatch, e.Kind);
            }
            string inode = NativeBuild.Run("stat", "-c", "%i", lib);
            // As `cp` over an existing file does: the same inode, build B's bytes.
            using (var f = new FileStream(lib, FileMode.Open, FileAccess.Write))
            {
                f.SetLength(0);
                f.Write(File.ReadAllBytes(_libs.DupB));
            }
            Assert.Equal(inode, NativeBuild.Run("stat", "-c", "%i", lib));
            using var second = Host(lib);
            _engine.Install(PatchFiles.Parse(yaml), second.Pid);
            Assert.Equal("77", second.Send("twice 4"));
            _engine.Uninstall(second.Pid, "S-STAMP");
            Assert.Equal("52", second.Send("twice 4"));
            Assert.NotEqual(idA, idB);
        }

        [Fact]
        public void Each_mapping_of_a_name_is_identity_checked_and_the_matching_one_patched()
        {
            string idA = ElfImage.Load(_libs.DupA).BuildId!, idB = ElfImage.Load(_libs.DupB).BuildId!;
            Assert.NotEqual(idA, idB);
            var twice = ElfImage.Load(_libs.DupB);
            Assert.True(twice.TryResolveSymbol("twice", out var rva));
            var expect = OwnLibraries.Expect(_libs.DupB, rva, 5);
            using var host = Host(_libs.DupA, _libs.DupB);
            Assert.Equal(("52", "52"), (host.Send("twice 4"), host.Send("@twice 4")));

            string yaml = Yaml("M-DUP", "libdup.so", "twice", expect, "mov eax, 77\nret").Replace("  module: libdup.so\n", "  module: libdup.so\n  identity:\n    buildId: " + idB + "\n");
            _engine.Install(PatchFiles.Parse(yaml), host.Pid);
            Assert.Equal(("52", "77"), (host.Send("twice 4"), host.Send("@twice 4")));
            _engine.Uninstall(host.Pid, "M-DUP");
            Assert.Equal("52", host.Send("@twice 4"));

            var neither = yaml.Replace(idB, new string('0', idB.Length));
            Assert.Equal(HotpatchErrorKind.IdentityMismatch, Assert.Throws<HotpatchException>(() => _engine.Install(PatchFiles.Parse(neither), host.Pid)).Kind);
            Assert.Equal(0, host.CaveCount());
        }

        internal static ulong ModuleBase(int pid, string name)
        {
            var line = File.ReadAllLines("/proc/" + pid + "/maps").First(l => l.EndsWith("/" + name, StringComparison.Ordinal));
            return Convert.ToUInt64(line[..line.IndexOf('-')], 16);
        }
    }

    /// <summary>Tests that set HOTPATCH_DEBUG_DIRECTORY, a process-wide setting, run one at a time.</summary>
    [CollectionDefinition(Name, DisableParallelization = true)]
    public sealed class DebugDirectoryCollection
    {
        public const string Name = "debug directory";
    }
}
