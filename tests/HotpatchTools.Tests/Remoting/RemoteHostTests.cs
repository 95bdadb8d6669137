using System.Diagnostics;

namespace HotpatchTools.Tests
{
    public sealed class RemoteHostTests
    {
        [Fact]
        public async System.Threading.Tasks.Task The_ssh_subsystem_mode_still_finds_SMAs_internal_StdIOProcessMediator_Run_with_five_parameters()
        {
            // The host calls an internal method by reflection (there is no public API for pwsh's -sshs mode). Asked in
            // the host's own process, with the SMA it ships with: an upgrade that changes the method fails here, not
            // as an SSH session that hangs.
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            psi.ArgumentList.Add(PipeEndpoint.HostDll);
            psi.ArgumentList.Add("-check");
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            Assert.True(p.WaitForExit(60_000), "the host did not answer -check");
            Assert.True(p.ExitCode == 0, await stderr);
            // "<SMA assembly version> <method>": the version is there to read in a failure, the method is what must hold.
            var line = (await stdout).Trim();
            Assert.EndsWith(" System.Management.Automation.Remoting.Server.StdIOProcessMediator.Run(String initialCommand, String workingDirectory, String configurationName, String configurationFile, Boolean combineErrOutStream)", line);
        }
    }
}
