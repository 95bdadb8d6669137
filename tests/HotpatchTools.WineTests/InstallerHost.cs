using System.Diagnostics;
using System.Globalization;
using System.Threading;
using System.Runtime.CompilerServices;
using HotpatchTools.Engine.Format;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// The test program doubles as the installer the Wine kill tests kill (the Linux suite builds a separate fault
    /// host with the SDK, which Wine has not): started as `HotpatchTools.WineTests.exe --installer install|uninstall
    /// PATCHFILE PID`, it runs the engine once and exits before xunit starts. One line on stdout per outcome:
    /// "installed", "removed" or "error KIND MESSAGE"; a failpoint (HOTPATCHTOOLS_FAILPOINT) prints its line and holds.
    /// </summary>
    internal static class InstallerHost
    {
        public const string Flag = "--installer";

        [ModuleInitializer]
        internal static void RunIfAsked()
        {
            var args = Environment.GetCommandLineArgs();
            if (args.Length >= 2 && args[1] == PlatformBench.Flag) Environment.Exit(PlatformBench.Run());
            if (args.Length >= 4 && args[1] == PlatformBench.WatcherFlag) Environment.Exit(PlatformBench.Watcher(args[2], int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture)));
            if (args.Length < 5 || args[1] != Flag) return;
            Environment.Exit(Run(args[2], args[3], int.Parse(args[4], System.Globalization.CultureInfo.InvariantCulture)));
        }

        private static int Run(string mode, string file, int pid)
        {
            var patch = MicropatchParser.Parse(File.ReadAllBytes(file), Path.GetFileName(file));
            var engine = new HotpatchEngine(options: new EngineOptions { ThreadWait = TimeSpan.FromSeconds(5) });
            try
            {
                if (mode == "install") { engine.Install(patch, pid); Console.WriteLine("installed"); }
                else { engine.Uninstall(pid, patch.Id); Console.WriteLine("removed"); }
                return 0;
            }
            catch (HotpatchException e)
            {
                Console.WriteLine("error " + e.Kind + " " + e.Message.Replace('\n', ' '));
                return 1;
            }
        }

        /// <summary>
        /// Starts this program as the installer, held at `failPoint` by the fail point, and kills it there: what an admin's
        /// kill or a remediation timeout does to a real installer. Returns once the installer is dead.
        /// </summary>
        public static void KillAt(string mode, string file, int pid, string failPoint)
        {
            var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, RedirectStandardInput = true, UseShellExecute = false };
            foreach (var a in new[] { Flag, mode, file, pid.ToString(CultureInfo.InvariantCulture) }) psi.ArgumentList.Add(a);
            psi.Environment[FailPoint.Variable] = failPoint;
            using var host = Process.Start(psi)!;
            try
            {
                string? reached = null;
                var reader = new Thread(() => reached = host.StandardOutput.ReadLine()) { IsBackground = true };
                reader.Start();
                Assert.True(reader.Join(TimeSpan.FromSeconds(120)), "the installer did not reach " + failPoint);
                Assert.Equal("failpoint " + failPoint, reached);
            }
            finally
            {
                host.Kill();
                Assert.True(host.WaitForExit(20_000), "the installer did not die");
            }
        }
    }
}
