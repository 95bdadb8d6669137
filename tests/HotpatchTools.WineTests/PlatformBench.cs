using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Threading;
using HotpatchTools.Engine;
using HotpatchTools.Engine.Patching;
using HotpatchTools.Tests.Support;

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
            Warm();
            foreach (var (busy, idle) in new[] { (2, 0), (2, 16), (2, 64) }) Freeze(busy, idle);
            ThreadInSpan();
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
