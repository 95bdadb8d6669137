using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;

namespace HotpatchTools.Engine.Platform.Linux
{
    /// <summary>
    /// Threads of a target held in ptrace stops. Every ptrace and waitpid call for these tracees must come
    /// from the OS thread that seized them, so this object refuses to be used from any other thread.
    /// </summary>
    internal sealed class LinuxFrozenProcess : IFrozenProcess
    {
        internal sealed class Tracee
        {
            public int Tid;
            public int PendingSignal;
            public bool Interrupted;
            public bool Stopped;
            public LibC.UserRegs Regs;
        }

        // -ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND, -ERESTART_RESTARTBLOCK: the kernel moves rip back over `syscall` on resume.
        internal static readonly HashSet<long> RestartCodes = new HashSet<long> { -512, -513, -514, -516 };

        private readonly LinuxTargetProcess _proc;
        private readonly List<Tracee> _tracees = new List<Tracee>();
        private readonly int _ownerThread = Environment.CurrentManagedThreadId;
        private List<ThreadSnapshot> _snapshots = new List<ThreadSnapshot>();
        private readonly IDisposable? _reapGuard;
        private IDisposable? _boost;
        private bool _disposed, _released;

        private LinuxFrozenProcess(LinuxTargetProcess proc, bool everyThread)
        {
            HoldsEveryThread = everyThread;
            _proc = proc;
            _reapGuard = proc.OurChild ? ChildReapGuard.Enter() : null;
        }

        public IReadOnlyList<ThreadSnapshot> Threads => _snapshots;

        /// <summary>Every thread of the process, not one for an injected call: none of them can run another program meanwhile.</summary>
        internal bool HoldsEveryThread { get; }

        private int Pid => _proc.Id;

        internal LinuxTargetProcess Process => _proc;

        /// <summary>A non-leader thread first: the runtime's waitpid(pid) on its own children can only take the leader's stops.</summary>
        internal Tracee InjectionThread() =>
            _tracees.Find(x => x.PendingSignal == 0 && x.Tid != Pid) ?? _tracees.Find(x => x.PendingSignal == 0) ?? _tracees[0];

        internal bool Holds(Tracee t) => _tracees.Contains(t);

        /// <summary>The thread is gone: nothing to release.</summary>
        internal void Forget(Tracee t) => _tracees.Remove(t);

        internal HotpatchException Gone() => ProcFs.Gone(Pid);

        /// <summary>How long to keep trying while another tracer (most often another installer, briefly) holds a thread.</summary>
        private static readonly TimeSpan TracedWait = TimeSpan.FromSeconds(1);

        /// <summary>
        /// Stops the threads (all, or one for an injected call) and keeps the calling thread at real-time priority
        /// from the first stop until they are released: with many busy threads on few cores, a tracer at normal
        /// priority loses the CPU to the target's running threads for tens of milliseconds at a time, while every
        /// thread it already stopped waits. It never spins at that priority: it sleeps between looks for a stop (see
        /// PollPause). Nothing before the first stop runs boosted: while nothing is held, a tracer that loses the CPU
        /// delays no one, and one that keeps a core to itself delays the target's threads that wait for that core.
        /// </summary>
        /// <param name="beforeStop">Runs before anything is stopped (reading what the freeze needs to know).</param>
        public static LinuxFrozenProcess Stop(LinuxTargetProcess proc, TimeSpan timeout, bool singleThread, Action? beforeStop = null)
        {
            // Chosen before anything runs boosted: a file read per thread.
            int quiet = singleThread && !FirstThreadForInjection ? QuietestThread(proc.Id, proc.OurChild) : 0;
            beforeStop?.Invoke();
            var clock = Stopwatch.StartNew();
            var backoff = new Random();
            while (true)
            {
                var f = new LinuxFrozenProcess(proc, everyThread: !singleThread);
                try
                {
                    f.StopThreads(timeout, singleThread, quiet);
                    return f;
                }
                catch (TracedElsewhereException e)
                {
                    // Let go of everything first: two installers each holding some threads would wait on each other.
                    f.Dispose();
                    if (clock.Elapsed >= TracedWait)
                        throw new HotpatchException(HotpatchErrorKind.Busy, e.Message) { ProcessId = e.ProcessId };
                    Thread.Sleep(backoff.Next(1, 8));
                }
                catch
                {
                    f.Dispose();
                    throw;
                }
            }
        }

        private sealed class TracedElsewhereException : HotpatchException
        {
            public TracedElsewhereException(string message) : base(HotpatchErrorKind.Busy, message) { }
        }

