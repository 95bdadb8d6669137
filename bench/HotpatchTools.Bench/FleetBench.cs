using System.Globalization;

namespace HotpatchTools.Bench
{
    /// <summary>
    /// Issue 16's fleet of one machine: many identical single-thread processes that load one module, patched and
    /// unpatched machine-wide the way Install-/Uninstall-Micropatch -Force do it (a sweep, then a worker per core),
    /// next to the floor any ptrace patcher pays per process: seize, interrupt, wait for the stop, detach.
    /// </summary>
    internal static class FleetBench
    {
        public static IEnumerable<string[]> Run(string exe, HotpatchEngine engine, bool quick)
        {
            int n = quick ? 200 : 1000;
            var patch = MicropatchParser.Parse(Encoding.UTF8.GetBytes(
                "format: 1\nid: BENCH-FLEET\ntitle: Benchmark fleet\ntarget:\n  os: linux\n  arch: x64\n  module: fleettarget\n" +
                "patchlets:\n  - at: work_fn\n    expect: 89 f8 83 c0 01\n    mode: insert\n"), "BENCH-FLEET.micropatch.yaml");
            var pids = Spawn(exe, n);
            try
            {
                // Every process has mapped its module and is asleep in its loop before anything is timed.
                System.Threading.Thread.Sleep(500);
                var floor = Stopwatch.StartNew();
                int stopped = pids.Count(Ptrace.StopAndRelease);
                floor.Stop();
                if (stopped != n) throw new InvalidOperationException("the ptrace floor stopped " + stopped + " of " + n + " processes");

                // Rounds over the same processes: the first also pays for compiling the engine's code (as the first
                // machine-wide install of a PowerShell session does); the goal is judged on the median round.
                int rounds = quick ? 1 : 5;
                var results = new List<Round>();
                for (int r = 0; r < rounds; r++) results.Add(OneRound(engine, patch, n));
                var mid = results.OrderBy(x => x.Install).ElementAt(rounds / 2);
                var midU = results.OrderBy(x => x.Uninstall).ElementAt(rounds / 2);
                var first = results[0];

                double f = floor.Elapsed.TotalMilliseconds;
                string Per(double ms) => (ms / n).ToString("F2", CultureInfo.InvariantCulture) + " ms/process";
                string Of = rounds > 1 ? $" (median of {rounds} rounds)" : "";
                yield return new[] { "Fleet", $"{n} processes: seize+interrupt+detach each (the ptrace floor)", "", $"{f:F0} ms", Per(f), "", "" };
                yield return new[] { "", $"{n} processes: machine-wide install{Of}", $"{f:F0} ms (floor)", $"{mid.Install:F0} ms", $"{mid.Install / f:F1}× floor, {Per(mid.Install)} ({Per(mid.InstallCpu)} CPU)", "≤ 1 ms/process", mid.Install / n <= 1.0 ? "yes" : "NO" };
                yield return new[] { "", "  of which the sweep (Scan) / the installs", "", $"{mid.Sweep:F0} / {mid.Install - mid.Sweep:F0} ms", "", "", "" };
                yield return new[] { "", "  one Install call / its threads held (median, on a worker)", "", $"{mid.InstallCall:F2} / {mid.InstallHeld:F2} ms", "", "", "" };
                if (rounds > 1) yield return new[] { "", "  the first round (the engine's code compiled as it runs)", "", $"{first.Install:F0} ms", Per(first.Install), "", "" };
                yield return new[] { "", $"{n} processes: machine-wide uninstall{Of}", $"{f:F0} ms (floor)", $"{midU.Uninstall:F0} ms", $"{midU.Uninstall / f:F1}× floor, {Per(midU.Uninstall)} ({Per(midU.UninstallCpu)} CPU)", "≤ 1 ms/process", midU.Uninstall / n <= 1.0 ? "yes" : "NO" };
                yield return new[] { "", "  of which the sweep (caves of every process) / the removals", "", $"{midU.Listing:F0} / {midU.Uninstall - midU.Listing:F0} ms", "", "", "" };
                yield return new[] { "", "  one Uninstall call / its threads held (median, on a worker)", "", $"{midU.UninstallCall:F2} / {midU.UninstallHeld:F2} ms", "", "", "" };
                if (rounds > 1) yield return new[] { "", "  the first round", "", $"{first.Uninstall:F0} ms", Per(first.Uninstall), "", "" };
                Console.Write($"[fleet rounds, install/uninstall ms: {string.Join(", ", results.Select(x => $"{x.Install:F0}/{x.Uninstall:F0}"))}] ");
            }
            finally
            {
                foreach (var pid in pids) Program.Kill(pid, 9);
            }
        }

        private sealed class Round
        {
            public double Install, Sweep, InstallCpu, InstallCall, InstallHeld, Uninstall, Listing, UninstallCpu, UninstallCall, UninstallHeld;
        }

