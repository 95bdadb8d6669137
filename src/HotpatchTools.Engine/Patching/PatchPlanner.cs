using HotpatchTools.Engine.Assembly;
using HotpatchTools.Engine.Format;
using HotpatchTools.Engine.Modules;
using HotpatchTools.Engine.Platform;
using Iced.Intel;

namespace HotpatchTools.Engine.Patching
{
    internal sealed class SitePlan
    {
        public Patchlet Patchlet = null!;
        /// <summary>Where the engine writes: the site, or just after the endbr an insert keeps there.</summary>
        public ulong Address;
        /// <summary>4 when the site begins with endbr64/endbr32 (kept by an insert), else 0.</summary>
        public int EndbrLength;
        /// <summary>Bytes the engine overwrites: whole instructions covering the jump (insert) or all of expect (replace).</summary>
        public int SpanLength;
        public byte[] Original = new byte[0];
        public List<Instruction> SpanInstructions = new List<Instruction>();
        public AsmProgram Code = new AsmProgram(new Instruction[0]);
        /// <summary>Replace mode: the bytes to write at the site, NOP-filled to SpanLength.</summary>
        public byte[]? ReplaceBytes;
        public ulong End => Address + (ulong)SpanLength;
        /// <summary>The patchlet's `at`, where its expect bytes begin.</summary>
        public ulong At => Patchlet.Mode == PatchMode.Insert ? Address - (ulong)EndbrLength : Address;
        public bool Contains(ulong ip) => ip > Address && ip < End;
    }

    internal sealed class PatchPlan
    {
        public Micropatch Patch = null!;
        public LoadedModule Module = null!;
        public IModuleImage Image = null!;
        public int Bitness;
        public List<SitePlan> Sites = new List<SitePlan>();
    }

    /// <summary>
    /// Everything that can be decided before a single thread is stopped: the module, its identity, every
    /// site's address and bytes, and every reason the spec gives to refuse. Reads the target; never writes.
    /// </summary>
    internal static class PatchPlanner
    {
        public const int JumpLength = 5;
        private const int MaxFunctionScan = 1 << 20;

        public static LoadedModule? FindModule(ITargetProcess target, MicropatchTarget t) =>
            FindModule(target, t.Module, t.Os == TargetOs.Windows);

        /// <summary>
        /// The module loaded under this file name; on Linux (case-sensitive names) failing that, the one whose
        /// DT_SONAME it is (libz.so.1 for libz.so.1.2.13, as ldd shows it). Only files whose name begins like the
        /// wanted one (up to its first '.') are opened for their SONAME, so a name that matches nothing costs no parse.
        /// </summary>
        public static LoadedModule? FindModule(ITargetProcess target, string name, bool ignoreCase) =>
            FindModules(target, name, ignoreCase).FirstOrDefault();

        /// <summary>
        /// Every module loaded under this name, file names first: a process in a container can map its own copy of
        /// a library beside the host's, and each is a candidate for the identity check.
        /// </summary>
        public static IEnumerable<LoadedModule> FindModules(ITargetProcess target, string name, bool ignoreCase)
        {
            var modules = target.Modules.GetModules();
            bool any = false;
            foreach (var m in modules)
                if (string.Equals(m.Name, name, ignoreCase ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal))
                {
                    any = true;
                    yield return m;
                }
            if (any || ignoreCase) yield break;
            string stem = SonameStem(name);
            foreach (var m in modules)
            {
                if (!m.Name.StartsWith(stem, StringComparison.Ordinal)) continue;
                IModuleImage image;
                try { image = target.Modules.OpenImage(m); }
                // Not an ELF file we can read (a data file mapped by name): it has no SONAME to match.
                catch (HotpatchException e) when (e.Kind == HotpatchErrorKind.Internal || e.Kind == HotpatchErrorKind.AccessDenied || e.Kind == HotpatchErrorKind.ModuleNotLoaded) { continue; }
                if (image is ElfImage elf && elf.Soname == name) yield return m;
            }
        }

        /// <summary>What a file name and its SONAME share in practice: libc.so.6 and libc-2.31.so both begin "libc".</summary>
        internal static string SonameStem(string name)
        {
            int cut = name.IndexOfAny(new[] { '.', '-' });
            return cut > 0 ? name.Substring(0, cut) : name;
        }

