// HotpatchTools benchmarks: every figure next to a baseline measured in the same run, and the goal from issue 4.
// Run (as root, Linux x64, gcc on PATH):  dotnet run --project bench/HotpatchTools.Bench -c Release
using System.Globalization;

namespace HotpatchTools.Bench
{
    internal static class Program
    {
        private static readonly List<string[]> Rows = new();
        private static string _exe = "";
        private static HotpatchEngine Engine = new HotpatchEngine();

        private static int Main(string[] args)
        {
            CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
            Thread.CurrentThread.CurrentCulture = CultureInfo.InvariantCulture;
            if (!OperatingSystem.IsLinux()) { Console.Error.WriteLine("The benchmarks run on Linux x64 only."); return 2; }
            bool quick = args.Contains("--quick");
            // --workers N: the fleet's workers (default: one per core), for trying other counts.
            int workersAt = Array.IndexOf(args, "--workers");
            if (workersAt >= 0 && workersAt + 1 < args.Length) Engine = new HotpatchEngine(options: new EngineOptions { Workers = int.Parse(args[workersAt + 1], CultureInfo.InvariantCulture) });
            // --only Freeze,Discovery: a subset, for working on one figure.
            int only = Array.IndexOf(args, "--only");
            var sections = only >= 0 && only + 1 < args.Length ? args[only + 1].Split(',') : null;
            bool Wanted(string name) => sections == null || sections.Any(x => name.StartsWith(x, StringComparison.OrdinalIgnoreCase));
            var total = Stopwatch.StartNew();
            var work = Path.Combine(Path.GetTempPath(), "hotpatchtools-bench-" + Environment.ProcessId);
            Directory.CreateDirectory(work);
            try
            {
                _exe = Path.Combine(work, "benchtarget");
                var native = Path.Combine(AppContext.BaseDirectory, "native");
                Run("gcc", "-O2", "-pthread", "-o", _exe, Path.Combine(native, "benchtarget.c"), Path.Combine(native, "bench_sites.S"));
                Console.WriteLine($"HotpatchTools benchmarks — {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, .NET {Environment.Version}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");

                WarmUp();
                if (Wanted("Freeze")) Section("Freeze", () => Freeze(quick));
                if (Wanted("Call overhead")) Section("Call overhead", () => CallOverhead(quick));
                if (Wanted("Discovery")) Section("Discovery", () => Discovery(quick));
                if (Wanted("Import")) Section("Import", () => Import(quick));
                if (Wanted("Watch")) Section("Watch", () => Watch(quick));
                if (Wanted("Module scan")) Section("Module scan", () => ModuleScan(quick));
                if (Wanted("Fleet"))
                {
                    var fleet = Path.Combine(work, "fleettarget");
                    Run("gcc", "-O2", "-o", fleet, Path.Combine(native, "fleettarget.c"), Path.Combine(native, "bench_sites.S"));
                    Section("Fleet", () => Rows.AddRange(FleetBench.Run(fleet, Engine, quick)));
                }
            }
            finally
            {
                try { Directory.Delete(work, true); } catch (IOException) { }
            }
            Console.WriteLine();
            PrintTable();
            Console.WriteLine($"\nTotal run time {total.Elapsed.TotalSeconds:F0} s.");
            return 0;
        }

        // The load average before and after each section: on a shared machine a figure means little without it.
        private static string Load() { try { return string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); } catch (IOException) { return "?"; } }

        private static void Section(string name, Action body)
        {
            var sw = Stopwatch.StartNew();
            Console.Write($"{name} (load {Load()})... ");
            try { body(); Console.WriteLine($"done ({sw.Elapsed.TotalSeconds:F1} s, load {Load()})"); }
            catch (Exception e) { Console.WriteLine("FAILED: " + e.Message); Rows.Add(new[] { name, "failed: " + e.GetType().Name, "", "", "", "", "n/a" }); }
        }

        // ---------- patches ----------

