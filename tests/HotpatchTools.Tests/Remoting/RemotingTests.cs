using System.Management.Automation;
using static HotpatchTools.Tests.Support.PSObjects;

namespace HotpatchTools.Tests
{
    /// <summary>One remoting server process and one session to it, opened once for the class (an open costs ~1 s).</summary>
    public sealed class PipeSessionFixture : IDisposable
    {
        public PipeEndpoint Endpoint { get; } = new PipeEndpoint();
        public RemotingShell Shell { get; } = new RemotingShell();

        public PipeSessionFixture()
        {
            Shell.RunClean("$global:s = New-PipeSession -PipeName $args[0]", Endpoint.PipeName);
            Shell.RunClean("Invoke-Command -Session $global:s -ScriptBlock { param($m) Import-Module -Name $m -ErrorAction Stop } -ArgumentList $args[0]", ModuleShell.ManifestPath);
        }

        public void Dispose()
        {
            Shell.Dispose();
            Endpoint.Dispose();
        }
    }

    /// <summary>
    /// The module used through real PowerShell remoting (PSRP over a named pipe to a server process of its own),
    /// against live targets: what an admin gets back from Invoke-Command -Session.
    /// </summary>
    public sealed class RemotingTests : IClassFixture<PipeSessionFixture>, IDisposable
    {
        private readonly RemotingShell _sh;
        private readonly PipeSessionFixture _fixture;
        private readonly TargetProcess _t = TargetProcess.Start();
        private readonly string _dir = Directory.CreateTempSubdirectory("hpt-remoting-").FullName;

        public RemotingTests(PipeSessionFixture fixture)
        {
            _fixture = fixture;
            _sh = fixture.Shell;
        }

        public void Dispose()
        {
            _t.Dispose();
            Directory.Delete(_dir, recursive: true);
        }

        private string WritePatch(string id, byte[]? expect = null) => PatchFiles.Write(_dir, _t, id, expect: expect);

        /// <summary>Runs body on the far side of the session; $args of the script become the block's parameters.</summary>
        private System.Collections.ObjectModel.Collection<PSObject> Remote(string body, params object[] args) =>
            _sh.Run("Invoke-Command -Session $global:s -ScriptBlock { " + body + " } -ArgumentList $args", args);

        [Fact]
        public void The_session_really_is_another_process()
        {
            var remotePid = Remote("[System.Environment]::ProcessId").Single();
            Assert.Equal(_fixture.Endpoint.ProcessId, Convert.ToInt32(remotePid.BaseObject));
            Assert.NotEqual(Environment.ProcessId, _fixture.Endpoint.ProcessId);
        }

        [Fact]
        public void Install_list_uninstall_through_the_session_patch_the_live_target()
        {
            var path = WritePatch("HP-REMOTE-1");
            var original = _t.ReadSymbol("triple", 6);

            var target = Assert.Single(Remote("param($p, $id) Get-HotpatchTarget -Path $p -ProcessId $id", path, _t.Pid));
            Assert.Empty(_sh.Errors);
            Assert.Equal("Deserialized.HotpatchTools.HotpatchTarget", target.TypeNames[0]);
            // The module's enum arrives as its name: filters such as Where-Object State -eq Vulnerable keep working.
            Assert.Equal("Vulnerable", Assert.IsType<string>(Prop(target, "State")));
            Assert.Equal(Environment.MachineName, Prop(target, "ComputerName"));
            Assert.Equal(_t.Pid, Convert.ToInt32(Prop(target, "ProcessId")));

            var installed = Assert.Single(Remote("param($p, $id) Install-Micropatch -Path $p -ProcessId $id -AllowUnsigned -Force -PassThru", path, _t.Pid));
            Assert.Empty(_sh.Errors);
            Assert.Equal("Deserialized.HotpatchTools.MicropatchResult", installed.TypeNames[0]);
            Assert.Equal("Installed", Prop(installed, "Result"));
            Assert.NotNull(Prop(installed, "PSComputerName"));
            Assert.Equal(0xE9, _t.ReadSymbol("triple", 1)[0]);
            Assert.Equal(-1, _t.Call("triple", 500));

            var listed = Assert.Single(Remote("param($id) Get-Micropatch -ProcessId $id", _t.Pid));
            Assert.Equal("Deserialized.HotpatchTools.MicropatchInfo", listed.TypeNames[0]);
            Assert.Equal("HP-REMOTE-1", Prop(listed, "PatchId"));
            Assert.Equal("Installed", Prop(listed, "State"));
            Assert.IsType<DateTime>(Prop(listed, "InstalledTime"));
            // string[] survives as a list of strings, not as one flattened string.
            var sites = ((System.Collections.IEnumerable)((PSObject)Prop(listed, "Sites")!).BaseObject).Cast<object>().Select(o => o.ToString()).ToArray();
            Assert.StartsWith("0x", Assert.Single(sites));
            Assert.Contains("(original " + HotpatchTools.Engine.Hex.Spaced(original[..5]), sites[0]);

            var removed = Assert.Single(Remote("param($id) Uninstall-Micropatch -PatchId HP-REMOTE-1 -ProcessId $id -Force -PassThru", _t.Pid));
            Assert.Empty(_sh.Errors);
            Assert.Equal("Removed", Prop(removed, "Result"));
            Assert.Equal(original, _t.ReadSymbol("triple", 6));
            Assert.Equal(1501, _t.Call("triple", 500));
        }

