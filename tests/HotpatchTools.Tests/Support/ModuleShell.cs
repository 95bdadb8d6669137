using System.Management.Automation.Runspaces;

namespace HotpatchTools.Tests.Support
{
    /// <summary>A real PowerShell runspace that imports the repository's manifest, exactly as a user would.</summary>
    public sealed class ModuleShell : HostedShell
    {
        /// <param name="host">The host the cmdlets write to and ask through; without one, PowerShell's default (which cannot prompt).</param>
        public ModuleShell(System.Management.Automation.Host.PSHost? host = null)
        {
            var iss = InitialSessionState.CreateDefault2();
            // Windows' default policy refuses the module's .psm1, as it would for an admin who had not set
            // RemoteSigned; Intune and ConfigMgr run scripts with Bypass. Linux has no policy (setting one throws).
            if (OperatingSystem.IsWindows()) iss.ExecutionPolicy = Microsoft.PowerShell.ExecutionPolicy.Bypass;
            Open(host != null ? RunspaceFactory.CreateRunspace(host, iss) : RunspaceFactory.CreateRunspace(iss));
            Run("Import-Module -Name $args[0] -ErrorAction Stop", ManifestPath);
        }

        public static string RepoRoot
        {
            get
            {
                // The Wine test program runs from its publish folder, away from the checkout.
                var fromEnv = Environment.GetEnvironmentVariable("HOTPATCH_REPO");
                if (!string.IsNullOrEmpty(fromEnv)) return fromEnv;
                for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
                    if (File.Exists(Path.Combine(d.FullName, "HotpatchTools.psd1"))) return d.FullName;
                throw new InvalidOperationException("HotpatchTools.psd1 not found above " + AppContext.BaseDirectory);
            }
        }

        public static string ManifestPath => Path.Combine(RepoRoot, "HotpatchTools.psd1");

        public static string SamplePath(string name) => Path.Combine(RepoRoot, "docs", "samples", name);

        /// <summary>
        /// Runs a docs/samples script as Intune and ConfigMgr do, as a file (here with this checkout's manifest as its
        /// -Module): its output lines and exit code. It must write no error record: the products show only the output.
        /// </summary>
        public (string[] Output, int ExitCode) RunSample(string name)
        {
            var output = Run("$global:LASTEXITCODE = -1; & $args[0] -Module $args[1]", SamplePath(name), ManifestPath)
                .Select(o => o.ToString()).ToArray();
            Assert.Empty(Errors);
            return (output, (int)Run("$LASTEXITCODE").Single().BaseObject);
        }
    }
}
