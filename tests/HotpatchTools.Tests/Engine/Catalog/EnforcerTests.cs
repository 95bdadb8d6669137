using System.Diagnostics;
using System.Threading;
using HotpatchTools.Engine.Catalog;
using HotpatchTools.Engine.Format;
using Xunit.Abstractions;

namespace HotpatchTools.Tests
{
    /// <summary>The enforcer against live processes: one-shot passes, incremental passes, and the watch loop's delay.</summary>
    [Collection(MachineStateCollection.Name)] // alone: the delays are measured, not those of a machine busy with other tests
    public sealed class EnforcerTests
    {
        private readonly ITestOutputHelper _out;

        public EnforcerTests(ITestOutputHelper output) { _out = output; }

        [Fact]
        public void A_pass_applies_each_patch_to_each_matching_process_and_the_next_pass_finds_them_patched()
        {
            var exe = WorkflowTargets.Exe("enf-once");
            using var a = TargetProcess.Start(exe);
            using var b = TargetProcess.Start(exe);
            using var other = TargetProcess.Start(WorkflowTargets.Exe("enf-bystander"));
            var good = WorkflowTargets.Guard("T-ENF-GOOD", "enf-once");
            // Another build: the expected bytes are not what the module holds.
            var wrong = PatchFiles.Parse(PatchFiles.Yaml("T-ENF-WRONG", "enf-once", new[] { new PatchletSpec("short_jcc", new byte[] { 0x90, 0x90, 0x90, 0x90, 0x90 }) }));
            var enforcer = new Enforcer(new HotpatchEngine());

            var first = enforcer.Run(new[] { good, wrong });
            Assert.Equal(new[] { (a.Pid, "T-ENF-GOOD", EnforcementOutcome.Applied), (a.Pid, "T-ENF-WRONG", EnforcementOutcome.Mismatch),
                                 (b.Pid, "T-ENF-GOOD", EnforcementOutcome.Applied), (b.Pid, "T-ENF-WRONG", EnforcementOutcome.Mismatch) },
                Outcomes(first));
            Assert.Contains("ExpectMismatch", first.Results.Where(r => r.Outcome == EnforcementOutcome.Mismatch).Select(r => r.ErrorKind.ToString()));
            Assert.Equal(-1, a.Call("triple", 500));
            Assert.Equal(-1, b.Call("triple", 500));
            Assert.Equal(16, b.Call("triple", 5));
            Assert.Equal(1501, other.Call("triple", 500)); // another module: not a target

            // Idempotent: the second pass writes nothing and says why.
            var caves = a.CaveCount();
            var second = enforcer.Run(new[] { good, wrong });
            Assert.Equal(new[] { (a.Pid, "T-ENF-GOOD", EnforcementOutcome.AlreadyPatched), (a.Pid, "T-ENF-WRONG", EnforcementOutcome.Mismatch),
                                 (b.Pid, "T-ENF-GOOD", EnforcementOutcome.AlreadyPatched), (b.Pid, "T-ENF-WRONG", EnforcementOutcome.Mismatch) },
                Outcomes(second));
            Assert.Equal(caves, a.CaveCount());
            Assert.Empty(second.Changed); // Applied then AlreadyPatched is one state; Mismatch stayed Mismatch
        }

        [Fact]
        public void A_report_only_pass_or_a_declined_confirmation_writes_nothing()
        {
            var exe = WorkflowTargets.Exe("enf-report");
            using var t = TargetProcess.Start(exe);
            var patch = WorkflowTargets.Guard("T-ENF-REPORT", "enf-report");
            var before = t.ReadSymbol("triple", 6);
            var enforcer = new Enforcer(new HotpatchEngine());
            var asked = new List<int>();

            Assert.Equal(EnforcementOutcome.Vulnerable, Assert.Single(enforcer.Run(new[] { patch }, apply: false).Results).Outcome);
            var declined = Assert.Single(enforcer.Run(new[] { patch }, confirm: s => { asked.Add(s.ProcessId); return false; }).Results);
            Assert.Equal(EnforcementOutcome.Vulnerable, declined.Outcome);
            Assert.Equal(new[] { t.Pid }, asked);
            Assert.Equal(before, t.ReadSymbol("triple", 6));
            Assert.Equal(0, t.CaveCount());
        }

