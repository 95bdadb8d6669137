namespace HotpatchTools.Engine.Platform
{
    public sealed class ProcessInfo
    {
        public ProcessInfo(int id, string name) { Id = id; Name = name; }
        public int Id { get; }
        public string Name { get; }
    }

    public sealed class LoadedModule
    {
        /// <summary>File name, e.g. libc.so.6 or kernel32.dll.</summary>
        public string Name { get; set; } = "";
        /// <summary>Path as the process sees it.</summary>
        public string Path { get; set; } = "";
        /// <summary>Path this process can open to read the mapped file (may differ from Path).</summary>
        public string ReadablePath { get; set; } = "";
        public ulong Base { get; set; }
        public ulong End { get; set; }
        /// <summary>Identifies the file (device:inode on Linux) for caching parsed images across processes.</summary>
        public string Key { get; set; } = "";
        internal string? BaseMapping { get; set; }
    }

    /// <param name="IsAnonymousPrivate">Private anonymous memory (where caves live).</param>
    public sealed record MemoryRegion(ulong Start, ulong End, bool Readable, bool Writable, bool Executable, bool IsAnonymousPrivate, string Path = "");

    /// <summary>A thread of a frozen process, as the engine needs to see it.</summary>
    public sealed class ThreadSnapshot
    {
        public int Id { get; set; }
        /// <summary>Where the thread will continue executing when it resumes (syscall restart already applied).</summary>
        public ulong ResumeIp { get; set; }
        /// <summary>The raw instruction pointer; differs from ResumeIp for a thread inside a restartable system call.</summary>
        public ulong Ip { get; set; }
        public ulong StackPointer { get; set; }
    }

    /// <summary>Enumerates processes and opens one for inspection or patching.</summary>
    public interface IProcessPlatform
    {
        /// <summary>The OS whose processes these are (offline: the one the file is built for).</summary>
        Format.TargetOs Os { get; }
        IReadOnlyList<ProcessInfo> ListProcesses();
        /// <summary>Throws HotpatchException ProcessNotFound/AccessDenied.</summary>
        ITargetProcess Open(int processId);
    }

    /// <summary>
    /// A platform that can tell, cheaply and without opening each process, which processes have a module
    /// mapped: machine-wide discovery reads nothing else from the others.
    /// </summary>
    public interface IModuleProcessFilter
    {
        /// <summary>Processes that may have the module loaded (a superset: the engine checks each one).</summary>
        /// <param name="includeUnreadable">Also list processes whose modules cannot be read (a sweep reports them; completion offers only what is known).</param>
        IReadOnlyList<ProcessInfo> ListProcessesWithModule(string moduleName, bool ignoreCase, bool includeUnreadable = true);
    }

    /// <summary>One open target process: one small interface per concern.</summary>
    public interface ITargetProcess : IDisposable
    {
        int Id { get; }
        string Name { get; }
        /// <summary>64 or 32.</summary>
        int Bitness { get; }
        /// <summary>
        /// True once the process is exiting or gone, a kill still pending included: its memory may take writes for
        /// a moment longer, so a write that worked does not prove the patch is in a process that will run it.
        /// </summary>
        bool HasExited { get; }
        IProcessMemory Memory { get; }
        IModuleEnumerator Modules { get; }
        IThreadController Threads { get; }
    }

    public interface IProcessMemory
    {
        /// <summary>Alignment of allocations: the page size on Linux, 64 KB on Windows.</summary>
        int AllocationGranularity { get; }

        /// <summary>Reads exactly buffer.Length bytes or throws.</summary>
        void Read(ulong address, byte[] buffer);
        /// <summary>Reads what is readable; returns the count.</summary>
        int TryRead(ulong address, byte[] buffer);
        /// <summary>Writes exactly, even into read-only/executable pages; protections are left as they were.</summary>
        void Write(ulong address, byte[] data);
        IReadOnlyList<MemoryRegion> GetRegions();
        /// <summary>
        /// Allocates size bytes of executable memory at exactly `address` (page aligned).
        /// Returns false when that range is already taken. The backend stops what it needs itself (Linux: one thread, to
        /// inject the mmap); called by the thread that holds a freeze of this process, it works within that freeze.
        /// </summary>
        bool TryAllocateAt(ulong address, int size);
        void Free(ulong address, int size);
    }

    /// <summary>
    /// A backend that reads the memory map and the module list in one go (Linux: both come from /proc/PID/maps, which
    /// costs the kernel a walk of the whole address space each time).
    /// </summary>
    internal interface ILayoutReader
    {
        (IReadOnlyList<MemoryRegion> Regions, IReadOnlyList<LoadedModule> Modules) ReadLayout();
    }

    public interface IModuleEnumerator
    {
        IReadOnlyList<LoadedModule> GetModules();
        /// <summary>Parses (and caches) the image of a loaded module.</summary>
        Modules.IModuleImage OpenImage(LoadedModule module);
        /// <summary>SHA-256 of the module file, lowercase hex.</summary>
        string ComputeSha256(LoadedModule module);
        /// <summary>A path this process can open to read the module's file (Linux: through /proc/PID/map_files).</summary>
        string ReadablePath(LoadedModule module);
    }

    public interface IThreadController
    {
        /// <summary>
        /// Stops every thread, including threads created while stopping. Throws on failure with every
        /// thread resumed. Disposing the result resumes all threads exactly as they were.
        /// </summary>
        IFrozenProcess Freeze(TimeSpan timeout);

        /// <summary>
        /// Whether a cave is best allocated (and freed) within the freeze that writes the sites rather than before it
        /// (or after): on Linux when the process has one thread, because the injected mmap would stop that same thread
        /// once more. Read before the freeze; a thread started meanwhile makes that freeze a little longer, nothing worse.
        /// </summary>
        bool AllocateWithinFreeze { get; }
    }

    public interface IFrozenProcess : IDisposable
    {
        IReadOnlyList<ThreadSnapshot> Threads { get; }

        /// <summary>
        /// How long the process's threads were held: from the first thread stopped to the last one let go (up to now
        /// while still held). Listing and attaching to threads before the first stop hold nothing and are not in it.
        /// </summary>
        TimeSpan Held { get; }
    }
}
