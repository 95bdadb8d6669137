using System.Globalization;
using System.Text;
using HotpatchTools.Engine.Format;
using HotpatchTools.Engine.Inspection;
using HotpatchTools.Engine.Modules;
using HotpatchTools.Engine.Patching;
using HotpatchTools.Engine.Platform;
using HotpatchTools.Engine.Platform.Offline;
using Iced.Intel;

namespace HotpatchTools.Engine.Authoring
{
    /// <summary>What a patch author gives New-Micropatch.</summary>
    public sealed class DraftRequest
    {
        public string Id { get; set; } = "";
        public string? Title { get; set; }
        /// <summary>symbol, symbol+0xOFF or 0xRVA, as `at` takes them.</summary>
        public string At { get; set; } = "";
        /// <summary>The module file the patch is for.</summary>
        public string ModulePath { get; set; } = "";
        /// <summary>The name to write as target.module; the file name when null.</summary>
        public string? ModuleName { get; set; }
        public PatchMode Mode { get; set; } = PatchMode.Insert;
        /// <summary>The function's range where the module cannot bound the site: locations as `at` takes them.</summary>
        public string? FunctionStart { get; set; }
        public string? FunctionEnd { get; set; }
        /// <summary>Where the module came from, for the file's header comment; the path when null.</summary>
        public string? SourceDescription { get; set; }
        /// <summary>The bytes a live process holds at the site now, to warn when they differ from the file's.</summary>
        public Func<ulong, int, byte[]?>? LiveBytes { get; set; }
    }

    /// <summary>A generated patch file, and what the offline check of it against its own module found.</summary>
    public sealed class MicropatchDraft
    {
        public string Id { get; set; } = "";
        public string Yaml { get; set; } = "";
        public string Module { get; set; } = "";
        public string ModulePath { get; set; } = "";
        public ulong Rva { get; set; }
        public byte[] Expect { get; set; } = new byte[0];
        /// <summary>Function and offset of the site, e.g. "parse_record+0x4"; empty when no function is known.</summary>
        public string Symbol { get; set; } = "";
        /// <summary>The patch as written, checked against the module file: Applies, or why not.</summary>
        public OfflineCheckResult Check { get; set; } = new OfflineCheckResult();
        /// <summary>What the author must still do or know (no function bounds, live bytes differ, …).</summary>
        public IReadOnlyList<string> Warnings { get; set; } = new string[0];
        /// <summary>The one of <see cref="Warnings"/> saying no function bounds the site, if any: the caller adds how to declare one.</summary>
        public string? UnboundedSite { get; set; }
    }

    /// <summary>
    /// Writes the patch file an author would otherwise assemble by hand from readelf and objdump: the module's
    /// identity, `expect` covering the whole instructions the jump overwrites, and the code around the site as
    /// comments. The module file is laid out as the loader maps it (<see cref="ImageProcess"/>), so every address
    /// and byte comes from the same place the engine checks at install time.
    /// </summary>
    public static class PatchAuthor
    {
        private const int ListingBefore = 8, ListingAfter = 10;
        private const int MaxFunctionListing = 1 << 20;

        /// <summary>
        /// A patch for a module as a running process has it loaded: drafted from the module's file (the identity binds
        /// to the file), with a warning when the process's bytes at the site differ from the file's.
        /// </summary>
        public static MicropatchDraft DraftFromProcess(IProcessPlatform platform, int pid, string moduleName, DraftRequest request)
        {
            using var target = platform.Open(pid);
            var module = PatchPlanner.FindModule(target, moduleName, platform.Os == TargetOs.Windows)
                ?? throw new HotpatchException(HotpatchErrorKind.ModuleNotLoaded, "Module " + moduleName + " is not loaded in process " + pid + " (" + target.Name + ").") { ProcessId = pid };
            // Opening the image is what finds a path this process can read the mapped file at (map_files on Linux).
            target.Modules.OpenImage(module);
            request.ModulePath = module.ReadablePath.Length > 0 ? module.ReadablePath : module.Path;
            request.ModuleName ??= module.Name;
            request.SourceDescription ??= module.Path + " in process " + pid + " (" + target.Name + ")";
            request.LiveBytes = (rva, length) =>
            {
                var bytes = new byte[length];
                return target.Memory.TryRead(module.Base + rva, bytes) == length ? bytes : null;
            };
            return Draft(request);
        }