        // work_fn starts with `mov eax, edi; add eax, 1` (89 f8 83 c0 01): see bench/native/bench_sites.S.
        private static Micropatch Patch(string id, string code)
        {
            var sb = new StringBuilder();
            sb.Append("format: 1\nid: ").Append(id).Append("\ntitle: Benchmark ").Append(id).Append('\n');
            sb.Append("target:\n  os: linux\n  arch: x64\n  module: benchtarget\n");
            sb.Append("patchlets:\n  - at: work_fn\n    expect: 89 f8 83 c0 01\n    mode: insert\n");
            if (code.Length > 0)
            {
                sb.Append("    code: |\n");
                foreach (var line in code.Split('\n')) sb.Append("      ").Append(line).Append('\n');
            }
            return MicropatchParser.Parse(Encoding.UTF8.GetBytes(sb.ToString()), id + ".micropatch.yaml");
        }

        private static readonly Micropatch Empty = Patch("BENCH-EMPTY", "");
        // A few instructions that always resume (work_fn is called with x <= 1023).
        private static readonly Micropatch Patchlet = Patch("BENCH-CODE", "cmp edi, 2000\njbe resume\nmov eax, -1\nret");

        private static void WarmUp()
        {
            using var t = new Target(_exe, 2);
            for (int i = 0; i < 3; i++)
            {
                Engine.Install(Empty, t.Pid); Engine.Uninstall(t.Pid, Empty.Id);
                Engine.Install(Patchlet, t.Pid); Engine.Uninstall(t.Pid, Patchlet.Id);
                Engine.Scan(Empty).ToList();
            }
        }

        // ---------- 1. freeze ----------

