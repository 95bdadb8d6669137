using System.Text.RegularExpressions;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// A patch written by New-Micropatch from a live process, checked by Test-Micropatch and installed there:
    /// on Linux against the gcc-built target, and under Wine against the mingw-built one.
    /// </summary>
    public sealed class AuthoringLiveTests : LiveModuleTest
    {
        public AuthoringLiveTests() : base("authlive") { }

        [Fact]
        public void A_patch_written_from_a_live_process_checks_offline_installs_and_changes_behaviour()
        {
            var site = _t.ReadSymbol("triple", 16);
            var file = _sh.Run("New-Micropatch -Id HP-LIVE-1 -ProcessId $args[0] -Module $args[1] -At triple -OutputPath $args[2]", _t.Pid, _t.ModuleName, _dir);
            Assert.Empty(_sh.Errors);
            Assert.Empty(_sh.Warnings);
            string path = ((FileInfo)Assert.Single(file).BaseObject).FullName;
            string yaml = File.ReadAllText(path);
            var expect = Regex.Match(yaml, @"(?m)^    expect: (.*)$").Groups[1].Value.Split(' ').Select(b => Convert.ToByte(b, 16)).ToArray();
            Assert.InRange(expect.Length, 5, 16);
            Assert.Equal(site.Take(expect.Length), expect);
            Assert.Contains(TestPlatform.IsWindows ? "timeDateStamp: 0x" : "buildId: ", yaml);

            var check = Assert.Single(_sh.Run("Test-Micropatch -Path $args[0] -ModulePath $args[1]", path, _t.ExePath));
            Assert.Equal("Applies", check.Properties["Result"].Value);

            File.WriteAllText(path, Regex.Replace(yaml, @"(?m)^      ;.*$", "      cmp edi, 500\n      jne resume\n      mov eax, -7\n      ret"));
            _sh.Run("Install-Micropatch -Path $args[0] -ProcessId $args[1] -AllowUnsigned -Force", path, _t.Pid);
            Assert.Empty(_sh.Errors);
            Assert.Equal(-7, _t.Call("triple", 500));
            Assert.Equal(31, _t.Call("triple", 10));
            _sh.Run("Uninstall-Micropatch -PatchId HP-LIVE-1 -ProcessId $args[0] -Force", _t.Pid);
            Assert.Empty(_sh.Errors);
            Assert.Equal(1501, _t.Call("triple", 500));
            Assert.Equal(site, _t.ReadSymbol("triple", 16));
        }
    }
}
