using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
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
        private sealed class Tracee
        {
            public int Tid;
            public int PendingSignal;
            public bool Interrupted;
            public bool Stopped;
            public LibC.UserRegs Regs;
        }

        // -ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND, -ERESTART_RESTARTBLOCK: the kernel moves rip back over `syscall` on resume.
        private static readonly HashSet<long> RestartCodes = new HashSet<long> { -512, -513, -514, -516 };

        private readonly LinuxTargetProcess _proc;
        private readonly List<Tracee> _tracees = new List<Tracee>();
        private readonly int _ownerThread = Environment.CurrentManagedThreadId;
        private List<ThreadSnapshot> _snapshots = new List<ThreadSnapshot>();
        private readonly IDisposable? _reapGuard;
        private readonly IDisposable? _boost;
        private bool _disposed, _released;

        private LinuxFrozenProcess(LinuxTargetProcess proc, IDisposable? boost)
        {
            _proc = proc;
            _reapGuard = ChildReapGuard.EnterIfChild(proc.Id);
            _boost = boost;
        }

        public IReadOnlyList<ThreadSnapshot> Threads => _snapshots;

        private int Pid => _proc.Id;

        /// <summary>How long to keep trying while another tracer (most often another installer, briefly) holds a thread.</summary>
        private static readonly TimeSpan TracedWait = TimeSpan.FromSeconds(1);

        /// <summary>
        /// Stops the threads (all, or one for an injected call) and keeps the calling thread at real-time priority
        /// until they are released: with many busy threads on few cores, a tracer at normal priority loses the CPU
        /// to the target's running threads for tens of milliseconds at a time, while every thread it already stopped
        /// waits. It never spins at that priority: it sleeps between looks for a stop (see PollPause).
        /// </summary>
        /// <param name="beforeStop">Runs boosted before anything is stopped (reading what the freeze needs to know).</param>
        public static LinuxFrozenProcess Stop(LinuxTargetProcess proc, TimeSpan timeout, bool singleThread, Action? beforeStop = null)
        {
            var boost = RealtimeBoost.Enter();
            try
            {
                beforeStop?.Invoke();
            }
            catch
            {
                boost?.Dispose();
                throw;
            }
            var clock = Stopwatch.StartNew();
            var backoff = new Random();
            while (true)
            {
                var f = new LinuxFrozenProcess(proc, boost);
                try
                {
                    f.StopThreads(timeout, singleThread);
                    return f;
                }
                catch (TracedElsewhereException e)
                {
                    // Let go of everything first: two installers each holding some threads would wait on each other.
                    f.Release();
                    if (clock.Elapsed >= TracedWait)
                    {
                        boost?.Dispose();
                        throw new HotpatchException(HotpatchErrorKind.Busy, e.Message) { ProcessId = e.ProcessId };
                    }
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

        private void StopThreads(TimeSpan timeout, bool singleThread)
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
                    // Any live thread can run an injected call; a non-leader is best (see Inject), and the
                    // leader may be a zombie whose threads live on.
                    int pick = fresh.Find(t => t != Pid && ProcFs.TaskState(Pid, t) != 'Z');
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
                    if (tracer != 0 || LibC.geteuid() == 0)
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
        private bool StoppedButReapedElsewhere(int tid)
        {
            if (ProcFs.TaskState(Pid, tid) != 't') return false;
            Thread.Sleep(1);
            if (LibC.waitpid(tid, out _, LibC.WNOHANG | LibC.__WALL) != 0) return false;
            return ProcFs.TaskState(Pid, tid) == 't';
        }

        private LibC.UserRegs GetRegs(int tid)
        {
            var regs = new LibC.UserRegs();
            unsafe
            {
                if (LibC.ptrace(LibC.PTRACE_GETREGS, tid, IntPtr.Zero, (IntPtr)(&regs)) < 0) throw RegsError("PTRACE_GETREGS", tid);
            }
            return regs;
        }

        private void SetRegs(int tid, LibC.UserRegs regs)
        {
            unsafe
            {
                if (LibC.ptrace(LibC.PTRACE_SETREGS, tid, IntPtr.Zero, (IntPtr)(&regs)) < 0) throw RegsError("PTRACE_SETREGS", tid);
            }
        }

        /// <summary>ESRCH here means the thread (or the whole process) died while stopped: a kill, not an engine fault.</summary>
        private HotpatchException RegsError(string call, int tid)
        {
            int errno = Marshal.GetLastWin32Error();
            if (errno == LibC.ESRCH)
                return ProcFs.TaskState(Pid, Pid) is '\0' or 'Z' or 'X'
                    ? ProcFs.Gone(Pid)
                    : new HotpatchException(HotpatchErrorKind.ProcessExited, "Thread " + tid + " of process " + Pid + " exited while it was stopped; nothing was written.") { ProcessId = Pid };
            return new HotpatchException(HotpatchErrorKind.Internal, call + " of thread " + tid + " failed: " + LibC.StrError(errno) + ".") { ProcessId = Pid };
        }

        /// <summary>
        /// Executes one system call in a stopped thread through a `syscall` gadget, then restores its registers exactly.
        /// While the thread's registers are ours, we may die (SIGKILL) and the kernel would let the thread run on from
        /// the gadget with them. So, when the target has a `syscall; ret` gadget and a signal restorer, the thread's
        /// whole state goes first into a signal frame below its stack's red zone, and the gadget's `ret` leads into
        /// rt_sigreturn: left alone, the thread finishes the call, restores itself from the frame and runs on
        /// exactly where it was. Normally we stop it right after the `syscall` and put its registers back ourselves.
        /// </summary>
        public long Inject(LinuxTargetProcess.InjectionGadgets gadgets, long nr, ulong a0, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5)
        {
            CheckOwner();
            // The gadgets were found in the program this process ran when it was opened: after an execve under the same
            // pid (a setuid program, say) they point into another address space, and nothing may be injected there.
            _proc.CheckSameProgram();
            // A non-leader thread first: the runtime's waitpid(pid) on its own children can only take the leader's stops.
            var t = _tracees.Find(x => x.PendingSignal == 0 && x.Tid != Pid) ?? _tracees.Find(x => x.PendingSignal == 0) ?? _tracees[0];
            var saved = t.Regs;
            var regs = saved;
            regs.rax = (ulong)nr;
            regs.orig_rax = ulong.MaxValue; // not in a syscall: no restart logic may touch rip
            regs.rdi = a0; regs.rsi = a1; regs.rdx = a2; regs.r10 = a3; regs.r8 = a4; regs.r9 = a5;
            regs.rip = gadgets.Syscall;
            if (gadgets.SafetyNet) regs.rsp = WriteSignalFrame(t, gadgets.Restorer);
            FailPoint.Hit("inject.before-setregs");
            try
            {
                SetRegs(t.Tid, regs);
                FailPoint.Hit("inject.after-setregs");
                // Syscall stops, not a single step: a tracer that dies leaves the trap flag of a single step set, and
                // the untraced thread would take a fatal SIGTRAP; syscall tracing ends with the tracer.
                for (int stop = 0; stop < 8; stop++)
                {
                    if (LibC.ptrace(LibC.PTRACE_SYSCALL, t.Tid, IntPtr.Zero, IntPtr.Zero) < 0)
                        throw new HotpatchException(HotpatchErrorKind.Internal, "PTRACE_SYSCALL failed: " + LibC.StrError(Marshal.GetLastWin32Error()) + ".") { ProcessId = Pid };
                    var status = BlockingWait(t.Tid);
                    if (!LibC.WIFSTOPPED(status)) { _tracees.Remove(t); throw ProcFs.Gone(Pid); }
                    int sig = LibC.WSTOPSIG(status);
                    if (sig == SyscallStop)
                    {
                        var after = GetRegs(t.Tid);
                        // The entry stop shows -ENOSYS in rax; mmap and munmap never return it.
                        if (after.rip == gadgets.Syscall + 2 && (long)after.rax != -LibC.ENOSYS)
                        {
                            _proc.CheckSameProgram();
                            FailPoint.Hit("inject.after-syscall");
                            return (long)after.rax;
                        }
                        continue;
                    }
                    // Another signal arrived first: keep it for detach and go on.
                    if (LibC.PtraceEvent(status) == 0 && sig != LibC.SIGTRAP && t.PendingSignal == 0) t.PendingSignal = sig;
                }
                throw new HotpatchException(HotpatchErrorKind.Internal, "The injected system call did not complete in thread " + t.Tid + ".") { ProcessId = Pid };
            }
            finally
            {
                if (_tracees.Contains(t)) SetRegs(t.Tid, saved);
            }
        }

        // -ERESTART_RESTARTBLOCK asks for restart_syscall rather than the original call.
        private const long ERESTART_RESTARTBLOCK = -516, NR_restart_syscall = 219;
        private const ulong UC_FP_XSTATE = 1, UC_SIGCONTEXT_SS = 2, UC_STRICT_RESTORE_SS = 4;
        private const uint FP_XSTATE_MAGIC1 = 0x46505853, FP_XSTATE_MAGIC2 = 0x46505845;

        /// <summary>
        /// Writes an x86-64 rt_sigframe (restorer address, ucontext, siginfo, xsave area) holding the thread's current
        /// state below its red zone and returns the frame's address, which becomes rsp for the injected call.
        /// </summary>
        private ulong WriteSignalFrame(Tracee t, ulong restorer)
        {
            var r = t.Regs;
            ulong rip = r.rip, rax = r.rax;
            // The kernel would restart an interrupted call when the thread resumes; rt_sigreturn does not, so the
            // frame asks for the restart itself (and restart_syscall, after a sigreturn, reports EINTR, as after any signal).
            if ((long)r.orig_rax >= 0 && RestartCodes.Contains((long)r.rax))
            {
                rip -= 2;
                rax = (long)r.rax == ERESTART_RESTARTBLOCK ? (ulong)NR_restart_syscall : r.orig_rax;
            }

            byte[] fp = ReadFpState(t.Tid, out bool xsave);
            const int ucOffset = 8, mcOffset = ucOffset + 40, maskOffset = mcOffset + 256, infoOffset = maskOffset + 8, infoEnd = infoOffset + 128;
            int fpOffset = (infoEnd + 63) & ~63;
            int size = fpOffset + fp.Length + 4;
            ulong frame = (r.rsp - 128 - (ulong)size) & ~63UL;
            var b = new byte[size];
            void U64(int at, ulong v) => BitConverter.GetBytes(v).CopyTo(b, at);

            U64(0, restorer);
            U64(ucOffset, UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS);
            // uc_stack: an invalid mode makes rt_sigreturn's sigaltstack step fail quietly, leaving the thread's alternate stack as it is.
            BitConverter.GetBytes(3).CopyTo(b, ucOffset + 24);
            ulong[] gp = { r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi, r.rbp, r.rbx, r.rdx, rax, r.rcx, r.rsp, rip, r.eflags };
            for (int i = 0; i < gp.Length; i++) U64(mcOffset + 8 * i, gp[i]);
            BitConverter.GetBytes((ushort)r.cs).CopyTo(b, mcOffset + 144);
            BitConverter.GetBytes((ushort)r.ss).CopyTo(b, mcOffset + 150);
            U64(mcOffset + 184, frame + (ulong)fpOffset);
            U64(maskOffset, ReadSigMask(t.Tid));
            fp.CopyTo(b, fpOffset);
            if (xsave) BitConverter.GetBytes(FP_XSTATE_MAGIC2).CopyTo(b, fpOffset + fp.Length);

            _proc.Write(frame, b);
            return frame;
        }

        /// <summary>
        /// The thread's FPU/SSE/AVX state in the signal-frame layout: the XSAVE area ptrace gives, described the way
        /// the kernel describes it in a signal frame, or the legacy FXSAVE area when XSAVE is not available.
        /// </summary>
        private byte[] ReadFpState(int tid, out bool xsave)
        {
            var buf = new byte[16384];
            unsafe
            {
                fixed (byte* p = buf)
                {
                    var iov = new LibC.Iovec { Base = (IntPtr)p, Length = (UIntPtr)buf.Length };
                    if (LibC.ptrace(LibC.PTRACE_GETREGSET, tid, (IntPtr)LibC.NT_X86_XSTATE, (IntPtr)(&iov)) == 0)
                    {
                        int len = (int)iov.Length;
                        if (len >= 576)
                        {
                            // ptrace keeps XCR0 in the software-reserved bytes; a signal frame keeps its own description there.
                            ulong xcr0 = BitConverter.ToUInt64(buf, 464);
                            Array.Clear(buf, 464, 48);
                            BitConverter.GetBytes(FP_XSTATE_MAGIC1).CopyTo(buf, 464);
                            BitConverter.GetBytes((uint)len + 4).CopyTo(buf, 468);
                            BitConverter.GetBytes(xcr0).CopyTo(buf, 472);
                            BitConverter.GetBytes((uint)len).CopyTo(buf, 480);
                            xsave = true;
                            var x = new byte[len];
                            Array.Copy(buf, x, len);
                            return x;
                        }
                    }
                    iov = new LibC.Iovec { Base = (IntPtr)p, Length = (UIntPtr)512 };
                    if (LibC.ptrace(LibC.PTRACE_GETREGSET, tid, (IntPtr)LibC.NT_PRFPREG, (IntPtr)(&iov)) < 0) throw RegsError("PTRACE_GETREGSET", tid);
                }
            }
            xsave = false;
            var fx = new byte[512];
            Array.Copy(buf, fx, 512);
            Array.Clear(fx, 464, 48); // no software bytes: the kernel restores it as a plain FXSAVE frame
            return fx;
        }

        private ulong ReadSigMask(int tid)
        {
            ulong mask = 0;
            unsafe
            {
                if (LibC.ptrace(LibC.PTRACE_GETSIGMASK, tid, (IntPtr)8, (IntPtr)(&mask)) < 0) throw RegsError("PTRACE_GETSIGMASK", tid);
            }
            return mask;
        }

        // PTRACE_O_TRACESYSGOOD marks syscall stops with bit 7, apart from a real SIGTRAP.
        private const int SyscallStop = LibC.SIGTRAP | 0x80;

        private int BlockingWait(int tid)
        {
            var clock = Stopwatch.StartNew();
            for (int spins = 0; ; spins++)
            {
                int r = LibC.waitpid(tid, out int status, LibC.WNOHANG | LibC.__WALL);
                if (r == tid) return status;
                if (r < 0 && Marshal.GetLastWin32Error() != LibC.EINTR)
                    throw ProcFs.Gone(Pid);
                // The caller checks where the thread stopped, so a reaped-elsewhere stop reads as a syscall stop.
                if (spins % 64 == 63 && StoppedButReapedElsewhere(tid)) return (SyscallStop << 8) | 0x7f;
                if (clock.Elapsed > TimeSpan.FromSeconds(5))
                    throw new HotpatchException(HotpatchErrorKind.Internal, "Thread " + tid + " did not stop in the injected system call.") { ProcessId = Pid };
                PollPause(clock);
            }
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

        private void CheckOwner()
        {
            if (Environment.CurrentManagedThreadId != _ownerThread)
                throw new InvalidOperationException("ptrace calls must come from the thread that stopped the process.");
        }

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            Release();
            _boost?.Dispose();
        }

        /// <summary>Lets every thread go; the priority boost stays with the caller (a retry keeps it).</summary>
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
            _tracees.Clear();
            _reapGuard?.Dispose();
        }
    }

    /// <summary>
    /// Runs the calling thread at the lowest real-time priority while it holds a target's threads. With many busy
    /// threads on few cores, the target's own threads otherwise take the CPU from the tracer between two calls,
    /// and every thread already stopped waits for the ones still running (256 threads on 2 cores: 100+ ms instead
    /// of a few). The boosted thread never spins: a real-time thread polling for a stop with yields could keep the
    /// very threads it waits for off the CPU, so it sleeps between looks. Without the privilege it is a no-op.
    /// </summary>
    internal sealed class RealtimeBoost : IDisposable
    {
        private readonly int _policy, _priority;

        private RealtimeBoost(int policy, int priority) { _policy = policy; _priority = priority; }

        public static IDisposable? Enter()
        {
            int policy = LibC.sched_getscheduler(0);
            if (policy != LibC.SCHED_OTHER || LibC.sched_getparam(0, out int priority) != 0) return null;
            int fifo = 1;
            return LibC.sched_setscheduler(0, LibC.SCHED_FIFO, ref fifo) == 0 ? new RealtimeBoost(policy, priority) : null;
        }

        public void Dispose()
        {
            int priority = _priority;
            LibC.sched_setscheduler(0, _policy, ref priority);
        }
    }
}