        private void StopThreads(TimeSpan timeout, bool singleThread, int quiet)
        {
            var deadline = Stopwatch.StartNew();
            var seen = new HashSet<int>();
            while (true)
            {
                var fresh = new List<int>();
                foreach (int tid in ProcFs.ListTasks(Pid))
                    if (seen.Add(tid)) fresh.Add(tid);
                if (singleThread && fresh.Count > 0)
                {
                    // Any live thread can run an injected call: the quietest (chosen above) if it is still there, else a
                    // non-leader (see InjectionThread); the leader may be a zombie whose threads live on.
                    int pick = quiet != 0 && fresh.Contains(quiet) ? quiet : fresh.Find(t => t != Pid && ProcFs.TaskState(Pid, t) != 'Z');
                    if (pick == 0 && ProcFs.TaskState(Pid, Pid) != 'Z' && fresh.Contains(Pid)) pick = Pid;
                    fresh = pick != 0 ? new List<int> { pick } : new List<int>();
                }
                if (fresh.Count == 0) break;

                // Attaching is the slow part (tens of microseconds a thread, under the kernel's locks) and does not
                // stop anything: attach to the whole batch first, then interrupt it in one quick pass, so no thread
                // waits stopped while the others are being attached.
                var batch = new List<Tracee>();
                foreach (int tid in fresh)
                {
                    var t = Seize(tid);
                    if (t != null) { _tracees.Add(t); batch.Add(t); }
                }
                if (_boost == null && batch.Count > 0) _boost = RealtimeBoost.Enter() ?? NoBoost;
                _hold.Stopping();
                foreach (var t in batch.ToArray())
                    if (!Interrupt(t)) batch.Remove(t);
                foreach (var t in batch) { WaitForStop(t, deadline, timeout); t.Stopped = true; }
                // Re-list: threads created while we were stopping the others must be stopped too.
                if (singleThread && _tracees.Count > 0) break;
            }
            if (_tracees.Count == 0) throw ProcFs.Gone(Pid);

            var snaps = new List<ThreadSnapshot>(_tracees.Count);
            foreach (var t in _tracees)
            {
                t.Regs = GetRegs(t.Tid);
                ulong ip = t.Regs.rip;
                bool restarting = (long)t.Regs.orig_rax >= 0 && RestartCodes.Contains((long)t.Regs.rax);
                snaps.Add(new ThreadSnapshot { Id = t.Tid, Ip = ip, ResumeIp = restarting ? ip - 2 : ip, StackPointer = t.Regs.rsp });
            }
            _snapshots = snaps;
            if (_tracees.Find(InLeftoverInjection) is Tracee leftover)
                throw new TracedElsewhereException(
                    "Thread " + leftover.Tid + " of process " + Pid + " is still running a system call injected by an installer that was killed; try again when it has finished.") { ProcessId = Pid };
        }

        /// <summary>
        /// A test hook (HOTPATCHTOOLS_INJECT_THREAD=first): injected calls run in the first non-leader thread listed, the
        /// one the fault tests put in a known state (AVX registers live, blocked in read) before killing the installer.
        /// </summary>
        internal const string InjectThreadVariable = "HOTPATCHTOOLS_INJECT_THREAD";

        private static readonly bool FirstThreadForInjection = Environment.GetEnvironmentVariable(InjectThreadVariable) == "first";

        /// <summary>How many threads are compared when one is chosen for an injected call: reading each costs a file read.</summary>
        private const int InjectionCandidates = 8;

        /// <summary>
        /// The thread to run an injected call: the one that has been put on a CPU the fewest times (of the leader
        /// and the first others listed). The thread is held while the call runs, and a thread that rarely
        /// wakes (a main thread waiting in read or join, an idle worker) does not notice, where one that runs every
        /// few hundred microseconds sees the whole stop as a late wake-up. The leader may be a zombie whose threads
        /// live on; when the target is our own child, a non-leader still goes first (see InjectionThread).
        /// </summary>
        internal static int QuietestThread(int pid, bool child)
        {
            var tids = ProcFs.ListTasks(pid);
            // One thread is no choice: the usual pick (see StopThreads) takes it without reading its counters, which a
            // machine-wide install of single-thread processes would pay twice per process.
            if (tids.Count < 2) return 0;
            // The leader first: it is often the quiet one, and it is not in every first few listed.
            tids.Sort((a, b) => (a == pid ? 0 : 1).CompareTo(b == pid ? 0 : 1));
            var runs = new List<(long Runs, int Tid)>();
            foreach (int tid in tids.Take(InjectionCandidates))
            {
                long n = ProcFs.TimesRun(pid, tid);
                if (n < 0) continue; // gone
                // Our own child's leader only when no other thread can do it.
                runs.Add((child && tid == pid ? long.MaxValue : n, tid));
            }
            runs.Sort();
            // A thread in uninterruptible sleep (a slow disk, a hung mount) is quiet too, but would not stop in time;
            // a zombie leader cannot run anything.
            foreach (var (_, tid) in runs)
                if (ProcFs.TaskState(pid, tid) is not ('D' or 'Z' or 'X' or '\0')) return tid;
            return 0;
        }