        public static PatchPlan Plan(Micropatch patch, ITargetProcess target, TargetOs platformOs)
        {
            var t = patch.Target;
            if (t.Os != platformOs)
                throw new HotpatchException(HotpatchErrorKind.IdentityMismatch, "Patch " + patch.Id + " is for " + t.Os.FileName() + "; this machine runs " + platformOs.FileName() + ".") { ProcessId = target.Id };
            int bitness = t.Arch == TargetArch.X64 ? 64 : 32;
            if (bitness != target.Bitness)
                throw new HotpatchException(HotpatchErrorKind.IdentityMismatch,
                    "Patch " + patch.Id + " is for " + t.Arch.FileName() + " processes; process " + target.Id + " (" + target.Name + ") is " + target.Bitness + "-bit.") { ProcessId = target.Id };

            var candidates = FindModules(target, t.Module, t.Os == TargetOs.Windows).ToList();
            // A process being torn down has no mappings left: it exited, it did not unload the module.
            if (candidates.Count == 0 && target.Memory.GetRegions().Count == 0)
                throw new HotpatchException(HotpatchErrorKind.ProcessExited, "Process " + target.Id + " has exited.") { ProcessId = target.Id };
            if (candidates.Count == 0)
                throw new HotpatchException(HotpatchErrorKind.ModuleNotLoaded, "Module " + t.Module + " is not loaded in process " + target.Id + " (" + target.Name + ").") { ProcessId = target.Id };
            // Each mapping of the name is identity-checked; the first that is the build the patch was made for is patched.
            LoadedModule? module = null;
            IModuleImage? image = null;
            HotpatchException? mismatch = null;
            foreach (var candidate in candidates)
            {
                var candidateImage = target.Modules.OpenImage(candidate);
                try { CheckIdentity(patch, target, candidate, candidateImage); }
                catch (HotpatchException e) when (e.Kind == HotpatchErrorKind.IdentityMismatch)
                {
                    mismatch ??= e;
                    continue;
                }
                module = candidate;
                image = candidateImage;
                break;
            }
            if (module == null || image == null) throw mismatch!;

            var plan = new PatchPlan { Patch = patch, Module = module, Image = image, Bitness = bitness };
            foreach (var p in patch.Patchlets)
            {
                try { plan.Sites.Add(PlanSite(plan, p, target)); }
                catch (HotpatchException e) when (e.Patchlet == null)
                {
                    e.Patchlet = p.Name;
                    e.ProcessId ??= target.Id;
                    throw;
                }
            }
            for (int i = 0; i < plan.Sites.Count; i++)
                for (int j = i + 1; j < plan.Sites.Count; j++)
                {
                    var a = plan.Sites[i]; var b = plan.Sites[j];
                    if (a.Address < b.End && b.Address < a.End)
                        throw Refuse(b.Patchlet, HotpatchErrorKind.UnsafeSite, "its span overlaps " + a.Patchlet.Name + ".", target);
                }
            // A branch in any patchlet's code into any overwritten span would land in the middle of our jump.
            foreach (var s in plan.Sites)
                foreach (var ins in s.Code.Instructions)
                    if (IsDirectBranch(ins))
                        foreach (var other in plan.Sites)
                            if (other.Contains(ins.NearBranchTarget))
                                throw Refuse(s.Patchlet, HotpatchErrorKind.UnsafeSite,
                                    "its code branches to 0x" + ins.NearBranchTarget.ToString("x") + ", inside the bytes " + other.Patchlet.Name + " overwrites.", target);
            return plan;
        }

