using System.Management.Automation;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// Runs only where an sshd with our host as its powershell subsystem is up (tests/ssh/sshd.sh; .ci/run starts
    /// one); elsewhere the test shows as skipped with the reason, never as passed.
    /// </summary>
    public sealed class SshFactAttribute : FactAttribute
    {
        public SshFactAttribute()
        {
            if (SshEndpoint.Port == null)
                Skip = "the SSH tier needs sshd on loopback: .ci/run starts it with tests/ssh/sshd.sh and sets HOTPATCHTOOLS_SSH_PORT and HOTPATCHTOOLS_SSH_KEY";
        }
    }

    public static class SshEndpoint
    {
        public static int? Port => int.TryParse(Environment.GetEnvironmentVariable("HOTPATCHTOOLS_SSH_PORT"), out var p) ? p : null;
        public static string KeyFile => Environment.GetEnvironmentVariable("HOTPATCHTOOLS_SSH_KEY") ?? "";

        /// <summary>Two names for this computer that act as two machines, and one where nothing listens.</summary>
        public static readonly string[] Machines = { "127.0.0.1", "localhost" };
        public const string Unreachable = "127.0.0.2";

        /// <summary>Splatted into New-PSSession / Invoke-Command -HostName as $global:ssh.</summary>
        public static void Define(RemotingShell sh) =>
            sh.RunClean(@"$global:ssh = @{
                Port = $args[0]; UserName = 'root'; KeyFilePath = $args[1]
                Options = @{ StrictHostKeyChecking = 'no'; UserKnownHostsFile = '/dev/null'; BatchMode = 'yes'; ConnectTimeout = '20'; LogLevel = 'ERROR' }
            }", Port!.Value, KeyFile);
    }

    /// <summary>
    /// End to end over real OpenSSH: sshd on 127.0.0.1 runs tests/HotpatchTools.RemoteHost as the powershell
    /// subsystem, and 127.0.0.1 and localhost are two machines of a fleet, with 127.0.0.2 one that is down.
    /// The module is present on "both" machines because they are this one (Copy-Item -ToSession is not available here).
    /// </summary>
    public sealed class SshRemotingTests : IDisposable
    {
        private readonly RemotingShell _sh = new RemotingShell();
        private readonly string _dir = Directory.CreateTempSubdirectory("hpt-ssh-").FullName;
        private static string FleetScript => Path.Combine(ModuleShell.RepoRoot, "samples", "fleet", "Invoke-HotpatchFleet.ps1");

        public SshRemotingTests()
        {
            if (SshEndpoint.Port != null) SshEndpoint.Define(_sh);
        }

        public void Dispose()
        {
            _sh.Dispose();
            Directory.Delete(_dir, recursive: true);
        }

        private string WritePatch(TargetProcess t, string id, byte[]? expect = null) => PatchFiles.Write(_dir, t, id, expect: expect);

        private static string? Computer(PSObject o) => o.Properties["PSComputerName"]?.Value?.ToString();

        /// <summary>The one error is about the computer that is down, and names it (New-PSSession: through its runspace).</summary>
        private static void AssertUnreachableReported(ErrorRecord[] errors, string errorId)
        {
            Assert.True(errors.Length == 1, "expected one error, for " + SshEndpoint.Unreachable + ", got: " + string.Join("\n", errors.Select(e => e.FullyQualifiedErrorId + " [" + e.TargetObject + "] " + e)));
            var down = errors[0];
            var name = down.TargetObject is System.Management.Automation.Runspaces.Runspace r ? r.ConnectionInfo.ComputerName : down.TargetObject?.ToString();
            Assert.True(SshEndpoint.Unreachable == name, "not the unreachable computer: " + down.FullyQualifiedErrorId + " [" + down.TargetObject + "] " + down);
            Assert.StartsWith(errorId, down.FullyQualifiedErrorId);
        }

        [SshFact]
        public void Fleet_script_fans_out_over_ssh_and_reports_the_unreachable_computer_without_stopping_the_others()
        {
            using var t = TargetProcess.Start();
            var path = WritePatch(t, "HP-SSH-FLEET");
            var original = t.ReadSymbol("triple", 6);
            var fleet = "& $args[0] -HostName $args[1] -Port $ssh.Port -UserName $ssh.UserName -KeyFilePath $ssh.KeyFilePath -SSHOption $ssh.Options -Module $args[2] ";
            var machines = SshEndpoint.Machines.Append(SshEndpoint.Unreachable).ToArray();

            var tested = _sh.Run(fleet + "-Action Test -PatchFile $args[3] -ProcessId $args[4]", FleetScript, machines, ModuleShell.ManifestPath, path, t.Pid);
            AssertUnreachableReported(_sh.Errors, "ComputerUnreachable");
            Assert.Equal(SshEndpoint.Machines.OrderBy(m => m), tested.Select(Computer).OrderBy(m => m));
            Assert.All(tested, o =>
            {
                Assert.Equal("Deserialized.HotpatchTools.HotpatchTarget", o.TypeNames[0]);
                Assert.Equal("Vulnerable", o.Properties["State"].Value.ToString());
                Assert.Equal(Environment.MachineName, o.Properties["ComputerName"].Value);
            });

            // Install through one machine only: the two names reach the same processes.
            var installed = _sh.Run(fleet + "-Action Install -PatchFile $args[3] -ProcessId $args[4] -AllowUnsigned -Force", FleetScript, new[] { SshEndpoint.Machines[0], SshEndpoint.Unreachable }, ModuleShell.ManifestPath, path, t.Pid);
            AssertUnreachableReported(_sh.Errors, "ComputerUnreachable");
            Assert.Equal("Installed", Assert.Single(installed).Properties["Result"].Value);
            Assert.Equal(-1, t.Call("triple", 500));

            var listed = _sh.Run(fleet + "-Action List -PatchId HP-SSH-FLEET", FleetScript, machines, ModuleShell.ManifestPath);
            AssertUnreachableReported(_sh.Errors, "ComputerUnreachable");
            Assert.Equal(SshEndpoint.Machines.OrderBy(m => m), listed.Select(Computer).OrderBy(m => m));
            Assert.All(listed, o => Assert.Equal(t.Pid, Convert.ToInt32(o.Properties["ProcessId"].Value)));

            var removed = _sh.Run(fleet + "-Action Uninstall -PatchId HP-SSH-FLEET -ProcessId $args[3] -Force", FleetScript, new[] { SshEndpoint.Machines[1], SshEndpoint.Unreachable }, ModuleShell.ManifestPath, t.Pid);
            AssertUnreachableReported(_sh.Errors, "ComputerUnreachable");
            Assert.Equal("Removed", Assert.Single(removed).Properties["Result"].Value);
            Assert.Equal(original, t.ReadSymbol("triple", 6));
            Assert.Equal(1501, t.Call("triple", 500));
        }

        [SshFact]
        public void Sessions_to_two_machines_install_list_and_uninstall_each_its_own_target()
        {
            using var a = TargetProcess.Start();
            using var b = TargetProcess.Start();
            var path = WritePatch(a, "HP-SSH-TWO");
            var original = a.ReadSymbol("triple", 6);

            // One New-PSSession over the fleet: the computer that is down is an error, the others get sessions.
            _sh.Run("$global:sessions = New-PSSession -HostName $args[0] @ssh; $global:sessions.Count", (object)SshEndpoint.Machines.Append(SshEndpoint.Unreachable).ToArray());
            AssertUnreachableReported(_sh.Errors, "PSSessionOpenFailed");
            Assert.Equal(new[] { "127.0.0.1", "localhost" }, _sh.RunClean("$sessions | ForEach-Object ComputerName").Select(o => o.ToString()).OrderBy(n => n));
            _sh.RunClean("Invoke-Command -Session $sessions -ScriptBlock { param($m) Import-Module -Name $m -ErrorAction Stop } -ArgumentList $args[0]", ModuleShell.ManifestPath);

            // Each machine patches its own target, both at once (as jobs).
            var installed = _sh.RunClean(@"
                $jobs = @(
                    Invoke-Command -Session $sessions[0] -ScriptBlock { param($p, $id) Install-Micropatch -Path $p -ProcessId $id -AllowUnsigned -Force -PassThru } -ArgumentList $args[0], $args[1] -AsJob
                    Invoke-Command -Session $sessions[1] -ScriptBlock { param($p, $id) Install-Micropatch -Path $p -ProcessId $id -AllowUnsigned -Force -PassThru } -ArgumentList $args[0], $args[2] -AsJob
                )
                $jobs | Receive-Job -Wait -AutoRemoveJob", path, a.Pid, b.Pid);
            Assert.Equal(2, installed.Count);
            Assert.All(installed, o => Assert.Equal("Deserialized.HotpatchTools.MicropatchResult", o.TypeNames[0]));
            Assert.Equal(-1, a.Call("triple", 500));
            Assert.Equal(-1, b.Call("triple", 500));

            // Every machine sees both processes (they are one computer): 2 machines x 2 processes.
            var listed = _sh.RunClean("Invoke-Command -Session $sessions -ScriptBlock { Get-Micropatch -PatchId HP-SSH-TWO }");
            Assert.Equal(4, listed.Count);
            Assert.Equal(new[] { a.Pid, b.Pid, a.Pid, b.Pid }.OrderBy(p => p), listed.Select(o => Convert.ToInt32(o.Properties["ProcessId"].Value)).OrderBy(p => p));
            var table = _sh.Format("Invoke-Command -Session $sessions[0] -ScriptBlock { param($id) Get-Micropatch -ProcessId $id } -ArgumentList $args[0]", a.Pid);
            Assert.Matches(@"\n\s*" + a.Pid + @" \S+\s+HP-SSH-TWO\s+Installed\s", table);

            // What a machine listed pipes back to it: each uninstalls the process it patched.
            var removed = _sh.RunClean(@"
                $a, $b = $args
                $listed = Invoke-Command -Session $sessions -ScriptBlock { Get-Micropatch -PatchId HP-SSH-TWO }
                $listed | Where-Object { $_.PSComputerName -eq $sessions[0].ComputerName -and $_.ProcessId -eq $a } | Invoke-Command -Session $sessions[0] -ScriptBlock { $input | Uninstall-Micropatch -Force -PassThru }
                $listed | Where-Object { $_.PSComputerName -eq $sessions[1].ComputerName -and $_.ProcessId -eq $b } | Invoke-Command -Session $sessions[1] -ScriptBlock { $input | Uninstall-Micropatch -Force -PassThru }", a.Pid, b.Pid);
            Assert.Equal(new[] { "Removed", "Removed" }, removed.Select(o => o.Properties["Result"].Value));
            Assert.Equal(original, a.ReadSymbol("triple", 6));
            Assert.Equal(original, b.ReadSymbol("triple", 6));
        }

        [SshFact]
        public void A_refusal_over_ssh_keeps_its_ErrorId_and_names_the_machine()
        {
            using var t = TargetProcess.Start();
            var path = WritePatch(t, "HP-SSH-BAD", expect: new byte[] { 0x8d, 0x04, 0x7f, 0x83, 0xc0, 0x09 });
            var output = _sh.Run(@"Invoke-Command -HostName $args[0] @ssh -ScriptBlock {
                    param($m, $p, $id) Import-Module -Name $m -ErrorAction Stop; Install-Micropatch -Path $p -ProcessId $id -AllowUnsigned -Force -PassThru
                } -ArgumentList $args[1], $args[2], $args[3]", SshEndpoint.Machines[1], ModuleShell.ManifestPath, path, t.Pid);
            Assert.Empty(output);
            var error = Assert.IsAssignableFrom<System.Management.Automation.Runspaces.RemotingErrorRecord>(Assert.Single(_sh.Errors));
            Assert.StartsWith("ExpectMismatch,", error.FullyQualifiedErrorId);
            Assert.Equal(SshEndpoint.Machines[1], error.OriginInfo.PSComputerName);
            Assert.Equal(t.Pid, Convert.ToInt32(error.TargetObject));

            // The same through the fleet script, for one computer: its error passes through unchanged.
            output = _sh.Run("& $args[0] -HostName $args[1] -Port $ssh.Port -UserName $ssh.UserName -KeyFilePath $ssh.KeyFilePath -SSHOption $ssh.Options -Module $args[2] -Action Install -PatchFile $args[3] -ProcessId $args[4] -AllowUnsigned -Force",
                FleetScript, SshEndpoint.Machines[0], ModuleShell.ManifestPath, path, t.Pid);
            Assert.Empty(output);
            error = Assert.IsAssignableFrom<System.Management.Automation.Runspaces.RemotingErrorRecord>(Assert.Single(_sh.Errors));
            Assert.StartsWith("ExpectMismatch,", error.FullyQualifiedErrorId);
            Assert.Equal(SshEndpoint.Machines[0], error.OriginInfo.PSComputerName);
            Assert.Equal(0, t.CaveCount());
        }
    }
}
