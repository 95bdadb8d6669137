using System.Security.Cryptography;
using System.Text;

namespace HotpatchTools.Tests.Support
{
    /// <summary>
    /// The native test targets. On Linux they are compiled here with gcc, once per source content; under
    /// Wine they were built beforehand with mingw (tests/wine/run.sh) into HOTPATCH_NATIVE_DIR.
    /// </summary>
    public static class NativeBuild
    {
        private static readonly object Gate = new object();

        public static string NativeDir => Path.Combine(AppContext.BaseDirectory, "native");

        public static string Target => TestPlatform.IsWindows ? Prebuilt("target.exe") : Build("target", "-O2 -pthread", "target.c", "sites.S");

        /// <summary>The same target under another module name, for machine-wide tests: they must not reach other tests' targets.</summary>
        public static string WideTarget => TestPlatform.IsWindows ? Prebuilt("widetarget.exe") : Build("widetarget", "-O2 -pthread", "target.c", "sites.S");

        /// <summary>A target tests/wine/run.sh built with mingw beforehand.</summary>
        public static string Prebuilt(string name)
        {
            var dir = Environment.GetEnvironmentVariable("HOTPATCH_NATIVE_DIR") ?? throw new InvalidOperationException("HOTPATCH_NATIVE_DIR is not set (tests/wine/run.sh sets it).");
            var path = Path.Combine(dir, name);
            return File.Exists(path) ? path : throw new FileNotFoundException("prebuilt target missing", path);
        }

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
                File.WriteAllText(exe + ".syms", Run("nm", "--defined-only", tmp));
                File.Move(tmp, exe, overwrite: true);
                return exe;
            }
        }

        /// <summary>Symbol RVAs from the nm listing beside the target (an oracle independent of the engine's readers).</summary>
        public static ulong SymbolRva(string exe, string name)
        {
            var lines = File.ReadAllLines(exe + ".syms");
            ulong Value(string symbol) =>
                lines.Select(l => l.Split(' ')).Where(f => f.Length == 3 && f[2] == symbol).Select(f => Convert.ToUInt64(f[0], 16)).FirstOrDefault();
            ulong value = Value(name);
            if (value == 0) throw new InvalidOperationException("no symbol " + name + " in " + exe + ".syms");
            return value - Value("__ImageBase"); // PE listings are VAs; ELF (PIE) listings are already RVAs
        }

        /// <summary>Cross toolchains by prefix, for the hint when one is missing; anything else is in binutils.</summary>
        private static readonly (string Prefix, string Package)[] Packages =
        {
            ("x86_64-w64-mingw32-", "gcc-mingw-w64-x86-64-win32"),
            ("i686-w64-mingw32-", "gcc-mingw-w64-i686-win32"),
        };

        /// <summary>
        /// Runs a native tool (compiler, binutils) and returns its output. A missing tool fails the test with the
        /// package to install, rather than skipping it.
        /// </summary>
        public static string Run(string file, params string[] args)
        {
            bool onPath = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
                .Any(d => d.Length > 0 && File.Exists(Path.Combine(d, file)));
            if (!onPath)
            {
                var package = Packages.FirstOrDefault(p => file.StartsWith(p.Prefix, StringComparison.Ordinal)).Package ?? "binutils";
                throw new InvalidOperationException(file + " is not installed: install Debian's " + package
                    + " (apt-get install -y --no-install-recommends " + package + ")");
            }
            // objdump prints the COFF time stamp with ctime(), in local time.
            var (exit, stdout, stderr) = ChildProcess.Run(file, args, 120_000, new Dictionary<string, string> { ["TZ"] = "UTC" });
            if (exit != 0) throw new InvalidOperationException(file + " " + string.Join(" ", args) + " failed (" + exit + "):\n" + stderr);
            return stdout;
        }
    }
}
