using HotpatchTools.Engine.Modules;
using HotpatchTools.Engine.Platform;
using Iced.Intel;

namespace HotpatchTools.Engine.Patching
{
    /// <summary>
    /// Every direct branch of a module's code, by target: decoded from each function range the module describes
    /// (symbol sizes, .eh_frame FDEs, .pdata) rather than by a linear sweep of its text, which would run through
    /// jump tables and data. A .cold part of a function is its own range and jumps back into its hot part; this is
    /// what finds such a branch into a span. Built once per module file, from the file, so the second process with
    /// the same library costs a lookup.
    /// </summary>
    internal sealed class ModuleBranches
    {
        /// <summary>Most code decoded for one module: glibc has ~2 MB; a range beyond this total is not decoded and the site refused.</summary>
        private const ulong MaxCode = 256UL << 20;
        /// <summary>Largest single range read at once: no real function comes near it; a lying unwind entry may.</summary>
        private const ulong MaxRange = 64UL << 20;

        private readonly ulong[] _targets, _sources;

        private ModuleBranches(ulong[] targets, ulong[] sources, ulong decodedBytes, int ranges)
        {
            _targets = targets;
            _sources = sources;
            DecodedBytes = decodedBytes;
            Ranges = ranges;
        }

        public ulong DecodedBytes { get; }
        public int Ranges { get; }
        public int Count => _targets.Length;

        /// <summary>
        /// The index of the module's file. It is shared by every process that maps that file, so it is decoded from the
        /// file, which its owner controls, not from the memory of the first process met, which that process's owner
        /// does: a local user's process that rewrote its own copy of a library to drop a branch (or one patched in
        /// the meantime) would otherwise hide that branch from the checks made for every other process with the
        /// library, root's included. A module whose file cannot be read is decoded from this process alone, unshared.
        /// </summary>
        public static ModuleBranches For(PatchPlan plan, ITargetProcess target)
        {
            string identity = plan.Image.BuildId ?? target.Modules.ComputeSha256(plan.Module);
            // The file's own key (device and inode on Linux) too: another file may claim the same build-id.
            // A debug file adds ranges (static functions' symbol sizes), so it is part of what was decoded.
            string key = "branches|" + plan.Image.Format + "|" + identity + "|" + plan.Module.Key + "|" + (plan.Image as ElfImage)?.DebugFile;
            var ofFile = ModuleCache.GetOrAdd(key, () => new OfFile(FromFile(plan, target)));
            return ofFile.Branches ?? Build(plan.Image, plan.Module, target.Memory, plan.Bitness);
        }

        /// <summary>What the cache holds for a file: its index, or null when the file could not be read.</summary>
        private sealed class OfFile(ModuleBranches? branches)
        {
            public ModuleBranches? Branches { get; } = branches;
        }

        private static ModuleBranches? FromFile(PatchPlan plan, ITargetProcess target)
        {
            Platform.Offline.ImageProcess file;
            // Only its bytes are needed: the ranges are the plan's image's, with its debug file.
            try { file = new Platform.Offline.ImageProcess(target.Modules.ReadablePath(plan.Module), plan.Module.Name, debugFiles: false); }
            catch (Exception e) when (e is HotpatchException || e is IOException || e is UnauthorizedAccessException || e is ArgumentException) { return null; }
            // Only the file that is mapped: a 64-bit reader of a 32-bit process's system32 path opens the 64-bit file.
            var a = file.Image;
            var b = plan.Image;
            bool same = a.Format == b.Format && a.Bitness == b.Bitness && a.BuildId == b.BuildId && a.TimeDateStamp == b.TimeDateStamp && a.SizeOfImage == b.SizeOfImage;
            if (!same) return null;
            // The file laid out as the loader maps it, at the image's base; the extent is the live module's (an ELF
            // module's last mapping may end before the file image's .bss does).
            var laidOut = new LoadedModule { Name = plan.Module.Name, Base = file.Module.Base, End = file.Module.Base + (plan.Module.End - plan.Module.Base) };
            return Build(plan.Image, laidOut, file.Memory, plan.Bitness);
        }

        internal static ModuleBranches Build(IModuleImage image, LoadedModule module, IProcessMemory memory, int bitness)
        {
            ulong size = module.End - module.Base;
            var ranges = image.FunctionRanges()
                .Where(r => r.End > r.Start && r.End <= size)
                .Distinct().OrderBy(r => r.Start).ThenBy(r => r.End).ToList();
            var pairs = new List<(ulong Target, ulong Source)>();
            ulong decoded = 0;
            foreach (var (start, end) in ranges)
            {
                ulong length = end - start;
                if (length > MaxRange)
                    throw new HotpatchException(HotpatchErrorKind.UnsafeSite,
                        "Module " + module.Name + " describes a function of " + (length >> 20) + " MB at offset 0x" + start.ToString("x") + "; branches into a span cannot be ruled out.");
                if (decoded + length > MaxCode)
                    throw new HotpatchException(HotpatchErrorKind.UnsafeSite,
                        "Module " + module.Name + " describes more than " + (MaxCode >> 20) + " MB of function code; branches into a span cannot be ruled out.");
                decoded += length;
                var code = new byte[length];
                int got = memory.TryRead(module.Base + start, code);
                var decoder = Decoder.Create(bitness, new ByteArrayCodeReader(code, 0, got), start);
                while (decoder.IP < start + (ulong)got)
                {
                    decoder.Decode(out var ins);
                    if (ins.IsInvalid || !PatchPlanner.IsDirectBranch(ins)) continue;
                    ulong to = ins.NearBranchTarget;
                    if (to < size) pairs.Add((to, ins.IP));
                }
            }
            pairs.Sort((a, b) => a.Target != b.Target ? a.Target.CompareTo(b.Target) : a.Source.CompareTo(b.Source));
            return new ModuleBranches(pairs.Select(p => p.Target).ToArray(), pairs.Select(p => p.Source).ToArray(), decoded, ranges.Count);
        }

        /// <summary>A branch (by module offsets) whose target lies in (fromRva, toRva), i.e. inside a span but not at its first byte.</summary>
        public bool TryFindInto(ulong fromRva, ulong toRva, out ulong sourceRva, out ulong targetRva)
        {
            int i = Array.BinarySearch(_targets, fromRva + 1);
            if (i < 0) i = ~i;
            else while (i > 0 && _targets[i - 1] == fromRva + 1) i--;
            bool found = i < _targets.Length && _targets[i] < toRva;
            sourceRva = found ? _sources[i] : 0;
            targetRva = found ? _targets[i] : 0;
            return found;
        }
    }
}
