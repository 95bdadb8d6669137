using HotpatchTools.Engine.Format;
using HotpatchTools.Engine.Modules;
using HotpatchTools.Engine.Patching;
using HotpatchTools.Engine.Platform;

namespace HotpatchTools.Engine.Inspection
{
    /// <summary>A loaded module with the identity a patch file binds to.</summary>
    /// <param name="Format">Null when the file could not be read.</param>
    /// <param name="Soname">ELF DT_SONAME (libz.so.1 for libz.so.1.2.13): a patch's target.module may name it.</param>
    /// <param name="Problem">Why the file's identity is missing, if it is.</param>
    public sealed record ModuleDescription(
        int ProcessId, string ProcessName, string Name, string Path, ulong Base, ulong Size,
        ModuleFormat? Format = null, string? BuildId = null, string? Soname = null, uint? TimeDateStamp = null, uint? SizeOfImage = null, string? Problem = null);

    public enum SiteState
    {
        /// <summary>The site holds the bytes the patch expects: nothing is installed there.</summary>
        Original,
        /// <summary>The site holds this patch's jump (or replacement) and the patch's cave is present.</summary>
        Patched,
        /// <summary>Neither: another build, another patch or something else changed the code.</summary>
        Modified,
    }

    /// <summary>One patchlet's site in one process: where it lands, what is there now, what install would do.</summary>
    /// <param name="Patchlet">"patchlets[0] (at parse_record)" for a patch file; "sites[0]" for an installed patch read from its cave.</param>
    /// <param name="Symbol">Containing function and offset, e.g. "parse_record+0x4"; empty when no function is known there.</param>
    /// <param name="SpanLength">Bytes the patch overwrites (or overwrote) at the site; 0 when it could not be planned.</param>
    /// <param name="Plan">What install does here, or why it would refuse.</param>
    /// <param name="Refusal">The refusal's kind when install would refuse this site; null when it would proceed (or it is installed).</param>
    public sealed record SiteDescription(
        int ProcessId, string ProcessName, string PatchId, string Patchlet, string Module, ulong Address = 0, string Symbol = "", string Mode = "",
        int SpanLength = 0, SiteState State = SiteState.Original, string Plan = "", HotpatchErrorKind? Refusal = null, ulong CaveAddress = 0)
    {
        /// <summary>The instructions at the site now, and when the site jumps into the patch's cave, the cave's code for it.</summary>
        public IReadOnlyList<string> Disassembly { get; init; } = new string[0];
    }

    /// <summary>
    /// Read-only views of a process for interactive use: its modules, and where a patch lands with the code there
    /// before and after install. Never stops a thread and never writes.
    /// </summary>
    public sealed class ProcessInspector
    {
        /// <summary>Instructions listed after the span, so the listing shows where the jump back lands.</summary>
        private const int ContextInstructions = 2;
        private const uint MaxListedCodeBytes = 64 << 10;

        private readonly IProcessPlatform _platform;

        public ProcessInspector(IProcessPlatform platform) { _platform = platform; }

        public IReadOnlyList<ModuleDescription> GetModules(int pid)
        {
            using var target = _platform.Open(pid);
            var result = new List<ModuleDescription>();
            foreach (var m in target.Modules.GetModules())
            {
                var d = new ModuleDescription(pid, target.Name, m.Name, m.Path, m.Base, m.End - m.Base);
                try
                {
                    var image = target.Modules.OpenImage(m);
                    d = d with
                    {
                        Format = image.Format, BuildId = image.BuildId, Soname = (image as ElfImage)?.Soname,
                        TimeDateStamp = image.TimeDateStamp, SizeOfImage = image.SizeOfImage,
                    };
                }
                // A module whose file is gone or unreadable is still loaded: list it without an identity.
                catch (Exception e) when (e is HotpatchException || e is ModuleFormatException || e is System.IO.IOException || e is UnauthorizedAccessException)
                {
                    d = d with { Problem = e.Message };
                }
                result.Add(d);
            }
            return result;
        }

