using System.Runtime.InteropServices;
using HotpatchTools.Engine.Modules;

namespace HotpatchTools.Engine.Platform.Linux
{
    internal sealed unsafe class LinuxTargetProcess : LiveTargetProcess, ITargetProcess, IProcessMemory, IModuleEnumerator, IThreadController, ILayoutReader
    {
        private int _memFd = -1;
        private InjectionGadgets? _gadgets;

        private readonly string _program;

        public LinuxTargetProcess(int pid, string name)
        {
            Id = pid;
            Name = name;
            Bitness = ReadBitness(pid);
            _program = Program(pid, out _parent, out _threads);
        }

        /// <summary>The parent and the thread count from the same read of stat as the program (see OurChild, AllocateWithinFreeze).</summary>
        private readonly int _parent, _threads;

        /// <summary>
        /// Our own child, as opened: then the runtime's reaping must be held off while its threads are (ChildReapGuard).
        /// A process that was not our child cannot become one (this process is no subreaper), and one that was stays ours.
        /// </summary>
        internal bool OurChild => _parent == Self;

        private static readonly int Self = LibC.getpid();

        /// <summary>
        /// What changes when the process runs another program under the same pid (execve keeps the pid and the start
        /// time): the executable, and where its code and stack were placed in the new address space.
        /// </summary>
        private static string Program(int pid) => Program(pid, out _, out _);

        private static string Program(int pid, out int parent, out int threads)
        {
            parent = threads = 0;
            try
            {
                // The kernel's own name for the file: no component of it is a link. " (deleted)" is cut so that an upgrade
                // replacing the file on disk is not taken for a new program.
                string exe = LibC.ReadLink("/proc/" + pid + "/exe") ?? "";
                if (exe.EndsWith(" (deleted)", StringComparison.Ordinal)) exe = exe.Substring(0, exe.Length - 10);
                var stat = LibC.ReadProcFile("/proc/" + pid + "/stat");
                var f = stat.Substring(stat.LastIndexOf(')') + 2).Split(' ');
                // ppid (field 4), num_threads (field 20)
                if (f.Length > 17)
                {
                    int.TryParse(f[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out parent);
                    int.TryParse(f[17], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out threads);
                }
                // startcode, endcode, startstack (fields 26 to 28)
                return exe + "|" + (f.Length > 25 ? f[23] + " " + f[24] + " " + f[25] : "");
            }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException) { return ""; }
        }

        private bool SameProgram()
        {
            var now = Program(Id);
            return now.Length == 0 || _program.Length == 0 || now == _program; // gone: Dying says so
        }

        /// <summary>Throws when the process now runs another program than when it was opened.</summary>
        internal void CheckSameProgram()
        {
            var now = Program(Id);
            if (now.Length == 0 || _program.Length == 0) return; // gone: the next step reports that
            if (now != _program)
                throw new HotpatchException(HotpatchErrorKind.ProcessExited,
                    "Process " + Id + " ran another program (" + now.Split('|')[0] + ") while it was being patched; nothing more was written to it.") { ProcessId = Id };
        }

        public override int Id { get; }
        public string Name { get; }
        public int Bitness { get; }

        /// <summary>Also true once it runs another program (execve under the same pid): the process patched is gone.</summary>
        public bool HasExited => Dying || ProcFs.KillPending(Id) || !SameProgram();
        public IProcessMemory Memory => this;
        public IModuleEnumerator Modules => this;
        public IThreadController Threads => this;
        public int AllocationGranularity => 4096;

        public void Dispose()
        {
            if (_memFd >= 0) { LibC.close(_memFd); _memFd = -1; }
        }

        private static int ReadBitness(int pid)
        {
            int fd = LibC.open("/proc/" + pid + "/exe", LibC.O_RDONLY | LibC.O_CLOEXEC);
            if (fd < 0) return 64;
            try
            {
                var ident = stackalloc byte[5];
                return (long)LibC.pread(fd, ident, (UIntPtr)5, 0) == 5 && ident[4] == 1 ? 32 : 64;
            }
            finally { LibC.close(fd); }
        }