        /// <summary>One machine-wide install of every process, then one machine-wide uninstall, as the cmdlets do them with -Force.</summary>
        private static Round OneRound(HotpatchEngine engine, Micropatch patch, int n)
        {
            var round = new Round();
            // As Install-Micropatch -Force does it: a sweep, then the installs on a worker per core, outcomes in order.
            var install = Stopwatch.StartNew();
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            var targets = engine.Scan(patch).Where(t => t.State == TargetState.Vulnerable).ToList();
            round.Sweep = install.Elapsed.TotalMilliseconds;
            int installed = 0;
            var installCalls = new System.Collections.Concurrent.ConcurrentBag<(double Call, double Held)>();
            foreach (var o in engine.RunEach(targets, Timed(installCalls, (TargetStatus t) => engine.Install(patch, t), r => r.FreezeTime)))
                if (o.Error == null) installed++;
            round.Install = install.Elapsed.TotalMilliseconds;
            round.InstallCpu = Cpu(ref cpu);
            if (installed != n) throw new InvalidOperationException("installed in " + installed + " of " + n + " processes");
            round.InstallCall = Median(installCalls.Select(c => c.Call));
            round.InstallHeld = Median(installCalls.Select(c => c.Held));

            // As Uninstall-Micropatch -Force does it: every process's caves read, then the removals.
            var uninstall = Stopwatch.StartNew();
            var mine = new List<InstalledPatch>();
            foreach (var o in engine.RunEach(engine.Platform.ListProcesses(), p => engine.GetInstalled(p.Id)))
                if (o.Result != null) mine.AddRange(o.Result.Where(x => x.PatchId == patch.Id));
            round.Listing = uninstall.Elapsed.TotalMilliseconds;
            int removed = 0;
            var removeCalls = new System.Collections.Concurrent.ConcurrentBag<(double Call, double Held)>();
            foreach (var o in engine.RunEach(mine, Timed(removeCalls, (InstalledPatch x) => engine.Uninstall(x.ProcessId, x.PatchId), r => r.FreezeTime)))
                if (o.Error == null) removed++;
            round.Uninstall = uninstall.Elapsed.TotalMilliseconds;
            round.UninstallCpu = Cpu(ref cpu);
            if (removed != n) throw new InvalidOperationException("removed from " + removed + " of " + n + " processes");
            round.UninstallCall = Median(removeCalls.Select(c => c.Call));
            round.UninstallHeld = Median(removeCalls.Select(c => c.Held));
            return round;
        }

        /// <summary>The work, with each call's time and how long it held the threads added to `calls`.</summary>
        private static Func<TItem, TResult> Timed<TItem, TResult>(System.Collections.Concurrent.ConcurrentBag<(double Call, double Held)> calls, Func<TItem, TResult> work, Func<TResult, TimeSpan> held) =>
            item =>
            {
                var clock = Stopwatch.StartNew();
                var result = work(item);
                calls.Add((clock.Elapsed.TotalMilliseconds, held(result).TotalMilliseconds));
                return result;
            };

        private static double Median(IEnumerable<double> values)
        {
            var v = values.OrderBy(x => x).ToList();
            return v.Count == 0 ? double.NaN : v[v.Count / 2];
        }

        /// <summary>Milliseconds of CPU this process spent since the last mark, all threads (a loaded machine stretches the wall clock, not this).</summary>
        private static double Cpu(ref TimeSpan last)
        {
            var now = Process.GetCurrentProcess().TotalProcessorTime;
            double ms = (now - last).TotalMilliseconds;
            last = now;
            return ms;
        }

        /// <summary>Starts `count` copies through one shell that exits, so none is our child (as services are not).</summary>
        private static List<int> Spawn(string exe, int count)
        {
            var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, UseShellExecute = false };
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add("i=0; while [ $i -lt \"$1\" ]; do \"$0\" </dev/null >/dev/null 2>&1 & echo $!; i=$((i+1)); done");
            psi.ArgumentList.Add(exe);
            psi.ArgumentList.Add(count.ToString(CultureInfo.InvariantCulture));
            using var p = Process.Start(psi)!;
            var pids = p.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToList();
            p.WaitForExit();
            return pids;
        }

        private static class Ptrace
        {
            private const int PTRACE_DETACH = 17, PTRACE_SEIZE = 0x4206, PTRACE_INTERRUPT = 0x4207, WALL = 0x40000000;

            [DllImport("libc.so.6", SetLastError = true)] private static extern long ptrace(long request, int pid, IntPtr addr, IntPtr data);
            [DllImport("libc.so.6", SetLastError = true)] private static extern int waitpid(int pid, out int status, int options);

            /// <summary>What every ptrace patcher does at least once per process: attach, stop it, wait for the stop, let it go.</summary>
            public static bool StopAndRelease(int pid)
            {
                if (ptrace(PTRACE_SEIZE, pid, IntPtr.Zero, IntPtr.Zero) != 0) return false;
                bool ok = ptrace(PTRACE_INTERRUPT, pid, IntPtr.Zero, IntPtr.Zero) == 0 && waitpid(pid, out _, WALL) == pid;
                ptrace(PTRACE_DETACH, pid, IntPtr.Zero, IntPtr.Zero);
                return ok;
            }
        }
    }
}