        [Fact]
        public void Incremental_passes_inspect_only_new_processes_and_processes_that_loaded_a_module()
        {
            var exe = WorkflowTargets.Exe("enf-incr");
            var lib = WorkflowTargets.Library("libenfincr.so");
            using var a = TargetProcess.Start(exe);
            using var loader = TargetProcess.Start(WorkflowTargets.LateLoader("enf-incr-late"));
            var patches = new[] { WorkflowTargets.Guard("T-ENF-INCR", "enf-incr"), WorkflowTargets.LibraryPatch("T-ENF-LIB", "libenfincr.so") };
            var engine = new HotpatchEngine();
            var enforcer = new Enforcer(engine);

            var first = enforcer.Run(patches, incremental: true);
            Assert.True(first.Full);
            Assert.Equal(new[] { (a.Pid, "T-ENF-INCR", EnforcementOutcome.Applied) }, Outcomes(first));

            var quiet = enforcer.Run(patches, incremental: true);
            Assert.False(quiet.Full);
            Assert.Empty(quiet.Results);
            Assert.Equal(1, quiet.Unchanged);

            Assert.Equal("ok", loader.Send("load " + lib));
            Assert.Equal("16", loader.Send("call 5"));
            var loaded = enforcer.Run(patches, incremental: true);
            Assert.Equal(new[] { (loader.Pid, "T-ENF-LIB", EnforcementOutcome.Applied) }, Outcomes(loaded));
            Assert.Equal("7", loader.Send("call 5"));

            using var b = TargetProcess.Start(exe);
            var started = enforcer.Run(patches, incremental: true);
            Assert.Equal(new[] { (b.Pid, "T-ENF-INCR", EnforcementOutcome.Applied) }, Outcomes(started));
            Assert.Equal(-1, b.Call("triple", 500));

            // Removed by hand: an unchanged process is not looked at again until the periodic full pass.
            engine.Uninstall(a.Pid, "T-ENF-INCR");
            Assert.Empty(enforcer.Run(patches, incremental: true).Results);
            Assert.Equal(1501, a.Call("triple", 500));
            enforcer.FullRecheckInterval = TimeSpan.Zero;
            var full = enforcer.Run(patches, incremental: true);
            Assert.True(full.Full);
            Assert.Contains((a.Pid, "T-ENF-INCR", EnforcementOutcome.Applied), Outcomes(full));
            Assert.Equal(-1, a.Call("triple", 500));
        }