        // ---- memory ----

        protected override HotpatchException? ShortReadCause() => Dying ? ProcFs.Gone(Id) : null;

        public override int TryRead(ulong address, byte[] buffer)
        {
            if (buffer.Length == 0) return 0;
            fixed (byte* p = buffer)
            {
                var local = new LibC.Iovec { Base = (IntPtr)p, Length = (UIntPtr)buffer.Length };
                var remote = new LibC.Iovec { Base = (IntPtr)(long)address, Length = (UIntPtr)buffer.Length };
                long n = (long)LibC.process_vm_readv(Id, &local, (UIntPtr)1, &remote, (UIntPtr)1, UIntPtr.Zero);
                if (n == buffer.Length) return (int)n;
                int errno = Marshal.GetLastWin32Error();
                if (n < 0 && errno == LibC.EPERM) throw ProcFs.Denied(Id);
                if (n < 0 && errno == LibC.ESRCH) throw ProcFs.Gone(Id);
                // Pages without PROT_READ are still readable through /proc/PID/mem.
                int fd = MemFd();
                long m = (long)LibC.pread(fd, p, (UIntPtr)buffer.Length, (long)address);
                return (int)Math.Max(Math.Max(n, m), 0);
            }
        }

        private bool Dying => ProcFs.TaskState(Id, Id) is '\0' or 'Z' or 'X' or 'x';

        public void Write(ulong address, byte[] data)
        {
            int fd = MemFd();
            fixed (byte* p = data)
            {
                long n = (long)LibC.pwrite(fd, p, (UIntPtr)data.Length, (long)address);
                if (n != data.Length)
                {
                    int errno = Marshal.GetLastWin32Error();
                    // A killed process keeps its /proc entry for a while (exiting, a zombie) but no address space: the
                    // kernel then writes nothing and reports no error.
                    if (n == 0 || Dying) throw ProcFs.Gone(Id);
                    throw new HotpatchException(HotpatchErrorKind.WriteFailed,
                        "Writing " + data.Length + " bytes at 0x" + address.ToString("x") + " in process " + Id + " failed: " + LibC.StrError(errno) + ".") { ProcessId = Id };
                }
            }
        }

        private int MemFd()
        {
            if (_memFd >= 0) return _memFd;
            int fd = LibC.open("/proc/" + Id + "/mem", LibC.O_RDWR | LibC.O_CLOEXEC);
            if (fd < 0)
            {
                int errno = Marshal.GetLastWin32Error();
                if (errno == LibC.ENOENT || errno == LibC.ESRCH) throw ProcFs.Gone(Id);
                throw ProcFs.Denied(Id);
            }
            return _memFd = fd;
        }

        /// <summary>
        /// The last memory map read, for finding the injection gadgets without another read: a gadget lies in libc
        /// (or another mapping no program unmaps) and its bytes are checked before use.
        /// </summary>
        private List<ProcFs.MapsLine>? _lastMaps;

        private List<ProcFs.MapsLine> ReadMaps() => _lastMaps = ProcFs.ReadMaps(Id);

        /// <summary>Regions and modules from one read of /proc/PID/maps (see LayoutSnapshot).</summary>
        public (IReadOnlyList<MemoryRegion> Regions, IReadOnlyList<LoadedModule> Modules) ReadLayout()
        {
            var maps = ReadMaps();
            return (Regions(maps), ModuleList(maps));
        }

        public IReadOnlyList<MemoryRegion> GetRegions() => Regions(ReadMaps());

        private static IReadOnlyList<MemoryRegion> Regions(List<ProcFs.MapsLine> maps)
        {
            var list = new List<MemoryRegion>(maps.Count);
            foreach (var m in maps)
                list.Add(new MemoryRegion(m.Start, m.End, m.R, m.W, m.X, IsAnonymousPrivate: m.Private && m.Inode == 0 && m.Path.Length == 0, m.Path));
            return list;
        }

