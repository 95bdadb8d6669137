using System.Management.Automation;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// The engine and the module in a 32-bit process on 64-bit Windows, as Intune runs scripts unless told otherwise:
    /// tests/wine/run.sh publishes this program for win-x86 too and runs this class alone in it, with Wine's 32-bit
    /// loader (the 64-bit run leaves it out). The target is the 64-bit enftarget.exe, which a 32-bit process can
    /// neither read nor patch.
    /// </summary>
    [Collection(MachineStateCollection.Name)]
    public sealed class Wow64HostTests : CatalogModuleTest
    {
        public Wow64HostTests(MachineState root) : base(root, "wow64host")
        {
            Assert.True(Environment.Is64BitOperatingSystem && !Environment.Is64BitProcess,
                "this class runs in the win-x86 program under 64-bit Wine (tests/wine/run.sh)");
        }

        [Fact]
        public void The_engine_refuses_to_start_and_says_to_run_64_bit_PowerShell()
        {
            var e = Assert.Throws<HotpatchException>(() => new HotpatchEngine());
            Assert.Equal(HotpatchErrorKind.PlatformNotSupported, e.Kind);
            Assert.Contains("32-bit process on 64-bit Windows", e.Message);
            Assert.Contains("64-bit PowerShell", e.Message);
        }

        [Fact]
        public void Compliance_in_a_32_bit_PowerShell_is_an_error_not_a_machine_called_compliant_with_a_64_bit_process_left_vulnerable()
        {
            using var t = TargetProcess.Start(WorkflowTargets.PortableExe());
            var path = PatchFiles.WriteFile(_dir, "HP-W64H-1", WorkflowTargets.GuardYaml("HP-W64H-1", t.ModuleName));
            _sh.RunClean("Register-Micropatch -Path $args[0] -AllowUnsigned -Force", path);

            foreach (var command in new[] { "Test-MicropatchCompliance -Quiet", "Test-MicropatchCompliance", "Sync-Micropatch -Force" })
            {
                var output = _sh.Run("try { " + command + " } catch { $_ }");
                var result = Assert.Single(output).BaseObject;
                Assert.False(result is true, command + " called the machine compliant");
                var error = Assert.IsType<ErrorRecord>(result);
                Assert.StartsWith("PlatformNotSupported,", error.FullyQualifiedErrorId);
                Assert.Contains("64-bit PowerShell", error.Exception.Message);
            }
            Assert.Equal(1501, t.Call("triple", 500)); // the 64-bit target is left as it was
        }

        [Fact]
        public void The_Intune_detection_sample_detects_the_32_bit_host_itself_and_exits_1()
        {
            var sample = Path.Combine(ModuleShell.RepoRoot, "docs", "samples", "Intune-Detect.ps1");
            var output = _sh.Run("$global:LASTEXITCODE = -1; & $args[0] -Module $args[1]", sample, ModuleShell.ManifestPath);
            Assert.Empty(_sh.Errors);
            Assert.StartsWith("NOT CHECKED: 32-bit PowerShell cannot inspect 64-bit processes", Assert.Single(output).ToString());
            Assert.Equal(1, (int)_sh.Run("$LASTEXITCODE").Single().BaseObject);
        }
    }
}