        /// <summary>Every patchlet's site of a patch file in one process, whether or not it is installed.</summary>
        public IReadOnlyList<SiteDescription> GetSites(Micropatch patch, int pid)
        {
            using var target = _platform.Open(pid);
            var module = PatchPlanner.FindModule(target, patch.Target)
                ?? throw new HotpatchException(HotpatchErrorKind.ModuleNotLoaded, "Module " + patch.Target.Module + " is not loaded in process " + pid + " (" + target.Name + ").") { ProcessId = pid };
            var image = target.Modules.OpenImage(module);
            int bitness = target.Bitness;
            var plan = new PatchPlan { Patch = patch, Module = module, Image = image, Bitness = bitness };
            var cave = CaveReader.FindCaves(target).FirstOrDefault(c => string.Equals(c.Header.PatchId, patch.Id, StringComparison.OrdinalIgnoreCase) && c.Header.State == CaveState.Installed);

            // The whole plan first: refusals that concern the patch as a whole (identity, overlaps) apply to every site.
            PatchPlan? full = null;
            HotpatchException? whole = null;
            if (cave == null)
            {
                try { full = PatchPlanner.Plan(patch, target, _platform.Os); }
                catch (HotpatchException e) when (e.Kind != HotpatchErrorKind.ProcessExited && e.Kind != HotpatchErrorKind.AccessDenied) { whole = e; }
            }

            // Each site is described whole from what is found there: the first refusal, or where it ends up.
            SiteDescription Site(Patchlet p)
            {
                var d = new SiteDescription(pid, target.Name, patch.Id, p.Name, module.Name, Mode: p.Mode.ToString());
                ulong address;
                try { address = PatchPlanner.ResolveSite(plan, p, target); }
                catch (HotpatchException e)
                {
                    return d with { State = SiteState.Modified, Refusal = e.Kind, Plan = "Refused: " + e.Message };
                }
                d = d with { Address = address, Symbol = SymbolOf(image, module, address) };
                // An insert at an endbr writes its jump after it (and the cave records that address).
                var head = new byte[4];
                ulong jumpAt = target.Memory.TryRead(address, head) == 4 && p.Mode == PatchMode.Insert ? address + (ulong)PatchPlanner.EndbrLength(head) : address;
                var installed = cave?.Header.Sites.FirstOrDefault(s => s.Address == jumpAt);
                var site = full?.Sites.FirstOrDefault(s => s.Patchlet == p);
                int span = installed?.Original.Length ?? 0;
                if (installed != null && cave != null && ReadHoldsOurs(target, cave.Address, installed))
                {
                    return d with
                    {
                        State = SiteState.Patched, SpanLength = span, CaveAddress = cave.Address,
                        Plan = (jumpAt != address ? KeepsEndbr(head, address) : "") + Installed(installed, cave.Address),
                        Disassembly = PatchedListing(target, bitness, jumpAt, installed, cave.Address),
                    };
                }
                d = d with { State = ReadEquals(target, address, p.Expect) ? SiteState.Original : SiteState.Modified };
                // Refusals of the patch as a whole (identity, platform) are every site's; otherwise each site is planned on its own.
                HotpatchException? own = whole != null && whole.Patchlet == null ? whole : null;
                if (site == null && own == null && cave == null)
                {
                    try { site = PatchPlanner.PlanSite(plan, p, target); }
                    catch (HotpatchException e) when (e.Kind != HotpatchErrorKind.ProcessExited && e.Kind != HotpatchErrorKind.AccessDenied) { own = e; }
                }
                if (site != null)
                {
                    // This site is fine, but install is all or nothing: say what stops it.
                    d = d with { SpanLength = site.SpanLength, Plan = Describe(site) + (whole != null ? " Install refuses the patch as a whole: " + whole.Message : "") };
                }
                else
                {
                    d = d with
                    {
                        Refusal = own?.Kind ?? HotpatchErrorKind.SiteModified,
                        Plan = "Refused: " + (own?.Message ?? "the patch's cave is present but this site does not hold its jump."),
                    };
                }
                return d with { Disassembly = SiteListing(target, bitness, address, Math.Max(d.SpanLength, p.Expect.Length)) };
            }

            var sites = patch.Patchlets.Select(Site).ToList();
            return sites;
        }

        /// <summary>The sites of patches installed in a process, read from their caves: no patch file needed.</summary>
        public IReadOnlyList<SiteDescription> GetInstalledSites(int pid, Func<string, bool> patchIdMatches)
        {
            using var target = _platform.Open(pid);
            var sites = new List<SiteDescription>();
            var modules = target.Modules.GetModules();
            foreach (var cave in CaveReader.FindCaves(target).Where(c => patchIdMatches(c.Header.PatchId)))
            {
                for (int i = 0; i < cave.Header.Sites.Count; i++)
                {
                    var s = cave.Header.Sites[i];
                    string symbol = "";
                    var module = modules.FirstOrDefault(m => s.Address >= m.Base && s.Address < m.End);
                    if (module != null)
                    {
                        try { symbol = SymbolOf(target.Modules.OpenImage(module), module, s.Address); }
                        catch (Exception e) when (e is HotpatchException || e is ModuleFormatException || e is System.IO.IOException) { }
                    }
                    var now = new byte[s.Written.Length];
                    int got = target.Memory.TryRead(s.Address, now);
                    bool patched = got == now.Length && CaveReader.HoldsOurs(cave.Address, s, now);
                    sites.Add(new SiteDescription(
                        pid, target.Name, cave.Header.PatchId, "sites[" + i + "]", cave.Header.Module, s.Address, symbol, s.Mode.ToString(), s.Original.Length,
                        State: patched && cave.Header.State == CaveState.Installed ? SiteState.Patched
                            : got == now.Length && now.SequenceEqual(s.Original) ? SiteState.Original : SiteState.Modified,
                        Plan: cave.Header.State == CaveState.Retired ? "Retired: original bytes restored; the cave is kept while a thread may return into it."
                            : cave.Header.State == CaveState.Pending ? "Orphaned: its installer stopped before writing any site; uninstalling the patch frees it."
                            : Installed(s, cave.Address),
                        CaveAddress: cave.Address)
                    {
                        Disassembly = patched ? PatchedListing(target, target.Bitness, s.Address, s, cave.Address) : SiteListing(target, target.Bitness, s.Address, s.Original.Length),
                    });
                }
            }
            return sites;
        }