        /// <summary>
        /// A thread that a killed installer left in an injected call (its frame's restorer on top of its stack, at the
        /// gadget or in the restorer): it finishes by itself in a moment. Using it now would save the injected registers
        /// as its own, and its pending munmap could later unmap a cave mapped meanwhile at the same address.
        /// </summary>
        private bool InLeftoverInjection(Tracee t)
        {
            var g = _proc.KnownGadgets;
            if (g == null || !g.SafetyNet) return false;
            ulong rip = t.Regs.rip;
            if (rip >= g.Restorer && rip <= g.Restorer + 9) return true;
            if (rip != g.Syscall && rip != g.Syscall + 2) return false;
            var top = new byte[8];
            return _proc.TryRead(t.Regs.rsp, top) == 8 && BitConverter.ToUInt64(top, 0) == g.Restorer;
        }

        private Tracee? Seize(int tid)
        {
            if (LibC.ptrace(LibC.PTRACE_SEIZE, tid, IntPtr.Zero, (IntPtr)LibC.PTRACE_O_TRACESYSGOOD) < 0)
            {
                int errno = Marshal.GetLastWin32Error();
                if (errno == LibC.ESRCH) return null; // exited meanwhile
                if (errno == LibC.EPERM)
                {
                    // The thread that refused, not the leader: another installer may hold just one thread.
                    int tracer = ProcFs.TracerPid(Pid, tid);
                    // An exiting task refuses to be traced with the same EPERM: a dying process is not a permission problem.
                    if (ProcFs.TaskState(Pid, tid) is '\0' or 'Z' or 'X' || ProcFs.TaskState(Pid, Pid) is '\0' or 'Z' or 'X') throw ProcFs.Gone(Pid);
                    // Root may trace anything live, so its EPERM means another tracer, even one that let go before we looked.
                    if (tracer != 0 || Machine.Privilege.IsElevated())
                        throw new TracedElsewhereException(
                            "Process " + Pid + " is busy: it is being traced by " + (tracer != 0 ? "process " + tracer + " (" + (ProcFs.TryReadComm(tracer) ?? "?") + ")" : "another tracer") +
                            ", a debugger or another installer. Try again when it has detached.") { ProcessId = Pid };
                    throw ProcFs.Denied(Pid);
                }
                throw new HotpatchException(HotpatchErrorKind.Internal, "PTRACE_SEIZE of thread " + tid + " failed: " + LibC.StrError(errno) + ".") { ProcessId = Pid };
            }
            return new Tracee { Tid = tid };
        }

        /// <summary>False when the thread exited since it was attached (it is then forgotten).</summary>
        private bool Interrupt(Tracee t)
        {
            t.Interrupted = true;
            if (LibC.ptrace(LibC.PTRACE_INTERRUPT, t.Tid, IntPtr.Zero, IntPtr.Zero) == 0) return true;
            int errno = Marshal.GetLastWin32Error();
            if (errno == LibC.ESRCH) { _tracees.Remove(t); return false; }
            throw new HotpatchException(HotpatchErrorKind.Internal, "PTRACE_INTERRUPT of thread " + t.Tid + " failed: " + LibC.StrError(errno) + ".") { ProcessId = Pid };
        }

        /// <summary>
        /// Polls rather than blocks: a thread stuck in uninterruptible sleep must not hang us, and when the
        /// target is our own child the runtime's SIGCHLD handler may reap the stop notification first.
        /// </summary>
        private void WaitForStop(Tracee t, Stopwatch clock, TimeSpan timeout)
        {
            var waiting = Stopwatch.StartNew();
            for (int spins = 0; ; spins++)
            {
                int r = LibC.waitpid(t.Tid, out int status, LibC.WNOHANG | LibC.__WALL);
                if (r == t.Tid)
                {
                    if (LibC.WIFSTOPPED(status))
                    {
                        // A signal-delivery stop: that signal must be handed back when we let go.
                        if (LibC.PtraceEvent(status) == 0) t.PendingSignal = LibC.WSTOPSIG(status);
                        return;
                    }
                    _tracees.Remove(t); // exited while we were stopping it
                    return;
                }
                if (r < 0)
                {
                    int errno = Marshal.GetLastWin32Error();
                    if (errno == LibC.EINTR) continue;
                    if (ProcFs.TaskState(Pid, t.Tid) == '\0') { _tracees.Remove(t); return; }
                }
                if (spins % 64 == 63 && StoppedButReapedElsewhere(t.Tid)) return;
                if (spins % 64 == 63 && ProcFs.TaskState(Pid, t.Tid) is '\0' or 'Z' or 'X') { _tracees.Remove(t); return; } // died meanwhile
                if (clock.Elapsed > timeout)
                    throw new HotpatchException(HotpatchErrorKind.Busy,
                        "Thread " + t.Tid + " of process " + Pid + " did not stop within " + timeout.TotalSeconds + " s (state " + ProcFs.TaskState(Pid, t.Tid) +
                        "); it may be in uninterruptible sleep. Nothing was written.") { ProcessId = Pid };
                PollPause(waiting);
            }
        }

