using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;
using static HotpatchTools.Tests.Support.TwoSitePatch;

namespace HotpatchTools.Tests
{
    /// <summary>
    /// The Windows freeze against a dying installer, under Wine: the installer (this program, started again as
    /// InstallerHost) is held at each named step of install and uninstall and killed there. The target's threads
    /// must all run again, every site must be whole (original, or one jump into a cave), and a fresh engine must
    /// be able to stop the process, see what was left and clean it up. A target that another debugger holds is Busy.
    /// </summary>
    public sealed class KillSafetyTests
    {
        public static TheoryData<string, string> KillPoints => new TheoryData<string, string>
        {
            { "install", "freeze.after-attach" },
            { "install", "freeze.held" },
            { "install", "install.after-allocate" },
            { "install", "install.after-cave" },
            { "install", "install.after-site-1" },
            { "install", "install.after-site-2" },
            { "uninstall", "freeze.after-attach" },
            { "uninstall", "freeze.held" },
            { "uninstall", "uninstall.after-site-1" },
            { "uninstall", "uninstall.after-site-2" },
            { "uninstall", "uninstall.before-free" },
        };

        [Theory]
        [MemberData(nameof(KillPoints))]
        public void An_installer_killed_at_each_step_leaves_every_thread_running_and_every_site_whole(string mode, string failPoint)
        {
            using var t = HammeredTarget();
            var w = (WindowsTarget)t;
            var originals = Originals(t);
            using var patchFile = new TwoSitePatchFile(t, "T-WKILL");
            if (mode == "uninstall") new HotpatchEngine().Install(patchFile.Patch, t.Pid);
            var before = Originals(t);

            InstallerHost.KillAt(mode, patchFile.Path, t.Pid, failPoint);

            var context = mode + " killed at " + failPoint;
            // Every thread runs again: the hammer threads count on, and the main thread answers.
            var (calls0, _) = t.Stats();
            var clock = Stopwatch.StartNew();
            long calls = calls0;
            while (calls == calls0 && clock.Elapsed < TimeSpan.FromSeconds(10)) { Thread.Sleep(20); calls = t.Stats().Calls; }
            Assert.True(calls > calls0, context + ": the hammer threads stayed stopped");
            Assert.Equal(16, t.Call("triple", 5));
            Assert.Equal(2, t.Call("short_jcc", 0));
            Assert.Equal(6, t.Call("short_jcc", 5));
            AssertEachSiteOriginalOrPatched(w, originals, context);
            Assert.Equal(0, t.Stats().Errors);

            // Nothing is written before the cave is complete, and uninstall frees only after every site is restored.
            if (failPoint == "uninstall.before-free") Assert.Equal(originals, Originals(t));
            else if (failPoint.StartsWith("freeze.", StringComparison.Ordinal) || failPoint is "install.after-allocate" or "install.after-cave")
                Assert.Equal(before, Originals(t));

            // A fresh engine can stop the process again (the dead installer's debug object is gone) and clean up.
            var fresh = new HotpatchEngine(options: new EngineOptions { ThreadWait = TimeSpan.FromSeconds(5) });
            var left = fresh.GetInstalled(t.Pid).Where(p => p.PatchId == "T-WKILL" && p.State != PatchState.Retired).ToList();
            Assert.True(left.Count <= 1, context + ": " + left.Count + " installed caves");
            if (failPoint is "install.after-site-1" or "uninstall.after-site-1")
                Assert.Equal(PatchState.Inconsistent, Assert.Single(left).State);
            if (left.Count == 1) fresh.Uninstall(t.Pid, "T-WKILL");
            Assert.Equal(originals, Originals(t));
            Assert.Equal(TargetState.Vulnerable, fresh.Inspect(patchFile.Patch, t.Pid)!.State);
            fresh.Install(patchFile.Patch, t.Pid);
            fresh.Uninstall(t.Pid, "T-WKILL");
            Assert.Equal(originals, Originals(t));
            Assert.Equal(16, t.Call("triple", 5));
            Assert.Equal(0, t.Stats().Errors);
        }