        [Fact]
        public void Deserialized_objects_keep_their_meaning_in_where_and_sort_comparisons()
        {
            var path = WritePatch("HP-REMOTE-CMP");
            // An admin filters what came back by state: the enum must compare as its name, not only as a number.
            var vulnerable = _sh.Run("Invoke-Command -Session $global:s -ScriptBlock { param($p, $id) Get-HotpatchTarget -Path $p -ProcessId $id } -ArgumentList $args[0], $args[1] | Where-Object State -eq 'Vulnerable'", path, _t.Pid);
            Assert.Empty(_sh.Errors);
            Assert.Single(vulnerable);
            var none = _sh.Run("Invoke-Command -Session $global:s -ScriptBlock { param($p, $id) Get-HotpatchTarget -Path $p -ProcessId $id } -ArgumentList $args[0], $args[1] | Where-Object State -eq 'Patched'", path, _t.Pid);
            Assert.Empty(_sh.Errors);
            Assert.Empty(none);
        }

        [Fact]
        public void Deserialized_objects_format_with_the_module_views()
        {
            var path = WritePatch("HP-REMOTE-FMT");
            var text = _sh.Format("Invoke-Command -Session $global:s -ScriptBlock { param($p, $id) Get-HotpatchTarget -Path $p -ProcessId $id } -ArgumentList $args[0], $args[1]", path, _t.Pid);
            var lines = text.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0).ToArray();
            // The table view: one header row, a rule, one row (its reason wrapped over the next lines, only in its own
            // column); not the list of every property that a type without a view gets.
            Assert.Equal(new[] { "ProcessId", "ProcessName", "PatchId", "State", "Reason" }, lines[0].Split(' ', StringSplitOptions.RemoveEmptyEntries));
            int reasonColumn = lines[0].IndexOf("Reason", StringComparison.Ordinal);
            Assert.All(lines.Skip(3), l => Assert.True(l.Length > reasonColumn && l[..reasonColumn].Trim().Length == 0, l));
            Assert.Contains("Vulnerable", lines[2]);
            Assert.StartsWith(_t.Pid.ToString().PadLeft(9), lines[2]);
            Assert.DoesNotContain("PSComputerName", text);
            Assert.All(lines, l => Assert.True(l.Length <= 79, l));

            Remote("param($p, $id) Install-Micropatch -Path $p -ProcessId $id -AllowUnsigned -Force", path, _t.Pid);
            var listed = _sh.Format("Invoke-Command -Session $global:s -ScriptBlock { param($id) Get-Micropatch -ProcessId $id } -ArgumentList $args[0]", _t.Pid);
            Assert.Matches(@"\n\s*" + _t.Pid + @" \S+\s+HP-REMOTE-FMT\s+Installed\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+1\s*\n", listed);
            Remote("param($id) Uninstall-Micropatch -PatchId HP-REMOTE-FMT -ProcessId $id -Force", _t.Pid);
        }

