using System.Diagnostics;
using System.Runtime.InteropServices;

namespace HotpatchTools.Engine.Platform.Windows
{
    /// <summary>
    /// Every thread of a target stopped by a debug object, not by SuspendThread: threads suspended with
    /// SuspendThread stay suspended forever when the installer dies mid-freeze (killed by an admin, a script
    /// timeout, a crash), while a debug object without kill-on-close is detached by the system when its owner dies,
    /// and the process runs on. While a debug event is pending, the system holds every thread of the process; this
    /// attaches, waits for the attach breakpoint and holds it. Disposing continues it and detaches.
    /// The debug object belongs to the calling thread: Freeze and Dispose must run on the same thread (the engine
    /// holds a freeze only inside one synchronous call).
    /// </summary>
    internal sealed class WindowsFrozenProcess : IFrozenProcess
    {
        private readonly int _pid;
        private readonly List<ThreadSnapshot> _snapshots = new List<ThreadSnapshot>();
        private bool _attached;
        private int _heldThread;
        private bool _disposed;

        private WindowsFrozenProcess(int pid) { _pid = pid; }

        public IReadOnlyList<ThreadSnapshot> Threads => _snapshots;

        private HoldClock _hold;

        public TimeSpan Held => _hold.Held;

        public static WindowsFrozenProcess Stop(WindowsTargetProcess target, TimeSpan timeout)
        {
            var f = new WindowsFrozenProcess(target.Id);
            try
            {
                f.Attach(target, timeout);
                f.ReadThreads(target);
                FailPoint.Hit("freeze.held");
            }
            catch { f.Dispose(); throw; }
            return f;
        }

        private void Attach(WindowsTargetProcess target, TimeSpan timeout)
        {
            // The thread's debug object is created first and kill-on-close cleared on it before anything is
            // attached: an installer killed right after attaching must not take the target with it.
            int status = Win32.DbgUiConnectToDbg();
            if (status < 0)
                throw new HotpatchException(HotpatchErrorKind.Internal, "Could not create a debug object to stop process " + _pid + " (NTSTATUS 0x" + status.ToString("x8") + ").") { ProcessId = _pid };
            if (!Win32.DebugSetProcessKillOnExit(false))
                throw new HotpatchException(HotpatchErrorKind.Internal, "Could not make the debug object kill-safe: " + Win32.Message(Marshal.GetLastWin32Error()) + ".") { ProcessId = _pid };
            if (!Win32.DebugActiveProcess(_pid))
            {
                int err = Marshal.GetLastWin32Error();
                if (target.HasExited) throw Exited();
                if (Win32.CheckRemoteDebuggerPresent(target.Handle, out bool debugged) && debugged)
                    throw new HotpatchException(HotpatchErrorKind.Busy,
                        "Process " + _pid + " is being debugged (by a debugger, or by another HotpatchTools install at this moment); it cannot be stopped while another debugger holds it. Nothing was written.") { ProcessId = _pid };
                throw WindowsPlatform.Denied(_pid, err);
            }
            // Attaching suspends every thread of the process: the hold starts here.
            _attached = true;
            _hold.Stopping();
            FailPoint.Hit("freeze.after-attach");

            var clock = Stopwatch.StartNew();
            IntPtr ev = Marshal.AllocHGlobal(Win32.DebugEventSize);
            try
            {
                int u = Win32.DebugEventUnionOffset;
                while (true)
                {
                    var left = timeout - clock.Elapsed;
                    if (left < TimeSpan.Zero) left = TimeSpan.Zero;
                    if (!Win32.WaitForDebugEvent(ev, (uint)left.TotalMilliseconds))
                    {
                        if (target.HasExited) throw Exited();
                        throw new HotpatchException(HotpatchErrorKind.Busy,
                            "Process " + _pid + " did not stop within " + timeout.TotalSeconds + " s of attaching (" + Win32.Message(Marshal.GetLastWin32Error()) + "). Nothing was written.") { ProcessId = _pid };
                    }
                    int code = Marshal.ReadInt32(ev, 0), tid = Marshal.ReadInt32(ev, 8);
                    uint reply = Win32.DBG_CONTINUE;
                    switch (code)
                    {
                        case Win32.CREATE_PROCESS_DEBUG_EVENT:
                        case Win32.LOAD_DLL_DEBUG_EVENT:
                            // The file handle is the debugger's to close; the process and thread handles are the system's.
                            IntPtr file = Marshal.ReadIntPtr(ev, u);
                            if (file != IntPtr.Zero) Win32.CloseHandle(file);
                            break;
                        case Win32.EXIT_PROCESS_DEBUG_EVENT:
                            Win32.ContinueDebugEvent(_pid, tid, Win32.DBG_CONTINUE);
                            throw Exited();
                        case Win32.EXCEPTION_DEBUG_EVENT:
                            uint exception = unchecked((uint)Marshal.ReadInt32(ev, u));
                            // The attach breakpoint (raised by a thread the system starts for it): every thread is held now.
                            if (exception == Win32.EXCEPTION_BREAKPOINT || exception == Win32.STATUS_WX86_BREAKPOINT)
                            {
                                _heldThread = tid;
                                return;
                            }
                            // The target's own exceptions stay its own.
                            reply = Win32.DBG_EXCEPTION_NOT_HANDLED;
                            break;
                    }
                    Win32.ContinueDebugEvent(_pid, tid, reply);
                }
            }
            finally { Marshal.FreeHGlobal(ev); }
        }