        [Fact]
        public void A_target_held_by_another_debugger_is_Busy_and_nothing_is_written()
        {
            using var t = TargetProcess.Start();
            var originals = Originals(t);
            var patch = PatchFiles.Parse(TwoSitesYaml(t, "T-WDEBUG"));
            // Another debugger: a thread of this process attaches (without holding the target) and stays attached.
            using var attached = new ManualResetEventSlim();
            using var release = new ManualResetEventSlim();
            bool ok = false;
            var debugger = new Thread(() =>
            {
                ok = DebugActiveProcess(t.Pid);
                if (ok) DebugSetProcessKillOnExit(false);
                attached.Set();
                // Keep the target running: answer its attach events while waiting to be released.
                var ev = Marshal.AllocHGlobal(256);
                try
                {
                    while (ok && !release.IsSet)
                        if (WaitForDebugEvent(ev, 20)) ContinueDebugEvent(Marshal.ReadInt32(ev, 4), Marshal.ReadInt32(ev, 8), 0x00010002);
                    if (ok) DebugActiveProcessStop(t.Pid);
                }
                finally { Marshal.FreeHGlobal(ev); }
            }) { IsBackground = true };
            debugger.Start();
            try
            {
                Assert.True(attached.Wait(TimeSpan.FromSeconds(30)));
                Assert.True(ok, "the test's own debugger could not attach");
                var e = Assert.Throws<HotpatchException>(() => new HotpatchEngine().Install(patch, t.Pid));
                Assert.Equal(HotpatchErrorKind.Busy, e.Kind);
                Assert.Contains("being debugged", e.Message);
                Assert.Equal(originals, Originals(t));
                Assert.Equal(0, t.CaveCount());
            }
            finally
            {
                release.Set();
                Assert.True(debugger.Join(TimeSpan.FromSeconds(30)));
            }
            // Once that debugger is gone the engine stops the process as usual.
            var engine = new HotpatchEngine();
            engine.Install(patch, t.Pid);
            Assert.Equal(16, t.Call("triple", 5));
            engine.Uninstall(t.Pid, "T-WDEBUG");
            Assert.Equal(originals, Originals(t));
        }

        [Fact]
        public void A_stop_holds_every_thread_until_it_is_released()
        {
            // The debug-object freeze must really stop threads: a counter the hammer threads bump stays still while held.
            using var t = HammeredTarget();
            ulong counter = t.Symbol("calls");
            var engine = new HotpatchEngine();
            using var target = engine.Platform.Open(t.Pid);
            for (int i = 0; i < 5; i++)
            {
                long first, second;
                using (var frozen = target.Threads.Freeze(TimeSpan.FromSeconds(10)))
                {
                    Assert.True(frozen.Threads.Count >= 3, "saw " + frozen.Threads.Count + " threads");
                    first = BitConverter.ToInt64(t.Read(counter, 8));
                    Thread.Sleep(50);
                    second = BitConverter.ToInt64(t.Read(counter, 8));
                }
                Assert.Equal(first, second);
                var clock = Stopwatch.StartNew();
                while (BitConverter.ToInt64(t.Read(counter, 8)) == second && clock.Elapsed < TimeSpan.FromSeconds(10)) Thread.Sleep(5);
                Assert.True(BitConverter.ToInt64(t.Read(counter, 8)) != second, "the threads did not run again after release");
            }
        }

        [DllImport("kernel32.dll", SetLastError = true)] private static extern bool DebugActiveProcess(int pid);
        [DllImport("kernel32.dll", SetLastError = true)] private static extern bool DebugActiveProcessStop(int pid);
        [DllImport("kernel32.dll", SetLastError = true)] private static extern bool DebugSetProcessKillOnExit(bool kill);
        [DllImport("kernel32.dll", SetLastError = true)] private static extern bool WaitForDebugEvent(IntPtr debugEvent, uint milliseconds);
        [DllImport("kernel32.dll", SetLastError = true)] private static extern bool ContinueDebugEvent(int pid, int tid, uint status);
    }
}
