using System.Text;

namespace HotpatchTools.Engine.Patching
{
    /// <summary>Pending: mapped and marked, no site written yet; found in a process only when its installer died.</summary>
    internal enum CaveState { Installed = 1, Retired = 2, Pending = 3 }

    internal sealed class CaveSite
    {
        public ulong Address;
        public Format.PatchMode Mode;
        public byte[] Original = new byte[0];
        public byte[] Written = new byte[0];
        public uint CodeOffset;
        public uint CodeLength;
    }

    /// <summary>
    /// The record at the start of every cave. It makes the installed state discoverable from the target
    /// alone: a later session (here or over remoting) lists and removes patches without any state file.
    /// </summary>
    internal sealed class CaveHeader
    {
        public static readonly byte[] Magic = Encoding.ASCII.GetBytes("HPTCAVE1");
        public const int StateOffset = 16;
        public const int ChecksumOffset = 64;
        public const uint FlagContainsCalls = 1;

        public uint HeaderLength;
        public uint CaveSize;
        public CaveState State = CaveState.Installed;
        public uint Flags;
        public long InstalledUnixMs;
        public byte[] FileSha256 = new byte[32];
        public string PatchId = "";
        public string Module = "";
        public List<CaveSite> Sites = new List<CaveSite>();
        /// <summary>Ids of the patches this one replaced (the file's `supersedes`), so any session sees them as superseded here.</summary>
        public List<string> Supersedes = new List<string>();

        public byte[] Serialize()
        {
            var ms = new MemoryStream();
            var w = new BinaryWriter(ms);
            w.Write(Magic);
            w.Write(0u); // header length, patched below
            w.Write(CaveSize);
            w.Write((uint)State);
            w.Write(Flags);
            w.Write(InstalledUnixMs);
            w.Write(FileSha256);
            w.Write(0u); // checksum, patched below
            WriteString(w, PatchId);
            WriteString(w, Module);
            w.Write((ushort)Sites.Count);
            foreach (var s in Sites)
            {
                w.Write(s.Address);
                w.Write((byte)s.Mode);
                w.Write((ushort)s.Original.Length);
                w.Write(s.Original);
                w.Write(s.Written);
                w.Write(s.CodeOffset);
                w.Write(s.CodeLength);
            }
            // Optional, after the sites: a header without it (written before `supersedes` existed) still reads.
            if (Supersedes.Count > 0)
            {
                w.Write((byte)Supersedes.Count);
                foreach (var id in Supersedes) WriteString(w, id);
            }
            var bytes = ms.ToArray();
            HeaderLength = (uint)bytes.Length;
            BitConverter.GetBytes(HeaderLength).CopyTo(bytes, 8);
            BitConverter.GetBytes(Checksum(bytes)).CopyTo(bytes, ChecksumOffset);
            return bytes;
        }

        /// <summary>The header bytes with a new state, for retiring a cave in place.</summary>
        public static byte[] WithState(byte[] header, CaveState state)
        {
            var copy = (byte[])header.Clone();
            BitConverter.GetBytes((uint)state).CopyTo(copy, StateOffset);
            BitConverter.GetBytes(Checksum(copy)).CopyTo(copy, ChecksumOffset);
            return copy;
        }

        public const int TrailerLength = 16;

        /// <summary>
        /// The last 16 bytes of a cave: magic and cave size. The kernel merges adjacent anonymous mappings
        /// with equal protections, so a cave may sit at the end of a larger region; the trailer finds it there.
        /// </summary>
        public static byte[] Trailer(uint caveSize)
        {
            var t = new byte[TrailerLength];
            Magic.CopyTo(t, 0);
            BitConverter.GetBytes(caveSize).CopyTo(t, 8);
            BitConverter.GetBytes(~caveSize).CopyTo(t, 12);
            return t;
        }

        /// <summary>The cave size a trailer states, or null when the bytes are not a trailer.</summary>
        public static uint? PeekTrailer(byte[] last16)
        {
            if (last16.Length < TrailerLength) return null;
            for (int i = 0; i < Magic.Length; i++) if (last16[i] != Magic[i]) return null;
            uint size = BitConverter.ToUInt32(last16, 8);
            return ~size == BitConverter.ToUInt32(last16, 12) && size >= 4096 && size % 4096 == 0 ? size : (uint?)null;
        }

        /// <summary>Magic through checksum: what is read of a candidate before it says how much more to read.</summary>
        public const int FixedLength = 68;
        private const int MinLength = FixedLength + 1 + 1 + 2;
        /// <summary>Larger than any header of a patch the parser accepts (see MicropatchParser.MaxPatchlets, MaxSpanBytes).</summary>
        public const int MaxHeaderLength = 256 << 10;
        /// <summary>Larger than any cave a patch the parser accepts needs.</summary>
        public const uint MaxCaveSize = 16u << 20;
        /// <summary>9999-12-31 23:59:59.999 UTC, the last millisecond a DateTime holds, in ms since 1970.</summary>
        private const long MaxUnixMs = 253402300799999;
        // Address, mode, span length, two empty spans' worth of nothing, code offset and length.
        private const int MinSiteLength = 8 + 1 + 2 + 4 + 4;

