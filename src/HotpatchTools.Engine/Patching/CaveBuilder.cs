using Iced.Intel;

namespace HotpatchTools.Engine.Patching
{
    internal sealed class BuiltCave
    {
        public ulong Address;
        public int Size;
        public byte[] Image = new byte[0];
        public CaveHeader Header = new CaveHeader();
    }

    /// <summary>Lays out a cave: header, then per insert patchlet its code, the relocated span and a jump back.</summary>
    internal static class CaveBuilder
    {
        private const int PageSize = 4096;
        private const ulong SyntheticJumpBackIp = 0xF800_0000_0000_0000;

        /// <summary>Generous size to reserve: caves are encoded only once their address is known.</summary>
        public static int EstimateSize(PatchPlan plan)
        {
            int code = plan.Sites.Sum(s => (s.Code.Instructions.Count + s.SpanInstructions.Count + 1) * 32 + 64);
            int header = 128 + plan.Sites.Sum(s => 32 + 2 * s.SpanLength) + 1 + plan.Patch.Supersedes.Sum(id => 1 + System.Text.Encoding.UTF8.GetByteCount(id));
            return RoundUp(header + code + CaveHeader.TrailerLength, PageSize);
        }

        public static BuiltCave Build(PatchPlan plan, ulong caveAddress, int caveSize, DateTime installedUtc)
        {
            var header = new CaveHeader
            {
                CaveSize = (uint)caveSize,
                InstalledUnixMs = (long)(installedUtc - new DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc)).TotalMilliseconds,
                FileSha256 = plan.Patch.FileSha256Bytes,
                PatchId = plan.Patch.Id,
                Module = plan.Module.Name,
                Supersedes = plan.Patch.Supersedes.ToList(),
            };
            foreach (var s in plan.Sites)
                header.Sites.Add(new CaveSite { Address = s.Address, Mode = s.Patchlet.Mode, Original = s.Original, Written = new byte[s.SpanLength] });
            // Serialize once to learn the header's length; offsets and written bytes do not change it.
            int offset = RoundUp(header.Serialize().Length, 16);

            var code = new List<byte>();
            for (int i = 0; i < plan.Sites.Count; i++)
            {
                var s = plan.Sites[i];
                var cs = header.Sites[i];
                if (s.Patchlet.Mode == Format.PatchMode.Replace)
                {
                    cs.Written = s.ReplaceBytes!;
                    if (s.Code.Instructions.Any(IsCall)) header.Flags |= CaveHeader.FlagContainsCalls;
                    continue;
                }
                ulong at = caveAddress + (ulong)(offset + code.Count);
                var jumpBack = Instruction.CreateBranch(plan.Bitness == 64 ? Code.Jmp_rel32_64 : Code.Jmp_rel32_32, s.End);
                jumpBack.IP = SyntheticJumpBackIp + (ulong)i;
                var all = s.Code.Instructions.Concat(s.SpanInstructions).Concat(new[] { jumpBack }).ToList();
                var writer = new BytesWriter();
                if (!BlockEncoder.TryEncode(plan.Bitness, new InstructionBlock(writer, all, at), out var err, out _, BlockEncoderOptions.None))
                    throw new HotpatchException(HotpatchErrorKind.NoCaveSpace,
                        s.Patchlet.Name + ": the cave code cannot be encoded at 0x" + at.ToString("x") + ": " + err) { Patchlet = s.Patchlet.Name };
                var bytes = writer.ToArray();
                cs.CodeOffset = (uint)(at - caveAddress);
                cs.CodeLength = (uint)bytes.Length;
                cs.Written = JumpBytes(s.Address, at, s.SpanLength);
                if (all.Any(IsCall)) header.Flags |= CaveHeader.FlagContainsCalls;
                code.AddRange(bytes);
                while (code.Count % 16 != 0) code.Add(0xCC);
            }
            var headerBytes = header.Serialize();
            // A cave whose header a later session cannot read back could never be listed or removed: never write one.
            if (CaveHeader.TryParse(headerBytes) == null)
                throw new HotpatchException(HotpatchErrorKind.Internal, "The cave header of patch " + plan.Patch.Id + " (" + headerBytes.Length + " bytes, " + header.Sites.Count + " sites) would not read back; nothing was written.");
            if (offset + code.Count + CaveHeader.TrailerLength > caveSize)
                throw new HotpatchException(HotpatchErrorKind.Internal, "Cave of " + (offset + code.Count) + " bytes exceeds the reserved " + caveSize + ".");
            var image = Enumerable.Repeat((byte)0xCC, caveSize).ToArray();
            headerBytes.CopyTo(image, 0);
            code.CopyTo(image, offset);
            CaveHeader.Trailer((uint)caveSize).CopyTo(image, caveSize - CaveHeader.TrailerLength);
            return new BuiltCave { Address = caveAddress, Size = caveSize, Image = image, Header = header };
        }