        private static void CheckIdentity(Micropatch patch, ITargetProcess target, LoadedModule module, IModuleImage image)
        {
            var id = patch.Target.Identity;
            void Mismatch(string field, string want, string have) => throw new HotpatchException(HotpatchErrorKind.IdentityMismatch,
                "Module " + module.Path + " in process " + target.Id + " is not the build patch " + patch.Id + " was made for: " + field + " is " + have + ", the patch expects " + want + ".") { ProcessId = target.Id };
            if (id.BuildId != null && !string.Equals(id.BuildId, image.BuildId, StringComparison.OrdinalIgnoreCase))
                Mismatch("buildId", id.BuildId, image.BuildId ?? "(none)");
            if (id.TimeDateStamp != null && id.TimeDateStamp != image.TimeDateStamp)
                Mismatch("timeDateStamp", "0x" + id.TimeDateStamp.Value.ToString("X8"), image.TimeDateStamp == null ? "(none: not a PE module)" : "0x" + image.TimeDateStamp.Value.ToString("X8"));
            if (id.SizeOfImage != null && id.SizeOfImage != image.SizeOfImage)
                Mismatch("sizeOfImage", "0x" + id.SizeOfImage.Value.ToString("X"), image.SizeOfImage == null ? "(none: not a PE module)" : "0x" + image.SizeOfImage.Value.ToString("X"));
            if (id.Sha256 != null)
            {
                string have = target.Modules.ComputeSha256(module);
                if (!string.Equals(id.Sha256, have, StringComparison.OrdinalIgnoreCase)) Mismatch("sha256", id.Sha256, have);
            }
        }

        public static ulong ResolveSite(PatchPlan plan, Patchlet p, ITargetProcess target) => Resolve(plan, p, p.Location, target);

        private static ulong Resolve(PatchPlan plan, Patchlet p, SiteLocation loc, ITargetProcess target) =>
            plan.Module.Base + ResolveRva(plan.Image, plan.Module, loc, why => Refuse(p, HotpatchErrorKind.IdentityMismatch, why, target));

        /// <summary>A location's offset in the module: the symbol resolved, the offset added without wrapping, inside the module.</summary>
        internal static ulong ResolveRva(IModuleImage image, LoadedModule module, SiteLocation loc, Func<string, Exception> refuse)
        {
            ulong rva = loc.Offset;
            if (loc.Symbol != null)
            {
                if (!image.TryResolveSymbol(loc.Symbol, out var symRva))
                    throw refuse("module " + module.Name + " has no symbol '" + loc.Symbol + "'.");
                // Checked: an offset near 2^64 would wrap around to an address inside the module.
                if (loc.Offset > ulong.MaxValue - symRva)
                    throw refuse(loc.Symbol + "+0x" + loc.Offset.ToString("x") + " lies outside module " + module.Name + ".");
                rva = symRva + loc.Offset;
            }
            if (rva >= module.End - module.Base)
                throw refuse("0x" + rva.ToString("x") + " lies outside module " + module.Name + ".");
            return rva;
        }

