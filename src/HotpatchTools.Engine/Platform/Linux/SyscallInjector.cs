using System.Diagnostics;
using System.Runtime.InteropServices;

namespace HotpatchTools.Engine.Platform.Linux
{
    /// <summary>
    /// Runs one system call (mmap, munmap) inside a target through a thread that a <see cref="LinuxFrozenProcess"/>
    /// holds: Linux has no call to map memory in another process, so the target maps it itself.
    /// </summary>
    internal static class SyscallInjector
    {
        /// <summary>
        /// Executes one system call in a stopped thread through a `syscall` gadget, then restores its registers exactly.
        /// While the thread's registers are ours, we may die (SIGKILL) and the kernel would let the thread run on from
        /// the gadget with them. So, when the target has a `syscall; ret` gadget and a signal restorer, the thread's
        /// whole state goes first into a signal frame below its stack's red zone, and the gadget's `ret` leads into
        /// rt_sigreturn: left alone, the thread finishes the call, restores itself from the frame and runs on
        /// exactly where it was. Normally we stop it right after the `syscall` and put its registers back ourselves.
        /// </summary>
        public static long Run(LinuxFrozenProcess frozen, LinuxTargetProcess.InjectionGadgets gadgets, long nr, ulong a0, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5)
        {
            frozen.CheckOwner();
            var proc = frozen.Process;
            int pid = proc.Id;
            // The gadgets were found in the program this process ran when it was opened: after an execve under the same
            // pid (a setuid program, say) they point into another address space, and nothing may be injected there.
            proc.CheckSameProgram();
            var t = frozen.InjectionThread();
            var saved = t.Regs;
            var regs = saved;
            regs.rax = (ulong)nr;
            regs.orig_rax = ulong.MaxValue; // not in a syscall: no restart logic may touch rip
            regs.rdi = a0; regs.rsi = a1; regs.rdx = a2; regs.r10 = a3; regs.r8 = a4; regs.r9 = a5;
            regs.rip = gadgets.Syscall;
            if (gadgets.SafetyNet) regs.rsp = WriteSignalFrame(frozen, t, gadgets.Restorer);
            FailPoint.Hit("inject.before-setregs");
            try
            {
                frozen.SetRegs(t.Tid, regs);
                FailPoint.Hit("inject.after-setregs");
                // Syscall stops, not a single step: a tracer that dies leaves the trap flag of a single step set, and
                // the untraced thread would take a fatal SIGTRAP; syscall tracing ends with the tracer.
                for (int stop = 0; stop < 8; stop++)
                {
                    if (LibC.ptrace(LibC.PTRACE_SYSCALL, t.Tid, IntPtr.Zero, IntPtr.Zero) < 0)
                        throw new HotpatchException(HotpatchErrorKind.Internal, "PTRACE_SYSCALL failed: " + LibC.StrError(Marshal.GetLastWin32Error()) + ".") { ProcessId = pid };
                    var status = BlockingWait(frozen, t.Tid);
                    if (!LibC.WIFSTOPPED(status)) { frozen.Forget(t); throw ProcFs.Gone(pid); }
                    int sig = LibC.WSTOPSIG(status);
                    if (sig == SyscallStop)
                    {
                        var after = frozen.GetRegs(t.Tid);
                        // The entry stop shows -ENOSYS in rax; mmap and munmap never return it.
                        if (after.rip == gadgets.Syscall + 2 && (long)after.rax != -LibC.ENOSYS)
                        {
                            // Another thread may have run execve meanwhile, unless every thread is held.
                            if (!frozen.HoldsEveryThread) proc.CheckSameProgram();
                            FailPoint.Hit("inject.after-syscall");
                            return (long)after.rax;
                        }
                        continue;
                    }
                    // Another signal arrived first: keep it for detach and go on.
                    if (LibC.PtraceEvent(status) == 0 && sig != LibC.SIGTRAP && t.PendingSignal == 0) t.PendingSignal = sig;
                }
                throw new HotpatchException(HotpatchErrorKind.Internal, "The injected system call did not complete in thread " + t.Tid + ".") { ProcessId = pid };
            }
            finally
            {
                if (frozen.Holds(t)) frozen.SetRegs(t.Tid, saved);
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
        private static ulong WriteSignalFrame(LinuxFrozenProcess frozen, LinuxFrozenProcess.Tracee t, ulong restorer)
        {
            var r = t.Regs;
            ulong rip = r.rip, rax = r.rax;
            // The kernel would restart an interrupted call when the thread resumes; rt_sigreturn does not, so the
            // frame asks for the restart itself (and restart_syscall, after a sigreturn, reports EINTR, as after any signal).
            if ((long)r.orig_rax >= 0 && LinuxFrozenProcess.RestartCodes.Contains((long)r.rax))
            {
                rip -= 2;
                rax = (long)r.rax == ERESTART_RESTARTBLOCK ? (ulong)NR_restart_syscall : r.orig_rax;
            }

            byte[] fp = ReadFpState(frozen, t.Tid, out bool xsave);
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
            U64(maskOffset, ReadSigMask(frozen, t.Tid));
            fp.CopyTo(b, fpOffset);
            if (xsave) BitConverter.GetBytes(FP_XSTATE_MAGIC2).CopyTo(b, fpOffset + fp.Length);

            frozen.Process.Write(frame, b);
            return frame;
        }

        /// <summary>
        /// The thread's FPU/SSE/AVX state in the signal-frame layout: the XSAVE area ptrace gives, described the way
        /// the kernel describes it in a signal frame, or the legacy FXSAVE area when XSAVE is not available.
        /// </summary>
        private static byte[] ReadFpState(LinuxFrozenProcess frozen, int tid, out bool xsave)
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
                    if (LibC.ptrace(LibC.PTRACE_GETREGSET, tid, (IntPtr)LibC.NT_PRFPREG, (IntPtr)(&iov)) < 0) throw frozen.RegsError("PTRACE_GETREGSET", tid);
                }
            }
            xsave = false;
            var fx = new byte[512];
            Array.Copy(buf, fx, 512);
            Array.Clear(fx, 464, 48); // no software bytes: the kernel restores it as a plain FXSAVE frame
            return fx;
        }

