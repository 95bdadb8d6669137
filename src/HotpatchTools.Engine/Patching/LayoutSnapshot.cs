using HotpatchTools.Engine.Platform;

namespace HotpatchTools.Engine.Patching
{
    /// <summary>
    /// A target whose memory map and module list are read once: an inspection asks for them from several places
    /// (finding the module, the caves, symbols, refusal hints), and on Linux each ask is another parse of
    /// /proc/PID/maps. Only for work that changes nothing in the process and takes no lock; reads of memory go
    /// through, and what is decided under the writer lock is read again there.
    /// </summary>
    internal sealed class LayoutSnapshot : ITargetProcess, IProcessMemory, IModuleEnumerator
    {
        private readonly ITargetProcess _target;
        private IReadOnlyList<MemoryRegion>? _regions;
        private IReadOnlyList<LoadedModule>? _modules;

        public LayoutSnapshot(ITargetProcess target) { _target = target; }

        public int Id => _target.Id;
        public string Name => _target.Name;
        public int Bitness => _target.Bitness;
        public bool HasExited => _target.HasExited;
        public IProcessMemory Memory => this;
        public IModuleEnumerator Modules => this;
        public IThreadController Threads => _target.Threads;
        /// <summary>The target belongs to whoever opened it.</summary>
        public void Dispose() { }

        public int AllocationGranularity => _target.Memory.AllocationGranularity;
        public void Read(ulong address, byte[] buffer) => _target.Memory.Read(address, buffer);
        public int TryRead(ulong address, byte[] buffer) => _target.Memory.TryRead(address, buffer);
        public void Write(ulong address, byte[] data) => _target.Memory.Write(address, data);
        public IReadOnlyList<MemoryRegion> GetRegions() => _regions ??= _target.Memory.GetRegions();
        public bool TryAllocateAt(ulong address, int size) => _target.Memory.TryAllocateAt(address, size);
        public void Free(ulong address, int size) => _target.Memory.Free(address, size);

        public IReadOnlyList<LoadedModule> GetModules() => _modules ??= _target.Modules.GetModules();
        public Modules.IModuleImage OpenImage(LoadedModule module) => _target.Modules.OpenImage(module);
        public string ComputeSha256(LoadedModule module) => _target.Modules.ComputeSha256(module);
    }
}
