namespace HotpatchTools.Tests.Support
{
    /// <summary>The few things the engine tests say differently on Linux and on Windows (under Wine).</summary>
    public static class TestPlatform
    {
        public static bool IsWindows => OperatingSystem.IsWindows();

        public static string Os => IsWindows ? "windows" : "linux";

        /// <summary>Patch code that returns the process id by calling into another module, ABI-correctly.</summary>
        public static string CallProcessIdCode => IsWindows
            ? "push rdi\nsub rsp, 32\ncall kernel32.dll!GetCurrentProcessId\nadd rsp, 32\npop rdi\nret"
            : "push rdi\ncall libc.so.6!getpid\npop rdi\nret";

        /// <summary>An identity line this platform's module reader checks, with a value no module has.</summary>
        public static (string Line, string Field) WrongIdentity => IsWindows
            ? ("timeDateStamp: 0x01020304", "timeDateStamp")
            : ("buildId: 0123456789abcdef", "buildId");

        public static string ModuleName(string exePath) => Path.GetFileName(exePath);
    }
}