        internal static SitePlan PlanSite(PatchPlan plan, Patchlet p, ITargetProcess target)
        {
            ulong site = ResolveSite(plan, p, target);
            var actual = new byte[p.Expect.Length];
            target.Memory.Read(site, actual);
            if (!actual.SequenceEqual(p.Expect))
                throw Refuse(p, HotpatchErrorKind.ExpectMismatch,
                    "the bytes at 0x" + site.ToString("x") + " are " + Hex.Spaced(actual) + ", not the expected " + Hex.Spaced(p.Expect) + ".", target);

            // Under indirect-branch tracking an indirect call must land on the endbr: an insert keeps it and jumps
            // from the next instruction; a replace must write the same endbr first (checked once assembled).
            int endbr = EndbrLength(actual);
            var sp = new SitePlan { Patchlet = p, Address = site, EndbrLength = endbr };
            if (p.Mode == PatchMode.Insert) sp.Address = site + (ulong)endbr;
            // Decode from memory, not from expect: an expect that stops mid-instruction must be caught, not truncated.
            var window = new byte[Math.Max(p.Expect.Length, JumpLength + 15)];
            int got = target.Memory.TryRead(sp.Address, window);
            var decoder = Decoder.Create(plan.Bitness, new ByteArrayCodeReader(window, 0, got), sp.Address);
            if (p.Mode == PatchMode.Insert)
            {
                while (sp.SpanLength < JumpLength)
                {
                    decoder.Decode(out var ins);
                    if (ins.IsInvalid)
                        throw Refuse(p, HotpatchErrorKind.UnsafeSite, "the bytes at 0x" + ins.IP.ToString("x") + " do not decode as an x86 instruction.", target);
                    sp.SpanInstructions.Add(ins);
                    sp.SpanLength += ins.Length;
                }
                if (p.Expect.Length < endbr + sp.SpanLength)
                {
                    // A function too small for the jump is refused whatever expect says: saying "extend expect" would
                    // only lead the author to the next refusal.
                    if (plan.Image.TryGetFunctionBounds(sp.Address - plan.Module.Base, out _, out var endRva, out var fname) && plan.Module.Base + endRva < sp.Address + (ulong)sp.SpanLength)
                        throw Refuse(p, HotpatchErrorKind.UnsafeSite, TooSmall(fname, plan.Module.Base + endRva - sp.Address, sp.SpanLength), target);
                    throw Refuse(p, HotpatchErrorKind.UnsafeSite,
                        "expect covers " + p.Expect.Length + " bytes, but the jump overwrites whole instructions covering " + (endbr + sp.SpanLength) + " bytes"
                        + (endbr > 0 ? " (after the " + endbr + "-byte endbr it keeps)" : "") + "; extend expect.", target);
                }
                CheckRelocatable(sp, target);
            }
            else
            {
                sp.SpanLength = p.Expect.Length;
            }
            sp.Original = actual.Skip((int)(sp.Address - site)).Take(sp.SpanLength).ToArray();

            CheckFunction(plan, sp, target);

            // Insert: `resume` is the relocated copy of the span, which the encoder finds by the span's own address.
            ulong resume = p.Mode == PatchMode.Insert ? sp.Address : sp.End;
            sp.Code = IntelAssembler.Assemble(p.Code, plan.Bitness, resume, name => ResolveSymbol(plan, target, name),
                new AsmSourceInfo { FirstLine = p.CodeLine, FirstColumn = p.CodeColumn });
            if (p.Mode == PatchMode.Replace)
            {
                sp.ReplaceBytes = EncodeReplace(plan, sp, target);
                if (endbr > 0 && (sp.ReplaceBytes.Length < endbr || !sp.ReplaceBytes.Take(endbr).SequenceEqual(actual.Take(endbr))))
                    throw Refuse(p, HotpatchErrorKind.UnsafeSite,
                        "the site begins with " + (actual[3] == 0xfa ? "endbr64" : "endbr32") + " and the replace code does not: an indirect branch to it would fault under indirect-branch tracking; begin the code with the same endbr.", target);
            }
            return sp;
        }

        private static readonly byte[] Endbr64 = { 0xf3, 0x0f, 0x1e, 0xfa }, Endbr32 = { 0xf3, 0x0f, 0x1e, 0xfb };

        /// <summary>4 when the bytes begin with endbr64 (or endbr32), else 0.</summary>
        internal static int EndbrLength(byte[] bytes) =>
            bytes.Length >= 4 && (bytes.Take(4).SequenceEqual(Endbr64) || bytes.Take(4).SequenceEqual(Endbr32)) ? 4 : 0;

        public static ulong? ResolveSymbol(PatchPlan plan, ITargetProcess target, string name)
        {
            int bang = name.IndexOf('!');
            if (bang < 0)
                return plan.Image.TryResolveSymbol(name, out var rva) ? AddressOf(plan.Module, rva) : null;
            return ResolveIn(target, name.Substring(0, bang), name.Substring(bang + 1), plan.Patch.Target.Os == TargetOs.Windows, depth: 0);
        }

        /// <summary>
        /// The address of a symbol value read from a module file (which may lie), or null when it would wrap around the
        /// address space. Not limited to the module's file mappings: data symbols (.bss) lie past them.
        /// </summary>
        private static ulong? AddressOf(LoadedModule module, ulong rva) => rva > ulong.MaxValue - module.Base ? null : module.Base + rva;

        /// <summary>A symbol of a module loaded in the target; PE export forwarders are followed to the module that implements them.</summary>
        private static ulong? ResolveIn(ITargetProcess target, string moduleName, string symbol, bool ignoreCase, int depth)
        {
            var module = FindModule(target, moduleName, ignoreCase);
            if (module == null || depth > 4) return null;
            var image = target.Modules.OpenImage(module);
            if (image.TryResolveSymbol(symbol, out var rva)) return AddressOf(module, rva);
            if (image is PeImage pe && pe.TryGetForwarder(symbol, out var toModule, out var toSymbol))
                return ResolveIn(target, toModule, toSymbol, ignoreCase, depth + 1);
            return null;
        }