        /// <summary>
        /// Header length and cave size from the fixed part of a candidate at `address`, or null when they are not
        /// those of a cave that fits in the mapping ending at `regionEnd`. Checked before anything more is read: the
        /// target's memory may be written by its owner to make the reader allocate.
        /// </summary>
        public static (uint Length, uint CaveSize)? PeekFixed(byte[] head, ulong address, ulong regionEnd)
        {
            if (head.Length < FixedLength || !HasMagic(head)) return null;
            uint len = BitConverter.ToUInt32(head, 8), size = BitConverter.ToUInt32(head, 12), state = BitConverter.ToUInt32(head, StateOffset);
            if (len < MinLength || len > MaxHeaderLength) return null;
            if (size < 4096 || size % 4096 != 0 || size > MaxCaveSize || (ulong)len + TrailerLength > size) return null;
            if (address > regionEnd || regionEnd - address < size) return null;
            if (state != (uint)CaveState.Installed && state != (uint)CaveState.Retired && state != (uint)CaveState.Pending) return null;
            return (len, size);
        }

        public static bool HasMagic(byte[] bytes)
        {
            if (bytes.Length < Magic.Length) return false;
            for (int i = 0; i < Magic.Length; i++) if (bytes[i] != Magic[i]) return false;
            return true;
        }

        /// <summary>
        /// Null when the bytes are not an intact header (a foreign mapping that happens to start alike, or a forged
        /// one): every count and length is checked against what is left of the header, and every code range against
        /// the cave, before it is used.
        /// </summary>
        public static CaveHeader? TryParse(byte[] bytes)
        {
            if (bytes.Length < FixedLength || !HasMagic(bytes)) return null;
            uint len = BitConverter.ToUInt32(bytes, 8), size = BitConverter.ToUInt32(bytes, 12);
            if (PeekFixed(bytes, 0, size) == null || bytes.Length < len) return null;
            if (BitConverter.ToUInt32(bytes, ChecksumOffset) != Checksum(bytes, (int)len)) return null;
            try
            {
                var stream = new MemoryStream(bytes, 0, (int)len);
                var r = new BinaryReader(stream);
                long Left() => stream.Length - stream.Position;
                byte[] Exactly(int n) => n <= Left() ? r.ReadBytes(n) : throw new EndOfStreamException();
                r.ReadBytes(8);
                var h = new CaveHeader { HeaderLength = r.ReadUInt32(), CaveSize = r.ReadUInt32(), State = (CaveState)r.ReadUInt32(), Flags = r.ReadUInt32() };
                h.InstalledUnixMs = r.ReadInt64();
                // The engine writes the time it installs at; one no date holds is forged (and would make every reader's date throw).
                if (h.InstalledUnixMs < 0 || h.InstalledUnixMs > MaxUnixMs) return null;
                h.FileSha256 = Exactly(32);
                r.ReadUInt32();
                h.PatchId = Encoding.UTF8.GetString(Exactly(r.ReadByte()));
                h.Module = Encoding.UTF8.GetString(Exactly(r.ReadByte()));
                int n = r.ReadUInt16();
                if ((long)n * MinSiteLength > Left()) return null;
                for (int i = 0; i < n; i++)
                {
                    var s = new CaveSite { Address = r.ReadUInt64(), Mode = (Format.PatchMode)r.ReadByte() };
                    if (s.Mode != Format.PatchMode.Insert && s.Mode != Format.PatchMode.Replace) return null;
                    int l = r.ReadUInt16();
                    if (l == 0 || 2L * l + 8 > Left()) return null;
                    s.Original = Exactly(l);
                    s.Written = Exactly(l);
                    s.CodeOffset = r.ReadUInt32();
                    s.CodeLength = r.ReadUInt32();
                    // Where the site's code is: inside this cave, after the header and before the trailer (in 64 bits: no wrap).
                    if (s.CodeLength != 0 && (s.CodeOffset < len || (ulong)s.CodeOffset + s.CodeLength > h.CaveSize - TrailerLength)) return null;
                    // A site is code the cave's owner patched: never in the null page, never wrapping the address space.
                    if (s.Address < 4096 || s.Address > ulong.MaxValue - (ulong)l) return null;
                    h.Sites.Add(s);
                }
                // Optional, after the sites: the ids this patch superseded (absent in headers written before).
                if (Left() > 0)
                {
                    int count = r.ReadByte();
                    if (count > Format.MicropatchParser.MaxSupersedes) return null;
                    for (int i = 0; i < count; i++) h.Supersedes.Add(Encoding.UTF8.GetString(Exactly(r.ReadByte())));
                }
                return Left() == 0 ? h : null;
            }
            catch (EndOfStreamException) { return null; }
        }

        private static void WriteString(BinaryWriter w, string s)
        {
            var b = Encoding.UTF8.GetBytes(s);
            if (b.Length > 255) Array.Resize(ref b, 255);
            w.Write((byte)b.Length);
            w.Write(b);
        }

        // FNV-1a over the header with the checksum field taken as zero.
        private static uint Checksum(byte[] b, int length = -1)
        {
            if (length < 0) length = b.Length;
            uint h = 2166136261;
            for (int i = 0; i < length; i++)
            {
                byte v = i >= ChecksumOffset && i < ChecksumOffset + 4 ? (byte)0 : b[i];
                h = (h ^ v) * 16777619;
            }
            return h;
        }
    }
}
