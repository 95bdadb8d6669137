using System.Runtime.Versioning;
using System.Threading;
using HotpatchTools.Engine.Audit;
using HotpatchTools.Engine.Machine;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// Machine-wide work on many processes at once (issue 16): every process patched once, outcomes and what the engine
    /// reports in the order asked and on the asking thread, one failing process leaving the others alone; and nothing
    /// learned from one module file carried to a process that maps another file of the same name.
    /// </summary>
    [SupportedOSPlatform("linux")]
    public sealed class FleetTests : IDisposable
    {
        private readonly List<TargetProcess> _targets = new List<TargetProcess>();
        private readonly string _dir = Path.Combine(Path.GetTempPath(), "hotpatchtools-fleet-" + Guid.NewGuid().ToString("N"));

        public void Dispose()
        {
            foreach (var t in _targets) t.Dispose();
            try { Directory.Delete(_dir, true); } catch (IOException) { }
        }

        /// <summary>The test target under a name of its own: a machine-wide sweep here must reach no other test's process.</summary>
        private string Copy(string folder, string name, Func<byte[], byte[]>? change = null)
        {
            var dir = Path.Combine(_dir, folder);
            Directory.CreateDirectory(dir);
            var path = Path.Combine(dir, name);
            var bytes = File.ReadAllBytes(NativeBuild.Target);
            File.WriteAllBytes(path, change == null ? bytes : change(bytes));
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            File.Copy(NativeBuild.Target + ".syms", path + ".syms", overwrite: true);
            return path;
        }

        private TargetProcess Start(string exe)
        {
            var t = TargetProcess.Start(exe);
            _targets.Add(t);
            return t;
        }

        private static PatchletSpec Guard(TargetProcess t) => new PatchletSpec("triple", t.ReadSymbol("triple", 6), PatchFiles.GuardCode);

        /// <summary>
        /// Most processes of a fleet have one thread: the injected mmap would stop that thread once before the freeze and
        /// the munmap once after it, so the cave is mapped and unmapped within the one freeze. A second thread brings
        /// back the single-thread stop for the injected call (the freeze of many threads stays short).
        /// </summary>
        [Fact]
        public void A_single_thread_process_gets_its_cave_mapped_and_unmapped_within_the_one_freeze()
        {
            var t = Start(NativeBuild.Target);
            string Maps() => File.ReadAllText("/proc/" + t.Pid + "/maps");
            var before = Maps();
            var log = new List<string>();
            var engine = new HotpatchEngine(options: new EngineOptions { Log = log.Add, ThreadWait = TimeSpan.FromSeconds(5) });
            var patch = PatchFiles.For(t, "T-ONESTOP", Guard(t));

            var installed = engine.Install(patch, t.Pid);
            Assert.Equal(1, installed.ThreadCount);
            Assert.Contains(log, l => l.StartsWith("cave: ", StringComparison.Ordinal) && l.EndsWith("mapped within the freeze (one thread: one stop)", StringComparison.Ordinal));
            Assert.Equal(-1, t.Call("triple", 500));
            Assert.Equal(31, t.Call("triple", 10));
            Assert.NotEqual(before, Maps());

            var removed = engine.Uninstall(t.Pid, "T-ONESTOP");
            Assert.True(removed.CaveFreed, removed.Message);
            Assert.Contains(log, l => l == "cave at 0x" + installed.Patch.CaveAddress.ToString("x") + " unmapped within the freeze (one thread: one stop)");
            Assert.Equal(1501, t.Call("triple", 500));
            Assert.Equal(before, Maps());

            // Two threads: the cave is mapped before the freeze, by a stop of one thread, and unmapped after it.
            Assert.Equal("ok", t.Send("sleepers 1"));
            log.Clear();
            installed = engine.Install(patch, t.Pid);
            Assert.Equal(2, installed.ThreadCount);
            Assert.Contains(log, l => l.StartsWith("cave: ", StringComparison.Ordinal));
            Assert.DoesNotContain(log, l => l.Contains("within the freeze", StringComparison.Ordinal));
            Assert.Equal(-1, t.Call("triple", 500));
            Assert.True(engine.Uninstall(t.Pid, "T-ONESTOP").CaveFreed);
            Assert.DoesNotContain(log, l => l.Contains("within the freeze", StringComparison.Ordinal));
            Assert.Equal(1501, t.Call("triple", 500));
        }

        [Fact]
        public void Twenty_processes_are_patched_once_each_in_order_and_one_that_exits_fails_alone()
        {
            var exe = Copy("a", "fleetcheck" + Environment.ProcessId);
            for (int i = 0; i < 20; i++) Start(exe);
            var audited = new List<(int Thread, int Pid, AuditResult Result, AuditAction Action)>();
            var logged = new List<int>();
            var engine = new HotpatchEngine(options: new EngineOptions
            {
                Workers = 4, ThreadWait = TimeSpan.FromSeconds(5),
                Audit = r => audited.Add((Environment.CurrentManagedThreadId, r.ProcessId ?? 0, r.Result, r.Action)),
                Log = _ => logged.Add(Environment.CurrentManagedThreadId),
            });
            var patch = PatchFiles.For(_targets[0], "T-FLEET", Guard(_targets[0]));
            var statuses = engine.Scan(patch).ToList();
            Assert.Equal(_targets.Select(t => t.Pid).OrderBy(p => p), statuses.Select(s => s.ProcessId));
            Assert.All(statuses, s => Assert.Equal(TargetState.Vulnerable, s.State));

            // One process goes away between the sweep and its install: its outcome says so, the others are patched.
            var gone = _targets[7];
            gone.Kill();
            var asked = new List<int>();
            IEnumerable<TargetStatus> Ask() { foreach (var s in statuses) { asked.Add(Environment.CurrentManagedThreadId); yield return s; } }
            var outcomes = engine.RunEach(Ask(), s => engine.Install(patch, s)).ToList();

            int me = Environment.CurrentManagedThreadId;
            Assert.All(asked, id => Assert.Equal(me, id));
            Assert.Equal(statuses.Select(s => s.ProcessId), outcomes.Select(o => o.Item.ProcessId));
            var failed = Assert.Single(outcomes, o => o.Error != null);
            Assert.Equal(gone.Pid, failed.Item.ProcessId);
            Assert.True(failed.Error!.Kind is HotpatchErrorKind.ProcessExited or HotpatchErrorKind.ProcessNotFound, failed.Error.Kind + ": " + failed.Error.Message);
            foreach (var t in _targets.Where(t => t != gone))
            {
                Assert.Equal(-1, t.Call("triple", 101));
                Assert.Equal(16, t.Call("triple", 5));
                Assert.Equal(1, t.CaveCount());
                Assert.Single(engine.GetInstalled(t.Pid), p => p.PatchId == "T-FLEET");
            }
            // What the engine reported came on this thread, one audit record per process, in the order of the outcomes.
            Assert.NotEmpty(logged);
            Assert.All(logged, id => Assert.Equal(me, id));
            Assert.All(audited, a => Assert.Equal(me, a.Thread));
            Assert.Equal(outcomes.Select(o => o.Item.ProcessId), audited.Select(a => a.Pid));
            Assert.Equal(AuditResult.Failed, audited.Single(a => a.Pid == gone.Pid).Result);

            // Installing again changes nothing anywhere: each is already patched, once.
            var again = engine.RunEach(statuses.Where(s => s.ProcessId != gone.Pid).Select(s => s.ProcessId), pid => engine.Install(patch, pid)).ToList();
            Assert.All(again, o => Assert.Equal(HotpatchErrorKind.AlreadyInstalled, o.Error?.Kind));
            Assert.All(_targets.Where(t => t != gone), t => Assert.Equal(1, t.CaveCount()));

            audited.Clear();
            var installed = _targets.Where(t => t != gone).SelectMany(t => engine.GetInstalled(t.Pid)).ToList();
            var removed = engine.RunEach(installed, p => engine.Uninstall(p.ProcessId, p.PatchId)).ToList();
            Assert.Equal(installed.Select(p => p.ProcessId), removed.Select(o => o.Item.ProcessId));
            Assert.All(removed, o => Assert.Null(o.Error));
            Assert.Equal(removed.Select(o => o.Item.ProcessId), audited.Select(a => a.Pid));
            Assert.All(audited, a => Assert.Equal(AuditAction.Uninstall, a.Action));
            foreach (var t in _targets.Where(t => t != gone))
            {
                Assert.Equal(304, t.Call("triple", 101));
                Assert.DoesNotContain(engine.GetInstalled(t.Pid), p => p.State != PatchState.Retired);
            }
        }

        [Fact]
        public void A_caller_that_stops_reading_outcomes_stops_the_work_and_still_gets_every_audit_record()
        {
            var exe = Copy("a", "fleetstop" + Environment.ProcessId);
            for (int i = 0; i < 8; i++) Start(exe);
            var audited = new List<int>();
            var engine = new HotpatchEngine(options: new EngineOptions { Workers = 2, Audit = r => audited.Add(r.ProcessId ?? 0) });
            var patch = PatchFiles.For(_targets[0], "T-FLEET-STOP", Guard(_targets[0]));
            var statuses = engine.Scan(patch).ToList();
            Assert.Equal(8, statuses.Count);
            var first = engine.RunEach(statuses, s => engine.Install(patch, s)).Take(1).ToList();
            Assert.Null(Assert.Single(first).Error);
            // Whatever was installed before the stop is audited; nothing starts after it (at most the look-ahead ran).
            var patched = _targets.Where(t => t.CaveCount() > 0).Select(t => t.Pid).OrderBy(p => p).ToList();
            Assert.Equal(patched, audited.OrderBy(p => p));
            Assert.InRange(patched.Count, 1, 4);
            Assert.Contains(statuses[0].ProcessId, patched);
        }

        [Fact]
        public void Nothing_learned_from_one_module_file_is_used_for_another_file_of_the_same_name()
        {
            string name = "fleetfiles" + Environment.ProcessId;
            var same = Copy("a", name);
            // The same code with one more byte at the end: another file (another SHA-256), identical at the site.
            var longer = Copy("b", name, b => b.Concat(new byte[] { 0 }).ToArray());
            // Another build at the site: triple() returns 3x + 2.
            var other = Copy("c", name, b =>
            {
                var body = new byte[] { 0x8d, 0x04, 0x7f, 0x83, 0xc0, 0x01, 0xc3 };
                var at = Enumerable.Range(0, b.Length - body.Length).Where(i => b.AsSpan(i, body.Length).SequenceEqual(body)).ToList();
                Assert.Single(at);
                var changed = (byte[])b.Clone();
                changed[at[0] + 5] = 0x02;
                return changed;
            });
            var a = new[] { Start(same), Start(same) };
            var b = new[] { Start(longer), Start(longer) };
            var c = new[] { Start(other), Start(other) };
            Assert.Equal(3 * 101 + 2, c[0].Call("triple", 101));
            var engine = new HotpatchEngine(options: new EngineOptions { Workers = 3, ThreadWait = TimeSpan.FromSeconds(5) });

            // Bound to the first file by its hash: only the processes that map that very file are patched.
            string sha = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(same))).ToLowerInvariant();
            var bound = PatchFiles.Parse(PatchFiles.Yaml("T-FLEET-SHA", name, new[] { Guard(a[0]) }, "sha256: " + sha));
            var statuses = engine.Scan(bound).ToList();
            Assert.Equal(6, statuses.Count);
            var outcomes = engine.RunEach(statuses.Where(s => s.State == TargetState.Vulnerable), s => engine.Install(bound, s)).ToList();
            Assert.Equal(a.Select(t => t.Pid).OrderBy(p => p), outcomes.Where(o => o.Error == null).Select(o => o.Item.ProcessId).OrderBy(p => p));
            foreach (var t in b.Concat(c))
            {
                var s = statuses.Single(x => x.ProcessId == t.Pid);
                Assert.Equal(TargetState.Mismatch, s.State);
                Assert.Equal(HotpatchErrorKind.IdentityMismatch, s.ErrorKind);
                // Asked directly, with the first file's plans and hashes already made, it is refused the same way.
                Assert.Equal(HotpatchErrorKind.IdentityMismatch, Assert.Throws<HotpatchException>(() => engine.Install(bound, t.Pid)).Kind);
                Assert.Equal(0, t.CaveCount());
            }
            Assert.All(a, t => Assert.Equal(-1, t.Call("triple", 101)));
            Assert.All(b, t => Assert.Equal(304, t.Call("triple", 101)));
            Assert.All(c, t => Assert.Equal(305, t.Call("triple", 101)));
            foreach (var o in engine.RunEach(a, t => engine.Uninstall(t.Pid, "T-FLEET-SHA"))) Assert.Null(o.Error);

            // Without a hash, the expect bytes decide, read in each process: the other build is never written to.
            var loose = PatchFiles.For(a[0], "T-FLEET-LOOSE", Guard(a[0]));
            statuses = engine.Scan(loose).ToList();
            Assert.All(c, t => Assert.Equal(HotpatchErrorKind.ExpectMismatch, statuses.Single(s => s.ProcessId == t.Pid).ErrorKind));
            outcomes = engine.RunEach(statuses.Where(s => s.State == TargetState.Vulnerable), s => engine.Install(loose, s)).ToList();
            Assert.Equal(a.Concat(b).Select(t => t.Pid).OrderBy(p => p), outcomes.Where(o => o.Error == null).Select(o => o.Item.ProcessId).OrderBy(p => p));
            Assert.All(a.Concat(b), t => Assert.Equal(-1, t.Call("triple", 101)));
            foreach (var t in c)
            {
                Assert.Equal(HotpatchErrorKind.ExpectMismatch, Assert.Throws<HotpatchException>(() => engine.Install(loose, t.Pid)).Kind);
                Assert.Equal(305, t.Call("triple", 101));
                Assert.Equal(0, t.CaveCount());
            }
        }

        [Fact]
        public void A_target_lock_excludes_other_threads_of_this_session_and_only_for_its_own_process()
        {
            using var t = Start(Copy("a", "fleetlock" + Environment.ProcessId));
            using (TargetLock.Acquire(t.Pid, TimeSpan.FromSeconds(5)))
            {
                HotpatchException? busy = null;
                bool other = false;
                var thread = new Thread(() =>
                {
                    busy = Assert.Throws<HotpatchException>(() => TargetLock.Acquire(t.Pid, TimeSpan.FromMilliseconds(200)));
                    using (TargetLock.Acquire(t.Pid + 1, TimeSpan.FromSeconds(1))) other = true;
                });
                thread.Start();
                thread.Join();
                Assert.Equal(HotpatchErrorKind.Busy, busy?.Kind);
                Assert.True(other);
                var install = Assert.Throws<HotpatchException>(() =>
                    new HotpatchEngine(options: new EngineOptions { LockWait = TimeSpan.FromMilliseconds(200) }).Install(PatchFiles.For(t, "T-FLEET-LOCK", Guard(t)), t.Pid));
                Assert.Equal(HotpatchErrorKind.Busy, install.Kind);
                Assert.Equal(0, t.CaveCount());
            }
            using (TargetLock.Acquire(t.Pid, TimeSpan.FromMilliseconds(200))) { }
        }

        /// <summary>
        /// Whoever can write the lock folder can hold, or swap, every process's lock: it is checked before every lock is
        /// taken. Another engine process, with a machine root of its own, so that this one's folder is left alone.
        /// </summary>
        [Fact]
        public void A_lock_folder_that_others_can_write_refuses_every_install()
        {
            var t = Start(Copy("a", "fleetlockdir" + Environment.ProcessId));
            var root = Path.Combine(_dir, "root");
            var locks = Path.Combine(root, "locks");
            Directory.CreateDirectory(locks);
            File.SetUnixFileMode(root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
            File.SetUnixFileMode(locks, (UnixFileMode)Convert.ToInt32("777", 8));
            var file = PatchFiles.Write(Path.Combine(_dir, "patches"), t, "T-FLEET-LOCKDIR");
            var environment = new Dictionary<string, string> { [MachinePaths.OverrideVariable] = root };
            using var host = FaultHost.Start(environment, "", "install", file, t.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
            var output = host.StandardOutput.ReadToEnd();
            Assert.True(host.WaitForExit(60_000));
            Assert.StartsWith("error AccessDenied The lock folder cannot be trusted: ", output);
            Assert.Contains(locks, output);
            Assert.Equal(1, host.ExitCode);
            Assert.Equal(0, t.CaveCount());
            Assert.Equal(304, t.Call("triple", 101));
        }
    }
}
