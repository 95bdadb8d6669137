using System.Text;

namespace HotpatchTools.Engine.Modules
{
    /// <summary>
    /// The function ranges that .eh_frame describes: one FDE per function (or per part of one, e.g. its .cold
    /// part), which every gcc- or clang-built distribution binary keeps when its symbol table is stripped.
    /// Only what locates an FDE's code is decoded (CIE augmentation and the pc_begin/pc_range encodings), never
    /// the call frame instructions. Every length and offset is checked against the section, so a corrupt or
    /// hostile section gives an error or fewer ranges, never an out-of-range read or a large allocation.
    /// </summary>
    internal static class EhFrame
    {
        private const byte DwEhPeOmit = 0xff, DwEhPeIndirect = 0x80;
        private const byte DwEhPeAbsptr = 0x00, DwEhPeUleb128 = 0x01, DwEhPeUdata2 = 0x02, DwEhPeUdata4 = 0x03, DwEhPeUdata8 = 0x04;
        private const byte DwEhPeSleb128 = 0x09, DwEhPeSdata2 = 0x0a, DwEhPeSdata4 = 0x0b, DwEhPeSdata8 = 0x0c;
        private const byte DwEhPePcrel = 0x10;

        /// <summary>What an FDE needs from its CIE; Usable is false for an augmentation this reader cannot follow.</summary>
        private struct Cie
        {
            public bool Usable;
            public byte FdeEncoding;
        }

        /// <summary>
        /// [start, end) of every FDE in <paramref name="data"/> (the bytes of .eh_frame, mapped at
        /// <paramref name="address"/>), as RVAs (address minus <paramref name="loadBase"/>). FDEs whose code lies
        /// below the load base (discarded by the linker: pc_begin 0) or is empty are left out. A zero length ends
        /// the section, as it does for the unwinder.
        /// </summary>
        public static List<(ulong Start, ulong End)> Parse(byte[] data, ulong address, ulong loadBase, bool is64, Func<string, Exception> invalid)
        {
            var ranges = new List<(ulong, ulong)>();
            var cies = new Dictionary<long, Cie>();
            long pos = 0, length = data.Length;
            while (length - pos >= 4)
            {
                long entry = pos;
                ulong size = U32(data, pos);
                pos += 4;
                if (size == 0) break;
                if (size == 0xffffffff)
                {
                    if (length - pos < 8) throw invalid(".eh_frame entry at 0x" + entry.ToString("x") + " is truncated");
                    size = U64(data, pos);
                    pos += 8;
                }
                if (size > (ulong)(length - pos) || size < 4)
                    throw invalid(".eh_frame entry at 0x" + entry.ToString("x") + " (length 0x" + size.ToString("x") + ") runs past the end of the section");
                long end = pos + (long)size;
                long idField = pos;
                uint id = U32(data, pos);
                pos += 4;
                if (id == 0)
                {
                    cies[entry] = ReadCie(data, pos, end, is64);
                }
                else
                {
                    // The CIE pointer is the distance back from this field to the CIE.
                    long cieAt = idField - id;
                    if (cieAt < 0 || !cies.TryGetValue(cieAt, out var cie))
                    {
                        // A CIE after its FDEs is legal but unusual; find it once, then it is known.
                        if (cieAt < 0 || cieAt >= entry || !TryReadCieAt(data, cieAt, is64, out cie))
                            throw invalid(".eh_frame FDE at 0x" + entry.ToString("x") + " points to no CIE");
                        cies[cieAt] = cie;
                    }
                    if (cie.Usable)
                    {
                        ulong fieldAddress = address + (ulong)pos;
                        ulong? begin = ReadEncoded(data, ref pos, end, cie.FdeEncoding, fieldAddress, is64);
                        ulong? range = begin == null ? null : ReadEncoded(data, ref pos, end, (byte)(cie.FdeEncoding & 0x0f), 0, is64);
                        if (begin != null && range != null)
                        {
                            ulong start = begin.Value, stop = start + range.Value;
                            if (!is64) { start &= 0xffffffff; stop = start + (range.Value & 0xffffffff); }
                            if (range.Value != 0 && start >= loadBase && stop > start)
                                ranges.Add((start - loadBase, stop - loadBase));
                        }
                    }
                }
                pos = end;
            }
            return ranges;
        }

        private static bool TryReadCieAt(byte[] data, long at, bool is64, out Cie cie)
        {
            cie = default;
            long length = data.Length;
            if (length - at < 8) return false;
            ulong size = U32(data, at);
            long pos = at + 4;
            if (size == 0xffffffff)
            {
                if (length - pos < 8) return false;
                size = U64(data, pos);
                pos += 8;
            }
            if (size < 4 || size > (ulong)(length - pos) || U32(data, pos) != 0) return false;
            cie = ReadCie(data, pos + 4, pos + (long)size, is64);
            return true;
        }

