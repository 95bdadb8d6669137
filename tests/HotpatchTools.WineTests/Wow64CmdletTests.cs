namespace HotpatchTools.Tests
{
    /// <summary>
    /// The module's cmdlets in this 64-bit program's PowerShell runspace against a live 32-bit target. A class of its
    /// own, so a process of its own under tests/wine/run.sh: after a failed test in the same process, creating a
    /// runspace hung under Wine (seen with an injected failure), and that must not cost the engine tests their results.
    /// </summary>
    public sealed class Wow64CmdletTests : Wow64TestBase
    {
        [Fact]
        public void The_cmdlets_in_a_64_bit_PowerShell_install_list_show_and_uninstall_a_patch_in_a_32_bit_process()
        {
            using var sh = new ModuleShell();
            var path = PatchFiles.WriteFile(_dir, "W32-PS", Yaml("W32-PS", ("triple", TripleBytes, Guard)));
            ulong site = Symbol("triple");

            sh.Run("Install-Micropatch -Path $args[0] -ProcessId $args[1] -AllowUnsigned -Force", path, _t.Pid);
            Assert.Empty(sh.Errors);
            Assert.Equal(-1, _t.Call("triple", 500));

            var listed = Assert.Single(sh.Run("Get-Micropatch -ProcessId $args[0]", _t.Pid));
            Assert.Empty(sh.Errors);
            Assert.Equal("W32-PS", listed.Properties["PatchId"].Value?.ToString());
            Assert.Equal("Installed", listed.Properties["State"].Value?.ToString());

            // The site as the module shows it: x86 code (eax, not rax), the jump into the cave, the cave's guard.
            var shown = Assert.Single(sh.Run("Get-Micropatch -ProcessId $args[0] | Get-MicropatchSite", _t.Pid));
            Assert.Empty(sh.Errors);
            Assert.Equal("Patched", shown.Properties["State"].Value?.ToString());
            Assert.Equal("0x" + site.ToString("x"), shown.Properties["Address"].Value);
            var code = ((IEnumerable<string>)shown.Properties["Disassembly"].Value).Where(l => !l.StartsWith(";")).Select(l => l.Substring(l.IndexOf("  ", StringComparison.Ordinal) + 2)).ToArray();
            Assert.Equal("jmp 0x" + JumpTarget(site).ToString("x"), code[0]);
            Assert.Contains("cmp eax,0x64", code);
            Assert.Contains("lea eax,[eax+eax*2]", code);
            Assert.Contains("jmp 0x" + (site + 6).ToString("x"), code);

            sh.Run("Uninstall-Micropatch -PatchId W32-PS -ProcessId $args[0] -Force", _t.Pid);
            Assert.Empty(sh.Errors);
            Assert.Equal(TripleBytes, _t.Read(site, 6));
            Assert.Equal(1501, _t.Call("triple", 500));
            Assert.Empty(sh.Run("Get-Micropatch -ProcessId $args[0]", _t.Pid));
            Assert.Equal(0, _t.CaveCount());
        }
    }
}