        /// <summary>
        /// The acceptance measurement: a process started, and a library loaded late, while the watch loop runs
        /// with a 1-second interval, are patched within the bound; the delays are printed for the docs.
        /// </summary>
        [Fact]
        public void Watch_patches_new_processes_and_late_loaded_modules_within_the_documented_delay()
        {
            var (exe, lib, loaderExe, patches) = WatchTargets.Build("watch", "T-ENF-WATCH", "T-ENF-WLIB");
            var interval = TimeSpan.FromSeconds(1);
            // A hang, not a measurement: the documented bound is checked against the passes that really ran, below.
            var giveUp = TimeSpan.FromSeconds(30);
            var passes = new List<EnforcementPass>();
            var passEnds = new List<(double End, double Length)>();
            var since = Stopwatch.StartNew();
            // Polling only: this bound is the fallback's, where the platform has no process events.
            using var watch = new WatchLoop(new Enforcer(new HotpatchEngine()) { UseEvents = false }, patches, interval,
                p => { lock (passes) { passes.Add(p); passEnds.Add((since.Elapsed.TotalSeconds, p.Elapsed.TotalSeconds)); } });
            watch.WaitForFirstPass();

            var targets = new List<TargetProcess>();
            var rng = new Random(7);
            var processDelays = new List<double>();
            var moduleDelays = new List<double>();
            var overBound = new List<string>();
            // Documented: at most one interval plus one pass (the pass that just missed the process, the pause, the
            // pass that patches it: interval + two pass lengths, plus polling slack), whatever the load.
            void CheckBound(string what, double startedAt, double delay)
            {
                double longest;
                lock (passes) longest = passEnds.Where(e => e.End >= startedAt && e.End - e.Length <= startedAt + delay).Select(e => e.Length).DefaultIfEmpty(0).Max();
                double limit = interval.TotalSeconds + 2 * longest + 0.5;
                if (delay > limit) overBound.Add(what + ": " + delay.ToString("0.00") + " s > " + limit.ToString("0.00") + " s");
            }
            try
            {
                for (int i = 0; i < 5; i++)
                {
                    Thread.Sleep(rng.Next(0, 1000)); // land anywhere in the interval
                    var t = TargetProcess.Start(exe);
                    var clock = Stopwatch.StartNew(); // the process has printed "ready": it runs
                    double startedAt = since.Elapsed.TotalSeconds;
                    targets.Add(t);
                    processDelays.Add(WaitPatched(() => WorkflowTargets.SiteJumps(t, exe, "triple"), clock, giveUp, "process " + t.Pid));
                    CheckBound("process " + t.Pid, startedAt, processDelays[^1]);
                    Assert.Equal(-1, t.Call("triple", 500));
                }
                for (int i = 0; i < 5; i++)
                {
                    var t = TargetProcess.Start(loaderExe);
                    targets.Add(t);
                    Thread.Sleep(1500 + rng.Next(0, 1000)); // the process itself is settled before the library arrives
                    Assert.Equal("ok", t.Send("load " + lib));
                    var clock = Stopwatch.StartNew();
                    double startedAt = since.Elapsed.TotalSeconds;
                    moduleDelays.Add(WaitPatched(() => WorkflowTargets.SiteJumps(t, lib, "lib_triple"), clock, giveUp, "library in " + t.Pid));
                    CheckBound("library in " + t.Pid, startedAt, moduleDelays[^1]);
                    Assert.Equal("7", t.Send("call 5"));
                }
            }
            finally
            {
                _out.WriteLine("watch loop stopped " + watch.Stop().TotalMilliseconds.ToString("0") + " ms after cancellation");
                foreach (var t in targets) t.Dispose();
            }
            Assert.Null(watch.Error);
            double[] passMs;
            int[] counts;
            lock (passes)
            {
                passMs = passes.Where(p => !p.Full).Select(p => p.Elapsed.TotalMilliseconds).OrderBy(x => x).ToArray();
                counts = passes.Select(p => p.ProcessCount).ToArray();
            }
            _out.WriteLine(Describe("new process -> patched", processDelays));
            _out.WriteLine(Describe("late dlopen -> patched", moduleDelays));
            _out.WriteLine("incremental pass: median " + passMs[passMs.Length / 2].ToString("0.0") + " ms, max " + passMs[^1].ToString("0.0") + " ms over " + passMs.Length + " passes of " + counts.Min() + "-" + counts.Max() + " processes");
            Assert.Empty(overBound);
        }

        /// <summary>
        /// With process events, a new process and a library loaded late are patched long before the next pass: the
        /// interval here is a minute, so nothing but an event explains a patch within seconds. The delays are printed;
        /// bench/ measures them against their goals (a timed assertion would fail on a loaded machine, not on a bug).
        /// </summary>
        [Fact]
        public void Watch_with_process_events_patches_new_processes_and_late_loads_without_waiting_for_a_pass()
        {
            var (exe, lib, loaderExe, patches) = WatchTargets.Build("event", "T-ENF-EVENT", "T-ENF-ELIB");
            var bound = TimeSpan.FromSeconds(15);
            var targets = new List<TargetProcess>();
            // A process already using the library when the watch starts: the first pass patches it and learns where the file is.
            var first = TargetProcess.Start(loaderExe);
            targets.Add(first);
            Assert.Equal("ok", first.Send("load " + lib));

            var log = new List<string>();
            using var watch = new WatchLoop(new Enforcer(new HotpatchEngine(), m => { lock (log) log.Add(m); }), patches, TimeSpan.FromMinutes(1));
            var processDelays = new List<double>();
            var moduleDelays = new List<double>();
            try
            {
                watch.WaitForFirstPass();
                WaitPatched(() => WorkflowTargets.SiteJumps(first, lib, "lib_triple"), Stopwatch.StartNew(), bound, "library in the first process");
                lock (log) Assert.Contains(log, l => l.StartsWith("watch: process events from process connector, fanotify", StringComparison.Ordinal));
                for (int i = 0; i < 5; i++)
                {
                    var t = TargetProcess.Start(exe);
                    var clock = Stopwatch.StartNew();
                    targets.Add(t);
                    processDelays.Add(WaitPatched(() => WorkflowTargets.SiteJumps(t, exe, "triple"), clock, bound, "process " + t.Pid));
                    Assert.Equal(-1, t.Call("triple", 500));
                }
                for (int i = 0; i < 5; i++)
                {
                    var t = TargetProcess.Start(loaderExe);
                    targets.Add(t);
                    Thread.Sleep(300); // the exec follow-ups are over: only the open of the library can tell
                    Assert.Equal("ok", t.Send("load " + lib));
                    var clock = Stopwatch.StartNew();
                    moduleDelays.Add(WaitPatched(() => WorkflowTargets.SiteJumps(t, lib, "lib_triple"), clock, bound, "library in " + t.Pid));
                    Assert.Equal("7", t.Send("call 5"));
                }
            }
            finally
            {
                watch.Stop();
                foreach (var t in targets) t.Dispose();
            }
            Assert.Null(watch.Error);
            _out.WriteLine(Describe("event: new process -> patched", processDelays));
            _out.WriteLine(Describe("event: late dlopen -> patched", moduleDelays));
        }