        /// <summary>The CIE body after its id. Anything this reader does not understand makes it unusable, not an error.</summary>
        private static Cie ReadCie(byte[] data, long pos, long end, bool is64)
        {
            var cie = new Cie { FdeEncoding = DwEhPeAbsptr };
            if (pos >= end) return cie;
            byte version = data[pos++];
            if (version != 1 && version != 3 && version != 4) return cie;
            long augStart = pos;
            while (pos < end && data[pos] != 0) pos++;
            if (pos >= end) return cie;
            string aug = Encoding.ASCII.GetString(data, (int)augStart, (int)(pos - augStart));
            pos++;
            int a = 0;
            if (aug.StartsWith("eh", StringComparison.Ordinal))
            {
                pos += is64 ? 8 : 4;
                a = 2;
            }
            if (version == 4) pos += 2; // address_size, segment_selector_size
            if (pos > end) return cie;
            if (ReadUleb(data, ref pos, end) == null) return cie; // code alignment
            if (ReadUleb(data, ref pos, end) == null) return cie; // data alignment (sleb: only skipped)
            if (version == 1) pos++;
            else if (ReadUleb(data, ref pos, end) == null) return cie; // return address register
            if (pos > end) return cie;
            if (a == aug.Length)
            {
                cie.Usable = true;
                return cie;
            }
            if (aug[a] != 'z') return cie;
            ulong? augLength = ReadUleb(data, ref pos, end);
            if (augLength == null || augLength.Value > (ulong)(end - pos)) return cie;
            long augEnd = pos + (long)augLength.Value;
            for (int i = a + 1; i < aug.Length; i++)
            {
                switch (aug[i])
                {
                    case 'R':
                        if (pos >= augEnd) return cie;
                        cie.FdeEncoding = data[pos++];
                        break;
                    case 'L':
                        if (pos >= augEnd) return cie;
                        pos++;
                        break;
                    case 'P':
                    {
                        if (pos >= augEnd) return cie;
                        byte encoding = data[pos++];
                        // Only its size matters here: the personality routine's address is not needed.
                        if (ReadEncoded(data, ref pos, augEnd, (byte)(encoding & 0x0f), 0, is64) == null) return cie;
                        break;
                    }
                    case 'S':
                    case 'B':
                    case 'G':
                        break;
                    default:
                        // The 'z' length lets the rest be skipped; the letters before told all an FDE needs
                        // only if 'R' was among them or absent, which is what gcc's unwinder assumes too.
                        i = aug.Length;
                        break;
                }
            }
            cie.Usable = cie.FdeEncoding != DwEhPeOmit && (cie.FdeEncoding & DwEhPeIndirect) == 0;
            return cie;
        }

        /// <summary>
        /// A DW_EH_PE-encoded pointer at pos; fieldAddress is where it is mapped (for pcrel). Null for an
        /// encoding that cannot be resolved from the file alone (datarel, textrel, funcrel, indirect) or that runs
        /// past end.
        /// </summary>
        internal static ulong? ReadEncoded(byte[] data, ref long pos, long end, byte encoding, ulong fieldAddress, bool is64)
        {
            if (encoding == DwEhPeOmit || (encoding & DwEhPeIndirect) != 0) return null;
            ulong value;
            long need;
            switch (encoding & 0x0f)
            {
                case DwEhPeAbsptr: need = is64 ? 8 : 4; break;
                case DwEhPeUdata2: case DwEhPeSdata2: need = 2; break;
                case DwEhPeUdata4: case DwEhPeSdata4: need = 4; break;
                case DwEhPeUdata8: case DwEhPeSdata8: need = 8; break;
                case DwEhPeUleb128: need = 0; break;
                case DwEhPeSleb128: need = -1; break;
                default: return null;
            }
            if (need > 0)
            {
                if (end - pos < need) return null;
                switch (need)
                {
                    case 2: value = (encoding & 0x0f) == DwEhPeSdata2 ? (ulong)(long)(short)(data[pos] | data[pos + 1] << 8) : (ulong)(data[pos] | data[pos + 1] << 8); break;
                    case 4: value = (encoding & 0x0f) == DwEhPeSdata4 ? (ulong)(long)(int)U32(data, pos) : U32(data, pos); break;
                    default: value = U64(data, pos); break;
                }
                pos += need;
            }
            else
            {
                ulong? v = need == 0 ? ReadUleb(data, ref pos, end) : ReadSleb(data, ref pos, end);
                if (v == null) return null;
                value = v.Value;
            }
            switch (encoding & 0x70)
            {
                case 0: return value;
                case DwEhPePcrel: return fieldAddress + value;
                default: return null;
            }
        }

        private static ulong? ReadUleb(byte[] data, ref long pos, long end)
        {
            ulong value = 0;
            for (int shift = 0; pos < end; shift += 7)
            {
                byte b = data[pos++];
                if (shift < 64) value |= (ulong)(b & 0x7f) << shift;
                if ((b & 0x80) == 0) return value;
                if (shift > 70) return null;
            }
            return null;
        }

        private static ulong? ReadSleb(byte[] data, ref long pos, long end)
        {
            ulong value = 0;
            for (int shift = 0; pos < end; shift += 7)
            {
                byte b = data[pos++];
                if (shift < 64) value |= (ulong)(b & 0x7f) << shift;
                if ((b & 0x80) == 0)
                {
                    if (shift + 7 < 64 && (b & 0x40) != 0) value |= ulong.MaxValue << (shift + 7);
                    return value;
                }
                if (shift > 70) return null;
            }
            return null;
        }

        private static uint U32(byte[] b, long p) => (uint)(b[p] | b[p + 1] << 8 | b[p + 2] << 16 | b[p + 3] << 24);
        private static ulong U64(byte[] b, long p) => U32(b, p) | (ulong)U32(b, p + 4) << 32;
    }
}