        private void ReadThreads(WindowsTargetProcess target)
        {
            const uint access = Win32.THREAD_GET_CONTEXT | Win32.THREAD_QUERY_INFORMATION;
            int size = target.Bitness == 64 ? Win32.ContextSize : Win32.Wow64ContextSize;
            IntPtr raw = Marshal.AllocHGlobal(size + 16);
            try
            {
                IntPtr ctx = (IntPtr)(((long)raw + 15) & ~15L);
                foreach (int tid in ThreadIds(_pid))
                {
                    IntPtr h = Win32.OpenThread(access, false, tid);
                    if (h == IntPtr.Zero) continue; // exited before the stop
                    try
                    {
                        for (int i = 0; i < size; i++) Marshal.WriteByte(ctx, i, 0);
                        ulong ip, sp;
                        if (target.Bitness == 64)
                        {
                            Marshal.WriteInt32(ctx, Win32.ContextFlagsOffset, unchecked((int)Win32.CONTEXT_AMD64_CONTROL));
                            if (!ReadContext(h, ctx, wow64: false)) { if (Exited(h)) continue; throw ContextError(tid); }
                            ip = (ulong)Marshal.ReadInt64(ctx, Win32.ContextRipOffset);
                            sp = (ulong)Marshal.ReadInt64(ctx, Win32.ContextRspOffset);
                        }
                        else
                        {
                            Marshal.WriteInt32(ctx, 0, unchecked((int)Win32.WOW64_CONTEXT_CONTROL));
                            if (!ReadContext(h, ctx, wow64: true)) { if (Exited(h)) continue; throw ContextError(tid); }
                            ip = (uint)Marshal.ReadInt32(ctx, Win32.Wow64EipOffset);
                            sp = (uint)Marshal.ReadInt32(ctx, Win32.Wow64EspOffset);
                        }
                        _snapshots.Add(new ThreadSnapshot { Id = tid, Ip = ip, ResumeIp = ip, StackPointer = sp });
                    }
                    finally { Win32.CloseHandle(h); }
                }
            }
            finally { Marshal.FreeHGlobal(raw); }
            if (_snapshots.Count == 0) throw Exited();
        }

        /// <summary>
        /// A thread that is exiting has no context to give (under Wine: error 31 for the previous stop's breakpoint
        /// thread on its way out, seen once in a run of 40 stops): retried for up to a second while it finishes.
        /// </summary>
        private static bool ReadContext(IntPtr h, IntPtr ctx, bool wow64)
        {
            var clock = Stopwatch.StartNew();
            while (true)
            {
                if (wow64 ? Win32.Wow64GetThreadContext(h, ctx) : Win32.GetThreadContext(h, ctx)) return true;
                if (Exited(h) || clock.ElapsedMilliseconds > 1000) return false;
                System.Threading.Thread.Sleep(1);
            }
        }

        /// <summary>An exited thread runs no code: it has no place in the snapshot.</summary>
        private static bool Exited(IntPtr h) => Win32.GetExitCodeThread(h, out uint code) && code != Win32.STILL_ACTIVE;

        private HotpatchException Exited() =>
            new HotpatchException(HotpatchErrorKind.ProcessExited, "Process " + _pid + " has exited.") { ProcessId = _pid };

        private HotpatchException ContextError(int tid) =>
            new HotpatchException(HotpatchErrorKind.Internal, "GetThreadContext of thread " + tid + " in process " + _pid + " failed: " + Win32.Message(Marshal.GetLastWin32Error()) + ".") { ProcessId = _pid };

        private static List<int> ThreadIds(int pid)
        {
            var ids = new List<int>();
            Win32.ForEachThread(e => { if (e.th32OwnerProcessID == (uint)pid) ids.Add((int)e.th32ThreadID); });
            return ids;
        }

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            if (!_attached) return;
            // The held breakpoint is continued before detaching, the documented way; a dead installer's held event
            // is dropped by the system instead (the kill tests cover that path). Both fail harmlessly for a process
            // that exited meanwhile.
            if (_heldThread != 0) Win32.ContinueDebugEvent(_pid, _heldThread, Win32.DBG_CONTINUE);
            Win32.DebugActiveProcessStop(_pid);
            _hold.Released();
        }
    }
}