        /// <summary>jmp rel32 to the cave; the rest of the span becomes int3 so a stray jump into it traps instead of running half an instruction.</summary>
        public static byte[] JumpBytes(ulong site, ulong target, int spanLength)
        {
            long rel = (long)target - (long)(site + 5);
            if (rel < int.MinValue || rel > int.MaxValue) throw new HotpatchException(HotpatchErrorKind.NoCaveSpace, "Cave at 0x" + target.ToString("x") + " is out of jump range of 0x" + site.ToString("x") + ".");
            var b = Enumerable.Repeat((byte)0xCC, spanLength).ToArray();
            b[0] = 0xE9;
            BitConverter.GetBytes((int)rel).CopyTo(b, 1);
            return b;
        }

        private static bool IsCall(Instruction i) => i.FlowControl == FlowControl.Call || i.FlowControl == FlowControl.IndirectCall;

        public static int RoundUp(int v, int to) => (v + to - 1) / to * to;

        /// <summary>
        /// Free, page-aligned addresses from which a cave of `size` reaches every byte of the module with rel32,
        /// nearest first. A free page is left on each side so the kernel does not merge the cave into a neighbour.
        /// </summary>
        public static IEnumerable<ulong> CandidateAddresses(IReadOnlyList<Platform.MemoryRegion> regions, ulong moduleBase, ulong moduleEnd, int size, int bitness, int granularity = PageSize)
        {
            const ulong Reach = 0x7FF0_0000; // 2 GB less a margin for rel32 rounding
            ulong lowest = 0x10000, highest = bitness == 64 ? 0x7FFF_FFFF_0000UL : 0x7FFF_0000UL;
            ulong lo = moduleEnd > Reach ? Math.Max(moduleEnd - Reach, lowest) : lowest;
            ulong hi = Math.Min(moduleBase + Reach, highest);
            var sorted = regions.OrderBy(r => r.Start).ToList();
            var candidates = new List<ulong>();
            ulong prevEnd = lowest;
            for (int i = 0; i <= sorted.Count; i++)
            {
                ulong align = (ulong)granularity;
                ulong holeStart = Math.Max(prevEnd + PageSize, lo), holeEnd = Math.Min((i < sorted.Count ? sorted[i].Start : highest) - PageSize, hi);
                holeStart = (holeStart + align - 1) & ~(align - 1);
                if (holeEnd > holeStart && holeEnd - holeStart >= (ulong)size)
                {
                    // The end of a hole below the module, or the start of one above it: as close as possible.
                    ulong below = (holeEnd - (ulong)size) & ~(align - 1);
                    candidates.Add(holeEnd <= moduleBase && below >= holeStart ? below : holeStart);
                }
                if (i < sorted.Count) prevEnd = Math.Max(prevEnd, sorted[i].End);
            }
            return candidates.OrderBy(c => c < moduleBase ? moduleBase - c : c - moduleBase).ToList();
        }
    }
}
