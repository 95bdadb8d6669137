using System.Globalization;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// The shipped JEA roles used for real: a session built from docs/HotpatchTools.pssc and the role capability files
    /// (InitialSessionState.CreateFromSessionConfigurationFile, as the WinRM/SSH endpoint builds it), in a PowerShell
    /// process of its own (the module is found through PSModulePath there, so it loads from another path), running
    /// what an operator and an auditor type, and what they must not be able to.
    /// </summary>
    [Collection(MachineStateCollection.Name)] // registers a catalog entry
    public sealed class JeaSessionTests : IDisposable
    {
        private readonly MachineState _root;
        private readonly string _dir = Directory.CreateTempSubdirectory("hpt-jea-").FullName;

        public JeaSessionTests(MachineState root)
        {
            _root = root;
            _root.Reset();
            // The endpoint finds role capabilities in the RoleCapabilities folder of a module on PSModulePath.
            Directory.CreateDirectory(Path.Combine(_dir, "modules"));
            Directory.CreateSymbolicLink(Path.Combine(_dir, "modules", "HotpatchTools"), ModuleShell.RepoRoot);
            // Transcription is the endpoint's business (and its folder a Windows path); a local restricted session
            // would transcribe each error through Out-String, which the session rightly does not expose.
            File.WriteAllLines(Path.Combine(_dir, "HotpatchTools.pssc"),
                File.ReadAllLines(Path.Combine(ModuleShell.RepoRoot, "docs", "HotpatchTools.pssc")).Where(l => !l.TrimStart().StartsWith("TranscriptDirectory", StringComparison.Ordinal)));
        }

        public void Dispose() => Directory.Delete(_dir, recursive: true);

        // $args: manifest (unused: the session imports the module by name), pssc, group, modules folder, then one command a
        // line: "Name Param=Value Switch ...", or "script:TEXT". Prints per command i: "out i X", "err i ERRORID", "throw i TYPE MESSAGE".
        private const string Session = @"
$env:PSModulePath = $args[3] + [System.IO.Path]::PathSeparator + $env:PSModulePath
$group = $args[2]
$iss = [System.Management.Automation.Runspaces.InitialSessionState]::CreateFromSessionConfigurationFile($args[1], [Func[string,bool]]{ param($g) $g -eq $group })
$rs = [runspacefactory]::CreateRunspace([System.Management.Automation.Runspaces.InitialSessionState]$iss)
$rs.Open()
'language ' + $rs.SessionStateProxy.LanguageMode
for ($i = 4; $i -lt $args.Count; $i++) {
    $n = $i - 4
    $ps = [powershell]::Create(); $ps.Runspace = $rs
    if ($args[$i].StartsWith('script:')) { [void]$ps.AddScript($args[$i].Substring(7)) }
    else {
        $words = $args[$i].Split(' ')
        [void]$ps.AddCommand($words[0])
        foreach ($w in $words[1..($words.Count)]) {
            if (-not $w) { continue }
            $eq = $w.IndexOf('=')
            if ($eq -lt 0) { [void]$ps.AddParameter($w) } else { [void]$ps.AddParameter($w.Substring(0, $eq), $w.Substring($eq + 1)) }
        }
    }
    try {
        foreach ($o in $ps.Invoke()) {
            $p = $o.PSObject.Properties
            'out ' + $n + ' ' + $(if ($p['PatchId']) { $p['PatchId'].Value } elseif ($p['Name']) { $p['Name'].Value } else { $o })
        }
        foreach ($e in $ps.Streams.Error) { 'err ' + $n + ' ' + $e.FullyQualifiedErrorId.Split(',')[0] }
    }
    catch {
        $x = $_.Exception; while ($x.InnerException) { $x = $x.InnerException }
        'throw ' + $n + ' ' + $x.GetType().Name + ' ' + $x.Message.Replace([char]10, ' ')
    }
}
";

        private string[] RunAs(string group, params string[] commands)
        {
            var args = new[] { Path.Combine(_dir, "HotpatchTools.pssc"), group, Path.Combine(_dir, "modules") }.Concat(commands).ToArray();
            var (exit, lines, stderr) = PowerShellProcess.RunFull(Session, args);
            Assert.True(exit == 0 && lines.Contains("language NoLanguage"), "session host exit " + exit + ":\n" + string.Join("\n", lines) + stderr);
            return lines;
        }

        private static string[] Of(string[] lines, int command) =>
            lines.Where(l => l.Split(' ').Length > 1 && l.Split(' ')[1] == command.ToString(CultureInfo.InvariantCulture)).ToArray();

        [Fact]
        public void An_operator_installs_and_removes_catalogued_patches_by_their_plain_names_and_nothing_else()
        {
            using var t = TargetProcess.Start();
            var original = t.ReadSymbol("triple", 6);
            var id = "HP-JEA-OP";
            var file = PatchFiles.Write(_dir, t, id, expect: original);
            using (var sh = new ModuleShell())
            {
                sh.Run("Register-Micropatch -Path $args[0] -AllowUnsigned -Force", file);
                Assert.Empty(sh.Errors);
            }
            string pid = t.Pid.ToString(CultureInfo.InvariantCulture);
            var lines = RunAs("CONTOSO\\Hotpatch Operators",
                "Get-Command",
                "Install-Micropatch PatchId=" + id + " ProcessId=" + pid + " Force",
                "Get-Micropatch ProcessId=" + pid,
                "Uninstall-Micropatch PatchId=" + id + " ProcessId=" + pid + " Force",
                "Install-Micropatch PatchId=" + id + " ProcessId=" + pid + " WhatIf",
                "Get-Micropatch ProcessId=" + pid,
                "Install-Micropatch Path=" + file + " ProcessId=" + pid + " Force",
                "Install-Micropatch PatchId=" + id + " ProcessId=" + pid + " AllowUnsigned Force",
                "script:Install-Micropatch -PatchId " + id + " -ProcessId " + pid + " -Force; $x = 1",
                "Get-MicropatchAuditLog",
                "HotpatchTools\\Install-Micropatch PatchId=" + id + " ProcessId=" + pid + " Force");
            var report = string.Join("\n", lines);

            var visible = Of(lines, 0).Select(l => l.Split(' ')[2]).ToHashSet();
            foreach (var name in new[] { "Get-HotpatchTarget", "Get-Micropatch", "Install-Micropatch", "Uninstall-Micropatch", "Get-MicropatchCatalog", "Sync-Micropatch" })
                Assert.True(visible.Contains(name), name + " is not visible by its plain name:\n" + report);
            Assert.DoesNotContain("Register-Micropatch", visible);
            Assert.DoesNotContain("Get-MicropatchAuditLog", visible);

            Assert.All(Of(lines, 1), l => Assert.StartsWith("out ", l));                              // installed, no error
            Assert.Equal(new[] { "out 2 " + id }, Of(lines, 2));                                     // and listed
            Assert.All(Of(lines, 3), l => Assert.StartsWith("out ", l));                              // removed
            Assert.Empty(Of(lines, 4));                                                             // -WhatIf: nothing
            Assert.Empty(Of(lines, 5));
            Assert.StartsWith("throw 6 ParameterBindingException ", Assert.Single(Of(lines, 6)));  // no file paths
            Assert.StartsWith("throw 7 ParameterBindingException ", Assert.Single(Of(lines, 7)));  // no unsigned files
            Assert.StartsWith("throw 8 ", Assert.Single(Of(lines, 8)));                            // no script
            Assert.StartsWith("throw 9 CommandNotFoundException ", Assert.Single(Of(lines, 9)));   // not the operator's
            Assert.Equal(original, t.ReadSymbol("triple", 6));
            Assert.Equal(0, t.CaveCount());
            Assert.Equal(16, t.Call("triple", 5));
        }

        [Fact]
        public void An_auditor_reads_and_cannot_change_anything()
        {
            using var t = TargetProcess.Start();
            string pid = t.Pid.ToString(CultureInfo.InvariantCulture);
            var lines = RunAs("CONTOSO\\Hotpatch Auditors",
                "Get-Micropatch ProcessId=" + pid,
                "Get-MicropatchCatalog",
                "Get-MicropatchTrustedPublisher",
                "Install-Micropatch PatchId=HP-JEA-AUD ProcessId=" + pid + " Force",
                "Get-MicropatchSignature Path=/etc/shadow",
                "Get-MicropatchAuditLog Last=1");
            var report = string.Join("\n", lines);
            Assert.True(Of(lines, 0).Length == 0 && Of(lines, 1).Length == 0 && Of(lines, 2).All(l => l.StartsWith("out ", StringComparison.Ordinal)), report);
            Assert.StartsWith("throw 3 CommandNotFoundException ", Assert.Single(Of(lines, 3)));
            Assert.StartsWith("throw 4 ", Assert.Single(Of(lines, 4)));                            // patch files only
            Assert.DoesNotContain(Of(lines, 5), l => l.StartsWith("throw ", StringComparison.Ordinal));
            Assert.Equal(0, t.CaveCount());
        }
    }
}
