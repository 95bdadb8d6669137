using HotpatchTools.Engine.Format;
using HotpatchTools.Engine.Platform;

namespace HotpatchTools.Engine.Patching
{
    /// <summary>A cave as read from a process: its header, the exact bytes it was parsed from, and where it lies.</summary>
    internal sealed class FoundCave
    {
        public CaveHeader Header = null!;
        public byte[] HeaderBytes = null!;
        public ulong Address;
    }

    /// <summary>
    /// The installed state, read from the process itself: the caves it holds and what their sites hold now. Shared
    /// by install, uninstall and the inspector; reads only.
    /// </summary>
    internal static class CaveReader
    {
        /// <summary>
        /// What one process may cost a reader of its caves. No install makes more than a few caves per process, and
        /// real headers are a few hundred bytes; a process over any of these is forging headers (to make a sweep run
        /// as root allocate without end) and is reported instead of read further.
        /// </summary>
        internal const int MaxCavesPerProcess = 256;
        internal const int MaxRejectedHeadersPerProcess = 16;
        internal const long MaxHeaderBytesPerProcess = 4L << 20;

        private sealed class HeaderReader
        {
            private readonly ITargetProcess _target;
            private int _rejected;
            private long _bytes;
            private readonly byte[] _head = new byte[CaveHeader.FixedLength];
            private readonly byte[] _tail = new byte[CaveHeader.TrailerLength];

            public HeaderReader(ITargetProcess target) { _target = target; }

            /// <summary>The cave at `address` that fits before `regionEnd`, or null; throws SuspiciousProcess when over budget.</summary>
            public FoundCave? At(ulong address, ulong regionEnd)
            {
                if (_target.Memory.TryRead(address, _head) != _head.Length || !CaveHeader.HasMagic(_head)) return null;
                if (CaveHeader.PeekFixed(_head, address, regionEnd) is not (uint len, uint size)) return Reject(address);
                if (_target.Memory.TryRead(address + size - CaveHeader.TrailerLength, _tail) != _tail.Length || CaveHeader.PeekTrailer(_tail) != size) return Reject(address);
                _bytes += len;
                if (_bytes > MaxHeaderBytesPerProcess) throw Suspicious("its cave headers add up to more than " + (MaxHeaderBytesPerProcess >> 20) + " MiB");
                var bytes = new byte[len];
                if (_target.Memory.TryRead(address, bytes) != len) return null;
                var h = CaveHeader.TryParse(bytes);
                return h == null ? Reject(address) : new FoundCave { Header = h, HeaderBytes = bytes, Address = address };
            }

            /// <summary>The cave size a trailer ending at `end` states, or null.</summary>
            public uint? TrailerBefore(ulong end) =>
                _target.Memory.TryRead(end - CaveHeader.TrailerLength, _tail) == _tail.Length ? CaveHeader.PeekTrailer(_tail) : null;

            private FoundCave? Reject(ulong address)
            {
                // One torn read while another session writes a cave is possible; many are not.
                if (++_rejected > MaxRejectedHeadersPerProcess)
                    throw Suspicious("more than " + MaxRejectedHeadersPerProcess + " of its memory regions begin like a cave header that does not hold together (the last at 0x" + address.ToString("x") + ")");
                return null;
            }

            public HotpatchException Suspicious(string why) =>
                new HotpatchException(HotpatchErrorKind.SuspiciousProcess,
                    "Process " + _target.Id + " (" + _target.Name + ") looks like it forges patch caves: " + why + ". Its caves were not read further; nothing was written to it.") { ProcessId = _target.Id };
        }

        public static List<FoundCave> FindCaves(ITargetProcess target) => FindCaves(target, target.Memory.GetRegions());

        /// <param name="regions">The process's regions, when the caller needs them for more than this (one read of the memory map).</param>
        public static List<FoundCave> FindCaves(ITargetProcess target, IReadOnlyList<MemoryRegion> regions)
        {
            var found = new List<FoundCave>();
            var reader = new HeaderReader(target);
            void Add(FoundCave c)
            {
                if (found.Count == MaxCavesPerProcess) throw reader.Suspicious("it holds more than " + MaxCavesPerProcess + " caves");
                found.Add(c);
            }
            foreach (var r in regions)
            {
                if (!r.IsAnonymousPrivate || !r.Executable) continue;
                // Adjacent caves (or a cave after foreign code) may share one merged region: walk it from both ends.
                ulong pos = r.Start, end = r.End;
                FoundCave? c;
                while (pos < end && (c = reader.At(pos, end)) != null)
                {
                    Add(c);
                    pos += c.Header.CaveSize;
                }
                while (end - pos >= 4096 && reader.TrailerBefore(end) is uint size && end - pos >= size && (c = reader.At(end - size, end)) != null)
                {
                    Add(c);
                    end -= size;
                }
            }
            return found;
        }

