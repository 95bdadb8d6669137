using System.Threading;

namespace HotpatchTools.Engine
{
    /// <summary>
    /// Named points in the install and uninstall sequences where the fault-injection tests hold the installer
    /// (HOTPATCHTOOLS_FAILPOINT=name) so they can SIGKILL it, or kill its target, exactly there. With
    /// HOTPATCHTOOLS_FAILPOINT_RESUME=1 the installer goes on after a line on its stdin instead of waiting forever.
    /// Unset, a hit is one null check.
    /// </summary>
    internal static class FailPoint
    {
        public const string Variable = "HOTPATCHTOOLS_FAILPOINT";
        public const string ResumeVariable = "HOTPATCHTOOLS_FAILPOINT_RESUME";

        private static readonly string? Armed = Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } v ? v : null;
        private static readonly bool Resumable = Environment.GetEnvironmentVariable(ResumeVariable) == "1";

        public static void Hit(string name)
        {
            if (Armed == null || !string.Equals(Armed, name, StringComparison.Ordinal)) return;
            Console.Out.WriteLine("failpoint " + name);
            Console.Out.Flush();
            if (Resumable) Console.In.ReadLine();
            else Thread.Sleep(Timeout.Infinite);
        }
    }
}
