using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace HotpatchTools.Engine.Patching
{
    public enum CaveState { Installed = 1, Retired = 2 }

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

        public static uint? PeekLength(byte[] first16)
        {
            if (first16.Length < 16) return null;
            for (int i = 0; i < Magic.Length; i++) if (first16[i] != Magic[i]) return null;
            uint len = BitConverter.ToUInt32(first16, 8);
            return len >= 72 && len <= 1 << 20 ? len : (uint?)null;
        }

        /// <summary>Null when the bytes are not an intact header (a foreign mapping that happens to start alike).</summary>
        public static CaveHeader? TryParse(byte[] bytes)
        {
            if (PeekLength(bytes) is not uint len || bytes.Length < len) return null;
            if (BitConverter.ToUInt32(bytes, ChecksumOffset) != Checksum(bytes, (int)len)) return null;
            try
            {
                var r = new BinaryReader(new MemoryStream(bytes, 0, (int)len));
                r.ReadBytes(8);
                var h = new CaveHeader { HeaderLength = r.ReadUInt32(), CaveSize = r.ReadUInt32(), State = (CaveState)r.ReadUInt32(), Flags = r.ReadUInt32() };
                h.InstalledUnixMs = r.ReadInt64();
                h.FileSha256 = r.ReadBytes(32);
                r.ReadUInt32();
                h.PatchId = ReadString(r);
                h.Module = ReadString(r);
                int n = r.ReadUInt16();
                for (int i = 0; i < n; i++)
                {
                    var s = new CaveSite { Address = r.ReadUInt64(), Mode = (Format.PatchMode)r.ReadByte() };
                    int l = r.ReadUInt16();
                    s.Original = r.ReadBytes(l);
                    s.Written = r.ReadBytes(l);
                    s.CodeOffset = r.ReadUInt32();
                    s.CodeLength = r.ReadUInt32();
                    h.Sites.Add(s);
                }
                if (r.BaseStream.Position < len)
                {
                    int count = r.ReadByte();
                    if (count > Format.MicropatchParser.MaxSupersedes) return null;
                    for (int i = 0; i < count; i++) h.Supersedes.Add(ReadString(r));
                }
                return h;
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

        private static string ReadString(BinaryReader r) => Encoding.UTF8.GetString(r.ReadBytes(r.ReadByte()));

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