        /// <summary>
        /// What a watch test starts: an executable, a library and a host that loads it late, built under names of this
        /// test alone (the enforcer patches every process that has the module), and a patch for each module.
        /// </summary>
        private sealed record WatchTargets(string Exe, string Library, string LateLoader, Micropatch[] Patches)
        {
            public static WatchTargets Build(string name, string exePatchId, string libraryPatchId)
            {
                string exe = "enf-" + name, library = "libenf" + name + ".so";
                return new WatchTargets(WorkflowTargets.Exe(exe), WorkflowTargets.Library(library), WorkflowTargets.LateLoader(exe + "-late"),
                    new[] { WorkflowTargets.Guard(exePatchId, exe), WorkflowTargets.LibraryPatch(libraryPatchId, library) });
            }
        }

        /// <summary>
        /// Enforcer.Watch on a thread of its own, as the service runs it, from construction until Stop; what it threw
        /// is kept in Error.
        /// </summary>
        private sealed class WatchLoop : IDisposable
        {
            private readonly CancellationTokenSource _stop = new CancellationTokenSource();
            private readonly ManualResetEventSlim _firstPass = new ManualResetEventSlim();
            private readonly Thread _thread;

            public WatchLoop(Enforcer enforcer, Micropatch[] patches, TimeSpan interval, Action<EnforcementPass>? onPass = null)
            {
                _thread = new Thread(() =>
                {
                    try { enforcer.Watch(() => patches, interval, p => { onPass?.Invoke(p); _firstPass.Set(); }, _stop.Token); }
                    catch (Exception e) { Error = e; }
                }) { IsBackground = true };
                _thread.Start();
            }

            public Exception? Error { get; private set; }

            public void WaitForFirstPass() => Assert.True(_firstPass.Wait(TimeSpan.FromSeconds(30)), "no first pass");

            /// <summary>Cancels the loop and waits for it to return; returns how long that took.</summary>
            public TimeSpan Stop()
            {
                var stopping = Stopwatch.StartNew();
                _stop.Cancel();
                Assert.True(_thread.Join(TimeSpan.FromSeconds(10)), "the watch loop did not stop");
                return stopping.Elapsed;
            }

            public void Dispose()
            {
                // A test that failed before Stop leaves no loop behind patching the processes of later tests.
                _stop.Cancel();
                _thread.Join(TimeSpan.FromSeconds(10));
                _stop.Dispose();
                _firstPass.Dispose();
            }
        }

        private static double WaitPatched(Func<bool> patched, Stopwatch clock, TimeSpan bound, string what)
        {
            while (!patched())
            {
                Assert.True(clock.Elapsed < bound, what + " not patched within " + bound.TotalSeconds + " s");
                Thread.Sleep(10);
            }
            return clock.Elapsed.TotalSeconds;
        }

        private static string Describe(string what, List<double> seconds)
        {
            var s = seconds.OrderBy(x => x).ToArray();
            return what + ": median " + s[s.Length / 2].ToString("0.00") + " s, worst " + s[^1].ToString("0.00") + " s (" + string.Join(", ", seconds.Select(x => x.ToString("0.00"))) + ")";
        }

        private static (int, string, EnforcementOutcome)[] Outcomes(EnforcementPass pass) =>
            pass.Results.Select(r => (r.ProcessId, r.PatchId, r.Outcome)).OrderBy(r => r.ProcessId).ThenBy(r => r.PatchId, StringComparer.Ordinal).ToArray();
    }
}
