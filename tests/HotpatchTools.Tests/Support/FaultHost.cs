using System.Diagnostics;
using System.Runtime.Versioning;

namespace HotpatchTools.Tests.Support
{
    /// <summary>
    /// A tiny console program that drives the engine from a process of its own, so a test can SIGKILL the
    /// installer or run it as another user. Built once per test run into a temporary folder (world-readable, for
    /// the unprivileged-user test) against the engine assembly the tests themselves load.
    /// Usage: dotnet host.dll install|uninstall|loop PATCHFILE PID. Each outcome is one line on stdout:
    /// "installed", "removed" or "error KIND MESSAGE"; "loop" installs and uninstalls until killed.
    /// </summary>
    [SupportedOSPlatform("linux")]
    public static class FaultHost
    {
        private static readonly Lazy<string> Built = new Lazy<string>(Build);

        public static string Dll => Built.Value;

        public static string Dir => Path.GetDirectoryName(Dll)!;

        private static string Build()
        {
            var root = Directory.CreateTempSubdirectory("hpt-faulthost-").FullName;
            const UnixFileMode open = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
                                      UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
            File.SetUnixFileMode(root, open);
            var refs = string.Concat(new[] { "HotpatchTools.Engine", "Iced", "YamlDotNet" }.Select(n =>
                "    <Reference Include=\"" + n + "\"><HintPath>" + Path.Combine(AppContext.BaseDirectory, n + ".dll") + "</HintPath></Reference>\n"));
            File.WriteAllText(Path.Combine(root, "host.csproj"), @"<Project Sdk=""Microsoft.NET.Sdk"">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <Nullable>disable</Nullable>
    <NuGetAudit>false</NuGetAudit>
  </PropertyGroup>
  <ItemGroup>
" + refs + @"  </ItemGroup>
</Project>
");
            File.WriteAllText(Path.Combine(root, "Program.cs"), Program);
            var output = Path.Combine(root, "out");
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { "build", root, "-c", "Release", "-o", output, "-nologo", "-v:q", "-nodeReuse:false", "-p:UseSharedCompilation=false" })
                psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(300_000)) { p.Kill(entireProcessTree: true); throw new TimeoutException("building the fault host"); }
            if (p.ExitCode != 0) throw new InvalidOperationException("building the fault host failed:\n" + stdout.Result + stderr.Result);
            foreach (var f in Directory.GetFiles(root, "*", SearchOption.AllDirectories)) File.SetUnixFileMode(f, open);
            foreach (var d in Directory.GetDirectories(root, "*", SearchOption.AllDirectories)) File.SetUnixFileMode(d, open);
            return Path.Combine(output, "host.dll");
        }

        /// <summary>Starts the host; stdout is redirected, the caller reads it.</summary>
        public static Process Start(string prefix, params string[] args) => Start(null, prefix, args);

        /// <summary>Starts the host with extra environment variables (a failpoint, for one).</summary>
        public static Process Start(IDictionary<string, string>? environment, string prefix, params string[] args)
        {
            var psi = new ProcessStartInfo(prefix.Length == 0 ? "dotnet" : prefix.Split(' ')[0]) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
            if (prefix.Length > 0)
            {
                foreach (var a in prefix.Split(' ').Skip(1)) psi.ArgumentList.Add(a);
                psi.ArgumentList.Add("dotnet");
            }
            psi.ArgumentList.Add(Dll);
            foreach (var a in args) psi.ArgumentList.Add(a);
            // Unprivileged runs have no writable home: keep the runtime from looking for one.
            psi.Environment["DOTNET_CLI_HOME"] = Path.GetTempPath();
            psi.Environment["DOTNET_NOLOGO"] = "1";
            if (environment != null) foreach (var kv in environment) psi.Environment[kv.Key] = kv.Value;
            return Process.Start(psi)!;
        }

        /// <summary>Runs the host to completion and returns its output lines and exit code.</summary>
        public static (int Exit, string[] Lines, string Stderr) Run(string prefix, params string[] args)
        {
            using var p = Start(prefix, args);
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(60_000)) { p.Kill(); throw new TimeoutException("fault host " + string.Join(" ", args)); }
            return (p.ExitCode, stdout.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries), stderr.Result);
        }

        private const string Program = @"using System;
using System.IO;
using HotpatchTools.Engine;
using HotpatchTools.Engine.Format;
using HotpatchTools.Engine.Patching;

string mode = args[0];
var patch = MicropatchParser.Parse(File.ReadAllBytes(args[1]), Path.GetFileName(args[1]));
int pid = int.Parse(args[2]);
var engine = new HotpatchEngine(options: new EngineOptions { ThreadWait = TimeSpan.FromMilliseconds(300) });
Console.Out.Flush();
for (long round = 0; ; round++)
{
    try
    {
        if (mode != ""uninstall"") { engine.Install(patch, pid); Console.WriteLine(""installed""); }
        if (mode != ""install"") { engine.Uninstall(pid, patch.Id); Console.WriteLine(""removed""); }
    }
    catch (HotpatchException e)
    {
        Console.WriteLine(""error "" + e.Kind + "" "" + e.Message.Replace('\n', ' '));
        if (mode != ""loop"") return 1;
    }
    if (mode != ""loop"") return 0;
}
";
    }
}