        public static MicropatchDraft Draft(DraftRequest request)
        {
            var process = new ImageProcess(request.ModulePath, request.ModuleName);
            var image = process.Image;
            var module = process.Module;
            // A library's SONAME is the name admins write (and ldd prints); it also fits the next minor release's file name.
            string moduleName = (image as ElfImage)?.Soname ?? (string.IsNullOrEmpty(request.ModuleName) ? process.Name : request.ModuleName!);
            var warnings = new List<string>();

            ulong rva = Resolve(image, module, request.At, "location");
            ulong site = module.Base + rva;
            var span = Span(process, site, image.Bitness, request.Mode, request.At);
            var expect = new byte[span.Sum(i => i.Length)];
            process.Memory.Read(site, expect);

            if (request.LiveBytes?.Invoke(rva, expect.Length) is byte[] live && !live.SequenceEqual(expect))
                warnings.Add("The process holds " + Hex.Spaced(live) + " at the site, not the file's " + Hex.Spaced(expect)
                    + ": something (another patch?) changed it there; the patch expects the file's bytes.");

            string? declared = null;
            ulong fStart, fEnd;
            string? fName;
            string? unbounded = null;
            bool bounded = image.TryGetFunctionBounds(rva, out fStart, out fEnd, out fName);
            if (request.FunctionStart != null || request.FunctionEnd != null)
            {
                if (request.FunctionStart == null || request.FunctionEnd == null)
                    throw new ArgumentException("A declared function needs both its start and its end: it is [start, end).");
                fStart = Resolve(image, module, request.FunctionStart, "function start");
                fEnd = Resolve(image, module, request.FunctionEnd, "function end");
                if (!(fStart <= rva && rva + (ulong)expect.Length <= fEnd))
                    throw new HotpatchException(HotpatchErrorKind.UnsafeSite,
                        "The declared function [0x" + fStart.ToString("x") + ", 0x" + fEnd.ToString("x") + ") does not contain the " + expect.Length + " bytes at 0x" + rva.ToString("x") + ".");
                declared = "{ start: " + request.FunctionStart + ", end: " + request.FunctionEnd + " }";
                fName = null;
                bounded = true;
            }
            else if (!bounded)
            {
                unbounded = "No symbol size or unwind entry of " + process.Name + " bounds 0x" + rva.ToString("x")
                    + ": the engine refuses the site until the patch declares its function.";
                warnings.Add(unbounded);
            }

            string symbol = bounded && fName != null ? fName + (rva == fStart ? "" : "+0x" + (rva - fStart).ToString("x")) : "";
            // Module offsets, as objdump shows a shared object and as `at` takes them: the load address here is made up.
            var listing = bounded
                ? Neighbourhood(process, module.Base, fStart, fEnd, rva, expect.Length, image.Bitness)
                : Disassembler.Lines(Read(process, site, 64), 64, rva, image.Bitness, 0, ListingAfter).Select(l => "   " + l).ToList();

            string yaml = Yaml(request, moduleName, process, image, module, rva, expect, declared, symbol, listing);
            // The file must be what the parser accepts, or the author gets a draft that cannot be used.
            var patch = MicropatchParser.Parse(new UTF8Encoding(false).GetBytes(yaml), request.Id + ".micropatch.yaml");
            var check = OfflineCheck.Check(patch, process, request.ModulePath);
            return new MicropatchDraft
            {
                Id = patch.Id, Yaml = yaml, Module = moduleName, ModulePath = request.ModulePath, Rva = rva, Expect = expect,
                Symbol = symbol, Check = check, Warnings = warnings, UnboundedSite = unbounded,
            };
        }

        /// <summary>
        /// `at` syntax, read and resolved as an install reads and resolves it. Errors end with "(label)": the
        /// engine names what was asked for, not a parameter, and a host maps the label to its own words.
        /// </summary>
        internal static ulong Resolve(IModuleImage image, LoadedModule module, string location, string label)
        {
            SiteLocation loc;
            try { loc = MicropatchParser.ParseLocation(location.Trim()); }
            catch (ArgumentException e) { throw new ArgumentException(e.Message.TrimEnd('.') + " (" + label + ").", e); }
            return PatchPlanner.ResolveRva(image, module, loc, why => new HotpatchException(HotpatchErrorKind.IdentityMismatch, why + " (" + label + ")"));
        }

        /// <summary>
        /// The whole instructions `expect` must cover: an endbr at the site stays in place, so the jump is counted
        /// after it; replace mode takes the same bytes (the author may extend expect to fit longer code).
        /// </summary>
        private static List<Instruction> Span(ImageProcess process, ulong site, int bitness, PatchMode mode, string at)
        {
            var window = Read(process, site, 32);
            var decoder = Iced.Intel.Decoder.Create(bitness, new ByteArrayCodeReader(window), site);
            var span = new List<Instruction>();
            int covered = 0, needed = PatchPlanner.JumpLength;
            while (covered < needed)
            {
                decoder.Decode(out var ins);
                if (ins.IsInvalid)
                    throw new HotpatchException(HotpatchErrorKind.UnsafeSite, "The bytes at " + at + " (0x" + ins.IP.ToString("x") + ") do not decode as x86 instructions: is it code?");
                if (span.Count == 0 && (ins.Code == Code.Endbr64 || ins.Code == Code.Endbr32)) needed += ins.Length;
                span.Add(ins);
                covered += ins.Length;
            }
            return span;
        }

