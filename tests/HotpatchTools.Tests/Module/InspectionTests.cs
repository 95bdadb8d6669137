using System.Management.Automation;
using System.Text.RegularExpressions;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// Interactive inspection (Get-HotpatchModule, Get-MicropatchSite) through the module, against a live target
    /// whose addresses and identity come from nm and the module file (readelf, or the PE header), not from the engine.
    /// Runs on Linux and, with the mingw-built target, under Wine.
    /// </summary>
    public sealed class InspectionTests : LiveModuleTest
    {
        public InspectionTests() : base("inspect") { }

        private string WritePatch(string id, string at = "triple", int expect = 6) => PatchFiles.Write(_dir, _t, id, at, expectLength: expect);

        private static string Hex(ulong v) => "0x" + v.ToString("x");

        private static string[] Lines(PSObject site) => ((System.Collections.Generic.IEnumerable<string>)site.Properties["Disassembly"].Value).ToArray();

        /// <summary>Mnemonics and operands of a listing, without the address and byte columns.</summary>
        private static string[] Instructions(string[] lines) =>
            lines.Where(l => !l.StartsWith(";")).Select(l => l.Substring(l.IndexOf("  ", StringComparison.Ordinal) + 2)).ToArray();

        /// <summary>The identity as the module file itself says it: readelf's build-id, or the PE header's fields.</summary>
        private static string IdentityFromFile(string path)
        {
            if (!TestPlatform.IsWindows)
                return "buildId: " + Regex.Match(NativeBuild.Run("readelf", "-n", path), @"Build ID: ([0-9a-f]+)").Groups[1].Value;
            var pe = File.ReadAllBytes(path);
            int header = BitConverter.ToInt32(pe, 0x3c);
            uint stamp = BitConverter.ToUInt32(pe, header + 8);
            uint size = BitConverter.ToUInt32(pe, header + 24 + 56);
            return "timeDateStamp: 0x" + stamp.ToString("X8") + ", sizeOfImage: 0x" + size.ToString("X");
        }

        [Fact]
        public void Get_HotpatchModule_lists_a_targets_modules_with_base_size_and_identity()
        {
            var all = _sh.Run("Get-HotpatchModule -ProcessId $args[0]", _t.Pid);
            Assert.Empty(_sh.Errors);
            Assert.Contains(all, m => m.Properties["Name"].Value.ToString()!.StartsWith(TestPlatform.IsWindows ? "ntdll.dll" : "libc.so", StringComparison.OrdinalIgnoreCase));

            var mine = Assert.Single(_sh.Run("Get-HotpatchModule -ProcessId $args[0] -Name $args[1]", _t.Pid, _t.ModuleName.ToUpperInvariant()));
            Assert.Equal("HotpatchTools.HotpatchModule", mine.TypeNames[0]);
            Assert.Equal(_t.ExePath, mine.Properties["Path"].Value.ToString(), ignoreCase: TestPlatform.IsWindows);
            Assert.Equal(Hex(_t.ModuleBase()), mine.Properties["BaseAddress"].Value);
            Assert.True((long)mine.Properties["Size"].Value > 0x1000);
            Assert.Equal(TestPlatform.IsWindows ? "PE" : "ELF", mine.Properties["Format"].Value);
            var identity = IdentityFromFile(_t.ExePath);
            Assert.Matches(@"^(buildId: [0-9a-f]{16,}|timeDateStamp: 0x[0-9A-F]{8}, sizeOfImage: 0x[0-9A-F]+)$", identity);
            Assert.Equal(identity, mine.Properties["Identity"].Value);
            Assert.Equal(_t.Pid, (int)mine.Properties["ProcessId"].Value);
            Assert.Equal(Environment.MachineName, mine.Properties["ComputerName"].Value);
        }

        [Fact]
        public void Get_HotpatchModule_reports_a_missing_process_and_goes_on()
        {
            var output = _sh.Run("Get-HotpatchModule -ProcessId 1073741823, $args[0] -Name $args[1]", _t.Pid, _t.ModuleName);
            Assert.StartsWith("ProcessNotFound,", Assert.Single(_sh.Errors).FullyQualifiedErrorId);
            Assert.Single(output);
        }

        [Fact]
        public void Get_MicropatchSite_shows_the_original_code_before_install_and_the_jump_and_cave_after_without_writing()
        {
            var path = WritePatch("HP-SITE-1");
            var original = _t.ReadSymbol("triple", 6);
            ulong site = _t.Symbol("triple");

            var before = _sh.Run("Get-MicropatchSite -Path $args[0] -ProcessId $args[1]", path, _t.Pid).Single();
            Assert.Empty(_sh.Errors);
            Assert.Equal(Hex(site), before.Properties["Address"].Value);
            Assert.Equal("triple", before.Properties["Symbol"].Value);
            Assert.Equal("Original", before.Properties["State"].Value);
            Assert.Equal(6, before.Properties["SpanLength"].Value);
            Assert.Equal("", before.Properties["Refusal"].Value);
            Assert.Contains("relocated instruction(s) (lea eax,[rdi+rdi*2]; add eax,1)", before.Properties["Plan"].Value.ToString());
            var listing = Lines(before);
            Assert.Equal(new[] { "lea eax,[rdi+rdi*2]", "add eax,1", "ret" }, Instructions(listing).Take(3));
            Assert.StartsWith(Hex(site) + ": 8d 04 7f  lea", listing[0]);
            // Read-only: no byte and no cave changed.
            Assert.Equal(original, _t.ReadSymbol("triple", 6));
            Assert.Equal(0, _t.CaveCount());

            _sh.Run("Install-Micropatch -Path $args[0] -ProcessId $args[1] -AllowUnsigned -Force", path, _t.Pid);
            Assert.Empty(_sh.Errors);
            var after = _sh.Run("Get-MicropatchSite -Path $args[0] -ProcessId $args[1]", path, _t.Pid).Single();
            Assert.Empty(_sh.Errors);
            Assert.Equal("Patched", after.Properties["State"].Value);
            var cave = after.Properties["CaveAddress"].Value.ToString()!;
            Assert.StartsWith("0x", cave);
            var code = Instructions(Lines(after));
            // The site now jumps into the cave; the cave runs the patch, the relocated originals, then jumps back.
            Assert.Matches(@"^jmp 0x[0-9a-f]+$", code[0]);
            Assert.True(Convert.ToUInt64(code[0][6..], 16) > Convert.ToUInt64(cave, 16), code[0] + " is not inside cave " + cave);
            var cavePart = code.SkipWhile(c => !c.StartsWith("cmp")).ToArray();
            Assert.Equal(new[] { "cmp edi,0x64", "mov eax,0xffffffff", "ret", "lea eax,[rdi+rdi*2]", "add eax,1", "jmp " + Hex(site + 6) },
                cavePart.Where(c => !c.StartsWith("jbe")));
            // "jbe resume" lands on the relocated original instructions.
            var relocated = Lines(after).Single(l => l.EndsWith("  lea eax,[rdi+rdi*2]") && !l.StartsWith(Hex(site)));
            Assert.Equal("jbe " + relocated[..relocated.IndexOf(':')], cavePart[1]);

            var fromInstalled = _sh.Run("Get-Micropatch -ProcessId $args[0] | Get-MicropatchSite", _t.Pid).Single();
            Assert.Empty(_sh.Errors);
            Assert.Equal("sites[0]", fromInstalled.Properties["Patchlet"].Value);
            Assert.Equal(Lines(after), Lines(fromInstalled));

            _sh.Run("Uninstall-Micropatch -PatchId HP-SITE-1 -ProcessId $args[0] -Force", _t.Pid);
            var again = _sh.Run("Get-HotpatchTarget -Path $args[0] -ProcessId $args[1] | Get-MicropatchSite", path, _t.Pid).Single();
            Assert.Empty(_sh.Errors);
            Assert.Equal("Original", again.Properties["State"].Value);
            Assert.Equal(listing, Lines(again));
        }

        [Fact]
        public void Get_MicropatchSite_gives_the_refusal_of_an_unsafe_site_and_still_plans_and_shows_the_others()
        {
            var path = PatchFiles.WriteFile(_dir, "HP-SITE-UNSAFE", PatchFiles.Yaml("HP-SITE-UNSAFE", _t.ModuleName, new[]
            {
                new PatchletSpec("triple", _t.ReadSymbol("triple", 6), PatchFiles.GuardCode),
                new PatchletSpec("branch_into", _t.ReadSymbol("branch_into", 7), PatchFiles.GuardCode),
            }));
            var sites = _sh.Run("Get-MicropatchSite -Path $args[0] -ProcessId $args[1]", path, _t.Pid);
            Assert.Empty(_sh.Errors);
            Assert.Equal(2, sites.Count);

            var unsafeSite = sites[1];
            Assert.Equal("patchlets[1] (at branch_into)", unsafeSite.Properties["Patchlet"].Value);
            Assert.Equal("UnsafeSite", unsafeSite.Properties["Refusal"].Value);
            Assert.StartsWith("Refused: ", unsafeSite.Properties["Plan"].Value.ToString());
            Assert.Contains("branches into the overwritten bytes", unsafeSite.Properties["Plan"].Value.ToString());
            Assert.Equal("Original", unsafeSite.Properties["State"].Value);
            Assert.Equal(new[] { "xor eax,eax", "add eax,edi", "add eax,1" }, Instructions(Lines(unsafeSite)).Take(3));

            // The safe site is planned, and says that install (all or nothing) refuses the patch because of the other.
            var safe = sites[0];
            Assert.Equal("", safe.Properties["Refusal"].Value);
            Assert.StartsWith("Jump to a cave over 6 bytes", safe.Properties["Plan"].Value.ToString());
            Assert.Contains("Install refuses the patch as a whole: patchlets[1] (at branch_into)", safe.Properties["Plan"].Value.ToString());
        }

        [Fact]
        public void Get_MicropatchSite_of_a_module_the_process_does_not_load_is_a_ModuleNotLoaded_error()
        {
            var path = PatchFiles.WriteFile(_dir, "HP-SITE-ELSEWHERE", PatchFiles.Yaml("HP-SITE-ELSEWHERE", "libnothere.so",
                new[] { new PatchletSpec("f", new byte[] { 0x90, 0x90, 0x90, 0x90, 0x90 }) }));
            Assert.Empty(_sh.Run("Get-MicropatchSite -Path $args[0] -ProcessId $args[1]", path, _t.Pid));
            var e = Assert.Single(_sh.Errors);
            Assert.StartsWith("ModuleNotLoaded,", e.FullyQualifiedErrorId);
            Assert.Equal(_t.Pid, e.TargetObject);
        }
    }
}
