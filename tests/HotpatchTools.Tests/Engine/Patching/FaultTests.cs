using System.Diagnostics;
using System.Globalization;
using System.Runtime.Versioning;
using System.Threading;
using System.Threading.Tasks;
using HotpatchTools.Engine.Format;
using static HotpatchTools.Tests.Support.TwoSitePatch;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// Fault injection on Linux: competing installers, an installer killed mid-way, a target that dies or
    /// unloads its module under the engine, no privilege. Each case ends with the target alive (where it should
    /// be), every site fully original or fully patched, and a HotpatchException of a stated kind.
    /// </summary>
    [SupportedOSPlatform("linux")]
    public sealed class FaultTests
    {
        private static void AssertResponsive(TargetProcess t, string context)
        {
            Assert.True(t.IsAlive, context + ": target died");
            Assert.DoesNotContain('t', t.ThreadStates());
            Assert.Equal(16, t.Call("triple", 5));
            Assert.Equal(2, t.Call("short_jcc", 0));
            Assert.Equal(6, t.Call("short_jcc", 5));
        }

        // ---- 1. two installers at once ----

        [Fact]
        public void Two_engines_installing_the_same_patch_at_once_never_patch_twice()
        {
            using var t = HammeredTarget();
            var originals = Originals(t);
            var patch = TwoSites(t, "T-RACE");
            var options = new EngineOptions { ThreadWait = TimeSpan.FromSeconds(5) };
            var engines = new[] { new HotpatchEngine(options: options), new HotpatchEngine(options: options) };
            var losers = new Dictionary<HotpatchErrorKind, int>();
            for (int round = 0; round < 40; round++)
            {
                var outcomes = new object?[2];
                using var barrier = new Barrier(2);
                var threads = Enumerable.Range(0, 2).Select(k => new Thread(() =>
                {
                    barrier.SignalAndWait();
                    try { outcomes[k] = engines[k].Install(patch, t.Pid); }
                    catch (Exception e) { outcomes[k] = e; }
                })).ToList();
                threads.ForEach(th => th.Start());
                threads.ForEach(th => Assert.True(th.Join(TimeSpan.FromSeconds(60)), "an installer hung"));

                var winners = outcomes.OfType<InstallResult>().ToList();
                foreach (var o in outcomes)
                {
                    if (o is InstallResult) continue;
                    var e = Assert.IsType<HotpatchException>(o);
                    Assert.True(e.Kind is HotpatchErrorKind.Busy or HotpatchErrorKind.AlreadyInstalled or HotpatchErrorKind.ExpectMismatch,
                        "round " + round + ": unexpected " + e.Kind + ": " + e.Message);
                    Assert.Equal(t.Pid, e.ProcessId);
                    losers[e.Kind] = losers.GetValueOrDefault(e.Kind) + 1;
                }
                Assert.True(winners.Count == 1, "round " + round + ": " + winners.Count + " installers succeeded; outcomes: " +
                    string.Join(" | ", outcomes.Select(o => o is HotpatchException e ? e.Kind + ": " + e.Message : "installed")));

                // One installed cave (earlier rounds may leave retired ones a hammer thread was inside), each site one jump into it.
                var installed = Assert.Single(new HotpatchEngine().GetInstalled(t.Pid), p => p.State != PatchState.Retired);
                Assert.Equal(PatchState.Installed, installed.State);
                foreach (var s in installed.Sites)
                {
                    Assert.Equal(0xE9, s.Current[0]);
                    ulong dest = s.Address + 5 + (ulong)(long)BitConverter.ToInt32(s.Current, 1);
                    Assert.InRange(dest, installed.CaveAddress, installed.CaveAddress + (ulong)installed.CaveSize - 1);
                }

                engines[round % 2].Uninstall(t.Pid, "T-RACE");
                Assert.Equal(originals, Originals(t));
            }
            Assert.Equal("ok", t.Send("calm"));
            // Retired caves (a hammer thread was inside) are collected by one more clean cycle.
            engines[0].Install(patch, t.Pid);
            engines[0].Uninstall(t.Pid, "T-RACE");
            Assert.Equal(0, t.CaveCount());
            Assert.Equal(0, t.Stats().Errors);
            AssertResponsive(t, "after the race");
        }

        // ---- 2. the installing process is SIGKILLed ----

        [Fact]
        public void An_installer_killed_at_random_moments_leaves_the_target_running_and_every_site_whole()
        {
            using var t = HammeredTarget();
            var originals = Originals(t);
            using var patchFile = new TwoSitePatchFile(t, "T-KILL");
            var random = new Random(20261124);
            int killedWhilePatched = 0;
            for (int round = 0; round < 12; round++)
            {
                var host = FaultHost.Start("", "loop", patchFile.Path, t.Pid.ToString(CultureInfo.InvariantCulture));
                var lines = new System.Collections.Concurrent.BlockingCollection<string>();
                // Read on a plain thread: no blocking on async reads under the test framework.
                var reader = new Thread(() => { string? l; while ((l = host.StandardOutput.ReadLine()) != null) lines.Add(l); lines.CompleteAdding(); }) { IsBackground = true };
                reader.Start();
                try
                {
                    // Once the host has done one step the engine is warm: kill it somewhere in the next cycles.
                    Assert.True(lines.TryTake(out var first, TimeSpan.FromSeconds(60)), "the fault host printed nothing");
                    Assert.True(first is "installed" or "removed", "fault host: " + first);
                    Thread.Sleep(random.Next(0, 40));
                }
                finally
                {
                    host.Kill();
                    Assert.True(host.WaitForExit(10_000), "the fault host did not die");
                    Assert.True(reader.Join(10_000), "the fault host's output did not end");
                    host.Dispose();
                }
                Assert.DoesNotContain(lines, l => l.StartsWith("error", StringComparison.Ordinal));
                var context = "round " + round;
                AssertResponsive(t, context);
                AssertEachSiteOriginalOrPatched(t, originals, context);

                // A fresh engine can always clean up what the dead one left.
                var fresh = new HotpatchEngine(options: new EngineOptions { ThreadWait = TimeSpan.FromSeconds(5) });
                // The dead installer's last injected call (an munmap, say) may still be finishing in a target thread:
                // a freeze waits for it, so what is listed next is what stays.
                using (var settled = fresh.Platform.Open(t.Pid)) settled.Threads.Freeze(TimeSpan.FromSeconds(5)).Dispose();
                var left = fresh.GetInstalled(t.Pid).Where(p => p.PatchId == "T-KILL" && p.State != PatchState.Retired).ToList();
                Assert.True(left.Count <= 1, context + ": " + left.Count + " installed caves");
                if (left.Count == 1)
                {
                    if (left[0].State == PatchState.Installed) killedWhilePatched++;
                    fresh.Uninstall(t.Pid, "T-KILL");
                }
                Assert.Equal(originals, Originals(t));
                Assert.Equal(TargetState.Vulnerable, fresh.Inspect(patchFile.Patch, t.Pid)!.State);
            }
            Assert.Equal("ok", t.Send("calm"));
            var last = new HotpatchEngine();
            last.Install(patchFile.Patch, t.Pid);
            last.Uninstall(t.Pid, "T-KILL");
            Assert.Equal(0, t.CaveCount());
            Assert.Equal(0, t.Stats().Errors);
            AssertResponsive(t, "at the end");
        }

        public static TheoryData<string, string, string> KillPoints() => new()
        {
            // The injected mmap that makes the cave: the chosen thread (the first non-leader one, by the test hook
            // HOTPATCHTOOLS_INJECT_THREAD=first) is in user code with live AVX registers, or blocked in read() (its
            // call must be restarted, not fail).
            { "install", "inject.after-setregs", "vecspin" },
            { "install", "inject.after-syscall", "vecspin" },
            { "install", "inject.after-setregs", "pipewait" },
            { "install", "inject.after-syscall", "pipewait" },
            { "install", "install.after-allocate", "vecspin" },
            { "install", "install.after-cave", "vecspin" },
            { "install", "install.after-site-1", "vecspin" },
            { "install", "install.after-site-2", "vecspin" },
            { "uninstall", "uninstall.after-site-1", "vecspin" },
            { "uninstall", "uninstall.after-site-2", "vecspin" },
            { "uninstall", "uninstall.before-free", "vecspin" },
            // The injected munmap that frees the cave after the threads run again.
            { "uninstall", "inject.after-setregs", "pipewait" },
            { "uninstall", "inject.after-syscall", "vecspin" },
            // One thread (the main one, blocked in read): the cave is mapped and unmapped within the freeze that
            // writes the sites, so the installer dies holding that thread in an injected call or between writes.
            { "install", "inject.after-setregs", "none" },
            { "install", "inject.after-syscall", "none" },
            { "install", "install.after-allocate", "none" },
            { "install", "install.after-site-1", "none" },
            { "uninstall", "uninstall.after-site-1", "none" },
            { "uninstall", "inject.after-syscall", "none" },
        };

        /// <summary>
        /// The installer is frozen at a named step (HOTPATCHTOOLS_FAILPOINT) and SIGKILLed there. The target must run
        /// on with every thread's state intact, every site whole, and whatever the dead installer left must be
        /// reported and removable by a fresh engine.
        /// </summary>
        [Theory]
        [MemberData(nameof(KillPoints))]
        public async Task An_installer_killed_at_each_step_leaves_the_target_running_and_every_site_whole(string mode, string failPoint, string firstThread)
        {
            using var t = TargetProcess.Start();
            bool single = firstThread == "none";
            if (!single) Assert.Equal("ok", t.Send(firstThread));
            // The munmap of an uninstall only happens when no thread is in the cave: no hammering there.
            bool freeing = mode == "uninstall" && failPoint.StartsWith("inject.", StringComparison.Ordinal);
            if (!freeing && !single) Assert.Equal("ok", t.Send("hammer 2"));
            var originals = Originals(t);
            using var patchFile = new TwoSitePatchFile(t, "T-STEP");
            if (mode == "uninstall") new HotpatchEngine().Install(patchFile.Patch, t.Pid);
            var patchedBefore = Originals(t);

            var host = FaultHost.Start(new Dictionary<string, string> { [FailPoint.Variable] = failPoint, [HotpatchTools.Engine.Platform.Linux.LinuxFrozenProcess.InjectThreadVariable] = "first" },
                "", mode, patchFile.Path, t.Pid.ToString(CultureInfo.InvariantCulture));
            try
            {
                var reached = await host.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(90));
                Assert.Equal("failpoint " + failPoint, reached);
            }
            finally
            {
                host.Kill();
                Assert.True(host.WaitForExit(10_000), "the installer did not die");
                host.Dispose();
            }

            var context = mode + " killed at " + failPoint;
            Thread.Sleep(50);
            AssertResponsive(t, context);
            AssertEachSiteOriginalOrPatched(t, originals, context);
            if (firstThread == "pipewait")
            {
                Assert.Equal("1", t.Send("poke"));
                Assert.Equal("2", t.Send("poke"));
            }
            Thread.Sleep(200); // a damaged vector register shows within one spin of vecspin's loop
            Assert.Equal(0, t.Stats().Errors);

            // Steps before the first site write leave the process as it was (a mapped but empty cave aside); the
            // munmap of an uninstall comes after every site is restored.
            if (freeing || failPoint == "uninstall.before-free") Assert.Equal(originals, Originals(t));
            else if (failPoint.StartsWith("inject.", StringComparison.Ordinal) || failPoint is "install.after-allocate" or "install.after-cave")
                Assert.Equal(patchedBefore, Originals(t));

            var fresh = new HotpatchEngine(options: new EngineOptions { ThreadWait = TimeSpan.FromSeconds(5) });
            using (var settled = fresh.Platform.Open(t.Pid)) settled.Threads.Freeze(TimeSpan.FromSeconds(5)).Dispose();
            var left = fresh.GetInstalled(t.Pid).Where(p => p.PatchId == "T-STEP" && p.State != PatchState.Retired).ToList();
            Assert.True(left.Count <= 1, context + ": " + left.Count + " installed caves");
            if (failPoint is "install.after-site-1" or "uninstall.after-site-1")
                Assert.Equal(PatchState.Inconsistent, Assert.Single(left).State); // reported as such until someone removes it
            if (failPoint == "install.after-allocate")
                Assert.Equal(PatchState.Orphaned, Assert.Single(left).State); // marked from the start: found, not leaked
            if (left.Count == 1) fresh.Uninstall(t.Pid, "T-STEP");
            Assert.DoesNotContain(fresh.GetInstalled(t.Pid), p => p.State == PatchState.Orphaned);
            Assert.Equal(originals, Originals(t));
            Assert.Equal(TargetState.Vulnerable, fresh.Inspect(patchFile.Patch, t.Pid)!.State);
            fresh.Install(patchFile.Patch, t.Pid);
            fresh.Uninstall(t.Pid, "T-STEP");
            Assert.Equal(originals, Originals(t));
            AssertResponsive(t, context + ", after cleaning up");
            Assert.Equal(0, t.Stats().Errors);
        }

        // ---- 3. the target dies under the engine ----

        [Fact]
        public void A_target_killed_during_install_or_uninstall_is_a_HotpatchException_in_bounded_time()
        {
            var random = new Random(4242);
            var kinds = new Dictionary<HotpatchErrorKind, int>();
            for (int round = 0; round < 15; round++)
            {
                using var t = HammeredTarget();
                var patch = TwoSites(t, "T-DIE");
                var engine = new HotpatchEngine(options: new EngineOptions { ThreadWait = TimeSpan.FromSeconds(2), StopTimeout = TimeSpan.FromSeconds(2) });
                var killer = new Thread(() => { Thread.Sleep(random.Next(0, 60)); t.Kill(); });
                Exception? error = null;
                var clock = Stopwatch.StartNew();
                killer.Start();
                while (error == null)
                {
                    var call = Stopwatch.StartNew();
                    try
                    {
                        engine.Install(patch, t.Pid);
                        engine.Uninstall(t.Pid, "T-DIE");
                    }
                    catch (Exception e) { error = e; }
                    Assert.True(call.Elapsed < TimeSpan.FromSeconds(15), "round " + round + ": one install/uninstall took " + call.Elapsed);
                    Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), "round " + round + ": the engine kept succeeding on a killed target");
                }
                killer.Join();
                var he = Assert.IsType<HotpatchException>(error);
                Assert.True(he.Kind is HotpatchErrorKind.ProcessExited or HotpatchErrorKind.ProcessNotFound,
                    "round " + round + ": " + he.Kind + ": " + he.Message);
                Assert.Equal(t.Pid, he.ProcessId);
                kinds[he.Kind] = kinds.GetValueOrDefault(he.Kind) + 1;
            }
        }

        public static TheoryData<string, string> TargetKillPoints() => new()
        {
            { "install", "inject.after-setregs" },
            { "install", "inject.after-syscall" },
            { "install", "install.after-allocate" },
            { "install", "install.after-cave" },
            { "install", "install.after-site-1" },
            { "install", "install.after-site-2" },
            { "uninstall", "uninstall.after-site-1" },
            { "uninstall", "uninstall.after-site-2" },
            { "uninstall", "uninstall.before-free" },
        };

        /// <summary>The installer is held at a named step while its target is SIGKILLed, then let go.</summary>
        [Theory]
        [MemberData(nameof(TargetKillPoints))]
        public async Task A_target_killed_at_each_step_is_reported_as_exited_in_bounded_time(string mode, string failPoint)
        {
            using var t = HammeredTarget();
            using var patchFile = new TwoSitePatchFile(t, "T-DIE");
            if (mode == "uninstall") new HotpatchEngine().Install(patchFile.Patch, t.Pid);
            var environment = new Dictionary<string, string> { [FailPoint.Variable] = failPoint, [FailPoint.ResumeVariable] = "1" };
            using var host = FaultHost.Start(environment, "", mode, patchFile.Path, t.Pid.ToString(CultureInfo.InvariantCulture));
            try
            {
                var reached = await host.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(90));
                Assert.Equal("failpoint " + failPoint, reached);
                t.Kill();
                var clock = Stopwatch.StartNew();
                host.StandardInput.WriteLine("go");
                host.StandardInput.Flush();
                var outcome = await host.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
                Assert.True(host.WaitForExit(30_000), "the installer did not exit");
                // Nothing is left to do after the last write of an install or the restores of an uninstall, so
                // success is the truth there; anywhere else the death must be reported as such.
                bool lastStep = failPoint is "install.after-site-2" or "uninstall.before-free";
                string line = outcome ?? "(no output)";
                if (lastStep && line is "installed" or "removed") return;
                Assert.True(line.StartsWith("error ProcessExited ", StringComparison.Ordinal) || line.StartsWith("error ProcessNotFound ", StringComparison.Ordinal),
                    failPoint + ": " + line + " after " + clock.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + " s");
                Assert.Contains(t.Pid.ToString(CultureInfo.InvariantCulture), line);
                Assert.Equal(1, host.ExitCode);
            }
            finally
            {
                if (!host.HasExited) host.Kill();
            }
        }

        // ---- 4. the module is unloaded between discovery and install ----

        [Fact]
        public void A_module_unloaded_after_discovery_is_ModuleNotLoaded_and_nothing_is_written()
        {
            var lib = NativeBuild.Build("libfaultsites.so", "-shared -fPIC", "faultlib.S");
            var exe = NativeBuild.Build("faulttarget", "-O2", "faulttarget.c");
            using var t = TargetProcess.Start(exe);
            Assert.Equal("ok", t.Send("load " + lib));
            Assert.Equal("16", t.Send("call 5"));

            ulong LibBase() => File.ReadAllLines("/proc/" + t.Pid + "/maps")
                .Where(l => l.EndsWith(lib, StringComparison.Ordinal))
                .Select(l => ulong.Parse(l[..l.IndexOf('-')], NumberStyles.HexNumber, CultureInfo.InvariantCulture)).Min();
            ulong site = LibBase() + NativeBuild.SymbolRva(lib, "lib_triple");
            var original = t.Read(site, 6);
            var patch = PatchFiles.Parse(PatchFiles.Yaml("T-DLCLOSE", "libfaultsites.so", new[] { new PatchletSpec("lib_triple", original, "mov eax, 7\nret") }));

            var engine = new HotpatchEngine();
            var status = engine.Inspect(patch, t.Pid)!;
            Assert.Equal(TargetState.Vulnerable, status.State);

            Assert.Equal("ok", t.Send("unload"));
            Assert.DoesNotContain(File.ReadAllLines("/proc/" + t.Pid + "/maps"), l => l.EndsWith(lib, StringComparison.Ordinal));
            var mapsBefore = MapsWithoutStack(t);

            var e = Assert.Throws<HotpatchException>(() => engine.Install(patch, t.Pid));
            Assert.Equal(HotpatchErrorKind.ModuleNotLoaded, e.Kind);
            Assert.Equal(t.Pid, e.ProcessId);
            Assert.Contains("libfaultsites.so", e.Message);
            Assert.Equal(0, t.CaveCount());
            Assert.Equal(mapsBefore, MapsWithoutStack(t)); // no cave, not even an empty mapping
            Assert.DoesNotContain('t', t.ThreadStates());

            // Loaded again (at whatever address), the patch installs and works.
            Assert.Equal("ok", t.Send("load " + lib));
            engine.Install(patch, t.Pid);
            Assert.Equal("7", t.Send("call 5"));
            engine.Uninstall(t.Pid, "T-DLCLOSE");
            Assert.Equal("16", t.Send("call 5"));
        }

        private static string[] MapsWithoutStack(TargetProcess t) =>
            File.ReadAllLines("/proc/" + t.Pid + "/maps").Where(l => !l.Contains("[stack]") && !l.Contains("[heap]")).ToArray();

        // ---- a real debugger already holds the process ----

        /// <summary>strace attaches to every thread the way debuggers do; while it is there we refuse, once it is gone we install.</summary>
        [Fact]
        public void A_process_traced_by_strace_is_Busy_naming_the_tracer_and_nothing_is_written()
        {
            using var t = HammeredTarget();
            var originals = Originals(t);
            var patch = TwoSites(t, "T-DEBUGGED");
            var psi = new ProcessStartInfo("strace") { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in new[] { "-f", "-qq", "-e", "trace=none", "-o", "/dev/null", "-p", t.Pid.ToString(CultureInfo.InvariantCulture) }) psi.ArgumentList.Add(a);
            using var strace = Process.Start(psi)!;
            try
            {
                var clock = Stopwatch.StartNew();
                while (!File.ReadAllLines("/proc/" + t.Pid + "/status").Any(l => l.StartsWith("TracerPid:", StringComparison.Ordinal) && !l.EndsWith("\t0", StringComparison.Ordinal)))
                {
                    Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), "strace did not attach");
                    Thread.Sleep(20);
                }
                var engine = new HotpatchEngine(options: new EngineOptions { ThreadWait = TimeSpan.FromSeconds(1) });
                var e = Assert.Throws<HotpatchException>(() => engine.Install(patch, t.Pid));
                Assert.Equal(HotpatchErrorKind.Busy, e.Kind);
                Assert.Contains("strace", e.Message);
                Assert.Equal(t.Pid, e.ProcessId);
                Assert.Equal(originals, Originals(t));
                Assert.Equal(0, t.CaveCount());
            }
            finally
            {
                // SIGTERM: strace detaches from every thread before it exits.
                Process.Start("kill", new[] { "-TERM", strace.Id.ToString(CultureInfo.InvariantCulture) })!.WaitForExit();
                Assert.True(strace.WaitForExit(20_000), "strace did not exit");
            }
            AssertResponsive(t, "after strace detached");
            var after = new HotpatchEngine();
            after.Install(patch, t.Pid);
            after.Uninstall(t.Pid, "T-DEBUGGED");
            Assert.Equal(originals, Originals(t));
            Assert.Equal(0, t.Stats().Errors);
        }

        // ---- 5. no privilege ----

        [Fact]
        public void An_unprivileged_user_gets_AccessDenied_on_a_root_process_and_nothing_is_written()
        {
            Assert.True(Engine.Platform.Linux.LibC.geteuid() == 0, "this test runs as root (it patches a root process from an unprivileged user)");
            using var t = TargetProcess.Start();
            var originals = Originals(t);
            var file = Path.Combine(FaultHost.Dir, "T-NOPRIV-" + Environment.ProcessId + ".micropatch.yaml");
            File.WriteAllText(file, TwoSitesYaml(t, "T-NOPRIV"));
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            try
            {
                var mapsBefore = MapsWithoutStack(t);
                foreach (var mode in new[] { "install", "uninstall" })
                {
                    var (exit, lines, stderr) = FaultHost.Run("setpriv --reuid=65534 --regid=65534 --clear-groups", mode, file, t.Pid.ToString(CultureInfo.InvariantCulture));
                    Assert.True(exit == 1, mode + ": exit " + exit + "\n" + string.Join("\n", lines) + stderr);
                    var line = Assert.Single(lines);
                    Assert.StartsWith("error AccessDenied ", line);
                    Assert.Contains(t.Pid.ToString(CultureInfo.InvariantCulture), line);
                }
                Assert.Equal(originals, Originals(t));
                Assert.Equal(0, t.CaveCount());
                Assert.Equal(mapsBefore, MapsWithoutStack(t));
                AssertResponsive(t, "after the unprivileged attempt");
            }
            finally { File.Delete(file); }
        }
    }
}