        private const int PROT_READ = 1, PROT_EXEC = 4;
        private const int MAP_PRIVATE = 0x02, MAP_ANONYMOUS = 0x20, MAP_FIXED_NOREPLACE = 0x100000;
        private const int SYS_mmap = 9, SYS_munmap = 11;

        public bool TryAllocateAt(ulong address, int size)
        {
            // r-x only: we write through /proc/PID/mem, so the cave never needs to be writable.
            long r = InjectSyscall(SYS_mmap, address, (ulong)size, PROT_READ | PROT_EXEC,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, ulong.MaxValue, 0);
            if (r == -LibC.EEXIST) return false;
            if (r < 0 && r > -4096)
                throw new HotpatchException(HotpatchErrorKind.NoCaveSpace,
                    "mmap of " + size + " bytes at 0x" + address.ToString("x") + " in process " + Id + " failed: " + LibC.StrError((int)-r) + ".") { ProcessId = Id };
            if ((ulong)r != address)
            {
                // A kernel without MAP_FIXED_NOREPLACE treats the address as a hint: give the mapping back.
                InjectSyscall(SYS_munmap, (ulong)r, (ulong)size, 0, 0, 0, 0);
                return false;
            }
            return true;
        }

        public void Free(ulong address, int size)
        {
            long r = InjectSyscall(SYS_munmap, address, (ulong)size, 0, 0, 0, 0);
            if (r < 0)
                throw new HotpatchException(HotpatchErrorKind.Internal,
                    "munmap at 0x" + address.ToString("x") + " in process " + Id + " failed: " + LibC.StrError((int)-r) + ".") { ProcessId = Id };
        }

        /// <summary>Runs one system call in a stopped thread of the target and puts the thread back exactly.</summary>
        private long InjectSyscall(long nr, ulong a0, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5)
        {
            var gadgets = Gadgets();
            // Within a freeze this thread holds: every thread is stopped already, so one of them runs the call.
            if (_frozen is LinuxFrozenProcess held && held.OwnedHere) return SyscallInjector.Run(held, gadgets, nr, a0, a1, a2, a3, a4, a5);
            // Stop a single thread only: the rest of the process keeps running while we allocate.
            using var one = LinuxFrozenProcess.Stop(this, TimeSpan.FromSeconds(5), singleThread: true);
            return SyscallInjector.Run(one, gadgets, nr, a0, a1, a2, a3, a4, a5);
        }

        /// <summary>Code already in the target that an injected system call runs through (see SyscallInjector).</summary>
        internal sealed class InjectionGadgets
        {
            /// <summary>`syscall` (0f 05), followed by `ret` (c3) when SafetyNet is true.</summary>
            public ulong Syscall;
            /// <summary>A signal restorer: `mov rax, 15; syscall` (rt_sigreturn), or 0 when none was found.</summary>
            public ulong Restorer;
            public bool SafetyNet => Restorer != 0;
        }

        private static readonly byte[] SyscallRet = { 0x0f, 0x05, 0xc3 };
        // glibc's and musl's __restore_rt, then the 5-byte form Go's runtime uses.
        private static readonly byte[][] Restorers = { new byte[] { 0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05 }, new byte[] { 0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05 } };

        /// <summary>Where the gadget patterns start within one executable file mapping; -1: not there.</summary>
        private sealed class MappingGadgets
        {
            public int SyscallRet = -1, AnySyscall = -1, Restorer = -1, RestorerPattern = -1;
        }