        private static void CheckRelocatable(SitePlan sp, ITargetProcess target)
        {
            foreach (var ins in sp.SpanInstructions)
            {
                var p = sp.Patchlet;
                if (ins.FlowControl == FlowControl.XbeginXabortXend)
                    throw Refuse(p, HotpatchErrorKind.UnsafeSite, "'" + ins + "' at 0x" + ins.IP.ToString("x") + " cannot be relocated faithfully.", target);
                if ((ins.IsLoop || ins.IsLoopcc || ins.IsJcxShort) && !(ins.NearBranchTarget >= sp.Address && ins.NearBranchTarget < sp.End))
                    throw Refuse(p, HotpatchErrorKind.UnsafeSite, "'" + ins + "' at 0x" + ins.IP.ToString("x") + " branches out of the span and has no near form to relocate to.", target);
                if ((ins.FlowControl == FlowControl.Call || ins.FlowControl == FlowControl.IndirectCall) && ins.NextIP < sp.End)
                    throw Refuse(p, HotpatchErrorKind.UnsafeSite,
                        "the call at 0x" + ins.IP.ToString("x") + " returns to 0x" + ins.NextIP.ToString("x") + ", inside the overwritten bytes: a thread inside the callee would return into them.", target);
            }
        }

        private static string TooSmall(string? fn, ulong left, int span) =>
            "the " + span + " overwritten bytes run past the end of " + (fn ?? "the function") + ": only " + left + " byte(s) from the site to its end, too few for the "
            + JumpLength + "-byte jump, so it cannot be patched in place at this site; patch an earlier site or its callers instead.";

        /// <summary>The site must sit on an instruction boundary of a known function, and nothing in that function may branch into the span.</summary>
        private static void CheckFunction(PatchPlan plan, SitePlan sp, ITargetProcess target)
        {
            var p = sp.Patchlet;
            ulong rva = sp.Address - plan.Module.Base;
            ulong start, end;
            string? fname;
            var declared = p.Function != null ? DeclaredBounds(plan, p, target) : null;
            if (plan.Image.TryGetFunctionBounds(rva, out var startRva, out var endRva, out fname))
            {
                start = plan.Module.Base + startRva;
                end = plan.Module.Base + endRva;
            }
            else if (declared != null)
            {
                (start, end) = declared.Value;
                fname = "the declared function " + p.Function;
            }
            else
                throw Refuse(p, HotpatchErrorKind.UnsafeSite,
                    "no function of " + plan.Module.Name + " is known to contain 0x" + sp.Address.ToString("x")
                    + " (no symbol size, unwind entry or debug file), so branches into the span cannot be ruled out; the patchlet's `function` can declare its bounds.", target);
            // A declared range is the author's knowledge: wherever it is given, it must hold the whole span.
            if (declared != null && (sp.At < declared.Value.Start || sp.End > declared.Value.End))
                throw Refuse(p, HotpatchErrorKind.UnsafeSite,
                    "the declared function " + p.Function + " [0x" + declared.Value.Start.ToString("x") + ", 0x" + declared.Value.End.ToString("x")
                    + ") does not contain the overwritten bytes [0x" + sp.At.ToString("x") + ", 0x" + sp.End.ToString("x") + ").", target);
            string fn = (fname ?? "function") + " [0x" + start.ToString("x") + ", 0x" + end.ToString("x") + ")";
            if (sp.End > end)
                throw Refuse(p, HotpatchErrorKind.UnsafeSite, TooSmall(fn, end - sp.Address, sp.SpanLength), target);
            if (end - start > MaxFunctionScan)
                throw Refuse(p, HotpatchErrorKind.UnsafeSite, fn + " is too large to scan for branches into the span.", target);

            var body = new byte[end - start];
            target.Memory.Read(start, body);
            var decoder = Decoder.Create(plan.Bitness, new ByteArrayCodeReader(body), start);
            bool onBoundary = false;
            while (decoder.IP < end)
            {
                decoder.Decode(out var ins);
                if (ins.IP == sp.Address) onBoundary = true;
                if (ins.IsInvalid) continue;
                if (IsDirectBranch(ins) && sp.Contains(ins.NearBranchTarget))
                    throw Refuse(p, HotpatchErrorKind.UnsafeSite,
                        "'" + ins + "' at 0x" + ins.IP.ToString("x") + " in " + fn + " branches into the overwritten bytes at 0x" + ins.NearBranchTarget.ToString("x") + ".", target);
            }
            if (!onBoundary)
                throw Refuse(p, HotpatchErrorKind.UnsafeSite, "0x" + sp.Address.ToString("x") + " is not on an instruction boundary of " + fn + ".", target);

            // Any other function of the module (a .cold part jumping back, a tail call into the middle).
            ModuleBranches branches;
            try { branches = ModuleBranches.For(plan, target); }
            catch (HotpatchException e) when (e.Kind == HotpatchErrorKind.UnsafeSite && e.Patchlet == null) { throw Refuse(p, e.Kind, e.Message, target); }
            if (branches.TryFindInto(sp.Address - plan.Module.Base, sp.End - plan.Module.Base, out var fromRva, out var toRva))
                throw Refuse(p, HotpatchErrorKind.UnsafeSite,
                    "a branch at 0x" + (plan.Module.Base + fromRva).ToString("x") + " (module offset 0x" + fromRva.ToString("x") + ", outside " + fn
                    + ") targets 0x" + (plan.Module.Base + toRva).ToString("x") + ", inside the overwritten bytes.", target);
        }