        private static ulong ReadSigMask(LinuxFrozenProcess frozen, int tid)
        {
            ulong mask = 0;
            unsafe
            {
                if (LibC.ptrace(LibC.PTRACE_GETSIGMASK, tid, (IntPtr)8, (IntPtr)(&mask)) < 0) throw frozen.RegsError("PTRACE_GETSIGMASK", tid);
            }
            return mask;
        }

        // PTRACE_O_TRACESYSGOOD marks syscall stops with bit 7, apart from a real SIGTRAP.
        internal const int SyscallStop = LibC.SIGTRAP | 0x80;

        private static int BlockingWait(LinuxFrozenProcess frozen, int tid)
        {
            var clock = Stopwatch.StartNew();
            for (int spins = 0; ; spins++)
            {
                int r = LibC.waitpid(tid, out int status, LibC.WNOHANG | LibC.__WALL);
                if (r == tid) return status;
                if (r < 0 && Marshal.GetLastWin32Error() != LibC.EINTR)
                    throw frozen.Gone();
                // The caller checks where the thread stopped, so a reaped-elsewhere stop reads as a syscall stop.
                if (spins % 64 == 63 && frozen.StoppedButReapedElsewhere(tid)) return (SyscallStop << 8) | 0x7f;
                if (clock.Elapsed > TimeSpan.FromSeconds(5))
                    throw new HotpatchException(HotpatchErrorKind.Internal, "Thread " + tid + " did not stop in the injected system call.") { ProcessId = frozen.Process.Id };
                LinuxFrozenProcess.PollPause(clock);
            }
        }
    }
}