        /// <summary>
        /// Found before anything is stopped, once per process object. Where they lie in a file mapping is cached per
        /// file (every install opens the process anew, and libc's text is megabytes to search), and checked against
        /// the bytes really there before it is used.
        /// </summary>
        internal InjectionGadgets Gadgets()
        {
            if (_gadgets != null) return _gadgets;
            // Sorted below: a copy of the remembered map.
            var maps = _lastMaps != null ? new List<ProcFs.MapsLine>(_lastMaps) : ProcFs.ReadMaps(Id);
            // libc first: it always holds syscall instructions and the signal restorer; the vdso as a last resort.
            maps.Sort((a, b) => Rank(a).CompareTo(Rank(b)));
            ulong syscallRet = 0, anySyscall = 0, restorer = 0;
            foreach (var m in maps)
            {
                if (!m.X || m.Path.Length == 0 || m.Path == "[vsyscall]") continue;
                var found = m.Inode != 0
                    ? ModuleCache.GetOrAdd("gadgets|" + m.Dev + ":" + m.Inode + "|" + m.Offset + "|" + (m.End - m.Start), () => ScanMapping(m))
                    : ScanMapping(m);
                // Replaced under the same inode, or written to in this process: search what is really there.
                if (!Holds(m, found)) found = ScanMapping(m);
                if (syscallRet == 0 && found.SyscallRet >= 0) syscallRet = m.Start + (ulong)found.SyscallRet;
                if (anySyscall == 0 && found.AnySyscall >= 0) anySyscall = m.Start + (ulong)found.AnySyscall;
                if (restorer == 0 && found.Restorer >= 0) restorer = m.Start + (ulong)found.Restorer;
                if (syscallRet != 0 && restorer != 0) break;
            }
            if (anySyscall == 0)
            {
                // A process being torn down has no mappings left well before it is a zombie.
                if (maps.Count == 0 || Dying) throw ProcFs.Gone(Id);
                throw new HotpatchException(HotpatchErrorKind.Internal, "No syscall instruction found in process " + Id + "'s code.") { ProcessId = Id };
            }
            return _gadgets = syscallRet != 0 && restorer != 0
                ? new InjectionGadgets { Syscall = syscallRet, Restorer = restorer }
                : new InjectionGadgets { Syscall = anySyscall };
        }

        private MappingGadgets ScanMapping(ProcFs.MapsLine m)
        {
            var buf = new byte[Math.Min(m.End - m.Start, 4UL << 20)];
            int n = TryRead(m.Start, buf);
            var found = new MappingGadgets
            {
                SyscallRet = IndexOf(buf, n, SyscallRet) ?? -1,
                AnySyscall = IndexOf(buf, n, SyscallRet, 2) ?? -1,
            };
            for (int r = 0; r < Restorers.Length && found.Restorer < 0; r++)
                if (IndexOf(buf, n, Restorers[r]) is int k) { found.Restorer = k; found.RestorerPattern = r; }
            return found;
        }

        private bool Holds(ProcFs.MapsLine m, MappingGadgets g)
        {
            bool At(int offset, byte[] pattern, int length)
            {
                if (offset < 0) return true;
                var now = new byte[length];
                return TryRead(m.Start + (ulong)offset, now) == length && IndexOf(now, length, pattern, length) == 0;
            }
            return At(g.SyscallRet, SyscallRet, SyscallRet.Length) && At(g.AnySyscall, SyscallRet, 2)
                && (g.Restorer < 0 || At(g.Restorer, Restorers[g.RestorerPattern], Restorers[g.RestorerPattern].Length));
        }

        private static int? IndexOf(byte[] buf, int n, byte[] pattern, int length = -1)
        {
            if (length < 0) length = pattern.Length;
            for (int i = 0; i + length <= n; i++)
            {
                int k = 0;
                while (k < length && buf[i + k] == pattern[k]) k++;
                if (k == length) return i;
            }
            return null;
        }

        private static int Rank(ProcFs.MapsLine m) => m.Path.Contains("/libc.so") || m.Path.Contains("/libc-") ? 0 : m.Path.StartsWith("/", StringComparison.Ordinal) ? 1 : 2;

        // ---- modules ----

        public IReadOnlyList<LoadedModule> GetModules() => ModuleList(ReadMaps());

