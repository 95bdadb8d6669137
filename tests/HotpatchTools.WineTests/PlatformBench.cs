using System.Diagnostics;
using System.Globalization;
using System.Threading;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// The figures that differ most between the Linux and the Windows freeze, measured by the same code on both:
    /// `HotpatchTools.WineTests.exe --bench` under Wine, `dotnet run --project tests/HotpatchTools.WineTests -- --bench`
    /// on Linux (tests/wine/run.sh --bench runs both and prints them side by side). One "row|figure|value" line each.
    /// </summary>
    internal static class PlatformBench
    {
        public const string Flag = "--bench";

        public static int Run()
        {
            CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
            Thread.CurrentThread.CurrentCulture = CultureInfo.InvariantCulture;
            Console.WriteLine("platform bench: " + TestPlatform.Os + ", " + Environment.ProcessorCount + " cores, .NET " + Environment.Version);
            // HOTPATCH_BENCH_ROWS=watch: the watch rows alone (the freeze rows take minutes).
            if (Environment.GetEnvironmentVariable("HOTPATCH_BENCH_ROWS") != "watch")
            {
                Warm();
                foreach (var (busy, idle) in new[] { (2, 0), (2, 16), (2, 64) }) Freeze(busy, idle);
                ThreadInSpan();
            }
            Watch();
            return 0;
        }

        private static void Row(string figure, string value) => Console.WriteLine("row|" + figure + "|" + value);

        private static double Median(List<double> v) { var s = v.OrderBy(x => x).ToList(); return s.Count == 0 ? double.NaN : (s[(s.Count - 1) / 2] + s[s.Count / 2]) / 2; }

        private static Engine.Format.Micropatch Patch(TargetProcess t) =>
            PatchFiles.For(t, "BENCH-W", new PatchletSpec("triple", t.ReadSymbol("triple", 6)), new PatchletSpec("short_jcc", t.ReadSymbol("short_jcc", 7)));

        private static void Warm()
        {
            using var t = TargetProcess.Start();
            var engine = new HotpatchEngine();
            var patch = Patch(t);
            for (int i = 0; i < 3; i++) { engine.Install(patch, t.Pid); engine.Uninstall(t.Pid, patch.Id); }
        }

        /// <summary>Threads held (the engine's FreezeTime), a bare stop and release, and a whole install / uninstall call.</summary>
        private static void Freeze(int busy, int idle)
        {
            const int Cycles = 20;
            using var t = TargetProcess.Start();
            if (t.Send("hammer " + busy) != "ok") throw new InvalidOperationException("hammer");
            if (idle > 0 && t.Send("sleepers " + idle) != "ok") throw new InvalidOperationException("sleepers");
            Thread.Sleep(200);
            var engine = new HotpatchEngine();
            var patch = Patch(t);
            var held = new List<double>(); var unheld = new List<double>(); var install = new List<double>(); var uninstall = new List<double>(); var stop = new List<double>();
            using (var target = engine.Platform.Open(t.Pid))
            {
                for (int i = 0; i < Cycles; i++)
                {
                    var sw = Stopwatch.StartNew();
                    target.Threads.Freeze(TimeSpan.FromSeconds(10)).Dispose();
                    stop.Add(sw.Elapsed.TotalMilliseconds);
                }
            }
            for (int i = 0; i < Cycles; i++)
            {
                var sw = Stopwatch.StartNew();
                var ir = engine.Install(patch, t.Pid);
                install.Add(sw.Elapsed.TotalMilliseconds);
                held.Add(ir.FreezeTime.TotalMilliseconds);
                sw.Restart();
                var ur = engine.Uninstall(t.Pid, patch.Id);
                uninstall.Add(sw.Elapsed.TotalMilliseconds);
                unheld.Add(ur.FreezeTime.TotalMilliseconds);
            }
            if (t.Stats().Errors != 0) throw new InvalidOperationException("the target computed wrong results");
            int n = 1 + busy + idle;
            Row($"{n} threads: threads held, install / uninstall (median of {Cycles}, max)", $"{Median(held):F2} / {Median(unheld):F2} ms (max {held.Max():F2} / {unheld.Max():F2})");
            Row($"{n} threads: stop and release alone (median, max)", $"{Median(stop):F2} ms (max {stop.Max():F2})");
            Row($"{n} threads: per-process cost, Install / Uninstall call (median)", $"{Median(install):F1} / {Median(uninstall):F1} ms");
        }

        public const string WatcherFlag = "--watcher";

        /// <summary>
        /// The watcher of the watch rows, as a process of its own (`--watcher MODULE SECONDS`): this bench runs inside the
        /// program's module initializer, where a thread of this program started meanwhile never ran (seen: its first
        /// statement was never reached). It watches with a ten-minute pass interval and prints its log, "pass" after each pass.
        /// </summary>
        public static int Watcher(string module, int seconds)
        {
            var patch = WorkflowTargets.Guard("BENCH-WATCH", module);
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
            new Engine.Catalog.Enforcer(new HotpatchEngine(), m => Console.WriteLine("log " + m))
                .Watch(() => new[] { patch }, TimeSpan.FromMinutes(10), p => Console.WriteLine("pass " + p.Results.Count), stop.Token);
            return 0;
        }

        /// <summary>
        /// Sync-Micropatch -Watch with its events (the pass interval ten minutes, so only they act): where they come
        /// from, a new process patched how long after it answered, and what the watcher costs while nothing happens.
        /// </summary>
        private static void Watch()
        {
            const int Rounds = 5;
            string exe;
            if (TestPlatform.IsWindows)
            {
                var source = NativeBuild.Prebuilt("target.exe");
                exe = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(source)!, "bwatch.exe");
                System.IO.File.Copy(source, exe, overwrite: true);
                System.IO.File.Copy(source + ".syms", exe + ".syms", overwrite: true);
            }
            else exe = NativeBuild.Build("bwatch", "-O2 -pthread", "target.c", "sites.S");
            var info = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in new[] { WatcherFlag, System.IO.Path.GetFileName(exe), "120" }) info.ArgumentList.Add(a);
            using var watcher = Process.Start(info)!;
            try
            {
                string? source = null;
                for (string? line; (line = watcher.StandardOutput.ReadLine()) != null;)
                {
                    if (line.StartsWith("log watch: ", StringComparison.Ordinal)) source = line.Substring(11);
                    if (line.StartsWith("pass ", StringComparison.Ordinal)) break;
                }
                Row("watch: event source", source ?? "?");
                var delays = new List<double>();
                for (int i = 0; i < Rounds + 1; i++)
                {
                    using var t = TargetProcess.Start(exe);
                    var sw = Stopwatch.StartNew();
                    while (t.ReadSymbol("triple", 1)[0] != 0xE9)
                    {
                        if (sw.Elapsed > TimeSpan.FromSeconds(30)) throw new InvalidOperationException("not patched within 30 s");
                        Thread.Sleep(2);
                    }
                    if (i > 0) delays.Add(sw.Elapsed.TotalMilliseconds); // the first pays for compiling the install path
                }
                Row($"watch: new process -> patched, after it answered (median of {Rounds}, max; pass interval 10 min)", $"{Median(delays):F0} ms (max {delays.Max():F0})");
                Thread.Sleep(3000); // the watcher's runtime recompiles its loop in the background during its first seconds
                var span = TimeSpan.FromSeconds(10);
                watcher.Refresh();
                var cpu0 = watcher.TotalProcessorTime;
                var (_, server, seconds) = WindowsWatchTests.IdleCost(span);
                watcher.Refresh();
                double own = (watcher.TotalProcessorTime - cpu0).TotalSeconds / seconds;
                Row("watch: idle CPU, % of a core (the watcher; under Wine with the wineserver)", $"{(own + (server ?? 0)) * 100:F2}%");
            }
            finally
            {
                try { watcher.Kill(); } catch (InvalidOperationException) { }
                watcher.WaitForExit(10000);
            }
        }

        /// <summary>How long a refusal takes when a thread never leaves the span, beyond the configured wait.</summary>
        private static void ThreadInSpan()
        {
            const int Rounds = 5;
            var wait = TimeSpan.FromMilliseconds(300);
            using var t = TargetProcess.Start();
            if (t.Send("park spin") != "ok") throw new InvalidOperationException("park spin");
            var engine = new HotpatchEngine(options: new EngineOptions { ThreadWait = wait });
            var patch = PatchFiles.For(t, "BENCH-SPIN", new PatchletSpec("spin_fn", t.ReadSymbol("spin_fn", 9)));
            var took = new List<double>();
            for (int i = 0; i < Rounds; i++)
            {
                var sw = Stopwatch.StartNew();
                try { engine.Install(patch, t.Pid); throw new InvalidOperationException("installed over a spinning thread"); }
                catch (HotpatchException e) when (e.Kind == HotpatchErrorKind.ThreadInSpan) { }
                took.Add(sw.Elapsed.TotalMilliseconds);
            }
            Row($"thread in span: refusal with a {wait.TotalMilliseconds} ms wait (median of {Rounds}, max)", $"{Median(took):F0} ms (max {took.Max():F0})");
        }
    }
}