        private static bool ReadHoldsOurs(ITargetProcess target, ulong cave, CaveSite s)
        {
            var now = new byte[s.Written.Length];
            return target.Memory.TryRead(s.Address, now) == now.Length && CaveReader.HoldsOurs(cave, s, now);
        }

        private static bool ReadEquals(ITargetProcess target, ulong address, byte[] expected)
        {
            var now = new byte[expected.Length];
            return target.Memory.TryRead(address, now) == now.Length && now.SequenceEqual(expected);
        }

        private static string SymbolOf(IModuleImage image, LoadedModule module, ulong address)
        {
            if (!image.TryGetFunctionBounds(address - module.Base, out var start, out _, out var name) || name == null) return "";
            ulong offset = address - module.Base - start;
            return offset == 0 ? name : name + "+0x" + offset.ToString("x");
        }

        private static string Describe(SitePlan s)
        {
            if (s.Patchlet.Mode == PatchMode.Replace)
                return "Replace " + s.SpanLength + " bytes in place with the patch code (" + s.Code.Instructions.Count + " instruction(s)), NOP-filled.";
            var moved = string.Join("; ", s.SpanInstructions.Select(i => Disassembler.Text(i)));
            string endbr = s.EndbrLength > 0 ? "Keeps the endbr at 0x" + (s.Address - (ulong)s.EndbrLength).ToString("x") + " (indirect-branch tracking) and jumps from 0x" + s.Address.ToString("x") + ". " : "";
            string notes = "";
            if (s.SpanInstructions.Any(i => i.IsIPRelativeMemoryOperand)) notes += " RIP-relative operands are re-encoded for the cave.";
            if (s.SpanInstructions.Any(i => PatchPlanner.IsDirectBranch(i))) notes += " Branches are re-targeted (short forms expanded).";
            return endbr + "Jump to a cave over " + s.SpanLength + " bytes; the cave runs the patch code (" + s.Code.Instructions.Count + " instruction(s)), then the "
                + s.SpanInstructions.Count + " relocated instruction(s) (" + moved + "), then jumps back to 0x" + s.End.ToString("x") + "." + notes;
        }

        private static string KeepsEndbr(byte[] head, ulong address) =>
            "Keeps the " + (head[3] == 0xfa ? "endbr64" : "endbr32") + " at 0x" + address.ToString("x") + " (indirect-branch tracking). ";

        private static string Installed(CaveSite s, ulong cave) =>
            "Installed: " + (s.Mode == PatchMode.Replace ? "replaced in place" : "jumps to the cave's code at 0x" + (cave + s.CodeOffset).ToString("x") + " (" + s.CodeLength + " bytes)")
            + "; original " + Hex.Spaced(s.Original) + ".";

        private static IReadOnlyList<string> SiteListing(ITargetProcess target, int bitness, ulong address, int span)
        {
            var bytes = new byte[span + 15 * (ContextInstructions + 1)];
            int got = target.Memory.TryRead(address, bytes);
            int spanCount = Disassembler.Lines(bytes, got, address, bitness, span).Count;
            // A couple of instructions past the span: where the jump back lands.
            return Disassembler.Lines(bytes, got, address, bitness, span, spanCount + ContextInstructions);
        }

        private static IReadOnlyList<string> PatchedListing(ITargetProcess target, int bitness, ulong address, CaveSite s, ulong cave)
        {
            var lines = new List<string>();
            var site = new byte[s.Written.Length];
            int got = target.Memory.TryRead(address, site);
            lines.AddRange(Disassembler.Lines(site, got, address, bitness, 1));
            if (s.Mode == PatchMode.Replace || s.CodeLength == 0)
            {
                if (got > 0) lines = Disassembler.Lines(site, got, address, bitness, got);
                return lines;
            }
            ulong code = cave + s.CodeOffset;
            lines.Add("; cave at 0x" + code.ToString("x") + ": patch code, relocated original instructions, jump back");
            // The header was checked against its cave, but the length is still the target's word: list a bounded amount.
            var body = new byte[Math.Min(s.CodeLength, MaxListedCodeBytes)];
            int n = target.Memory.TryRead(code, body);
            lines.AddRange(Disassembler.Lines(body, n, code, bitness, n));
            return lines;
        }
    }
}
