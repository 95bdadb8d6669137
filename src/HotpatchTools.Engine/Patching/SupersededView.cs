using HotpatchTools.Engine.Platform;

namespace HotpatchTools.Engine.Patching
{
    /// <summary>
    /// A target as it would be without the patches a new one supersedes: where such a patch's site holds its jump,
    /// reads return the original bytes its cave recorded. The new patch is planned against this view, because its
    /// `expect` describes the module's own code, and the install then swaps one patch for the other under one freeze.
    /// Reads only; a write goes to the real process.
    /// </summary>
    internal sealed class SupersededView : ITargetProcess, IProcessMemory
    {
        private readonly ITargetProcess _target;
        private readonly List<CaveSite> _sites;

        public SupersededView(ITargetProcess target, IEnumerable<CaveSite> replacedSites)
        {
            _target = target;
            _sites = replacedSites.ToList();
        }

        public int Id => _target.Id;
        public string Name => _target.Name;
        public int Bitness => _target.Bitness;
        public bool HasExited => _target.HasExited;
        public IProcessMemory Memory => this;
        public IModuleEnumerator Modules => _target.Modules;
        public IThreadController Threads => _target.Threads;
        public void Dispose() { }

        public int AllocationGranularity => _target.Memory.AllocationGranularity;

        public void Read(ulong address, byte[] buffer)
        {
            _target.Memory.Read(address, buffer);
            Overlay(address, buffer, buffer.Length);
        }

        public int TryRead(ulong address, byte[] buffer)
        {
            int n = _target.Memory.TryRead(address, buffer);
            Overlay(address, buffer, n);
            return n;
        }

        /// <summary>Only a site that still holds exactly the old patch's bytes is shown as original: anything else is news.</summary>
        private void Overlay(ulong address, byte[] buffer, int length)
        {
            foreach (var s in _sites)
            {
                ulong lo = Math.Max(address, s.Address), hi = Math.Min(address + (ulong)length, s.Address + (ulong)s.Written.Length);
                if (lo >= hi) continue;
                var current = new byte[s.Written.Length];
                if (_target.Memory.TryRead(s.Address, current) != current.Length || !current.SequenceEqual(s.Written)) continue;
                for (ulong a = lo; a < hi; a++) buffer[a - address] = s.Original[a - s.Address];
            }
        }

        public void Write(ulong address, byte[] data) => _target.Memory.Write(address, data);
        public IReadOnlyList<MemoryRegion> GetRegions() => _target.Memory.GetRegions();
        public bool TryAllocateAt(ulong address, int size) => _target.Memory.TryAllocateAt(address, size);
        public void Free(ulong address, int size) => _target.Memory.Free(address, size);
    }
}