        /// <summary>The patchlet's `function`, in the process's addresses: a symbol with its size, or { start, end }.</summary>
        private static (ulong Start, ulong End)? DeclaredBounds(PatchPlan plan, Patchlet p, ITargetProcess target)
        {
            var f = p.Function!;
            if (f.Symbol != null)
            {
                if (!(plan.Image is ElfImage elf) || !elf.TryGetSymbol(f.Symbol, out var symbol))
                    throw Refuse(p, HotpatchErrorKind.IdentityMismatch, "its function '" + f.Symbol + "' is not a symbol of " + plan.Module.Name
                        + (plan.Image is ElfImage ? "" : " that has a size (PE symbols have none; write { start, end })") + ".", target);
                if (symbol.Size == 0)
                    throw Refuse(p, HotpatchErrorKind.UnsafeSite, "its function '" + f.Symbol + "' has no size in " + plan.Module.Name + "; write { start, end }.", target);
                ulong begin = plan.Module.Base + symbol.Rva;
                return (begin, begin + symbol.Size);
            }
            ulong start = Resolve(plan, p, f.Start!, target), end = Resolve(plan, p, f.End!, target);
            if (end <= start)
                throw Refuse(p, HotpatchErrorKind.UnsafeSite, "its function " + f + " ends (0x" + end.ToString("x") + ") before it starts (0x" + start.ToString("x") + ").", target);
            return (start, end);
        }

        public static bool IsDirectBranch(in Instruction ins) =>
            ins.Op0Kind == OpKind.NearBranch64 || ins.Op0Kind == OpKind.NearBranch32 || ins.Op0Kind == OpKind.NearBranch16;

        private static byte[] EncodeReplace(PatchPlan plan, SitePlan sp, ITargetProcess target)
        {
            var writer = new BytesWriter();
            var block = new InstructionBlock(writer, sp.Code.Instructions.ToList(), sp.Address);
            if (!BlockEncoder.TryEncode(plan.Bitness, block, out var err, out _, BlockEncoderOptions.None))
                throw Refuse(sp.Patchlet, HotpatchErrorKind.AssemblyError, "its code cannot be encoded at 0x" + sp.Address.ToString("x") + ": " + err, target);
            var bytes = writer.ToArray();
            if (bytes.Length > sp.SpanLength)
                throw Refuse(sp.Patchlet, HotpatchErrorKind.AssemblyError,
                    "replace code takes " + bytes.Length + " bytes but expect covers only " + sp.SpanLength + ".", target);
            var filled = Enumerable.Repeat((byte)0x90, sp.SpanLength).ToArray();
            Array.Copy(bytes, filled, bytes.Length);
            return filled;
        }

        public static HotpatchException Refuse(Patchlet p, HotpatchErrorKind kind, string why, ITargetProcess target) =>
            new HotpatchException(kind, p.Name + ": " + why) { Patchlet = p.Name, ProcessId = target.Id };
    }

    internal sealed class BytesWriter : CodeWriter
    {
        private readonly List<byte> _bytes = new List<byte>();
        public override void WriteByte(byte value) => _bytes.Add(value);
        public byte[] ToArray() => _bytes.ToArray();
    }
}
