using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using System.Threading;

namespace HotpatchTools.Tests.Support
{
    /// <summary>Compiles the native test targets with gcc, once per source content.</summary>
    public static class NativeBuild
    {
        private static readonly object Gate = new object();

        public static string NativeDir => Path.Combine(AppContext.BaseDirectory, "native");

        public static string Target => Build("target", "-O2 -pthread", "target.c", "sites.S");

        /// <summary>The same target under another module name, for machine-wide tests: they must not reach other tests' targets.</summary>
        public static string WideTarget => Build("widetarget", "-O2 -pthread", "target.c", "sites.S");

        public static string Build(string name, string flags, params string[] sources)
        {
            var paths = sources.Select(s => Path.Combine(NativeDir, s)).ToArray();
            var key = new StringBuilder(flags);
            foreach (var p in paths) key.Append(File.ReadAllText(p));
            var hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key.ToString())))[..16];
            var dir = Path.Combine(Path.GetTempPath(), "hotpatchtools-native", hash);
            var exe = Path.Combine(dir, name);
            lock (Gate)
            {
                if (File.Exists(exe)) return exe;
                Directory.CreateDirectory(dir);
                var tmp = exe + ".tmp" + Environment.ProcessId;
                Run("gcc", flags.Split(' ').Concat(new[] { "-o", tmp }).Concat(paths).ToArray());
                File.Move(tmp, exe, overwrite: true);
                return exe;
            }
        }

        public static string Run(string file, params string[] args)
        {
            var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in args) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(120_000)) { p.Kill(); throw new TimeoutException(file + " " + string.Join(" ", args)); }
            if (p.ExitCode != 0) throw new InvalidOperationException(file + " " + string.Join(" ", args) + " failed (" + p.ExitCode + "):\n" + stderr.Result);
            return stdout.Result;
        }
    }
}
