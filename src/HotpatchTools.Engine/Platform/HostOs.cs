using System.Runtime.InteropServices;

namespace HotpatchTools.Engine.Platform
{
    /// <summary>The OS this engine runs on (not the target's: a patch file names that).</summary>
    internal static class HostOs
    {
        public static bool IsWindows { get; } = RuntimeInformation.IsOSPlatform(OSPlatform.Windows);
    }
}
