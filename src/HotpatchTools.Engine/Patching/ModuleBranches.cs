using HotpatchTools.Engine.Modules;
using HotpatchTools.Engine.Platform;
using Iced.Intel;

namespace HotpatchTools.Engine.Patching
{
    /// <summary>
    /// Every direct branch of a module's code, by target: decoded from each function range the module describes
    /// (symbol sizes, .eh_frame FDEs, .pdata) rather than by a linear sweep of its text, which would run through
    /// jump tables and data. A .cold part of a function is its own range and jumps back into its hot part; this is
    /// what finds such a branch into a span. Built once per module file (keyed by build-id, else by the file's
    /// SHA-256), so the second process with the same library costs a lookup.
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

        public static ModuleBranches For(PatchPlan plan, ITargetProcess target)
        {
            string identity = plan.Image.BuildId ?? target.Modules.ComputeSha256(plan.Module);
            // A debug file adds ranges (static functions' symbol sizes), so it is part of what was decoded.
            string key = "branches|" + plan.Image.Format + "|" + identity + "|" + (plan.Image as ElfImage)?.DebugFile;
            return ModuleCache.GetOrAdd(key, () => Build(plan.Image, plan.Module, target.Memory, plan.Bitness));
        }

        /// <summary>
        /// Decodes the code as the process holds it now; a site this process already patched holds our jump (to a
        /// cave outside the module), which only removes the original's branches from the index: their targets lie in
        /// that span, which no other patch may overlap anyway.
        /// </summary>
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