        private static void Freeze(bool quick)
        {
            const int Cycles = 5;
            var window = TimeSpan.FromMilliseconds(quick ? 400 : 700);
            foreach (int n in (Environment.GetEnvironmentVariable("BENCH_THREADS") ?? "1,16,64,256").Split(",").Select(int.Parse))
            {
                // The judged count gets more rounds: a round's longest gap moves by a millisecond or more on 2 cores,
                // and a median of 5 could not tell +0.8 ms from +1.3 ms.
                int rounds = quick ? 2 : n == 16 ? 15 : 5;
                using var t = new Target(_exe, n);
                Thread.Sleep(200);
                var freezes = new List<double>();
                var unFreezes = new List<double>();

                // The longest gap of any thread; each thread's own is kept too, to see which threads a change reaches (the
                // first one created ran the injected mmap/munmap of every cycle until the quietest thread was chosen instead).
                var lastThreads = Array.Empty<double>();
                double Gap()
                {
                    double any = long.Parse(t.Send("gap")) / 1e6;
                    lastThreads = t.Send("gaps").Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(x => long.Parse(x) / 1e6).ToArray();
                    return any;
                }

                double Untouched()
                {
                    t.Send("reset");
                    Thread.Sleep(window);
                    return Gap();
                }

                // The engine reads and plans as often as it would install, but stops nothing. On a small machine its
                // CPU use alone delays the target's threads; this separates that from the freeze.
                double Inspecting()
                {
                    t.Send("reset");
                    var cw = Stopwatch.StartNew();
                    for (int c = 0; c < Cycles; c++)
                    {
                        Engine.Inspect(Empty, t.Pid);
                        Engine.GetInstalled(t.Pid);
                        Thread.Sleep(window / (Cycles * 2));
                    }
                    var left = window - cw.Elapsed;
                    if (left > TimeSpan.Zero) Thread.Sleep(left);
                    return Gap();
                }

                double Patching(List<double> held, List<double> unHeld)
                {
                    t.Send("reset");
                    var sw = Stopwatch.StartNew();
                    for (int c = 0; c < Cycles; c++)
                    {
                        var ir = Engine.Install(Empty, t.Pid);
                        held.Add(ir.FreezeTime.TotalMilliseconds);
                        var ur = Engine.Uninstall(t.Pid, Empty.Id);
                        unHeld.Add(ur.FreezeTime.TotalMilliseconds);
                        Thread.Sleep(window / (Cycles * 2));
                    }
                    var rest = window - sw.Elapsed;
                    if (rest > TimeSpan.Zero) Thread.Sleep(rest);
                    return Gap();
                }

                // Each round measures every variant, in an order rotated from round to round, so that drift (another
                // job starting, the CPU's clock) lands on all of them alike.
                var variants = new List<(string Name, Func<double> Run)>
                {
                    ("base", Untouched), ("control", Inspecting), ("patch", () => Patching(freezes, unFreezes)),
                };
                var gaps = variants.ToDictionary(v => v.Name, _ => new List<double>());
                var firstThread = variants.ToDictionary(v => v.Name, _ => new List<double>());
                var otherThreads = variants.ToDictionary(v => v.Name, _ => new List<double>());
                for (int r = 0; r < rounds; r++)
                    for (int k = 0; k < variants.Count; k++)
                    {
                        var v = variants[(r + k) % variants.Count];
                        gaps[v.Name].Add(v.Run());
                        if (lastThreads.Length > 1)
                        {
                            firstThread[v.Name].Add(lastThreads[0]);
                            otherThreads[v.Name].Add(Median(lastThreads.Skip(1).ToList()));
                        }
                    }
                foreach (var v in variants)
                {
                    Console.Write($"\n  {n} threads, {v.Name}: median {Median(gaps[v.Name]):F2} ms, rounds " + string.Join(" ", gaps[v.Name].Select(x => x.ToString("F2"))));
                    if (firstThread[v.Name].Count > 0)
                        Console.Write($"; first thread's longest gap {Median(firstThread[v.Name]):F2} ms, the others' (median thread) {Median(otherThreads[v.Name]):F2} ms");
                }
                Console.WriteLine();
                var baseGaps = gaps["base"];
                var patchGaps = gaps["patch"];
                double b = Median(baseGaps), p = Median(patchGaps), extra = p - b, ctl = Median(gaps["control"]);
                string goal = n == 16 ? "≤ 1 ms extra" : "";
                string met = n == 16 ? (extra <= 1.0 ? "yes" : "NO") : "";
                Rows.Add(new[] { "Freeze", $"{n} threads: longest gap, {Cycles} install+uninstall (median of {rounds} rounds)", $"{b:F2} ms", $"{p:F2} ms", $"{extra:+0.00;-0.00;0.00} ms", goal, met });
                Rows.Add(new[] { "", $"{n} threads: same window, engine inspecting only (control)", $"{b:F2} ms", $"{ctl:F2} ms", $"{ctl - b:+0.00;-0.00;0.00} ms", "", "" });
                // How far one round's figure is from the judged one: the extra of each round against its own baseline.
                var perRound = patchGaps.Zip(baseGaps, (x, y) => x - y).OrderBy(x => x).ToList();
                Rows.Add(new[] { "", $"{n} threads: extra per round, patched − same round's baseline (quartiles)", "", $"{Percentile(perRound, 0.25):+0.00;-0.00;0.00} … {Percentile(perRound, 0.75):+0.00;-0.00;0.00} ms", $"median {Median(perRound):+0.00;-0.00;0.00} ms", "", "" });
                // Issue 16: at 256 threads no single hold over 20 ms (install or uninstall, every cycle of every round).
                double longestHold = Math.Max(freezes.Max(), unFreezes.Max());
                Rows.Add(new[] { "", $"{n} threads: threads held, stop→release, install / uninstall (median, max)", "", $"{Median(freezes):F2} / {Median(unFreezes):F2} ms", $"max {freezes.Max():F2} / {unFreezes.Max():F2} ms",
                    n == 256 ? "no hold > 20 ms" : "", n == 256 ? (longestHold <= 20 ? "yes" : "NO") : "" });
            }
        }

