using System.Management.Automation;
using System.Management.Automation.Runspaces;

namespace HotpatchTools.Tests.Support
{
    /// <summary>
    /// The admin's side of a remoting session: a hosted runspace that imported the module (its format data is
    /// what makes Deserialized objects format like local ones) and drives other computers with Invoke-Command.
    /// </summary>
    public sealed class RemotingShell : HostedShell
    {
        /// <summary>New-PSSession has no named pipe parameter set: the documented SMA API, made a session $s.</summary>
        private const string PipeSessionFunction = @"
            function New-PipeSession {
                [CmdletBinding()]
                param([string] $PipeName)
                $info = [System.Management.Automation.Runspaces.NamedPipeConnectionInfo]::new($PipeName)
                $info.OpenTimeout = 60000
                $runspace = [System.Management.Automation.Runspaces.RunspaceFactory]::CreateRunspace($info, $Host, [System.Management.Automation.Runspaces.TypeTable]::LoadDefaultTypeFiles())
                $runspace.Open()
                [System.Management.Automation.Runspaces.PSSession]::Create($runspace, 'NamedPipe', $PSCmdlet)
            }";

        public RemotingShell()
        {
            Open(RunspaceFactory.CreateRunspace(Host, InitialSessionState.CreateDefault2()));
            Run("Import-Module -Name $args[0] -ErrorAction Stop", ModuleShell.ManifestPath);
            if (Errors.Length > 0) throw new InvalidOperationException("importing the module failed: " + Errors[0]);
            Run(PipeSessionFunction);
        }

        public CaptureHost Host { get; } = new CaptureHost();

        /// <summary>What the console shows for the output of script, formatted by Out-Host at 80 columns.</summary>
        public string Format(string script, params object[] args)
        {
            Host.TakeOutput();
            RunClean(script + " | Out-Host", args);
            // Plain text, as a redirected console shows it: no colour escapes around table headers.
            return System.Text.RegularExpressions.Regex.Replace(Host.TakeOutput(), "\u001b\\[[0-9;]*m", "");
        }

        public override void Dispose()
        {
            try { Run("Get-PSSession | Remove-PSSession"); } catch (Exception) { }
            base.Dispose();
        }
    }
}
