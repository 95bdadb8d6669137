using System;
using System.Threading;

namespace HotpatchTools.Engine
{
    /// <summary>
    /// Named points in the install and uninstall sequences where the fault-injection tests freeze the installer
    /// (HOTPATCHTOOLS_FAILPOINT=name) so they can SIGKILL it exactly there. Unset, a hit is one null check.
    /// </summary>
    public static class FailPoint
    {
        public const string Variable = "HOTPATCHTOOLS_FAILPOINT";

        private static readonly string? Armed = Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } v ? v : null;

        public static void Hit(string name)
        {
            if (Armed == null || !string.Equals(Armed, name, StringComparison.Ordinal)) return;
            Console.Out.WriteLine("failpoint " + name);
            Console.Out.Flush();
            Thread.Sleep(Timeout.Infinite);
        }
    }
}