        // ---------- 2. call overhead ----------

        private static void CallOverhead(bool quick)
        {
            int rounds = quick ? 5 : 11;
            const int Calls = 3_000_000;
            using var t = new Target(_exe, 0);
            double Bench() => double.Parse(t.Send("bench " + Calls), CultureInfo.InvariantCulture);
            for (int i = 0; i < 3; i++) Bench();
            var plain = new List<double>();
            var empty = new List<double>();
            var code = new List<double>();
            for (int r = 0; r < rounds; r++)
            {
                // Rotate the order so drift (frequency, noisy neighbours) does not favour one variant.
                for (int k = 0; k < 3; k++)
                {
                    switch ((r + k) % 3)
                    {
                        case 0: plain.Add(Bench()); break;
                        case 1: Engine.Install(Empty, t.Pid); empty.Add(Bench()); Engine.Uninstall(t.Pid, Empty.Id); break;
                        case 2: Engine.Install(Patchlet, t.Pid); code.Add(Bench()); Engine.Uninstall(t.Pid, Patchlet.Id); break;
                    }
                }
            }
            double u = Median(plain), e = Median(empty), c = Median(code);
            Rows.Add(new[] { "Call overhead", $"empty insert detour (median of {rounds})", $"{u:F2} ns/call", $"{e:F2} ns/call", $"{e / u:F3}× ({e - u:+0.00;-0.00} ns)", "≤ 1.10×", e / u <= 1.10 ? "yes" : "NO" });
            Rows.Add(new[] { "", "patchlet of 4 instructions", $"{u:F2} ns/call", $"{c:F2} ns/call", $"{c / u:F3}× ({c - u:+0.00;-0.00} ns)", "", "" });
        }

        // ---------- 3. discovery ----------

        private static void Discovery(bool quick)
        {
            int reps = quick ? 3 : 9;
            using var t = new Target(_exe, 0); // one process that has the module
            var extra = new List<int>();
            try
            {
                int have = 0;
                foreach (int level in new[] { 0, 50, 100, 200 })
                {
                    if (level > have) { extra.AddRange(SpawnSleepers(level - have)); have = level; }
                    Thread.Sleep(200);
                    FloorRead(); Engine.Scan(Empty).ToList();
                    var floor = new List<double>();
                    var scan = new List<double>();
                    int found = 0, procs = 0;
                    for (int i = 0; i < reps; i++)
                    {
                        var sw = Stopwatch.StartNew();
                        procs = FloorRead();
                        floor.Add(sw.Elapsed.TotalMilliseconds);
                        sw.Restart();
                        found = Engine.Scan(Empty).Count();
                        scan.Add(sw.Elapsed.TotalMilliseconds);
                    }
                    double f = Median(floor), s = Median(scan);
                    bool judged = level == 200;
                    Rows.Add(new[] { level == 0 ? "Discovery" : "", $"Scan, +{level} idle processes ({procs} total, {found} target)", $"{f:F1} ms", $"{s:F1} ms", $"{s / f:F2}×", judged ? "≤ 2× (≥ 200 extra)" : "", judged ? (s / f <= 2.0 ? "yes" : "NO") : "" });
                }
            }
            finally
            {
                foreach (int pid in extra) Kill(pid, 9);
            }
        }

