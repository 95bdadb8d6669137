using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// Under Wine 8 the first exception the runtime catches leaves a stale frame on the thread's SEH list, and a later
    /// exception on that thread then recursed into a stack overflow that hung the program: after a failing or skipped
    /// test the next one never started. tests/wine/stale_seh_frames.c (built by run.sh) drops such frames before each
    /// dispatch; it is loaded here, before xunit runs anything. Without it under Wine the program refuses to run rather
    /// than hang on the first failure.
    /// </summary>
    internal static class WineSehFix
    {
        public const string Library = "stale_seh_frames.dll";

        [ModuleInitializer]
        internal static void Load()
        {
            // The stale frames are those of Wine's x86_64 dispatcher; the win-x86 run (Wow64HostTests) has no such frames to drop.
            if (!OperatingSystem.IsWindows() || !Environment.Is64BitProcess || !UnderWine()) return;
            var dir = Environment.GetEnvironmentVariable("HOTPATCH_NATIVE_DIR");
            if (dir is not null && NativeLibrary.TryLoad(Path.Combine(dir, Library), out _)) return;
            Console.Error.WriteLine($"Fatal error. {Library} not loaded from HOTPATCH_NATIVE_DIR ({dir ?? "unset"}): under Wine a failing test would hang the run (see tests/wine/run.sh).");
            Environment.Exit(3);
        }

        private static bool UnderWine() =>
            NativeLibrary.TryLoad("ntdll.dll", out var ntdll) && NativeLibrary.TryGetExport(ntdll, "wine_get_version", out _);
    }
}
