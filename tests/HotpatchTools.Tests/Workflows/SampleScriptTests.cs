using System.Management.Automation.Language;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// docs/samples run as Intune and ConfigMgr run them (a script file, its output and exit code), in a hosted
    /// runspace, against a live vulnerable process before and after remediation. What they report in a 32-bit host
    /// on 64-bit Windows is tested there, for real, by the Wine suite (Wow64HostTests).
    /// </summary>
    [Collection(MachineStateCollection.Name)]
    public sealed class SampleScriptTests : CatalogModuleTest
    {
        public SampleScriptTests(MachineState root) : base(root, "samples") { }

        private static string OneLine((string[] Output, int ExitCode) r)
        {
            var line = Assert.Single(r.Output);
            Assert.DoesNotContain('\n', line);
            Assert.InRange(line.Length, 1, 2048);
            return line;
        }

        private TargetProcess StartAndRegister(string exeName, string id)
        {
            var t = TargetProcess.Start(WorkflowTargets.Exe(exeName));
            var path = PatchFiles.WriteFile(_dir, id, WorkflowTargets.GuardYaml(id, exeName));
            _sh.Run("Register-Micropatch -Path $args[0] -AllowUnsigned -Force", path);
            Assert.Empty(_sh.Errors);
            return t;
        }

        [Fact]
        public void Intune_detection_exits_1_before_remediation_and_0_after_with_one_short_line()
        {
            using var t = StartAndRegister("intune-tgt", "HP-INTUNE-1");

            var before = _sh.RunSample("Intune-Detect.ps1");
            Assert.Equal(1, before.ExitCode);
            var line = OneLine(before);
            Assert.StartsWith("NOT COMPLIANT: 1 vulnerable", line);
            Assert.Contains("HP-INTUNE-1 Vulnerable in pid " + t.Pid, line);
            Assert.Equal(1501, t.Call("triple", 500)); // detection changes nothing

            var remediation = _sh.RunSample("Intune-Remediate.ps1");
            Assert.Equal(0, remediation.ExitCode);
            Assert.StartsWith("REMEDIATED: applied 1", OneLine(remediation));
            Assert.Equal(-1, t.Call("triple", 500));

            var after = _sh.RunSample("Intune-Detect.ps1");
            Assert.Equal(0, after.ExitCode);
            Assert.StartsWith("COMPLIANT: 1 patch(es) enforced, 1 process(es) patched", OneLine(after));
        }

        [Fact]
        public void Intune_detection_reports_an_empty_catalog_instead_of_calling_it_compliant()
        {
            var detect = _sh.RunSample("Intune-Detect.ps1");
            Assert.Equal(1, detect.ExitCode);
            Assert.StartsWith("NOT COMPLIANT: the catalog is empty", OneLine(detect));
        }

        [Fact]
        public void Intune_remediation_that_cannot_fix_exits_1_and_says_why()
        {
            // A site a safety rule refuses: branch_into has a branch into its first bytes.
            using var t = TargetProcess.Start(WorkflowTargets.Exe("intune-bad"));
            var path = PatchFiles.WriteFile(_dir, "HP-INTUNE-BAD", PatchFiles.Yaml("HP-INTUNE-BAD", "intune-bad",
                new[] { new PatchletSpec("branch_into", t.ReadSymbol("branch_into", 8)) }));
            _sh.Run("Register-Micropatch -Path $args[0] -AllowUnsigned -Force", path);
            Assert.Empty(_sh.Errors);

            var remediation = _sh.RunSample("Intune-Remediate.ps1");
            Assert.Equal(1, remediation.ExitCode);
            var line = OneLine(remediation);
            Assert.StartsWith("NOT REMEDIATED: applied 0;", line);
            Assert.Contains("HP-INTUNE-BAD pid " + t.Pid + ": UnsafeSite", line);
            Assert.Equal(1, _sh.RunSample("Intune-Detect.ps1").ExitCode);
        }

        [Fact]
        public void ConfigMgr_discovery_writes_exactly_one_value_before_and_after_remediation()
        {
            using var t = StartAndRegister("cm-tgt", "HP-CM-1");
            var before = _sh.RunSample("ConfigMgr-Discovery.ps1");
            Assert.Equal(new[] { "NonCompliant" }, before.Output);
            Assert.Equal(0, before.ExitCode);

            _sh.Run("Sync-Micropatch -Force");
            Assert.Empty(_sh.Errors);
            Assert.Equal(-1, t.Call("triple", 500));

            var after = _sh.RunSample("ConfigMgr-Discovery.ps1");
            Assert.Equal(new[] { "Compliant" }, after.Output);
            Assert.Equal(0, after.ExitCode);
        }

        [Theory]
        [InlineData("Intune-Detect.ps1")]
        [InlineData("Intune-Remediate.ps1")]
        [InlineData("ConfigMgr-Discovery.ps1")]
        public void Samples_parse_end_with_exit_and_never_return(string name)
        {
            var ast = Parser.ParseFile(ModuleShell.SamplePath(name), out _, out var errors);
            Assert.Empty(errors);
            // A `return` before `exit` would end the script with exit code 0 whatever it found.
            Assert.Empty(ast.FindAll(a => a is ReturnStatementAst, searchNestedScriptBlocks: true));
            var last = ast.EndBlock.Statements.Last();
            Assert.IsType<ExitStatementAst>(last);
        }
    }
}
