using HotpatchTools.Engine.Platform;

namespace HotpatchTools.Engine.Patching
{
    /// <summary>
    /// A target whose memory map and module list are read once: an inspection asks for them from several places
    /// (finding the module, the caves, symbols, refusal hints), and on Linux each ask is another parse of
    /// /proc/PID/maps. For reading: an inspection (no lock; what it decides is read again under the writer lock), or
    /// the start of an install or uninstall under that lock. Reads of memory go through.
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
        public IReadOnlyList<MemoryRegion> GetRegions()
        {
            if (_regions == null) ReadLayout();
            return _regions ??= _target.Memory.GetRegions();
        }

        private void ReadLayout()
        {
            if (_target is ILayoutReader reader) (_regions, _modules) = reader.ReadLayout();
        }
        public bool TryAllocateAt(ulong address, int size) => _target.Memory.TryAllocateAt(address, size);
        public void Free(ulong address, int size) => _target.Memory.Free(address, size);

        public IReadOnlyList<LoadedModule> GetModules()
        {
            if (_modules == null) ReadLayout();
            return _modules ??= _target.Modules.GetModules();
        }
        public Modules.IModuleImage OpenImage(LoadedModule module) => _target.Modules.OpenImage(module);
        public string ComputeSha256(LoadedModule module) => _target.Modules.ComputeSha256(module);
        public string ReadablePath(LoadedModule module) => _target.Modules.ReadablePath(module);
    }
}