        [Fact]
        public void Remote_output_pipes_back_into_a_remote_uninstall_by_property_name()
        {
            var path = WritePatch("HP-REMOTE-PIPE");
            var original = _t.ReadSymbol("triple", 6);
            // Target objects from the remote computer, piped through the session into Install-Micropatch there.
            var installed = _sh.Run(@"
                $targets = Invoke-Command -Session $global:s -ScriptBlock { param($p, $id) Get-HotpatchTarget -Path $p -ProcessId $id } -ArgumentList $args[0], $args[1]
                $targets | Invoke-Command -Session $global:s -ScriptBlock { $input | Install-Micropatch -AllowUnsigned -Force -PassThru }", path, _t.Pid);
            Assert.Empty(_sh.Errors);
            Assert.Equal("Installed", Prop(Assert.Single(installed), "Result"));
            Assert.Equal(-1, _t.Call("triple", 500));

            var removed = _sh.Run(@"
                $patches = Invoke-Command -Session $global:s -ScriptBlock { param($id) Get-Micropatch -ProcessId $id } -ArgumentList $args[0]
                $patches | Invoke-Command -Session $global:s -ScriptBlock { $input | Uninstall-Micropatch -Force -PassThru }", _t.Pid);
            Assert.Empty(_sh.Errors);
            Assert.Equal("Removed", Prop(Assert.Single(removed), "Result"));
            Assert.Equal(original, _t.ReadSymbol("triple", 6));
        }

        [Fact]
        public void A_refusal_crosses_the_wire_with_its_ErrorId_target_and_computer()
        {
            var path = WritePatch("HP-REMOTE-BAD", expect: new byte[] { 0x8d, 0x04, 0x7f, 0x83, 0xc0, 0x09 });
            var before = _t.ReadSymbol("triple", 6);
            var output = Remote("param($p, $id) Install-Micropatch -Path $p -ProcessId $id -AllowUnsigned -Force -PassThru", path, _t.Pid);
            Assert.Empty(output);
            var error = Assert.Single(_sh.Errors);
            Assert.StartsWith("ExpectMismatch,", error.FullyQualifiedErrorId);
            Assert.Equal(ErrorCategory.InvalidResult, error.CategoryInfo.Category);
            Assert.Equal(_t.Pid, Convert.ToInt32(error.TargetObject));
            Assert.Contains("patchlets[0] (at triple)", error.Exception.Message);
            Assert.False(string.IsNullOrEmpty(((System.Management.Automation.Runspaces.RemotingErrorRecord)error).OriginInfo.PSComputerName));
            Assert.Equal(before, _t.ReadSymbol("triple", 6));
        }

        [Fact]
        public void A_missing_process_is_reported_and_the_next_one_still_answers()
        {
            var path = WritePatch("HP-REMOTE-GONE");
            var output = Remote("param($p, $id) Get-HotpatchTarget -Path $p -ProcessId 1073741823, $id", path, _t.Pid);
            Assert.StartsWith("ProcessNotFound,", Assert.Single(_sh.Errors).FullyQualifiedErrorId);
            Assert.Equal(_t.Pid, Convert.ToInt32(Prop(Assert.Single(output), "ProcessId")));
        }

        [Fact]
        public void ErrorAction_Stop_turns_a_remote_failure_into_a_catchable_error_with_its_ErrorId()
        {
            var caught = _sh.Run(@"
                try { Invoke-Command -Session $global:s -ScriptBlock { Get-Micropatch -ProcessId 1073741823 } -ErrorAction Stop; 'not caught' }
                catch { $_.FullyQualifiedErrorId }").Single().ToString();
            Assert.StartsWith("ProcessNotFound,", caught);
        }

        [Fact]
        public void Inspection_through_the_session_shows_modules_and_the_disassembly_before_and_after_install()
        {
            var path = WritePatch("HP-REMOTE-SITE");
            var module = Assert.Single(Remote("param($id, $n) Get-HotpatchModule -ProcessId $id -Name $n", _t.Pid, _t.ModuleName));
            Assert.Empty(_sh.Errors);
            Assert.Equal("Deserialized.HotpatchTools.HotpatchModule", module.TypeNames[0]);
            Assert.Equal("0x" + _t.ModuleBase().ToString("x"), Prop(module, "BaseAddress"));
            var table = _sh.Format("Invoke-Command -Session $global:s -ScriptBlock { param($id, $n) Get-HotpatchModule -ProcessId $id -Name $n } -ArgumentList $args[0], $args[1]", _t.Pid, _t.ModuleName);
            Assert.Matches(@"\n\s*" + _t.Pid + @" " + _t.ModuleName + @"\s+0x[0-9a-f]+\s+\d+ buildId: [0-9a-f]+", table);

            string[] Listing(PSObject site) =>
                ((System.Collections.IEnumerable)((PSObject)Prop(site, "Disassembly")!).BaseObject).Cast<object>().Select(o => o.ToString()!).ToArray();
            var before = Assert.Single(Remote("param($p, $id) Get-MicropatchSite -Path $p -ProcessId $id", path, _t.Pid));
            Assert.Equal("Deserialized.HotpatchTools.MicropatchSite", before.TypeNames[0]);
            Assert.Equal("Original", Prop(before, "State"));
            Assert.EndsWith("  lea eax,[rdi+rdi*2]", Listing(before)[0]);

            Remote("param($p, $id) Install-Micropatch -Path $p -ProcessId $id -AllowUnsigned -Force", path, _t.Pid);
            // The installed patch's objects pipe through the session into Get-MicropatchSite there.
            var after = Assert.Single(_sh.RunClean(@"
                Invoke-Command -Session $global:s -ScriptBlock { param($id) Get-Micropatch -ProcessId $id } -ArgumentList $args[0] |
                    Invoke-Command -Session $global:s -ScriptBlock { $input | Get-MicropatchSite }", _t.Pid));
            Assert.Equal("Patched", Prop(after, "State"));
            var lines = Listing(after);
            Assert.Matches("^0x[0-9a-f]+: e9 [0-9a-f ]+  jmp 0x[0-9a-f]+$", lines[0]);
            Assert.Contains(lines, l => l.EndsWith("  cmp edi,0x64"));
            Remote("param($id) Uninstall-Micropatch -PatchId HP-REMOTE-SITE -ProcessId $id -Force", _t.Pid);
            Assert.Empty(_sh.Errors);
        }

        [Fact]
        public void Every_output_type_arrives_flat_with_every_property_and_its_computer()
        {
            var path = WritePatch("HP-REMOTE-FLAT");
            var publisher = TestCertificates.SelfSigned("CN=HotpatchTools Flat Test " + Guid.NewGuid().ToString("n")[..8]);
            var cer = Path.Combine(Path.GetDirectoryName(path)!, "flat-publisher.cer");
            File.WriteAllBytes(cer, publisher.Export(System.Security.Cryptography.X509Certificates.X509ContentType.Cert));
            var objects = _sh.RunClean(@"
                $p, $id, $n, $cer, $thumb, $exe = $args
                Invoke-Command -Session $global:s -ScriptBlock {
                    param($p, $id, $n, $cer, $thumb, $exe)
                    Get-HotpatchTarget -Path $p -ProcessId $id
                    Test-Micropatch -Path $p -ModulePath $exe
                    Get-MicropatchSite -Path $p -ProcessId $id
                    Get-HotpatchModule -ProcessId $id -Name $n
                    Install-Micropatch -Path $p -ProcessId $id -AllowUnsigned -Force -PassThru
                    Get-Micropatch -ProcessId $id
                    Uninstall-Micropatch -PatchId HP-REMOTE-FLAT -ProcessId $id -Force -PassThru
                    Get-MicropatchSignature -Path $p
                    Add-MicropatchTrustedPublisher -Path $cer -Force -PassThru
                    Get-MicropatchTrustedPublisher
                    Remove-MicropatchTrustedPublisher -Thumbprint $thumb -Force
                    Get-MicropatchAuditLog -PatchId HP-REMOTE-FLAT -Last 1
                    # The catalog's types; -WhatIf, because a sync would patch every process of this module, other tests' too.
                    Register-Micropatch -Path $p -AllowUnsigned -Force -PassThru
                    Get-MicropatchCatalog -PatchId HP-REMOTE-FLAT
                    Sync-Micropatch -PatchId HP-REMOTE-FLAT -WhatIf
                    Test-MicropatchCompliance -PatchId HP-REMOTE-FLAT
                    Unregister-Micropatch -PatchId HP-REMOTE-FLAT -Force
                } -ArgumentList $p, $id, $n, $cer, $thumb, $exe", path, _t.Pid, _t.ModuleName, cer, publisher.Thumbprint, _t.ExePath);
            var byType = objects.GroupBy(o => o.TypeNames[0]).ToDictionary(g => g.Key, g => g.First());
            var outputTypes = _sh.RunClean("Get-Command -Module HotpatchTools -CommandType Cmdlet | ForEach-Object { $_.OutputType } | ForEach-Object Type")
                .Select(o => (Type)o.BaseObject).Where(t => t.Namespace == "HotpatchTools").Distinct().ToArray(); // not the [bool] of -Quiet
            Assert.NotEmpty(outputTypes);
            foreach (var type in outputTypes)
            {
                Assert.True(byType.TryGetValue("Deserialized." + type.FullName, out var o), type.FullName + " did not come back through the session");
                Assert.Equal(Environment.MachineName, o!.Properties["ComputerName"]?.Value);
                Assert.False(string.IsNullOrEmpty(o.Properties["PSComputerName"]?.Value?.ToString()));
                foreach (var property in type.GetProperties())
                {
                    var value = o.Properties[property.Name];
                    Assert.True(value != null, type.Name + "." + property.Name + " was lost");
                    // Flat: what arrives is the value itself (or a list of strings), not a property bag of a nested object.
                    var arrived = value!.Value is PSObject wrapped ? wrapped.BaseObject : value.Value;
                    // Absent values (an unsigned file has no signing time) arrive as null, which is flat too.
                    Assert.True(arrived is null || arrived is string || arrived is int || arrived is long || arrived is double || arrived is bool || arrived is DateTime
                        || (arrived is System.Collections.IList list && list.Cast<object>().All(i => (i is PSObject p ? p.BaseObject : i) is string)),
                        type.Name + "." + property.Name + " arrived as " + arrived?.GetType().FullName);
                }
            }
        }

        [Fact]
        public void The_fleet_script_runs_over_a_session_and_returns_the_cmdlets_objects()
        {
            var path = WritePatch("HP-REMOTE-FLEET");
            var script = Path.Combine(ModuleShell.RepoRoot, "samples", "fleet", "Invoke-HotpatchFleet.ps1");
            const string install = "& $args[0] -Session $global:s -Action Install -PatchFile $args[1] -ProcessId $args[2] -Module $args[3] -Force";

            // Unsigned: the far end refuses it, and says why.
            Assert.Empty(_sh.Run(install, script, path, _t.Pid, ModuleShell.ManifestPath));
            Assert.StartsWith("NotSigned,", Assert.Single(_sh.Errors).FullyQualifiedErrorId);

            // Signed by a publisher the far end trusts: the signature travels with the file and is checked there.
            var publisher = TestCertificates.SelfSigned("CN=HotpatchTools Fleet Test " + Guid.NewGuid().ToString("n")[..8]);
            _sh.Run("Set-MicropatchSignature -Path $args[0] -Certificate $args[1] -Force", path, publisher);
            Assert.Empty(_sh.Errors);
            _sh.Run("Add-MicropatchTrustedPublisher -Certificate $args[0] -Force", publisher);
            Assert.Empty(_sh.Errors);
            System.Collections.ObjectModel.Collection<PSObject> installed;
            try { installed = _sh.Run(install, script, path, _t.Pid, ModuleShell.ManifestPath); }
            finally { _sh.Run("Remove-MicropatchTrustedPublisher -Thumbprint $args[0] -Force", publisher.Thumbprint); }
            Assert.Empty(_sh.Errors);
            Assert.Equal("Installed", Prop(Assert.Single(installed), "Result"));
            Assert.Equal(-1, _t.Call("triple", 500));
            var removed = _sh.Run("& $args[0] -Session $global:s -Action Uninstall -PatchId HP-REMOTE-FLEET -ProcessId $args[1] -Module $args[2] -Force", script, _t.Pid, ModuleShell.ManifestPath);
            Assert.Empty(_sh.Errors);
            Assert.Equal("Removed", Prop(Assert.Single(removed), "Result"));
            Assert.Equal(1501, _t.Call("triple", 500));
        }
    }

    /// <summary>
    /// Deployment without Copy-Item -ToSession (not available here): the module folder copied through a session to a
    /// computer that does not have it loaded, and imported there by name from PSModulePath.
    /// </summary>
    public sealed class RemoteDeploymentTests : IDisposable
    {
        private readonly string _dir = Directory.CreateTempSubdirectory("hpt-deploy-").FullName;

        public void Dispose() => Directory.Delete(_dir, recursive: true);

        private static void CopyTree(string from, string to)
        {
            foreach (var f in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
            {
                var target = Path.Combine(to, Path.GetRelativePath(from, f));
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Copy(f, target);
            }
        }

        [Fact]
        public void The_module_folder_copied_through_a_session_imports_by_name_there_and_works()
        {
            // The module as this checkout lays it out: manifest, loader and views beside the build output the loader finds.
            var stage = Path.Combine(_dir, "stage", "HotpatchTools");
            foreach (var f in new[] { "HotpatchTools.psd1", "HotpatchTools.psm1", "HotpatchTools.format.ps1xml" })
            {
                Directory.CreateDirectory(stage);
                File.Copy(Path.Combine(ModuleShell.RepoRoot, f), Path.Combine(stage, f));
            }
            var build = Path.Combine("src", "HotpatchTools", "bin", "Release", "netstandard2.0");
            CopyTree(Path.Combine(ModuleShell.RepoRoot, build), Path.Combine(stage, build));
            var modules = Path.Combine(_dir, "remote", "Modules");

            using var t = TargetProcess.Start();
            using var endpoint = new PipeEndpoint();
            using var sh = new RemotingShell();
            sh.RunClean("$global:s = New-PipeSession -PipeName $args[0]", endpoint.PipeName);
            var copied = Assert.Single(sh.RunClean("& $args[0] -Session $s -Path $args[1] -Destination $args[2]",
                Path.Combine(ModuleShell.RepoRoot, "samples", "fleet", "Copy-HotpatchModule.ps1"), stage, Path.Combine(modules, "HotpatchTools")));
            Assert.Equal(Directory.GetFiles(stage, "*", SearchOption.AllDirectories).Length, Convert.ToInt32(copied.Properties["Files"].Value));

            var result = sh.RunClean(@"Invoke-Command -Session $s -ScriptBlock {
                    param($modules, $id, $name)
                    $env:PSModulePath = $modules + [System.IO.Path]::PathSeparator + $env:PSModulePath
                    Import-Module -Name HotpatchTools -ErrorAction Stop
                    (Get-Module -Name HotpatchTools).ModuleBase
                    Get-HotpatchModule -ProcessId $id -Name $name
                } -ArgumentList $args[0], $args[1], $args[2]", modules, t.Pid, t.ModuleName);
            Assert.Equal(Path.Combine(modules, "HotpatchTools"), result[0].BaseObject.ToString());
            Assert.Equal("Deserialized.HotpatchTools.HotpatchModule", result[1].TypeNames[0]);
            Assert.Equal(t.ExePath, result[1].Properties["Path"].Value);
        }
    }
}
