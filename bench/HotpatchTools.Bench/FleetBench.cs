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

                double f = floor.Elapsed.TotalMilliseconds;
                string Per(double ms) => (ms / n).ToString("F2", CultureInfo.InvariantCulture) + " ms/process";
                string Of = rounds > 1 ? $" (median of {rounds} rounds)" : "";
                yield return new[] { "Fleet", $"{n} processes: seize+interrupt+detach each (the ptrace floor)", "", $"{f:F0} ms", Per(f), "", "" };
                foreach (var (name, phase, sweep) in new (string, Func<Round, Phase>, string)[]
                {
                    ("install", x => x.Install, "the sweep (Scan) / the installs"),
                    ("uninstall", x => x.Uninstall, "the sweep (caves of every process) / the removals"),
                })
                {
                    var mid = results.Select(phase).OrderBy(x => x.Total).ElementAt(rounds / 2);
                    var first = phase(results[0]);
                    yield return new[] { "", $"{n} processes: machine-wide {name}{Of}", $"{f:F0} ms (floor)", $"{mid.Total:F0} ms", $"{mid.Total / f:F1}× floor, {Per(mid.Total)} ({Per(mid.Cpu)} CPU)", "≤ 1 ms/process", mid.Total / n <= 1.0 ? "yes" : "NO" };
                    yield return new[] { "", "  of which " + sweep, "", $"{mid.Sweep:F0} / {mid.Total - mid.Sweep:F0} ms", "", "", "" };
                    yield return new[] { "", $"  one {char.ToUpperInvariant(name[0]) + name.Substring(1)} call / its threads held (median, on a worker)", "", $"{mid.Call:F2} / {mid.Held:F2} ms", "", "", "" };
                    if (rounds > 1) yield return new[] { "", "  the first round" + (name == "install" ? " (the engine's code compiled as it runs)" : ""), "", $"{first.Total:F0} ms", Per(first.Total), "", "" };
                }
                Console.Write($"[fleet rounds, install/uninstall ms: {string.Join(", ", results.Select(x => $"{x.Install.Total:F0}/{x.Uninstall.Total:F0}"))}] ");
            }
            finally
            {
                foreach (var pid in pids) Program.Kill(pid, 9);
            }
        }

        /// <summary>One machine-wide install or uninstall: its sweep, then its calls, each timed.</summary>
        private sealed class Phase
        {
            public double Total, Sweep, Cpu, Call, Held;
        }

        private sealed class Round
        {
            public Phase Install = null!, Uninstall = null!;
        }

        /// <summary>One machine-wide install of every process, then one machine-wide uninstall, as the cmdlets do them with -Force.</summary>
        private static Round OneRound(HotpatchEngine engine, Micropatch patch, int n)
        {
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            return new Round
            {
                // As Install-Micropatch -Force does it: a sweep, then the installs on a worker per core, outcomes in order.
                Install = Measure(engine, n, "installed in", ref cpu,
                    () => engine.Scan(patch).Where(t => t.State == TargetState.Vulnerable).ToList(),
                    t => engine.Install(patch, t).FreezeTime),
                // As Uninstall-Micropatch -Force does it: every process's caves read, then the removals.
                Uninstall = Measure(engine, n, "removed from", ref cpu,
                    () => engine.RunEach(engine.Platform.ListProcesses(), p => engine.GetInstalled(p.Id))
                        .Where(o => o.Result != null).SelectMany(o => o.Result!.Where(x => x.PatchId == patch.Id)).ToList(),
                    x => engine.Uninstall(x.ProcessId, x.PatchId).FreezeTime),
            };
        }

        /// <summary>Times the sweep, then every call on the engine's workers; each call returns how long it held the threads.</summary>
        private static Phase Measure<T>(HotpatchEngine engine, int n, string done, ref TimeSpan cpu, Func<List<T>> sweep, Func<T, TimeSpan> call)
        {
            var phase = new Phase();
            var clock = Stopwatch.StartNew();
            var items = sweep();
            phase.Sweep = clock.Elapsed.TotalMilliseconds;
            var calls = new System.Collections.Concurrent.ConcurrentBag<(double Call, double Held)>();
            int ok = engine.RunEach(items, item =>
            {
                var one = Stopwatch.StartNew();
                var held = call(item);
                calls.Add((one.Elapsed.TotalMilliseconds, held.TotalMilliseconds));
                return (object)held; // RunEach takes reference results; only whether the call failed counts here.
            }).Count(o => o.Error == null);
            phase.Total = clock.Elapsed.TotalMilliseconds;
            phase.Cpu = Cpu(ref cpu);
            if (ok != n) throw new InvalidOperationException(done + " " + ok + " of " + n + " processes");
            phase.Call = Median(calls.Select(c => c.Call));
            phase.Held = Median(calls.Select(c => c.Held));
            return phase;
        }

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