        /// <summary>
        /// Whether a site holds what this very cave wrote there: the header is the target's word, so its "written" bytes
        /// count only when they are not the original ones and, for an insert site, are the jump into this cave's code
        /// for that site. A header saying Installed over vulnerable bytes does not make a process patched.
        /// </summary>
        public static bool HoldsOurs(ulong caveAddress, CaveSite s, byte[] current)
        {
            if (!current.SequenceEqual(s.Written) || s.Written.SequenceEqual(s.Original)) return false;
            if (s.Mode == PatchMode.Replace) return true;
            if (s.CodeLength == 0 || s.Written.Length < 5 || s.Written[0] != 0xE9) return false;
            long rel = BitConverter.ToInt32(s.Written, 1);
            return unchecked(s.Address + 5 + (ulong)rel) == caveAddress + s.CodeOffset;
        }

        public static InstalledPatch Describe(ITargetProcess target, FoundCave c)
        {
            var sites = c.Header.Sites.Select(s =>
            {
                var cur = new byte[s.Written.Length];
                target.Memory.TryRead(s.Address, cur);
                return new SiteRecord { Address = s.Address, Mode = s.Mode.ToString(), Original = s.Original, Written = s.Written, Current = cur };
            }).ToList();
            var state = c.Header.State == CaveState.Retired ? PatchState.Retired
                : c.Header.State == CaveState.Pending ? PatchState.Orphaned
                : c.Header.Sites.Select((s, i) => HoldsOurs(c.Address, s, sites[i].Current)).All(x => x) ? PatchState.Installed : PatchState.Inconsistent;
            return new InstalledPatch(
                target.Id, target.Name, c.Header.PatchId, Hex.Lower(c.Header.FileSha256),
                c.Header.Module, new DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddMilliseconds(c.Header.InstalledUnixMs),
                c.Address, (int)c.Header.CaveSize, state, sites);
        }

        /// <summary>The installed cave of this patch, if any.</summary>
        public static FoundCave? Installed(IEnumerable<FoundCave> caves, string patchId) =>
            caves.FirstOrDefault(c => SameId(c.Header.PatchId, patchId) && c.Header.State == CaveState.Installed);

        /// <summary>An installed patch that lists this id in its `supersedes`.</summary>
        public static FoundCave? Successor(IEnumerable<FoundCave> caves, string patchId) =>
            caves.FirstOrDefault(c => c.Header.State == CaveState.Installed && c.Header.Supersedes.Any(id => SameId(id, patchId)));

        /// <summary>The installed patches this one supersedes: installing it replaces them.</summary>
        public static List<FoundCave> Replaced(IEnumerable<FoundCave> caves, Micropatch patch) =>
            patch.Supersedes.Count == 0 ? new List<FoundCave>()
                : caves.Where(c => c.Header.State == CaveState.Installed && patch.Supersedes.Any(id => SameId(id, c.Header.PatchId))).ToList();

        /// <summary>The cave's header is still there as read (or as this uninstall retired it).</summary>
        public static bool StillHolds(ITargetProcess target, FoundCave c)
        {
            var now = new byte[c.HeaderBytes.Length];
            if (target.Memory.TryRead(c.Address, now) != now.Length) return false;
            return now.SequenceEqual(c.HeaderBytes) || now.SequenceEqual(CaveHeader.WithState(c.HeaderBytes, CaveState.Retired));
        }

        /// <summary>Why the cave cannot be freed now, or null: a thread is executing in it or may return into it.</summary>
        public static string? InUse(ITargetProcess target, IFrozenProcess frozen, FoundCave cave)
        {
            ulong lo = cave.Address, hi = cave.Address + cave.Header.CaveSize;
            foreach (var t in frozen.Threads)
                if ((t.Ip >= lo && t.Ip < hi) || (t.ResumeIp >= lo && t.ResumeIp < hi))
                    return "thread " + t.Id + " is executing in it";
            if ((cave.Header.Flags & CaveHeader.FlagContainsCalls) == 0) return null;
            var regions = target.Memory.GetRegions();
            // A 32-bit stack holds 4-byte return addresses at 4-byte alignment: read in 8-byte slots, each would be
            // paired with its neighbour and missed.
            int slot = target.Bitness / 8;
            foreach (var t in frozen.Threads)
            {
                var stack = regions.FirstOrDefault(r => t.StackPointer >= r.Start && t.StackPointer < r.End);
                if (stack == null) return "thread " + t.Id + "'s stack could not be read";
                // The used part of a stack lies between rsp and the top of its mapping.
                ulong sp = t.StackPointer & ~(ulong)(slot - 1);
                ulong len = Math.Min(stack.End - sp, 8UL << 20);
                var buf = new byte[len];
                int n = target.Memory.TryRead(sp, buf);
                if (n < (int)len) return "thread " + t.Id + "'s stack could not be read";
                for (int i = 0; i + slot <= n; i += slot)
                {
                    ulong v = slot == 8 ? BitConverter.ToUInt64(buf, i) : BitConverter.ToUInt32(buf, i);
                    if (v >= lo && v < hi) return "thread " + t.Id + " may return into it (its stack holds 0x" + v.ToString("x") + ")";
                }
            }
            return null;
        }

        public static bool SameId(string a, string b) => string.Equals(a, b, StringComparison.OrdinalIgnoreCase);
    }
}
