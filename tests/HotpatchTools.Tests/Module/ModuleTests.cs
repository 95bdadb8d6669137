namespace HotpatchTools.Tests
{
    /// <summary>The module through a hosted runspace, against a live target.</summary>
    public sealed class ModuleTests : LiveModuleTest
    {
        public ModuleTests() : base("module") { }

        private string WritePatch(string id, string code = PatchFiles.GuardCode, byte[]? expect = null) => PatchFiles.Write(_dir, _t, id, code: code, expect: expect);

        [Fact]
        public void Import_exports_exactly_the_module_commands()
        {
            var names = _sh.Run("Get-Command -Module HotpatchTools | ForEach-Object Name").Select(o => o.ToString()).OrderBy(n => n, StringComparer.Ordinal).ToArray();
            Assert.Equal(ModuleCommands.Exported, names);
            var alias = _sh.Run("(Get-Command Remove-Micropatch).ResolvedCommandName").Single().ToString();
            Assert.Equal("Uninstall-Micropatch", alias);
        }

        [Fact]
        public void Target_install_list_uninstall_through_the_pipeline()
        {
            var path = WritePatch("HP-PIPE-1");
            var before = _t.ReadSymbol("triple", 6);

            var target = _sh.Run("Get-HotpatchTarget -Path $args[0] -ProcessId $args[1]", path, _t.Pid).Single();
            Assert.Equal("Vulnerable", target.Properties["State"].Value.ToString());
            // A name of the module's own enum, as a string: output objects carry no engine type, and JSON and CSV show the name.
            Assert.IsType<string>(target.Properties["State"].Value);
            Assert.Equal(_t.Pid, (int)target.Properties["ProcessId"].Value);

            var installed = _sh.Run("Get-HotpatchTarget -Path $args[0] -ProcessId $args[1] | Install-Micropatch -AllowUnsigned -Force -PassThru", path, _t.Pid).Single();
            Assert.Empty(_sh.Errors);
            Assert.Equal("Installed", installed.Properties["Result"].Value);
            Assert.Equal(-1, _t.Call("triple", 500));
            Assert.Equal(16, _t.Call("triple", 5));

            var listed = _sh.Run("Get-Micropatch -ProcessId $args[0]", _t.Pid).Single();
            Assert.Equal("HP-PIPE-1", listed.Properties["PatchId"].Value);
            Assert.Equal("Installed", listed.Properties["State"].Value);
            Assert.Equal("Patched", _sh.Run("(Get-HotpatchTarget -Path $args[0] -ProcessId $args[1]).State.ToString()", path, _t.Pid).Single().ToString());

            var removed = _sh.Run("Get-Micropatch -ProcessId $args[0] | Uninstall-Micropatch -Force -PassThru", _t.Pid).Single();
            Assert.Empty(_sh.Errors);
            Assert.Equal("Removed", removed.Properties["Result"].Value);
            Assert.Equal(before, _t.ReadSymbol("triple", 6));
            Assert.Equal(1501, _t.Call("triple", 500));
            Assert.Empty(_sh.Run("Get-Micropatch -ProcessId $args[0]", _t.Pid));
        }

        [Fact]
        public void Install_without_ProcessId_patches_every_process_with_the_module()
        {
            using var first = TargetProcess.Start(NativeBuild.WideTarget);
            using var second = TargetProcess.Start(NativeBuild.WideTarget);
            var path = PatchFiles.Write(_dir, first, "HP-ALL-1");
            _sh.Run("Install-Micropatch -Path $args[0] -AllowUnsigned -Force", path);
            Assert.Empty(_sh.Errors);
            Assert.Equal(-1, first.Call("triple", 500));
            Assert.Equal(-1, second.Call("triple", 500));
            Assert.Equal(1501, _t.Call("triple", 500)); // another module: untouched

            _sh.Run("Remove-Micropatch -PatchId HP-ALL-1 -Force");
            Assert.Empty(_sh.Errors);
            Assert.Equal(1501, first.Call("triple", 500));
            Assert.Equal(1501, second.Call("triple", 500));
        }

        [Fact]
        public void WhatIf_writes_nothing()
        {
            var path = WritePatch("HP-WHATIF");
            var before = _t.ReadSymbol("triple", 6);
            _sh.Run("Install-Micropatch -Path $args[0] -AllowUnsigned -ProcessId $args[1] -WhatIf -Force", path, _t.Pid);
            Assert.Empty(_sh.Errors);
            Assert.Equal(before, _t.ReadSymbol("triple", 6));
            Assert.Equal(0, _t.CaveCount());
        }

        [Fact]
        public void A_refusal_is_an_error_record_with_a_stable_ErrorId_and_the_process_as_target()
        {
            var path = WritePatch("HP-BAD", expect: new byte[] { 0x8d, 0x04, 0x7f, 0x83, 0xc0, 0x09 });
            var before = _t.ReadSymbol("triple", 6);
            var output = _sh.Run("Install-Micropatch -Path $args[0] -AllowUnsigned -ProcessId $args[1] -Force -PassThru", path, _t.Pid);
            Assert.Empty(output);
            var error = Assert.Single(_sh.Errors);
            Assert.StartsWith("ExpectMismatch", error.FullyQualifiedErrorId);
            Assert.Equal(_t.Pid, error.TargetObject);
            Assert.Contains("patchlets[0] (at triple)", error.Exception.Message);
            Assert.Equal(before, _t.ReadSymbol("triple", 6));
        }

        [Fact]
        public void A_named_process_that_cannot_be_patched_is_refused_before_any_confirmation()
        {
            // No -Force and no host UI: a prompt would fail with HostFunctionNotImplemented. The refusal must come first.
            var path = PatchFiles.WriteFile(_dir, "HP-ELSEWHERE", PatchFiles.Yaml("HP-ELSEWHERE", "libnothere.so",
                new[] { new PatchletSpec("f", new byte[] { 0x90, 0x90, 0x90, 0x90, 0x90 }) }));
            _sh.Run("Install-Micropatch -Path $args[0] -AllowUnsigned -ProcessId $args[1]", path, _t.Pid);
            var error = Assert.Single(_sh.Errors);
            Assert.StartsWith("ModuleNotLoaded", error.FullyQualifiedErrorId);
            Assert.Equal(_t.Pid, error.TargetObject);
        }

        [Fact]
        public void Uninstall_WhatIf_leaves_the_patch_installed()
        {
            var path = WritePatch("HP-UNWHATIF");
            _sh.Run("Install-Micropatch -Path $args[0] -AllowUnsigned -ProcessId $args[1] -Force", path, _t.Pid);
            var patched = _t.ReadSymbol("triple", 6);
            _sh.Run("Uninstall-Micropatch -PatchId HP-UNWHATIF -ProcessId $args[0] -WhatIf -Force", _t.Pid);
            Assert.Empty(_sh.Errors);
            Assert.Equal(patched, _t.ReadSymbol("triple", 6));
            Assert.Equal(-1, _t.Call("triple", 500));
            _sh.Run("Uninstall-Micropatch -PatchId HP-UNWHATIF -ProcessId $args[0] -Force", _t.Pid);
            Assert.Equal(1501, _t.Call("triple", 500));
        }

        [Fact]
        public void Get_HotpatchTarget_reports_a_missing_process_and_goes_on_with_the_next()
        {
            var path = WritePatch("HP-GONE-TOO");
            var results = _sh.Run("Get-HotpatchTarget -Path $args[0] -ProcessId 1073741823, $args[1]", path, _t.Pid);
            Assert.StartsWith("ProcessNotFound", Assert.Single(_sh.Errors).FullyQualifiedErrorId);
            Assert.Equal(_t.Pid, (int)Assert.Single(results).Properties["ProcessId"].Value);
        }

        [Fact]
        public void A_missing_process_is_a_ProcessNotFound_error()
        {
            var path = WritePatch("HP-GONE");
            _sh.Run("Install-Micropatch -Path $args[0] -AllowUnsigned -ProcessId 1073741823 -Force", path);
            Assert.StartsWith("ProcessNotFound", Assert.Single(_sh.Errors).FullyQualifiedErrorId);
        }

        [Fact]
        public void A_malformed_file_is_an_error_naming_key_and_line()
        {
            var path = Path.Combine(_dir, "broken.micropatch.yaml");
            File.WriteAllText(path, "format: 1\nid: X\ntitle: t\ntarget:\n  os: linux\n  arch: x64\n  module: m\n  colour: blue\npatchlets: []\n");
            _sh.Run("Get-HotpatchTarget -Path $args[0]", path);
            var error = Assert.Single(_sh.Errors);
            Assert.StartsWith("InvalidPatchFile", error.FullyQualifiedErrorId);
            Assert.Contains("target.colour", error.Exception.Message);
            Assert.Contains("line 8", error.Exception.Message);
        }

        [Fact]
        public void Uninstall_of_a_patch_not_installed_is_a_NotInstalled_error()
        {
            _sh.Run("Uninstall-Micropatch -PatchId NOTHERE -ProcessId $args[0] -Force", _t.Pid);
            Assert.StartsWith("NotInstalled", Assert.Single(_sh.Errors).FullyQualifiedErrorId);
        }
    }
}
