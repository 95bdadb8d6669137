namespace HotpatchTools.Engine.Platform.Offline
{
    /// <summary>
    /// A sparse address space of 4 KB pages, as a process's is: mapped pages read and write, anything else
    /// faults. Each page belongs to one mapping (a part of the module, or an allocation), and consecutive pages
    /// of one mapping are reported as one region, as /proc/PID/maps and VirtualQueryEx do.
    /// </summary>
    internal sealed class ImageMemory : IProcessMemory
    {
        public const int PageSize = 4096;
        private const ulong PageMask = PageSize - 1;

        private sealed class Mapping
        {
            public ulong Start, End;
            public bool Readable, Writable, Executable, IsAllocation;
            public string Path = "";
        }

        private sealed class Page
        {
            /// <summary>Null until written: a large .bss or SizeOfImage costs nothing until used.</summary>
            public byte[]? Bytes;
            public Mapping Owner = null!;
        }

        private readonly Dictionary<ulong, Page> _pages = new Dictionary<ulong, Page>();
        private readonly ImageProcess _process;

        public ImageMemory(ImageProcess process, int bitness)
        {
            _process = process;
            AddressLimit = bitness == 32 ? 1UL << 32 : 1UL << 47;
        }

        /// <summary>Where user space ends for a process of that bitness (for x64, the lower canonical half).</summary>
        public ulong AddressLimit { get; }

        public int AllocationGranularity => PageSize;

        /// <summary>
        /// Maps [start, start + size) rounded out to pages, zero-filled, then copies data to start. Pages already
        /// mapped are replaced, as a later mmap over an earlier one replaces it: ELF segments may share a page.
        /// </summary>
        public void Map(ulong start, ulong size, byte[] data, int dataOffset, int dataLength, bool readable, bool writable, bool executable, string path)
        {
            ulong first = start & ~PageMask, end = RoundUp(start + size);
            var owner = new Mapping { Start = first, End = end, Readable = readable, Writable = writable, Executable = executable, Path = path };
            for (ulong page = first; page < end; page += PageSize)
                _pages[page] = new Page { Owner = owner };
            Copy(start, data, dataOffset, dataLength);
        }

        public void Read(ulong address, byte[] buffer)
        {
            if (TryRead(address, buffer) != buffer.Length)
                throw new HotpatchException(HotpatchErrorKind.Internal,
                    "Could not read " + buffer.Length + " bytes at 0x" + address.ToString("x") + " in " + _process.Name + ": the range is not mapped.") { ProcessId = _process.Id };
        }

        public int TryRead(ulong address, byte[] buffer)
        {
            int done = 0;
            while (done < buffer.Length && _pages.TryGetValue((address + (ulong)done) & ~PageMask, out var page))
            {
                int offset = (int)((address + (ulong)done) & PageMask);
                int n = Math.Min(buffer.Length - done, PageSize - offset);
                if (page.Bytes != null) Buffer.BlockCopy(page.Bytes, offset, buffer, done, n);
                else Array.Clear(buffer, done, n);
                done += n;
            }
            return done;
        }

        public void Write(ulong address, byte[] data)
        {
            if (!IsMapped(address, (ulong)data.Length))
                throw new HotpatchException(HotpatchErrorKind.WriteFailed,
                    "Could not write " + data.Length + " bytes at 0x" + address.ToString("x") + " in " + _process.Name + ": the range is not mapped.") { ProcessId = _process.Id };
            Copy(address, data, 0, data.Length);
        }

        public IReadOnlyList<MemoryRegion> GetRegions()
        {
            var regions = new List<MemoryRegion>();
            MemoryRegion? last = null;
            Mapping? lastOwner = null;
            foreach (var kv in _pages.OrderBy(kv => kv.Key))
            {
                var m = kv.Value.Owner;
                if (last != null && m == lastOwner && last.End == kv.Key)
                {
                    regions[regions.Count - 1] = last = last with { End = last.End + PageSize };
                    continue;
                }
                last = new MemoryRegion(kv.Key, kv.Key + PageSize, m.Readable, m.Writable, m.Executable, m.IsAllocation, m.Path);
                lastOwner = m;
                regions.Add(last);
            }
            return regions;
        }

        /// <summary>Read and execute only, as the Linux backend maps caves: every write goes through <see cref="Write"/>.</summary>
        public bool TryAllocateAt(ulong address, int size)
        {
            if ((address & PageMask) != 0) throw new ArgumentException("0x" + address.ToString("x") + " is not page aligned.", nameof(address));
            if (size <= 0) throw new ArgumentOutOfRangeException(nameof(size), size, "must be positive");
            ulong end = RoundUp(address + (ulong)size);
            if (end > AddressLimit || end <= address) return false;
            for (ulong page = address; page < end; page += PageSize)
                if (_pages.ContainsKey(page)) return false;
            var owner = new Mapping { Start = address, End = end, Readable = true, Executable = true, IsAllocation = true };
            for (ulong page = address; page < end; page += PageSize)
                _pages.Add(page, new Page { Owner = owner });
            return true;
        }

        /// <summary>Only a whole allocation is released: anything else is a bug in the caller, and is refused rather than guessed at.</summary>
        public void Free(ulong address, int size)
        {
            if (size <= 0 || !_pages.TryGetValue(address, out var page) || !page.Owner.IsAllocation
                || page.Owner.Start != address || page.Owner.End != RoundUp(address + (ulong)size))
                throw new HotpatchException(HotpatchErrorKind.Internal,
                    "There is no allocation of " + size + " bytes at 0x" + address.ToString("x") + " in " + _process.Name + " to free.") { ProcessId = _process.Id };
            for (ulong p = page.Owner.Start; p < page.Owner.End; p += PageSize)
                _pages.Remove(p);
        }

        private bool IsMapped(ulong address, ulong length)
        {
            if (length == 0) return true;
            ulong last = address + length - 1;
            if (last < address) return false;
            for (ulong page = address & ~PageMask; ; page += PageSize)
            {
                if (!_pages.ContainsKey(page)) return false;
                if (page >= (last & ~PageMask)) return true;
            }
        }

        private void Copy(ulong address, byte[] data, int offset, int length)
        {
            int done = 0;
            while (done < length)
            {
                var page = _pages[(address + (ulong)done) & ~PageMask];
                int at = (int)((address + (ulong)done) & PageMask);
                int n = Math.Min(length - done, PageSize - at);
                Buffer.BlockCopy(data, offset + done, page.Bytes ??= new byte[PageSize], at, n);
                done += n;
            }
        }

        private static ulong RoundUp(ulong v) => (v + PageMask) & ~PageMask;
    }
}
