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
        public void The_Intune_and_ConfigMgr_samples_report_the_32_bit_host_and_patch_nothing()
        {
            using var t = TargetProcess.Start(WorkflowTargets.PortableExe());
            var path = PatchFiles.WriteFile(_dir, "HP-W64H-2", WorkflowTargets.GuardYaml("HP-W64H-2", t.ModuleName));
            _sh.RunClean("Register-Micropatch -Path $args[0] -AllowUnsigned -Force", path);

            var detect = _sh.RunSample("Intune-Detect.ps1");
            Assert.Equal(1, detect.ExitCode);
            var line = Assert.Single(detect.Output);
            Assert.StartsWith("NOT CHECKED: This is a 32-bit process on 64-bit Windows", line);
            Assert.Contains("'Run script in 64-bit PowerShell' to Yes", line);

            var remediate = _sh.RunSample("Intune-Remediate.ps1");
            Assert.Equal(1, remediate.ExitCode);
            Assert.StartsWith("NOT REMEDIATED: This is a 32-bit process on 64-bit Windows", Assert.Single(remediate.Output));

            var discovery = _sh.RunSample("ConfigMgr-Discovery.ps1");
            Assert.Equal(new[] { "NotChecked-32BitHost" }, discovery.Output);
            Assert.Equal(0, discovery.ExitCode);

            Assert.Equal(1501, t.Call("triple", 500)); // the 64-bit target is left as it was
        }
    }
}
