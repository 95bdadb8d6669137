using System.Globalization;
using HotpatchTools.Engine.Format;

namespace HotpatchTools.Tests.Support
{
    /// <summary>
    /// Targets under module names of their own: enforcement and compliance sweep the whole machine, so each
    /// test's patches must match only that test's processes (never another test's target or WideTarget).
    /// </summary>
    internal static class WorkflowTargets
    {
        /// <summary>tests/native/target.c under its own name (at most 15 characters: Linux's comm).</summary>
        public static string Exe(string name) => NativeBuild.Build(name, "-O2 -pthread", "target.c", "sites.S");

        /// <summary>
        /// The enforcement target on either platform: built here on Linux, prebuilt by tests/wine/run.sh (a copy of
        /// target.exe named enftarget.exe) under Wine.
        /// </summary>
        public static string PortableExe() => TestPlatform.IsWindows ? NativeBuild.Prebuilt("enftarget.exe") : Exe("enftarget");

        /// <summary>faulttarget.c, which dlopen()s a library when told to ("load PATH").</summary>
        public static string LateLoader(string name) => NativeBuild.Build(name, "-O2", "faulttarget.c");

        /// <summary>faultlib.S as a library of its own name; lib_triple(x) = 3x + 1.</summary>
        public static string Library(string soname) => NativeBuild.Build(soname, "-shared -fPIC", "faultlib.S");

        /// <summary>lea eax, [rdi+rdi*2]; add eax, 1 — the first two instructions of triple and lib_triple.</summary>
        public static readonly byte[] TripleBytes = { 0x8d, 0x04, 0x7f, 0x83, 0xc0, 0x01 };

        public static string GuardYaml(string id, string module) =>
            PatchFiles.Yaml(id, module, new[] { new PatchletSpec("triple", TripleBytes, PatchFiles.GuardCode) });

        public static string LibraryYaml(string id, string soname) =>
            PatchFiles.Yaml(id, soname, new[] { new PatchletSpec("lib_triple", TripleBytes, "mov eax, 7\nret") });

        public static Micropatch Guard(string id, string module) => PatchFiles.Parse(GuardYaml(id, module));

        public static Micropatch LibraryPatch(string id, string soname) => PatchFiles.Parse(LibraryYaml(id, soname));

        /// <summary>Whether the site of `symbol` in the named module of a live process holds a jump (read from /proc, not through the engine).</summary>
        public static bool SiteJumps(TargetProcess t, string modulePath, string symbol)
        {
            var starts = File.ReadAllLines("/proc/" + t.Pid + "/maps").Where(l => l.EndsWith(modulePath, StringComparison.Ordinal))
                .Select(l => ulong.Parse(l[..l.IndexOf('-')], NumberStyles.HexNumber, CultureInfo.InvariantCulture)).ToList();
            if (starts.Count == 0) return false;
            return t.Read(starts.Min() + NativeBuild.SymbolRva(modulePath, symbol), 1)[0] == 0xE9;
        }
    }
}
