using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace HotpatchTools.Engine.Platform.Windows
{
    /// <summary>Every thread of a target suspended; disposing resumes exactly the threads this suspended.</summary>
    internal sealed class WindowsFrozenProcess : IFrozenProcess
    {
        private readonly Dictionary<int, IntPtr> _suspended = new Dictionary<int, IntPtr>();
        private readonly List<ThreadSnapshot> _snapshots = new List<ThreadSnapshot>();
        private bool _disposed;

        public IReadOnlyList<ThreadSnapshot> Threads => _snapshots;

        public static WindowsFrozenProcess Suspend(WindowsTargetProcess target, TimeSpan timeout)
        {
            var f = new WindowsFrozenProcess();
            try { f.SuspendAll(target, timeout); }
            catch { f.Dispose(); throw; }
            return f;
        }

        private void SuspendAll(WindowsTargetProcess target, TimeSpan timeout)
        {
            var clock = Stopwatch.StartNew();
            const uint access = Win32.THREAD_SUSPEND_RESUME | Win32.THREAD_GET_CONTEXT | Win32.THREAD_QUERY_INFORMATION;
            // Snapshot again after each pass: threads created meanwhile must be suspended too.
            while (true)
            {
                bool fresh = false;
                foreach (int tid in ThreadIds(target.Id))
                {
                    if (_suspended.ContainsKey(tid)) continue;
                    IntPtr h = Win32.OpenThread(access, false, tid);
                    if (h == IntPtr.Zero) continue; // exited meanwhile
                    if (Win32.SuspendThread(h) == uint.MaxValue) { Win32.CloseHandle(h); continue; }
                    _suspended[tid] = h;
                    fresh = true;
                }
                if (!fresh) break;
                if (clock.Elapsed > timeout)
                    throw new HotpatchException(HotpatchErrorKind.Busy, "Process " + target.Id + " keeps creating threads; could not suspend them all within " + timeout.TotalSeconds + " s.") { ProcessId = target.Id };
            }
            if (_suspended.Count == 0)
                throw new HotpatchException(HotpatchErrorKind.ProcessExited, "Process " + target.Id + " has exited.") { ProcessId = target.Id };

            // GetThreadContext also waits for each suspension to take effect.
            int size = target.Bitness == 64 ? Win32.ContextSize : Win32.Wow64ContextSize;
            IntPtr raw = Marshal.AllocHGlobal(size + 16);
            try
            {
                IntPtr ctx = (IntPtr)(((long)raw + 15) & ~15L);
                foreach (var kv in _suspended)
                {
                    for (int i = 0; i < size; i++) Marshal.WriteByte(ctx, i, 0);
                    ulong ip, sp;
                    if (target.Bitness == 64)
                    {
                        Marshal.WriteInt32(ctx, Win32.ContextFlagsOffset, unchecked((int)Win32.CONTEXT_AMD64_CONTROL));
                        if (!Win32.GetThreadContext(kv.Value, ctx)) throw ContextError(target, kv.Key);
                        ip = (ulong)Marshal.ReadInt64(ctx, Win32.ContextRipOffset);
                        sp = (ulong)Marshal.ReadInt64(ctx, Win32.ContextRspOffset);
                    }
                    else
                    {
                        Marshal.WriteInt32(ctx, 0, unchecked((int)Win32.WOW64_CONTEXT_CONTROL));
                        if (!Win32.Wow64GetThreadContext(kv.Value, ctx)) throw ContextError(target, kv.Key);
                        ip = (uint)Marshal.ReadInt32(ctx, Win32.Wow64EipOffset);
                        sp = (uint)Marshal.ReadInt32(ctx, Win32.Wow64EspOffset);
                    }
                    _snapshots.Add(new ThreadSnapshot { Id = kv.Key, Ip = ip, ResumeIp = ip, StackPointer = sp });
                }
            }
            finally { Marshal.FreeHGlobal(raw); }
        }

        private static HotpatchException ContextError(WindowsTargetProcess target, int tid) =>
            new HotpatchException(HotpatchErrorKind.Internal, "GetThreadContext of thread " + tid + " in process " + target.Id + " failed: " + Win32.Message(Marshal.GetLastWin32Error()) + ".") { ProcessId = target.Id };

        private static List<int> ThreadIds(int pid)
        {
            var ids = new List<int>();
            IntPtr snap = Win32.CreateToolhelp32Snapshot(Win32.TH32CS_SNAPTHREAD, 0);
            if (snap == new IntPtr(-1)) return ids;
            try
            {
                var e = new Win32.THREADENTRY32 { dwSize = (uint)Marshal.SizeOf<Win32.THREADENTRY32>() };
                for (bool ok = Win32.Thread32First(snap, ref e); ok; ok = Win32.Thread32Next(snap, ref e))
                    if (e.th32OwnerProcessID == (uint)pid) ids.Add((int)e.th32ThreadID);
            }
            finally { Win32.CloseHandle(snap); }
            return ids;
        }

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            foreach (var h in _suspended.Values)
            {
                Win32.ResumeThread(h);
                Win32.CloseHandle(h);
            }
            _suspended.Clear();
        }
    }
}
