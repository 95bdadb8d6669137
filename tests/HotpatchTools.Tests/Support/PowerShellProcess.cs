using System.Diagnostics;

namespace HotpatchTools.Tests.Support
{
    /// <summary>
    /// A minimal PowerShell host (System.Management.Automation only, like ModuleShell) in a process of its own,
    /// so a test can run the module as another user or from several processes at once. Built once per test run
    /// into a world-readable temporary folder. It runs a script file with the given arguments and prints one line
    /// per output object, "error ERRORID CATEGORY MESSAGE" per error record, "warning MESSAGE" per warning, "terminating ERRORID MESSAGE" for a
    /// terminating error; exit code 0, 1 (errors) or 2 (terminating).
    /// </summary>
    public static class PowerShellProcess
    {
        private static readonly Lazy<string> Built = new Lazy<string>(() => Build(full: false));

        /// <summary>
        /// With the console host and the Management and Utility modules, published for this OS so that they sit beside
        /// System.Management.Automation (its PSHOME): what a session built from a session configuration file (JEA) loads.
        /// </summary>
        private static readonly Lazy<string> BuiltFull = new Lazy<string>(() => Build(full: true));

        private static string Build(bool full)
        {
            var root = Directory.CreateTempSubdirectory(full ? "hpt-pshost-full-" : "hpt-pshost-").FullName;
            string more = full
                ? @"
    <PackageReference Include=""Microsoft.PowerShell.ConsoleHost"" Version=""7.6.9"" />
    <PackageReference Include=""Microsoft.PowerShell.Commands.Management"" Version=""7.6.9"" />
    <PackageReference Include=""Microsoft.PowerShell.Commands.Utility"" Version=""7.6.9"" />"
                : "";
            File.WriteAllText(Path.Combine(root, "host.csproj"), @"<Project Sdk=""Microsoft.NET.Sdk"">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <NuGetAudit>false</NuGetAudit>
  </PropertyGroup>
  <ItemGroup>
    <PackageReference Include=""System.Management.Automation"" Version=""7.6.9"" />" + more + @"
  </ItemGroup>
</Project>
");
            File.WriteAllText(Path.Combine(root, "Program.cs"), Program);
            var output = Path.Combine(root, "out");
            if (full) ChildProcess.Dotnet("publish", root, "-c", "Release", "-r", OperatingSystem.IsWindows() ? "win-x64" : "linux-x64", "--self-contained", "false", "-o", output);
            else ChildProcess.Dotnet("build", root, "-c", "Release", "-o", output);
            if (!OperatingSystem.IsWindows())
            {
                const UnixFileMode open = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
                                          UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
                File.SetUnixFileMode(root, open);
                foreach (var f in Directory.GetFiles(root, "*", SearchOption.AllDirectories)) File.SetUnixFileMode(f, open);
                foreach (var d in Directory.GetDirectories(root, "*", SearchOption.AllDirectories)) File.SetUnixFileMode(d, open);
            }
            return Path.Combine(output, "host.dll");
        }

        public static string Folder => Path.GetDirectoryName(Built.Value)!;

        /// <summary>Starts the host on a script; <paramref name="prefix"/> (e.g. "setpriv --reuid=65534 ...") runs it as someone else.</summary>
        public static Process Start(string prefix, string script, params string[] args) => Start(Built.Value, prefix, script, args);

        /// <summary>Runs a script to the end in the host that has the console host and the Management and Utility modules (see BuiltFull).</summary>
        public static (int Exit, string[] Lines, string Stderr) RunFull(string script, params string[] args) => Wait(Start(BuiltFull.Value, "", script, args), script);

        private static Process Start(string host, string prefix, string script, string[] args)
        {
            var file = Path.Combine(Path.GetDirectoryName(host)!, "script-" + Guid.NewGuid().ToString("n") + ".ps1");
            File.WriteAllText(file, script);
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            var psi = new ProcessStartInfo(prefix.Length == 0 ? "dotnet" : prefix.Split(' ')[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            if (prefix.Length > 0)
            {
                foreach (var a in prefix.Split(' ').Skip(1)) psi.ArgumentList.Add(a);
                psi.ArgumentList.Add("dotnet");
            }
            psi.ArgumentList.Add(host);
            psi.ArgumentList.Add(file);
            psi.ArgumentList.Add(ModuleShell.ManifestPath);
            foreach (var a in args) psi.ArgumentList.Add(a);
            // An unprivileged user has no writable home: keep the runtime and PowerShell from looking for one.
            psi.Environment["DOTNET_CLI_HOME"] = Path.GetTempPath();
            psi.Environment["DOTNET_NOLOGO"] = "1";
            psi.Environment["HOME"] = Path.GetTempPath();
            return Process.Start(psi)!;
        }

        /// <summary>Runs a script to the end; in it, $args[0] is the module manifest and $args[1..] are <paramref name="args"/>.</summary>
        public static (int Exit, string[] Lines, string Stderr) Run(string prefix, string script, params string[] args) => Wait(Start(prefix, script, args), script);

        private static (int Exit, string[] Lines, string Stderr) Wait(Process started, string script)
        {
            using var p = started;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(120_000)) { p.Kill(entireProcessTree: true); throw new TimeoutException("PowerShell host: " + script); }
            return (p.ExitCode, stdout.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray(), stderr.Result);
        }

        private const string Program = @"using System;
using System.IO;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Runspaces;

var iss = InitialSessionState.CreateDefault2();
if (OperatingSystem.IsWindows()) iss.ExecutionPolicy = Microsoft.PowerShell.ExecutionPolicy.Bypass;
using var runspace = RunspaceFactory.CreateRunspace(iss);
runspace.Open();
using var ps = PowerShell.Create();
ps.Runspace = runspace;
ps.AddScript(File.ReadAllText(args[0]));
foreach (var a in args.Skip(1)) ps.AddArgument(a);
static string OneLine(string s) => s.Replace('\n', ' ').Replace('\r', ' ');
try
{
    foreach (var o in ps.Invoke()) Console.WriteLine(o);
}
catch (RuntimeException e)
{
    Console.WriteLine(""terminating "" + e.ErrorRecord.FullyQualifiedErrorId.Split(',')[0] + "" "" + OneLine(e.Message));
    return 2;
}
foreach (var e in ps.Streams.Error) Console.WriteLine(""error "" + e.FullyQualifiedErrorId.Split(',')[0] + "" "" + e.CategoryInfo.Category + "" "" + OneLine(e.Exception.Message));
foreach (var w in ps.Streams.Warning) Console.WriteLine(""warning "" + OneLine(w.Message));
return ps.HadErrors ? 1 : 0;
";
    }
}