        private static IReadOnlyList<LoadedModule> ModuleList(List<ProcFs.MapsLine> maps)
        {
            var byKey = new Dictionary<string, LoadedModule>(StringComparer.Ordinal);
            var order = new List<LoadedModule>();
            foreach (var m in maps)
            {
                if (m.Inode == 0 || !m.Path.StartsWith("/", StringComparison.Ordinal)) continue;
                string key = m.Dev + ":" + m.Inode;
                if (!byKey.TryGetValue(key, out var mod))
                {
                    string path = m.Path.EndsWith(" (deleted)", StringComparison.Ordinal) ? m.Path.Substring(0, m.Path.Length - 10) : m.Path;
                    mod = new LoadedModule { Name = System.IO.Path.GetFileName(path), Path = path, Base = m.Start, End = m.End, Key = key };
                    byKey[key] = mod;
                    order.Add(mod);
                }
                if (m.Offset == 0 && (mod.Base > m.Start || mod.BaseMapping == null))
                {
                    mod.Base = m.Start;
                    mod.BaseMapping = m.Start.ToString("x") + "-" + m.End.ToString("x");
                }
                if (m.Start < mod.Base && mod.BaseMapping == null) mod.Base = m.Start;
                if (m.End > mod.End) mod.End = m.End;
            }
            return order;
        }

        /// <summary>Decided when a module is opened, not listed: a process maps dozens of files and a check costs a syscall each.</summary>
        public override string ReadablePath(LoadedModule module)
        {
            if (module.ReadablePath.Length > 0) return module.ReadablePath;
            // map_files reaches the mapped file itself, even when it was replaced on disk or lives in another mount namespace.
            string viaMapFiles = "/proc/" + Id + "/map_files/" + module.BaseMapping;
            return module.ReadablePath = module.BaseMapping != null && File.Exists(viaMapFiles) ? viaMapFiles : "/proc/" + Id + "/root" + module.Path;
        }

        /// <summary>
        /// Cached by file: device and inode, and the file's size and times, because an inode freed by a deleted file goes
        /// to the next file made (a library upgraded, a build replaced), and a file written over in place keeps its own.
        /// </summary>
        public IModuleImage OpenImage(LoadedModule module)
        {
            string path = ReadablePath(module);
            string? stamp = LibC.FileStamp(path);
            try
            {
                // A file that cannot be examined cannot be told from another: read, not cached (reading it reports why).
                if (stamp == null) return DebugFiles.Attach(ElfImage.Load(path), module.Path);
                return ModuleCache.GetOrAdd("elf|" + module.Key + "|" + stamp + "|" + DebugFiles.CacheKey(), () => DebugFiles.Attach(ElfImage.Load(path), module.Path));
            }
            // A process killed meanwhile takes its /proc/PID paths with it: that is the cause, not a missing module file.
            catch (HotpatchException) when (Dying) { throw ProcFs.Gone(Id); }
        }

        // ---- threads ----

        /// <summary>The freeze of every thread that this object holds now, if any (see InjectSyscall).</summary>
        private LinuxFrozenProcess? _frozen;

        public IFrozenProcess Freeze(TimeSpan timeout)
        {
            // Known before anything stops, so the freeze can tell a thread still finishing a killed installer's call,
            // and an injected call within the freeze needs no look at the memory map.
            var frozen = LinuxFrozenProcess.Stop(this, timeout, singleThread: false, beforeStop: () =>
            {
                try { Gadgets(); }
                catch (HotpatchException e) when (e.Kind == HotpatchErrorKind.Internal) { }
            });
            _frozen = frozen;
            return frozen;
        }

        internal void Released(LinuxFrozenProcess frozen)
        {
            if (ReferenceEquals(_frozen, frozen)) _frozen = null;
        }

        /// <summary>
        /// One thread when opened: the injected mmap would stop it a second time. Not read again: a process that starts a
        /// thread between the open and the freeze only makes that freeze longer by the injected call.
        /// </summary>
        public bool AllocateWithinFreeze => _threads == 1;

        internal InjectionGadgets? KnownGadgets => _gadgets;
    }
}
