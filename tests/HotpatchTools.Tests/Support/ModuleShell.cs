using System;
using System.Collections.ObjectModel;
using System.IO;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Runspaces;

namespace HotpatchTools.Tests.Support
{
    /// <summary>A real PowerShell runspace that imports the repository's manifest, exactly as a user would.</summary>
    public sealed class ModuleShell : IDisposable
    {
        private readonly Runspace _runspace;

        public ModuleShell()
        {
            var iss = InitialSessionState.CreateDefault2();
            // Windows' default policy refuses the module's .psm1, as it would for an admin who had not set
            // RemoteSigned; Intune and ConfigMgr run scripts with Bypass. Linux has no policy (setting one throws).
            if (OperatingSystem.IsWindows()) iss.ExecutionPolicy = Microsoft.PowerShell.ExecutionPolicy.Bypass;
            _runspace = RunspaceFactory.CreateRunspace(iss);
            _runspace.Open();
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

        public ErrorRecord[] Errors { get; private set; } = new ErrorRecord[0];
        public string[] Warnings { get; private set; } = new string[0];
        public string[] Verbose { get; private set; } = new string[0];

        /// <summary>Runs a script; $args holds the arguments. Records the error, warning and verbose streams.</summary>
        public Collection<PSObject> Run(string script, params object[] args)
        {
            using var ps = PowerShell.Create();
            ps.Runspace = _runspace;
            ps.AddScript(script);
            foreach (var a in args) ps.AddArgument(a);
            var result = ps.Invoke();
            Errors = ps.Streams.Error.ToArray();
            Warnings = ps.Streams.Warning.Select(w => w.Message).ToArray();
            Verbose = ps.Streams.Verbose.Select(v => v.Message).ToArray();
            return result;
        }

        public void Dispose() => _runspace.Dispose();
    }
}
