using System.Diagnostics;
using System.Management.Automation;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using System.Threading;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// New-Micropatch and Test-Micropatch through the module, on gcc- and mingw-built modules and on the
    /// distribution's zlib; the patches they write are installed live. Bytes, addresses and identities are checked
    /// against nm/readelf/objdump and the live process, not against the engine's own readers.
    /// </summary>
    public sealed class AuthoringTests : IDisposable, IClassFixture<PeSamples>
    {
        private const string DistributionZlib = "/lib/x86_64-linux-gnu/libz.so.1";
        private readonly ModuleShell _sh = new ModuleShell();
        private readonly string _dir = Directory.CreateTempSubdirectory("hpt-author-").FullName;
        private readonly PeSamples _pe;

        public AuthoringTests(PeSamples pe) { _pe = pe; }

        public void Dispose()
        {
            _sh.Dispose();
            Directory.Delete(_dir, recursive: true);
        }

        private static string Field(string yaml, string key) => Regex.Match(yaml, @"^\s*-?\s*" + key + @": (.*)$", RegexOptions.Multiline).Groups[1].Value.Trim();

        private static string Sha256(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path))).ToLowerInvariant();

        private static string BuildId(string path) => Regex.Match(NativeBuild.Run("readelf", "-n", path), @"Build ID: ([0-9a-f]+)").Groups[1].Value;

        private PSObject NewPatch(string script, params object[] args)
        {
            var output = _sh.Run(script, args);
            Assert.Empty(_sh.Errors);
            return Assert.Single(output);
        }

        [Fact]
        public void A_patch_written_from_a_gcc_built_module_checks_offline_and_installs_live()
        {
            using var t = TargetProcess.Start();
            var file = NewPatch("New-Micropatch -Id HP-AUTHOR-1 -ModulePath $args[0] -At rip_first -OutputPath $args[1]", t.ExePath, _dir);
            string path = Path.Combine(_dir, "HP-AUTHOR-1.micropatch.yaml");
            Assert.Equal(path, ((FileInfo)file.BaseObject).FullName);
            Assert.Empty(_sh.Warnings);
            string yaml = File.ReadAllText(path);

            Assert.Equal("linux", Field(yaml, "os"));
            Assert.Equal("x64", Field(yaml, "arch"));
            Assert.Equal("'" + t.ModuleName + "'", Field(yaml, "module"));
            Assert.Equal(BuildId(t.ExePath), Field(yaml, "buildId"));
            Assert.Equal(Sha256(t.ExePath), Field(yaml, "sha256"));
            string expect = Field(yaml, "expect");
            ulong rva = NativeBuild.SymbolRva(t.ExePath, "rip_first");
            Assert.Equal(ElfTools.ObjdumpBytes("objdump", t.ExePath, rva, 5), expect);
            Assert.Equal(expect, string.Join(" ", t.ReadSymbol("rip_first", expect.Split(' ').Length).Select(b => b.ToString("x2"))));
            // The site's instructions as comments, the overwritten ones marked.
            Assert.Matches(@"(?m)^  #=> 0x[0-9a-f]+: [0-9a-f ]+  \S+", yaml);

            var check = Assert.Single(_sh.Run("Test-Micropatch -Path $args[0] -ModulePath $args[1]", path, t.ExePath));
            Assert.Empty(_sh.Errors);
            Assert.Equal(("HP-AUTHOR-1", "Applies", ""), ((string)check.Properties["PatchId"].Value, (string)check.Properties["Result"].Value, (string)check.Properties["ErrorId"].Value));
            var listing = ((System.Collections.Generic.IEnumerable<string>)check.Properties["Listing"].Value).ToArray();
            Assert.Contains(listing, l => l.Contains("jmp"));

            // The author writes the fix into the skeleton; the file then installs and changes behaviour live.
            File.WriteAllText(path, Regex.Replace(yaml, @"(?m)^      ;.*$", "      cmp edi, 2\n      jne resume\n      mov eax, 7\n      ret"));
            Assert.Equal(42, t.Call("rip_first", 2));
            _sh.Run("Install-Micropatch -Path $args[0] -ProcessId $args[1] -AllowUnsigned -Force", path, t.Pid);
            Assert.Empty(_sh.Errors);
            Assert.Equal(7, t.Call("rip_first", 2));
            Assert.Equal(40, t.Call("rip_first", 0));
            _sh.Run("Uninstall-Micropatch -PatchId HP-AUTHOR-1 -ProcessId $args[0] -Force", t.Pid);
            Assert.Empty(_sh.Errors);
            Assert.Equal(42, t.Call("rip_first", 2));
        }

        [Fact]
        public void A_folder_of_builds_gives_one_line_per_build_of_the_module()
        {
            string a = Path.Combine(_dir, "builds", "1.0", "target"), b = Path.Combine(_dir, "builds", "1.1", "target");
            Directory.CreateDirectory(Path.GetDirectoryName(a)!);
            Directory.CreateDirectory(Path.GetDirectoryName(b)!);
            File.Copy(NativeBuild.Target, a);
            // Another build of the same sources: other build-id, same bytes at the site.
            File.Copy(NativeBuild.Build("target", "-O1 -pthread", "target.c", "sites.S"), b);
            File.Copy("/bin/true", Path.Combine(_dir, "builds", "1.0", "true"));
            File.WriteAllText(Path.Combine(_dir, "builds", "README.txt"), "not a module");

            NewPatch("New-Micropatch HP-AUTHOR-2 -ModulePath $args[0] -At triple -OutputPath $args[1]", a, _dir);
            var results = _sh.Run("Test-Micropatch -Path $args[0] -ModulePath $args[1]",
                Path.Combine(_dir, "HP-AUTHOR-2.micropatch.yaml"), Path.Combine(_dir, "builds")).OrderBy(r => (string)r.Properties["ModulePath"].Value, StringComparer.Ordinal).ToList();
            Assert.Empty(_sh.Errors);
            Assert.Equal(new[] { (a, "Applies", ""), (b, "Mismatch", "IdentityMismatch") },
                results.Select(r => ((string)r.Properties["ModulePath"].Value, (string)r.Properties["Result"].Value, (string)r.Properties["ErrorId"].Value)).ToArray());
            Assert.Contains("buildId", (string)results[1].Properties["Reason"].Value);
        }

        [Fact]
        public void A_patch_for_the_distributions_zlib_written_from_a_live_python_installs_there()
        {
            Assert.True(File.Exists("/usr/bin/python3.11"), "Debian's python3.11 is needed (.ci/run installs it)");
            var psi = new ProcessStartInfo("/usr/bin/python3.11") { RedirectStandardInput = true, RedirectStandardOutput = true };
            psi.ArgumentList.Add("-u");
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add("import zlib, sys\nprint('ready', flush=True)\nfor line in sys.stdin:\n    print(zlib.crc32(line.strip().encode()), flush=True)\n");
            using var python = Process.Start(psi)!;
            try
            {
                Assert.Equal("ready", python.StandardOutput.ReadLine());
                string Crc(string s) { python.StandardInput.WriteLine(s); return python.StandardOutput.ReadLine()!; }
                string want = Crc("hotpatch");

                var module = Assert.Single(_sh.Run("Get-HotpatchModule -ProcessId $args[0] -Name 'libz.so*'", python.Id));
                string name = (string)module.Properties["Name"].Value;
                NewPatch("New-Micropatch HP-AUTHOR-3 -ProcessId $args[0] -Module $args[1] -At crc32 -OutputPath $args[2]", python.Id, name, _dir);
                string path = Path.Combine(_dir, "HP-AUTHOR-3.micropatch.yaml");
                string yaml = File.ReadAllText(path);
                string real = Path.GetFullPath(Path.Combine("/lib/x86_64-linux-gnu", new FileInfo(DistributionZlib).LinkTarget!));
                Assert.Equal("'libz.so.1'", Field(yaml, "module")); // the SONAME, as ldd prints it
                Assert.Equal(Sha256(real), Field(yaml, "sha256"));
                Assert.Equal(BuildId(real), Field(yaml, "buildId"));

                var check = Assert.Single(_sh.Run("Test-Micropatch $args[0] -ModulePath $args[1]", path, real));
                Assert.Equal("Applies", check.Properties["Result"].Value);

                _sh.Run("Install-Micropatch -Path $args[0] -ProcessId $args[1] -AllowUnsigned -Force", path, python.Id);
                Assert.Empty(_sh.Errors);
                Assert.Equal("Installed", Assert.Single(_sh.Run("Get-Micropatch -ProcessId $args[0]", python.Id)).Properties["State"].Value?.ToString());
                Assert.Equal(want, Crc("hotpatch"));
                _sh.Run("Uninstall-Micropatch -PatchId HP-AUTHOR-3 -ProcessId $args[0] -Force", python.Id);
                Assert.Empty(_sh.Errors);
                Assert.Equal(want, Crc("hotpatch"));
            }
            finally
            {
                if (!python.HasExited) python.Kill();
            }
        }

        [Fact]
        public void A_patch_for_a_mingw_built_dll_has_the_pe_identity_and_checks_offline()
        {
            NewPatch("New-Micropatch HP-AUTHOR-4 -ModulePath $args[0] -At use -OutputPath $args[1]", _pe.Dll64, _dir);
            string path = Path.Combine(_dir, "HP-AUTHOR-4.micropatch.yaml");
            string yaml = File.ReadAllText(path);
            Assert.Equal("windows", Field(yaml, "os"));
            Assert.Equal("'lib64.dll'", Field(yaml, "module"));
            var pe = File.ReadAllBytes(_pe.Dll64);
            int header = BitConverter.ToInt32(pe, 0x3c);
            Assert.Equal("0x" + BitConverter.ToUInt32(pe, header + 8).ToString("X8"), Field(yaml, "timeDateStamp"));
            Assert.Equal("0x" + BitConverter.ToUInt32(pe, header + 24 + 56).ToString("X"), Field(yaml, "sizeOfImage"));
            Assert.Equal(Sha256(_pe.Dll64), Field(yaml, "sha256"));
            ulong imageBase = BitConverter.ToUInt64(pe, header + 24 + 24);
            ulong va = Convert.ToUInt64(Regex.Match(NativeBuild.Run(PeSamples.Prefix64 + "nm", _pe.Dll64), @"^([0-9a-f]+) T use$", RegexOptions.Multiline).Groups[1].Value, 16);
            Assert.Equal(ElfTools.ObjdumpBytes(PeSamples.Prefix64 + "objdump", _pe.Dll64, va, 5), Field(yaml, "expect"));
            Assert.Contains("module offset 0x" + (va - imageBase).ToString("x"), yaml);

            var check = Assert.Single(_sh.Run("[System.IO.FileInfo]::new($args[0]) | Test-Micropatch -ModulePath $args[1]", path, _pe.Dll64));
            Assert.Empty(_sh.Errors);
            Assert.Equal("Applies", check.Properties["Result"].Value);
            // The ELF build of the test target is another platform's module, named explicitly: NotApplicable, not silence.
            var other = Assert.Single(_sh.Run("Test-Micropatch $args[0] -ModulePath $args[1]", path, NativeBuild.Target));
            Assert.Equal("NotApplicable", other.Properties["Result"].Value);
        }

        [Fact]
        public void Whatif_writes_nothing_and_an_existing_file_is_kept_without_force()
        {
            string target = NativeBuild.Target, path = Path.Combine(_dir, "HP-AUTHOR-5.micropatch.yaml");
            Assert.Empty(_sh.Run("New-Micropatch HP-AUTHOR-5 -ModulePath $args[0] -At triple -OutputPath $args[1] -WhatIf", target, _dir));
            Assert.False(File.Exists(path));

            File.WriteAllText(path, "mine");
            Assert.Empty(_sh.Run("New-Micropatch HP-AUTHOR-5 -ModulePath $args[0] -At triple -OutputPath $args[1]", target, _dir));
            Assert.StartsWith("PatchFileExists,", Assert.Single(_sh.Errors).FullyQualifiedErrorId);
            Assert.Equal("mine", File.ReadAllText(path));

            NewPatch("New-Micropatch HP-AUTHOR-5 -ModulePath $args[0] -At triple -OutputPath $args[1] -Force", target, _dir);
            Assert.Contains("id: HP-AUTHOR-5", File.ReadAllText(path));
        }

        [Theory]
        [InlineData("-At no_such_symbol", "IdentityMismatch", "no_such_symbol", "(-At)")]
        [InlineData("-At triple+zz", "InvalidLocation", "offset after '+'", "(-At)")]
        [InlineData("-At 0x7fffffff", "IdentityMismatch", "outside")]
        [InlineData("-At triple -FunctionStart nope -FunctionEnd triple", "IdentityMismatch", "(-FunctionStart)")]
        [InlineData("-At triple -FunctionStart triple", "InvalidLocation", "-FunctionEnd")]
        public void A_bad_location_is_an_error_naming_it_and_writes_nothing(string arguments, string errorId, params string[] says)
        {
            Assert.Empty(_sh.Run("New-Micropatch HP-AUTHOR-6 -ModulePath $args[0] -OutputPath $args[1] " + arguments, NativeBuild.Target, _dir));
            var error = Assert.Single(_sh.Errors);
            Assert.StartsWith(errorId + ",", error.FullyQualifiedErrorId);
            Assert.All(says, text => Assert.Contains(text, error.Exception.Message));
            Assert.Empty(Directory.GetFiles(_dir));
        }

        [Fact]
        public void An_invalid_id_is_refused_by_the_format_rules()
        {
            Assert.Empty(_sh.Run("New-Micropatch 'bad id!' -ModulePath $args[0] -At triple -OutputPath $args[1]", NativeBuild.Target, _dir));
            Assert.StartsWith("InvalidPatchFile,", Assert.Single(_sh.Errors).FullyQualifiedErrorId);
            Assert.Empty(Directory.GetFiles(_dir));
        }
    }
}