        /// <summary>
        /// True when the thread sits in a tracing stop whose notification never reached us: seen stopped, then
        /// no status pending on a second look. Only a waiter in our own process (the runtime reaping its
        /// children) can take it, and only for the thread-group leader.
        /// </summary>
        internal bool StoppedButReapedElsewhere(int tid)
        {
            if (ProcFs.TaskState(Pid, tid) != 't') return false;
            Thread.Sleep(1);
            if (LibC.waitpid(tid, out _, LibC.WNOHANG | LibC.__WALL) != 0) return false;
            return ProcFs.TaskState(Pid, tid) == 't';
        }

        internal LibC.UserRegs GetRegs(int tid)
        {
            var regs = new LibC.UserRegs();
            unsafe
            {
                if (LibC.ptrace(LibC.PTRACE_GETREGS, tid, IntPtr.Zero, (IntPtr)(&regs)) < 0) throw RegsError("PTRACE_GETREGS", tid);
            }
            return regs;
        }

        internal void SetRegs(int tid, LibC.UserRegs regs)
        {
            unsafe
            {
                if (LibC.ptrace(LibC.PTRACE_SETREGS, tid, IntPtr.Zero, (IntPtr)(&regs)) < 0) throw RegsError("PTRACE_SETREGS", tid);
            }
        }

        /// <summary>ESRCH here means the thread (or the whole process) died while stopped: a kill, not an engine fault.</summary>
        internal HotpatchException RegsError(string call, int tid)
        {
            int errno = Marshal.GetLastWin32Error();
            if (errno == LibC.ESRCH)
                return ProcFs.TaskState(Pid, Pid) is '\0' or 'Z' or 'X'
                    ? ProcFs.Gone(Pid)
                    : new HotpatchException(HotpatchErrorKind.ProcessExited, "Thread " + tid + " of process " + Pid + " exited while it was stopped; nothing was written.") { ProcessId = Pid };
            return new HotpatchException(HotpatchErrorKind.Internal, call + " of thread " + tid + " failed: " + LibC.StrError(errno) + ".") { ProcessId = Pid };
        }

        /// <summary>
        /// Between two looks for a stop: every thread already stopped waits on this one. A few microseconds of sleep
        /// for the first milliseconds, not a yield: with many busy threads on few cores, a yielding tracer goes behind
        /// every one of them (hundreds of milliseconds), where a waking sleeper is run at once. Thread.Sleep's
        /// shortest is a millisecond or more.
        /// </summary>
        internal static void PollPause(Stopwatch waiting)
        {
            if (waiting.ElapsedMilliseconds < 20) LibC.usleep(20); else Thread.Sleep(1);
        }

        internal bool OwnedHere => Environment.CurrentManagedThreadId == _ownerThread && !_released;

        internal void CheckOwner()
        {
            if (Environment.CurrentManagedThreadId != _ownerThread)
                throw new InvalidOperationException("ptrace calls must come from the thread that stopped the process.");
        }

        private HoldClock _hold;

        public TimeSpan Held => _hold.Held;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            Release();
            _boost?.Dispose();
        }

        /// <summary>Stands for a boost that was tried and refused (no privilege), so it is not tried again.</summary>
        private static readonly IDisposable NoBoost = new NoDispose();

        private sealed class NoDispose : IDisposable { public void Dispose() { } }

        /// <summary>Lets every thread go; the priority boost ends in Dispose, after the last release.</summary>
        private void Release()
        {
            if (_released) return;
            _released = true;
            // PTRACE_DETACH only works on a stopped tracee: one seized but not yet waited for (a later thread
            // failed first) must reach its stop, or it would stay traced by this thread and lock out everyone.
            foreach (var t in _tracees.ToArray())
            {
                if (t.Stopped) continue;
                try
                {
                    if (t.Interrupted || Interrupt(t)) WaitForStop(t, Stopwatch.StartNew(), TimeSpan.FromSeconds(2));
                }
                catch (HotpatchException) { }
            }
            foreach (var t in _tracees)
                LibC.ptrace(LibC.PTRACE_DETACH, t.Tid, IntPtr.Zero, (IntPtr)t.PendingSignal);
            _hold.Released();
            _tracees.Clear();
            _proc.Released(this);
            _reapGuard?.Dispose();
        }
    }
}