        private static byte[] Read(ImageProcess process, ulong address, int length)
        {
            var bytes = new byte[length];
            int got = process.Memory.TryRead(address, bytes);
            return got == length ? bytes : bytes.Take(got).ToArray();
        }

        /// <summary>The function's instructions around the site; the overwritten ones marked with "=>".</summary>
        private static List<string> Neighbourhood(ImageProcess process, ulong moduleBase, ulong start, ulong end, ulong site, int spanLength, int bitness)
        {
            int length = (int)Math.Min(end - start, MaxFunctionListing);
            var body = Read(process, moduleBase + start, length);
            var all = Disassembler.Lines(body, body.Length, start, bitness, body.Length);
            int at = all.FindIndex(l => l.StartsWith("0x" + site.ToString("x") + ":", StringComparison.Ordinal));
            if (at < 0) at = 0;
            var lines = new List<string>();
            for (int i = Math.Max(0, at - ListingBefore); i < Math.Min(all.Count, at + ListingAfter); i++)
            {
                ulong ip = ulong.Parse(all[i].Substring(2, all[i].IndexOf(':') - 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
                lines.Add((ip >= site && ip < site + (ulong)spanLength ? "=> " : "   ") + all[i]);
            }
            return lines;
        }

        private static string Yaml(DraftRequest r, string moduleName, ImageProcess process, IModuleImage image, LoadedModule module,
            ulong rva, byte[] expect, string? declared, string symbol, List<string> listing)
        {
            var y = new StringBuilder();
            y.Append("# Generated by New-Micropatch from ").Append(r.SourceDescription ?? r.ModulePath).Append(" on ").Append(DateTime.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)).Append(".\n");
            y.Append("# Write the fix in `code`, describe it, then check it with Test-Micropatch and sign it with Set-MicropatchSignature.\n");
            y.Append("format: 1\n");
            y.Append("id: ").Append(r.Id).Append('\n');
            y.Append("title: ").Append(Quote(r.Title ?? "Fix in " + (symbol.Length > 0 ? symbol : r.At) + " of " + moduleName)).Append('\n');
            y.Append("description: |\n  TODO: what the flaw is and how this patch closes it.\n");
            y.Append("target:\n");
            y.Append("  os: ").Append((image.Format == ModuleFormat.Pe ? TargetOs.Windows : TargetOs.Linux).FileName()).Append('\n');
            y.Append("  arch: ").Append((image.Bitness == 64 ? TargetArch.X64 : TargetArch.X86).FileName()).Append('\n');
            y.Append("  module: ").Append(Quote(moduleName)).Append('\n');
            y.Append("  identity:\n");
            if (image.BuildId != null) y.Append("    buildId: ").Append(image.BuildId).Append('\n');
            if (image.TimeDateStamp != null) y.Append("    timeDateStamp: 0x").Append(image.TimeDateStamp.Value.ToString("X8")).Append('\n');
            if (image.SizeOfImage != null) y.Append("    sizeOfImage: 0x").Append(image.SizeOfImage.Value.ToString("X")).Append('\n');
            y.Append("    sha256: ").Append(process.Modules.ComputeSha256(module)).Append('\n');
            y.Append("patchlets:\n");
            y.Append("  # ").Append(symbol.Length > 0 ? symbol : r.At.Trim()).Append(" (module offset 0x").Append(rva.ToString("x"))
                .Append("), listed in module offsets; => marks the bytes the jump overwrites:\n");
            foreach (var l in listing) y.Append("  #").Append(l).Append('\n');
            y.Append("  - at: ").Append(r.At.Trim()).Append('\n');
            y.Append("    expect: ").Append(Hex.Spaced(expect)).Append('\n');
            if (declared != null) y.Append("    function: ").Append(declared).Append('\n');
            if (r.Mode == PatchMode.Replace) y.Append("    mode: replace\n");
            y.Append("    code: |\n");
            y.Append(r.Mode == PatchMode.Replace
                ? "      ; the replacement, assembled at the site; it must fit in the bytes of expect (NOP-filled)\n"
                : "      ; the fix, run before the original instructions; `jmp resume` (or falling off the end) runs them\n");
            return y.ToString();
        }

        /// <summary>A YAML single-quoted scalar: nothing in it is read as YAML syntax.</summary>
        private static string Quote(string s) => "'" + s.Replace("'", "''").Replace("\r", " ").Replace("\n", " ") + "'";
    }
}
