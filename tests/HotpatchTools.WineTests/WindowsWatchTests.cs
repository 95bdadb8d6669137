using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Threading;
using HotpatchTools.Engine.Catalog;
using HotpatchTools.Engine.Format;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// Sync-Micropatch -Watch on Windows, run under Wine: where its process events come from, and that a new process
    /// is patched by them, not by the next pass. On Windows the events are an ETW session on Microsoft-Windows-Kernel-Process;
    /// Wine 8 cannot open one (its sechost's StartTraceW and EnableTraceEx2 report success, OpenTraceW fails with
    /// ERROR_ACCESS_DENIED, ProcessTrace is not implemented), so there the watch must say so and poll the process list.
    /// </summary>
    public sealed class WindowsWatchTests
    {
        private readonly ITestOutputHelper _out;

        public WindowsWatchTests(ITestOutputHelper output) { _out = output; }

        private static bool UnderWine =>
            NativeLibrary.TryLoad("ntdll.dll", out var ntdll) && NativeLibrary.TryGetExport(ntdll, "wine_get_version", out _);

        /// <summary>target.exe under a module name of this class's own: the watch patches every process that has its module.</summary>
        private static string Target(string name)
        {
            var source = NativeBuild.Prebuilt("target.exe");
            var exe = Path.Combine(Path.GetDirectoryName(source)!, name);
            File.Copy(source, exe, overwrite: true);
            File.Copy(source + ".syms", exe + ".syms", overwrite: true);
            return exe;
        }

        private static bool Patched(TargetProcess t) => t.ReadSymbol("triple", 1)[0] == 0xE9;

        private sealed class Watching : IDisposable
        {
            public readonly List<string> Log = new List<string>();
            private readonly CancellationTokenSource _stop = new CancellationTokenSource();
            private readonly Thread _loop;
            private Exception? _error;

            public Watching(Micropatch patch, TimeSpan interval, bool useEvents)
            {
                using var firstPass = new ManualResetEventSlim();
                _loop = new Thread(() =>
                {
                    try
                    {
                        new Enforcer(new HotpatchEngine(), m => { lock (Log) Log.Add(m); }) { UseEvents = useEvents }
                            .Watch(() => new[] { patch }, interval, p => firstPass.Set(), _stop.Token);
                    }
                    catch (Exception e) { _error = e; }
                }) { IsBackground = true };
                _loop.Start();
                // A hang detector, not a measurement: under Wine a pass opens every process and lists its modules
                // (0.1-0.7 s each here), and on the loaded 2-core VM one pass over 8 processes once took 64 s.
                if (firstPass.Wait(TimeSpan.FromSeconds(180))) return;
                _stop.Cancel();
                _loop.Join(TimeSpan.FromSeconds(10));
                var processes = string.Join(", ", new HotpatchEngine().Platform.ListProcesses().Select(p => p.Id + " " + p.Name));
                Assert.Fail("no first pass within 180 s; " + (_error != null ? "the loop threw " + _error : "log: " + string.Join(" | ", Lines())) + "; processes: " + processes);
            }

            public string[] Lines() { lock (Log) return Log.ToArray(); }

            public void Dispose()
            {
                _stop.Cancel();
                Assert.True(_loop.Join(TimeSpan.FromSeconds(10)), "the watch loop did not stop");
                Assert.Null(_error);
            }
        }

        /// <summary>
        /// The pass interval is ten minutes: a new process patched within seconds was found by an event source.
        /// Under Wine that source must be the process list, with Wine's ETW error named; elsewhere, the ETW session.
        /// </summary>
        [Fact]
        public void A_new_process_is_patched_long_before_the_next_pass_and_the_log_names_the_event_source()
        {
            var exe = Target("wwatch.exe");
            var patch = WorkflowTargets.Guard("T-WWATCH", "wwatch.exe");
            var targets = new List<TargetProcess>();
            var delays = new List<double>();
            using (var watch = new Watching(patch, TimeSpan.FromMinutes(10), useEvents: true))
            {
                try
                {
                    var lines = watch.Lines();
                    var source = lines.Single(l => l.StartsWith("watch: ", StringComparison.Ordinal));
                    _out.WriteLine(string.Join(Environment.NewLine, lines.Where(l => !l.StartsWith("enforcement pass", StringComparison.Ordinal))));
                    if (UnderWine)
                    {
                        Assert.Contains(lines, l => l.StartsWith("ETW process events unavailable: OpenTraceW: ", StringComparison.Ordinal) && l.EndsWith("(error 5)", StringComparison.Ordinal));
                        Assert.StartsWith("watch: process events from the process list every ", source);
                        Assert.Contains("; no ETW: OpenTraceW: ", source);
                        Assert.EndsWith("(error 5))", source);
                    }
                    else Assert.StartsWith("watch: process events from ETW session HotpatchTools-Watch-", source);

                    for (int i = 0; i < 3; i++)
                    {
                        var t = TargetProcess.Start(exe);
                        var clock = Stopwatch.StartNew(); // it has answered "ready": it runs
                        targets.Add(t);
                        while (!Patched(t))
                        {
                            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), "process " + t.Pid + " not patched within 60 s; the next pass is ten minutes away");
                            Thread.Sleep(5);
                        }
                        delays.Add(clock.Elapsed.TotalMilliseconds);
                        Assert.Equal(-1, t.Call("triple", 500));
                        Assert.Equal(16, t.Call("triple", 5));
                    }
                    Assert.Contains(watch.Lines(), l => l.StartsWith("event follow-up: ", StringComparison.Ordinal));
                    _out.WriteLine("follow-ups: " + string.Join(" | ", watch.Lines().Where(l => l.StartsWith("event follow-up: ", StringComparison.Ordinal)).Select(l => l.Substring(16))));
                    // Only the first pass ran: nothing else can have patched them.
                    Assert.Single(watch.Lines(), l => l.StartsWith("enforcement pass", StringComparison.Ordinal));
                }
                finally
                {
                    foreach (var t in targets) t.Dispose();
                }
            }
            _out.WriteLine("new process (answering) -> patched: " + string.Join(", ", delays.Select(d => d.ToString("0", CultureInfo.InvariantCulture) + " ms")));
        }

        /// <summary>Without events (-UseEvents off, or a platform without any) the passes alone still patch a new process.</summary>
        [Fact]
        public void Without_events_the_passes_still_patch_a_new_process()
        {
            var exe = Target("wwpoll.exe");
            var patch = WorkflowTargets.Guard("T-WWPOLL", "wwpoll.exe");
            using var watch = new Watching(patch, TimeSpan.FromSeconds(1), useEvents: false);
            using var t = TargetProcess.Start(exe);
            var clock = Stopwatch.StartNew();
            while (!Patched(t))
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(180), "not patched by the passes within 180 s");
                Thread.Sleep(20);
            }
            Assert.Equal(-1, t.Call("triple", 500));
            Assert.Contains(watch.Lines(), l => l == "watch: no process events here; polling every 1 s");
            Assert.DoesNotContain(watch.Lines(), l => l.StartsWith("event follow-up", StringComparison.Ordinal));
        }

        /// <summary>
        /// What the event source costs while nothing happens: the watcher's CPU, and under Wine the wineserver's, which
        /// answers the process-list reads. Under Wine the process list costs milliseconds a read: a fixed 50 ms period took 5.7% of a core, the adaptive one must stay under 5%.
        /// </summary>
        [Fact]
        public void An_idle_watch_costs_little_CPU()
        {
            var patch = WorkflowTargets.Guard("T-WWIDLE", "wwidle-none.exe");
            // The same program without a watch: the runtime's and the test runner's own idle cost, once the work of
            // the tests before (targets exiting, collections) is over.
            Thread.Sleep(3000);
            var (own0, server0, _) = IdleCost(TimeSpan.FromSeconds(6));
            using var watch = new Watching(patch, TimeSpan.FromMinutes(10), useEvents: true);
            // The runtime compiles the loop's hot methods again in the background during its first seconds: not the watch's cost.
            Thread.Sleep(3000);
            int before = watch.Lines().Length;
            var (own, server, seconds) = IdleCost(TimeSpan.FromSeconds(6));
            _out.WriteLine("log lines while measuring: " + string.Join(" | ", watch.Lines().Skip(before)));
            double added = own - own0 + (server ?? 0) - (server0 ?? 0);
            _out.WriteLine(string.Join(Environment.NewLine, watch.Lines().Where(l => l.StartsWith("watch: ", StringComparison.Ordinal))));
            _out.WriteLine("idle, over " + seconds.ToString("0.0", CultureInfo.InvariantCulture) + " s: this process " + Percent(own0) + " without the watch, " + Percent(own) + " with it"
                           + (server is double s ? "; wineserver " + Percent(server0 ?? 0) + " without, " + Percent(s) + " with" : "; wineserver not found")
                           + "; the watch adds " + Percent(added) + " of a core");
            // The reads are held to 1% of a core by their period; wineserver's share and the loop's own are on top.
            Assert.True(added < 0.05, "the idle watch took " + Percent(added) + " of a core");
        }

        private static string Percent(double share) => (share * 100).ToString("0.00", CultureInfo.InvariantCulture) + "%";

        /// <summary>Share of one core used over the span by this process and (under Wine) by the wineserver, read from Linux's /proc through Z:.</summary>
        internal static (double Own, double? Server, double Seconds) IdleCost(TimeSpan span)
        {
            var self = Process.GetCurrentProcess();
            string? serverStat = UnderWine ? FindWineserverStat() : null;
            var clock = Stopwatch.StartNew();
            self.Refresh();
            var cpu0 = self.TotalProcessorTime;
            long? ticks0 = serverStat == null ? null : Ticks(serverStat);
            Thread.Sleep(span);
            self.Refresh();
            var cpu1 = self.TotalProcessorTime;
            long? ticks1 = serverStat == null ? null : Ticks(serverStat);
            double seconds = clock.Elapsed.TotalSeconds;
            double? server = ticks0 is long a && ticks1 is long b ? (b - a) / 100.0 / seconds : null; // USER_HZ is 100 on Linux
            return ((cpu1 - cpu0).TotalSeconds / seconds, server, seconds);
        }

        private static string? FindWineserverStat()
        {
            try
            {
                foreach (var dir in Directory.EnumerateDirectories(@"Z:\proc"))
                {
                    if (!int.TryParse(Path.GetFileName(dir), out _)) continue;
                    try { if (File.ReadAllText(Path.Combine(dir, "comm")).StartsWith("wineserver", StringComparison.Ordinal)) return Path.Combine(dir, "stat"); }
                    catch (IOException) { } catch (UnauthorizedAccessException) { }
                }
            }
            catch (IOException) { } catch (UnauthorizedAccessException) { }
            return null;
        }

        private static long? Ticks(string stat)
        {
            try
            {
                var text = File.ReadAllText(stat);
                var f = text.Substring(text.LastIndexOf(')') + 2).Split(' ');
                return long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture); // utime, stime
            }
            catch (Exception e) when (e is IOException || e is FormatException || e is IndexOutOfRangeException) { return null; }
        }
    }
}