        /// <summary>The floor: read every /proc/*/maps once.</summary>
        private static int FloorRead()
        {
            int n = 0;
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                var name = Path.GetFileName(dir);
                if (name.Length == 0 || !char.IsAsciiDigit(name[0])) continue;
                try { File.ReadAllBytes(Path.Combine(dir, "maps")); n++; } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
            }
            return n;
        }

        private static List<int> SpawnSleepers(int count)
        {
            var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, UseShellExecute = false };
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add("i=0; while [ $i -lt \"$0\" ]; do sleep 60 </dev/null >/dev/null 2>&1 & echo $!; i=$((i+1)); done");
            psi.ArgumentList.Add(count.ToString(CultureInfo.InvariantCulture));
            using var p = Process.Start(psi)!;
            var pids = p.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToList();
            p.WaitForExit();
            return pids;
        }

        // ---------- 4. import ----------

        private static void Import(bool quick)
        {
            int reps = quick ? 2 : 4;
            var manifest = FindManifest();
            double Open(string? script)
            {
                var sw = Stopwatch.StartNew();
                var iss = System.Management.Automation.Runspaces.InitialSessionState.CreateDefault2();
                using var rs = System.Management.Automation.Runspaces.RunspaceFactory.CreateRunspace(iss);
                rs.Open();
                using var ps = System.Management.Automation.PowerShell.Create();
                ps.Runspace = rs;
                ps.AddScript(script ?? "$null");
                if (script != null) ps.AddArgument(manifest);
                ps.Invoke();
                if (ps.HadErrors) throw new InvalidOperationException(string.Join("; ", ps.Streams.Error.Select(e => e.ToString())));
                return sw.Elapsed.TotalMilliseconds;
            }
            Open(null); Open(null); // warm up PowerShell itself (JIT of the host, not of the module)
            var empty = new List<double>();
            for (int i = 0; i < reps; i++) empty.Add(Open(null));
            double cold = Open("Import-Module -Name $args[0] -ErrorAction Stop");
            var warm = new List<double>();
            for (int i = 0; i < reps; i++) warm.Add(Open("Import-Module -Name $args[0] -ErrorAction Stop"));
            double e = Median(empty), w = Median(warm);
            Rows.Add(new[] { "Import", "Import-Module, first in this process", $"{e:F0} ms", $"{cold:F0} ms", $"+{cold - e:F0} ms", "≤ 500 ms extra", cold - e <= 500 ? "yes" : "NO" });
            Rows.Add(new[] { "", $"Import-Module, again in a new runspace (median of {reps})", $"{e:F0} ms", $"{w:F0} ms", $"+{w - e:F0} ms", "", "" });
        }

        private static string FindManifest()
        {
            for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "HotpatchTools.psd1"))) return Path.Combine(d.FullName, "HotpatchTools.psd1");
            throw new FileNotFoundException("HotpatchTools.psd1 not found above " + AppContext.BaseDirectory);
        }

        // ---------- helpers ----------

        // ---------- 5. module-wide branch index ----------

        /// <summary>
        /// Planning a site in glibc decodes every function range libc describes (~2 MB of code, symbols, FDEs and
        /// libc6-dbg's symbols) for branches into the span: once per file, so a second process costs a lookup.
        /// </summary>
        private static void ModuleScan(bool quick)
        {
            var patch = MicropatchParser.Parse(Encoding.UTF8.GetBytes(
                "format: 1\nid: BENCH-LIBC\ntitle: Benchmark BENCH-LIBC\ntarget:\n  os: linux\n  arch: x64\n  module: libc.so.6\n"
                + "patchlets:\n  - at: getpid\n    expect: b8 27 00 00 00\n"), "BENCH-LIBC.micropatch.yaml");
            using var first = new Target(_exe, 0);
            var sw = Stopwatch.StartNew();
            var status = Engine.Inspect(patch, first.Pid);
            double cold = sw.Elapsed.TotalMilliseconds;
            if (status == null || status.State != TargetState.Vulnerable) throw new InvalidOperationException("libc site not plannable: " + status?.Reason);
            var next = new List<double>();
            for (int i = 0; i < (quick ? 3 : 7); i++)
            {
                using var other = new Target(_exe, 0);
                sw.Restart();
                Engine.Inspect(patch, other.Pid);
                next.Add(sw.Elapsed.TotalMilliseconds);
            }
            double warm = Median(next);
            Rows.Add(new[] { "Module scan", "Plan a libc.so.6 site: next process (median) vs first (parse + debug file + decode all)", $"{warm:F1} ms", $"{cold:F0} ms", $"{cold / warm:F0}×", "next ≤ 1/5 of first", warm * 5 <= cold ? "yes" : "NO" });
        }

        private static double Median(List<double> v)
        {
            var s = v.OrderBy(x => x).ToList();
            return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
        }

        // ---------- watch: new processes patched, idle cost ----------

        /// <summary>
        /// Sync-Micropatch -Watch's engine side: the time from starting a process with the module until its site holds
        /// the jump, and the watch's CPU while nothing happens; polling every second (the baseline) against process
        /// events with a one-minute pass interval, so that only an event can explain a fast patch.
        /// </summary>
        private static void Watch(bool quick)
        {
            int n = quick ? 5 : 20;
            var idle = TimeSpan.FromSeconds(quick ? 2 : 5);
            ulong rva = ulong.Parse(Run("nm", "--defined-only", _exe).Split('\n').First(l => l.EndsWith(" T work_fn")).Split(' ')[0], NumberStyles.HexNumber);
            var rng = new Random(11);
            var results = new Dictionary<bool, (List<double> Delays, double IdlePercent)>();
            foreach (bool events in new[] { false, true })
            {
                using var stop = new CancellationTokenSource();
                using var firstPass = new ManualResetEventSlim();
                var enforcer = new HotpatchTools.Engine.Catalog.Enforcer(Engine) { UseEvents = events };
                var loop = new Thread(() => enforcer.Watch(() => new[] { Empty }, TimeSpan.FromSeconds(events ? 60 : 1), _ => firstPass.Set(), stop.Token)) { IsBackground = true };
                loop.Start();
                firstPass.Wait(TimeSpan.FromSeconds(30));
                var delays = new List<double>();
                for (int i = 0; i < n; i++)
                {
                    Thread.Sleep(rng.Next(0, 1000)); // anywhere in the polling interval
                    var clock = Stopwatch.StartNew();
                    using var t = new Target(_exe, 0);
                    while (!SiteJumps(t.Pid, rva))
                    {
                        if (clock.Elapsed > TimeSpan.FromSeconds(10)) throw new TimeoutException("process " + t.Pid + " not patched in 10 s");
                        Thread.Sleep(1);
                    }
                    delays.Add(clock.Elapsed.TotalMilliseconds);
                }
                Thread.Sleep(500);
                var cpu = Process.GetCurrentProcess().TotalProcessorTime;
                var wall = Stopwatch.StartNew();
                Thread.Sleep(idle);
                double percent = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalMilliseconds / wall.Elapsed.TotalMilliseconds * 100;
                stop.Cancel();
                loop.Join();
                results[events] = (delays, percent);
            }
            var (poll, ev) = (results[false], results[true]);
            double p50 = Median(ev.Delays), p95 = Percentile(ev.Delays, 0.95);
            Rows.Add(new[] { "Watch", $"New process → patched, median ({n} starts)", $"{Median(poll.Delays):F0} ms (poll 1 s)", $"{p50:F1} ms (events)", $"{p50 / Median(poll.Delays):F3}×", "≤ 50 ms", p50 <= 50 ? "yes" : "NO" });
            Rows.Add(new[] { "", "New process → patched, p95", $"{Percentile(poll.Delays, 0.95):F0} ms", $"{p95:F1} ms", $"{p95 / Percentile(poll.Delays, 0.95):F3}×", "≤ 200 ms", p95 <= 200 ? "yes" : "NO" });
            Rows.Add(new[] { "", "Watch idle CPU (% of a core)", $"{poll.IdlePercent:F2} % (poll 1 s)", $"{ev.IdlePercent:F2} % (events)", "", "≤ 0.5 %", ev.IdlePercent <= 0.5 ? "yes" : "NO" });
        }

        private static bool SiteJumps(int pid, ulong rva)
        {
            try
            {
                var maps = File.ReadAllLines($"/proc/{pid}/maps").Where(l => l.EndsWith("/benchtarget")).ToList();
                if (maps.Count == 0) return false;
                ulong start = maps.Min(l => ulong.Parse(l[..l.IndexOf('-')], NumberStyles.HexNumber));
                using var mem = new FileStream($"/proc/{pid}/mem", FileMode.Open, FileAccess.Read);
                mem.Seek((long)(start + rva), SeekOrigin.Begin);
                return mem.ReadByte() == 0xE9;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
        }

        private static double Percentile(List<double> values, double q)
        {
            var sorted = values.OrderBy(x => x).ToArray();
            return sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];
        }

        private static void PrintTable()
        {
            var header = new[] { "Benchmark", "Figure", "Baseline", "Measured", "Ratio / extra", "Goal", "Met" };
            var all = new List<string[]> { header };
            all.AddRange(Rows);
            var widths = Enumerable.Range(0, header.Length).Select(i => all.Max(r => r[i].Length)).ToArray();
            string Line(string[] r) => "| " + string.Join(" | ", r.Select((c, i) => c.PadRight(widths[i]))) + " |";
            Console.WriteLine(Line(header));
            Console.WriteLine("|" + string.Join("|", widths.Select(w => new string('-', w + 2))) + "|");
            foreach (var r in Rows) Console.WriteLine(Line(r));
        }

        private static string Run(string file, params string[] args)
        {
            var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in args) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            p.WaitForExit();
            if (p.ExitCode != 0) throw new InvalidOperationException(file + " failed: " + stderr.Result);
            return stdout.Result;
        }

        [DllImport("libc.so.6", EntryPoint = "kill")]
        internal static extern int Kill(int pid, int sig);
    }

    /// <summary>
    /// A bench target started through a shell that exits at once, so it is not our child (as a real service
    /// is not), like tests/HotpatchTools.Tests/Support/LinuxTarget.cs. Driven over stdin/stdout.
    /// </summary>
    internal sealed class Target : IDisposable
    {
        private readonly Process _shell;
        private readonly StreamWriter _in;
        private readonly StreamReader _out;
        public int Pid { get; }

        public Target(string exe, int threads)
        {
            var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
            psi.ArgumentList.Add("-c");
            // A background job gets /dev/null as stdin before explicit redirections apply: keep ours on fd 3.
            // BENCH_RT_TARGET=1: the target's threads at real-time priority 2, so that other jobs on a shared machine
            // cannot delay them; the engine's CPU use cannot either, so it compares freezes, it does not judge the goal.
            // Not with many threads: hundreds of real-time threads waking every 200 µs would take the whole machine.
            bool realtime = Environment.GetEnvironmentVariable("BENCH_RT_TARGET") == "1" && threads <= 16;
            psi.ArgumentList.Add("exec 3<&0; " + (realtime ? "chrt -f 2 " : "") + "\"$0\" \"$1\" <&3 3<&- & echo \"pid $!\"");
            psi.ArgumentList.Add(exe);
            psi.ArgumentList.Add(threads.ToString(CultureInfo.InvariantCulture));
            _shell = Process.Start(psi)!;
            _in = _shell.StandardInput;
            _in.AutoFlush = true;
            _out = _shell.StandardOutput;
            bool ready = false;
            while (!ready || Pid == 0)
            {
                var line = _out.ReadLine() ?? throw new InvalidOperationException("bench target did not start");
                if (line.StartsWith("ready ")) ready = true;
                if (line.StartsWith("pid ")) Pid = int.Parse(line[4..], CultureInfo.InvariantCulture);
            }
        }

        public string Send(string command)
        {
            _in.WriteLine(command);
            return _out.ReadLine() ?? throw new InvalidOperationException("bench target closed its output after '" + command + "'");
        }

        public void Dispose()
        {
            Program.Kill(Pid, 9);
            try { _in.Dispose(); } catch (IOException) { }
            _shell.Dispose();
        }
    }
}
