using System.Diagnostics;

namespace HotpatchTools.Tests.Support
{
    /// <summary>Programs the tests run to their end with the output captured: native tools and dotnet builds.</summary>
    internal static class ChildProcess
    {
        /// <summary>
        /// Runs <paramref name="file"/> to its end and returns its exit code and output. One still running after
        /// <paramref name="timeoutMs"/> is killed, with its children, and fails the test.
        /// </summary>
        public static (int Exit, string Stdout, string Stderr) Run(string file, IEnumerable<string> args, int timeoutMs,
            IReadOnlyDictionary<string, string>? environment = null)
        {
            var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in args) psi.ArgumentList.Add(a);
            if (environment != null) foreach (var kv in environment) psi.Environment[kv.Key] = kv.Value;
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(timeoutMs)) { p.Kill(entireProcessTree: true); throw new TimeoutException(file + " " + string.Join(" ", args)); }
            return (p.ExitCode, stdout.Result, stderr.Result);
        }

        /// <summary>Runs dotnet with the arguments, leaving no build server behind; a failure throws with dotnet's output.</summary>
        public static void Dotnet(params string[] args)
        {
            var (exit, stdout, stderr) = Run("dotnet", args.Concat(new[] { "-nologo", "-v:q", "-nodeReuse:false", "-p:UseSharedCompilation=false" }), 300_000);
            if (exit != 0) throw new InvalidOperationException("dotnet " + string.Join(" ", args) + " failed (" + exit + "):\n" + stdout + stderr);
        }
    }
}
