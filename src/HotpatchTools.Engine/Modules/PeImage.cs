using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Security;
using System.Text;

namespace HotpatchTools.Engine.Modules
{
    /// <summary>An entry of a PE module's export table, at its RVA (see <see cref="IModuleImage"/>).</summary>
    internal readonly struct PeExport
    {
        internal PeExport(string? name, uint ordinal, uint rva, string? forwarder)
        {
            Name = name;
            Ordinal = ordinal;
            Rva = rva;
            Forwarder = forwarder;
        }

        /// <summary>Null for an export by ordinal only (NONAME).</summary>
        public string? Name { get; }

        /// <summary>The biased ordinal: what GetProcAddress takes as MAKEINTRESOURCE(n), and "DLL.#n" forwarders name.</summary>
        public uint Ordinal { get; }

        /// <summary>The function or data; for a forwarder, its forwarder string.</summary>
        public uint Rva { get; }

        /// <summary>The forwarder string as written, e.g. "NTDLL.RtlAllocateHeap"; null when the export is in this module.</summary>
        public string? Forwarder { get; }

        public bool IsForwarder => Forwarder != null;

        public override string ToString() =>
            (Name ?? "#" + Ordinal) + (Forwarder != null ? " -> " + Forwarder : " @0x" + Rva.ToString("x"));
    }

    /// <summary>
    /// A PE32 (i386) or PE32+ (x86-64) image, from its file or from the bytes of a loaded module: identity,
    /// exports and function bounds, at RVAs. Everything is read during construction; nothing is kept open.
    /// </summary>
    internal sealed class PeImage : IModuleImage
    {
        public const ushort MachineI386 = 0x14c, MachineAmd64 = 0x8664;
        private const int OptionalHeaderSize32 = 224, OptionalHeaderSize64 = 240, MaxSections = 96;
        /// <summary>Far longer than any real symbol name; it bounds the work of many names pointing into one long unterminated run.</summary>
        private const int MaxNameLength = 65536;
        private const int ExportDirectoryIndex = 0, ExceptionDirectoryIndex = 3;
        private const uint ExportDirectorySize = 40, RuntimeFunctionSize = 12, CoffSymbolSize = 18;
        private const ushort CoffTypeDerivedMask = 0x30, CoffTypeFunction = 0x20;
        private const byte CoffClassExternal = 2, CoffClassStatic = 3;

        private readonly PeExport[] _exports;
        private readonly Dictionary<string, int> _exportByName;
        private readonly Dictionary<uint, int> _exportByOrdinal;
        /// <summary>Module and symbol of each forwarder in <see cref="exports"/>, null elsewhere.</summary>
        private readonly (string Module, string Symbol)?[] forwarders;
        private readonly Dictionary<string, uint> _symbolByName;
        /// <summary>i386 C symbols without the leading underscore the compiler adds (_triple as triple).</summary>
        private readonly Dictionary<string, uint> _symbolByUndecoratedName;
        /// <summary>.pdata entries, sorted by start and not overlapping.</summary>
        private readonly uint[] _unwindStarts, _unwindEnds;
        /// <summary>For each .pdata entry, the start of the function it belongs to: itself, or where its chain of UNW_FLAG_CHAININFO entries ends.</summary>
        private readonly uint[] _unwindPrimaries;
        /// <summary>Functions known by name (COFF symbols and exports), sorted by start; see <see cref="FunctionsFromSymbols"/>.</summary>
        private readonly uint[] _functionStarts, _functionEnds;
        private readonly Dictionary<uint, string> _functionNames;

        private PeImage(Parsed p)
        {
            Machine = p.Machine;
            Bitness = p.Machine == MachineAmd64 ? 64 : 32;
            TimeDateStamp = p.TimeDateStamp;
            SizeOfImage = p.SizeOfImage;
            _exports = p.Exports;
            forwarders = p.Forwarders;
            Exports = Array.AsReadOnly(p.Exports);

            _exportByName = new Dictionary<string, int>(StringComparer.Ordinal);
            _exportByOrdinal = new Dictionary<uint, int>();
            _functionNames = new Dictionary<uint, string>();
            for (int i = 0; i < _exports.Length; i++)
            {
                var e = _exports[i];
                if (e.Name != null && !_exportByName.ContainsKey(e.Name)) _exportByName.Add(e.Name, i);
                if (!_exportByOrdinal.ContainsKey(e.Ordinal)) _exportByOrdinal.Add(e.Ordinal, i);
            }
            // Exports before COFF symbols, so a function is named as other modules know it; within the COFF
            // symbols the external definition before a file-local one of the same address.
            foreach (var e in _exports)
                if (e.Name != null && !e.IsForwarder && !_functionNames.ContainsKey(e.Rva)) _functionNames.Add(e.Rva, e.Name);
            _symbolByName = new Dictionary<string, uint>(StringComparer.Ordinal);
            _symbolByUndecoratedName = new Dictionary<string, uint>(StringComparer.Ordinal);
            foreach (bool external in new[] { true, false })
            {
                foreach (var s in p.Symbols)
                {
                    if (s.IsExternal != external) continue;
                    if (!_symbolByName.ContainsKey(s.Name)) _symbolByName.Add(s.Name, s.Rva);
                    string undecorated = Undecorate(s.Name);
                    if (undecorated != s.Name && !_symbolByUndecoratedName.ContainsKey(undecorated))
                        _symbolByUndecoratedName.Add(undecorated, s.Rva);
                    if (s.IsFunction && !_functionNames.ContainsKey(s.Rva)) _functionNames.Add(s.Rva, undecorated);
                }
            }

            _unwindStarts = p.UnwindStarts;
            _unwindEnds = p.UnwindEnds;
            _unwindPrimaries = p.UnwindPrimaries;
            FunctionsFromSymbols(p, out _functionStarts, out _functionEnds);
        }

        public static PeImage Load(string path)
        {
            return ModuleFile.Read(path, _stream => Read(_stream, path, loaded: false));
        }

        /// <summary>A PE file's bytes, in file layout.</summary>
        public static PeImage Parse(byte[] fileBytes, string sourceName)
        {
            if (fileBytes == null) throw new ArgumentNullException(nameof(fileBytes));
            if (sourceName == null) throw new ArgumentNullException(nameof(sourceName));
            using (var _stream = new MemoryStream(fileBytes, false))
                return Read(_stream, sourceName, loaded: false);
        }

        /// <summary>
        /// The bytes of a module read out of a process from its base, SizeOfImage long: sections at their RVAs.
        /// The COFF symbol table is not part of a loaded image, so only exports and .pdata are available.
        /// </summary>
        public static PeImage FromLoadedImage(byte[] image, string sourceName)
        {
            if (image == null) throw new ArgumentNullException(nameof(image));
            if (sourceName == null) throw new ArgumentNullException(nameof(sourceName));
            using (var _stream = new MemoryStream(image, false))
                return Read(_stream, sourceName, loaded: true);
        }

        public ModuleFormat Format => ModuleFormat.Pe;
        public int Bitness { get; }
        public string? BuildId => null;
        public uint? TimeDateStamp { get; }
        public uint? SizeOfImage { get; }

        /// <summary>The COFF header's Machine: <see cref="MachineAmd64"/> or <see cref="MachineI386"/>.</summary>
        public ushort Machine { get; }

        /// <summary>One entry per exported name, and one per export by ordinal only; sorted by ordinal.</summary>
        public IReadOnlyList<PeExport> Exports { get; }

        /// <summary>
        /// An export by name, then "#n" as the export of ordinal n (the symbol of an ordinal forwarder), then a COFF
        /// symbol by exact name, then on i386 a COFF symbol by its name without the leading underscore. False for a
        /// forwarder: see <see cref="TryGetForwarder"/>.
        /// </summary>
        public bool TryResolveSymbol(string name, out ulong rva)
        {
            rva = 0;
            if (name == null) return false;
            if (TryFindExport(name, out int export))
            {
                if (_exports[export].IsForwarder) return false;
                rva = _exports[export].Rva;
                return true;
            }
            if (_symbolByName.TryGetValue(name, out uint symbol) || _symbolByUndecoratedName.TryGetValue(name, out symbol))
            {
                rva = symbol;
                return true;
            }
            return false;
        }

        /// <summary>
        /// Where an export forwarded to another module really is: targetModule with ".dll" added when the forwarder
        /// names none ("NTDLL.RtlAllocateHeap" gives NTDLL.dll), targetSymbol a name or "#n" for an ordinal.
        /// </summary>
        public bool TryGetForwarder(string name, out string targetModule, out string targetSymbol)
        {
            if (name != null && TryFindExport(name, out int export) && forwarders[export] is { } target)
            {
                targetModule = target.Module;
                targetSymbol = target.Symbol;
                return true;
            }
            targetModule = targetSymbol = "";
            return false;
        }

        /// <summary>
        /// The .pdata entry containing rva; failing that (no .pdata, or a leaf function without an entry), the
        /// function from the COFF symbols and exports. A .pdata entry whose unwind info has UNW_FLAG_CHAININFO is a
        /// fragment of a larger function (e.g. its cold part): its own bounds are reported (a span may not leave the
        /// fragment), under the name of the primary function it belongs to. Branches from the other fragments are
        /// covered by the module-wide scan of every .pdata range.
        /// </summary>
        public bool TryGetFunctionBounds(ulong rva, out ulong startRva, out ulong endRva, out string? name)
        {
            if (rva <= uint.MaxValue && TryFindRange(_unwindStarts, _unwindEnds, (uint)rva, out startRva, out endRva))
            {
                uint primary = PrimaryOf((uint)startRva);
                name = _functionNames.TryGetValue(primary, out var n) ? n : null;
                if (primary != startRva) name = (name ?? "0x" + primary.ToString("x")) + " (chained part at 0x" + startRva.ToString("x") + ")";
                return true;
            }
            if (rva <= uint.MaxValue && TryFindRange(_functionStarts, _functionEnds, (uint)rva, out startRva, out endRva))
            {
                name = _functionNames.TryGetValue((uint)startRva, out var n) ? n : null;
                return true;
            }
            startRva = endRva = 0;
            name = null;
            return false;
        }

        /// <summary>The primary function's start for the .pdata entry that starts at entryStart.</summary>
        public uint PrimaryOf(uint entryStart)
        {
            int i = Array.BinarySearch(_unwindStarts, entryStart);
            return i >= 0 ? _unwindPrimaries[i] : entryStart;
        }

        /// <summary>Every function range the file describes: .pdata entries, then the functions of its symbols and exports.</summary>
        public IEnumerable<(ulong Start, ulong End)> FunctionRanges()
        {
            for (int i = 0; i < _unwindStarts.Length; i++) yield return (_unwindStarts[i], _unwindEnds[i]);
            for (int i = 0; i < _functionStarts.Length; i++) yield return (_functionStarts[i], _functionEnds[i]);
        }

        private static bool TryFindRange(uint[] starts, uint[] ends, uint rva, out ulong start, out ulong end)
        {
            int lo = 0, hi = starts.Length;
            while (lo < hi)
            {
                int mid = lo + (hi - lo) / 2;
                if (starts[mid] <= rva) lo = mid + 1; else hi = mid;
            }
            bool found = lo > 0 && rva < ends[lo - 1];
            start = found ? starts[lo - 1] : 0;
            end = found ? ends[lo - 1] : 0;
            return found;
        }

        private bool TryFindExport(string name, out int export)
        {
            if (_exportByName.TryGetValue(name, out export)) return true;
            return name.Length > 1 && name[0] == '#' && IsDigits(name, 1)
                && uint.TryParse(name.Substring(1), out uint ordinal) && _exportByOrdinal.TryGetValue(ordinal, out export);
        }

        private static bool IsDigits(string s, int from)
        {
            for (int i = from; i < s.Length; i++)
                if (s[i] < '0' || s[i] > '9') return false;
            return true;
        }

        private string Undecorate(string name) =>
            Machine == MachineI386 && name.Length > 1 && name[0] == '_' ? name.Substring(1) : name;

        /// <summary>
        /// Where .pdata has nothing (i386, or an x64 leaf function), a function runs from its symbol to the next
        /// function symbol or export in its section, or to the end of the section. That over-estimates: it takes in
        /// padding and any code that has no symbol of its own (e.g. a split-off cold part), so a branch scan over it
        /// covers more bytes and can only refuse more. Exports alone are not used: without a symbol table the last
        /// export would run over all the code after it.
        /// </summary>
        private static void FunctionsFromSymbols(Parsed p, out uint[] starts, out uint[] ends)
        {
            var entries = new List<(uint Start, int Section)>();
            foreach (var s in p.Symbols)
                if (s.IsFunction) entries.Add((s.Rva, s.Section));
            if (entries.Count > 0)
            {
                foreach (var e in p.Exports)
                {
                    if (e.IsForwarder) continue;
                    int section = SectionOf(p.Sections, e.Rva);
                    if (section >= 0 && IsCode(p.Sections[section])) entries.Add((e.Rva, section));
                }
            }
            entries.Sort((a, b) => a.Start.CompareTo(b.Start));
            int count = 0;
            for (int i = 0; i < entries.Count; i++)
                if (count == 0 || entries[i].Start != entries[count - 1].Start) entries[count++] = entries[i];

            starts = new uint[count];
            ends = new uint[count];
            for (int i = 0; i < count; i++)
            {
                var section = p.Sections[entries[i].Section];
                starts[i] = entries[i].Start;
                ends[i] = i + 1 < count && entries[i + 1].Section == entries[i].Section
                    ? entries[i + 1].Start
                    : (uint)(section.VirtualAddress + section.VirtualSize);
            }
        }

        private static bool IsCode(SectionHeader s) =>
            (s.SectionCharacteristics & (SectionCharacteristics.ContainsCode | SectionCharacteristics.MemExecute)) != 0;

        private static int SectionOf(SectionHeader[] sections, uint rva)
        {
            for (int i = 0; i < sections.Length; i++)
                if (rva >= (uint)sections[i].VirtualAddress && rva - (uint)sections[i].VirtualAddress < (uint)sections[i].VirtualSize)
                    return i;
            return -1;
        }

        private struct CoffSymbol
        {
            public string Name;
            public uint Rva;
            public int Section;
            public bool IsFunction, IsExternal;
        }

        private sealed class Parsed
        {
            public ushort Machine;
            public uint TimeDateStamp, SizeOfImage;
            public SectionHeader[] Sections = new SectionHeader[0];
            public PeExport[] Exports = new PeExport[0];
            public (string, string)?[] Forwarders = new (string, string)?[0];
            public uint[] UnwindStarts = new uint[0], UnwindEnds = new uint[0], UnwindPrimaries = new uint[0];
            public List<CoffSymbol> Symbols = new List<CoffSymbol>();
        }

        private static PeImage Read(Stream stream, string source, bool loaded)
        {
            if (stream.Length > int.MaxValue) throw new ModuleFormatException(ModuleFormat.Pe, source, "the image is larger than 2 GiB");
            var options = PEStreamOptions.LeaveOpen | (loaded ? PEStreamOptions.IsLoadedImage : PEStreamOptions.Default);
            using (var pe = new PEReader(stream, options))
            {
                var image = new ImageReader(pe, stream, source, loaded);
                try
                {
                    return new PeImage(ReadImage(image, loaded));
                }
                catch (BadImageFormatException e)
                {
                    throw image.Invalid(e.Message);
                }
            }
        }

        private static Parsed ReadImage(ImageReader image, bool loaded)
        {
            if (image.Length < 2) throw image.Invalid("the image is too short for an MZ header");
            var magic = image.ReadFile(0, 2, "the MZ header");
            if (magic[0] != (byte)'M' || magic[1] != (byte)'Z') throw image.Invalid("bad magic (expected MZ)");
            var headers = image.Pe.PEHeaders;
            // Not null: with the MZ header there, PEReader did not take the file for a bare COFF object.
            var pe = headers.PEHeader!;
            var coff = headers.CoffHeader;
            var p = new Parsed
            {
                Machine = (ushort)coff.Machine,
                TimeDateStamp = (uint)coff.TimeDateStamp,
                SizeOfImage = (uint)pe.SizeOfImage,
                Sections = new SectionHeader[headers.SectionHeaders.Length],
            };
            headers.SectionHeaders.CopyTo(p.Sections);

            bool is64 = pe.Magic == PEMagic.PE32Plus;
            if (p.Machine != (is64 ? MachineAmd64 : MachineI386))
                throw image.Invalid("machine 0x" + p.Machine.ToString("x") + " is not " + (is64 ? "x86-64 for a PE32+" : "i386 for a PE32") + " image");
            // PEReader takes the section table to follow all 16 data directories, as it does in every linker's output.
            int optionalSize = (ushort)coff.SizeOfOptionalHeader, expectedOptionalSize = is64 ? OptionalHeaderSize64 : OptionalHeaderSize32;
            if (optionalSize != expectedOptionalSize)
                throw image.Invalid("SizeOfOptionalHeader is " + optionalSize + ", not " + expectedOptionalSize);
            if (pe.SizeOfImage <= 0) throw image.Invalid("SizeOfImage is " + pe.SizeOfImage);
            if (loaded && image.Length < p.SizeOfImage)
                throw image.Invalid("the image is 0x" + image.Length.ToString("x") + " bytes, less than SizeOfImage 0x" + p.SizeOfImage.ToString("x"));
            // Also what keeps the linear section searches here and in PEReader cheap.
            if (p.Sections.Length > MaxSections)
                throw image.Invalid("NumberOfSections is " + p.Sections.Length + ", more than the " + MaxSections + " the PE specification allows");
            for (int i = 0; i < p.Sections.Length; i++)
                CheckSection(image, p, i, loaded);

            if (pe.NumberOfRvaAndSizes > ExportDirectoryIndex)
                ReadExports(image, pe.ExportTableDirectory, p);
            if (is64 && pe.NumberOfRvaAndSizes > ExceptionDirectoryIndex)
                ReadUnwindTable(image, pe.ExceptionTableDirectory, p);
            // A loaded image has no COFF symbol table: it is not in any section, and its pointer is a file offset.
            if (!loaded && coff.PointerToSymbolTable != 0 && coff.NumberOfSymbols != 0)
                ReadCoffSymbols(image, (uint)coff.PointerToSymbolTable, (uint)coff.NumberOfSymbols, p);
            return p;
        }

        /// <summary>Also what keeps PEReader.GetSectionData safe: it trusts VirtualAddress + VirtualSize not to overflow.</summary>
        private static void CheckSection(ImageReader image, Parsed p, int index, bool loaded)
        {
            var s = p.Sections[index];
            string what = "section " + index + " (" + s.Name + ")";
            if (s.VirtualAddress < 0 || s.VirtualSize < 0 || (long)s.VirtualAddress + s.VirtualSize > p.SizeOfImage)
                throw image.Invalid(what + " lies outside SizeOfImage");
            if (loaded || s.SizeOfRawData == 0) return;
            long raw = Math.Min(s.VirtualSize, s.SizeOfRawData);
            if (s.PointerToRawData < 0 || s.SizeOfRawData < 0 || (ulong)(s.PointerToRawData + raw) > image.Length)
                throw image.Invalid(what + " lies outside the file");
        }

        private static void ReadExports(ImageReader image, DirectoryEntry directory, Parsed p)
        {
            if (directory.RelativeVirtualAddress == 0 || directory.Size == 0) return;
            uint directoryRva = (uint)directory.RelativeVirtualAddress, directorySize = (uint)directory.Size;
            var header = image.At(directoryRva, ExportDirectorySize, "the export directory");
            header.Offset = 16;
            uint ordinalBase = header.ReadUInt32(), functionCount = header.ReadUInt32(), nameCount = header.ReadUInt32();
            uint functionsRva = header.ReadUInt32(), namesRva = header.ReadUInt32(), ordinalsRva = header.ReadUInt32();
            if ((ulong)ordinalBase + functionCount > (ulong)uint.MaxValue + 1)
                throw image.Invalid("the export ordinals (base " + ordinalBase + ", " + functionCount + " functions) do not fit in 32 bits");

            var table = image.At(functionsRva, 4UL * functionCount, "the export address table");
            var names = image.At(namesRva, 4UL * nameCount, "the export name table");
            var nameOrdinals = image.At(ordinalsRva, 2UL * nameCount, "the export ordinal table");
            var addresses = new uint[functionCount];
            for (uint i = 0; i < functionCount; i++) addresses[i] = table.ReadUInt32();

            var forwarderStrings = new string?[functionCount];
            var targets = new (string, string)?[functionCount];
            var named = new bool[functionCount];
            var result = new List<(PeExport Export, (string, string)? Target)>();
            void Add(string? name, uint index)
            {
                string what = name != null ? "export " + name : "export #" + (ordinalBase + index);
                uint rva = addresses[index];
                if (rva == 0) throw image.Invalid(what + " has no address");
                if (rva >= p.SizeOfImage) throw image.Invalid(what + " lies outside SizeOfImage");
                if (rva - directoryRva < directorySize && forwarderStrings[index] == null)
                {
                    forwarderStrings[index] = image.CString(rva, "the forwarder of " + what);
                    targets[index] = ForwarderTarget(image, forwarderStrings[index]!, what);
                }
                result.Add((new PeExport(name, ordinalBase + index, rva, forwarderStrings[index]), targets[index]));
            }

            for (uint i = 0; i < nameCount; i++)
            {
                uint nameRva = names.ReadUInt32();
                ushort index = nameOrdinals.ReadUInt16();
                string name = image.CString(nameRva, "export name " + i);
                if (index >= functionCount) throw image.Invalid("export " + name + " has ordinal index " + index + ", past the " + functionCount + " addresses");
                named[index] = true;
                Add(name, index);
            }
            // A slot without a name and without an address is a gap in the ordinals, not an export.
            for (uint i = 0; i < functionCount; i++)
                if (!named[i] && addresses[i] != 0) Add(null, i);

            var ordered = result.ToArray();
            var keys = new ulong[ordered.Length];
            for (int i = 0; i < ordered.Length; i++) keys[i] = (ulong)ordered[i].Export.Ordinal << 32 | (uint)i;
            Array.Sort(keys, ordered);
            p.Exports = new PeExport[ordered.Length];
            p.Forwarders = new (string, string)?[ordered.Length];
            for (int i = 0; i < ordered.Length; i++)
            {
                p.Exports[i] = ordered[i].Export;
                p.Forwarders[i] = ordered[i].Target;
            }
        }

        /// <summary>Split at the last dot, as the loader does, so "api-ms-win-core-x.dll.Func" keeps its ".dll".</summary>
        private static (string, string) ForwarderTarget(ImageReader image, string forwarder, string what)
        {
            int dot = forwarder.LastIndexOf('.');
            if (dot <= 0 || dot == forwarder.Length - 1)
                throw image.Invalid("the forwarder of " + what + " (\"" + forwarder + "\") is not MODULE.SYMBOL");
            string module = forwarder.Substring(0, dot);
            return (module.IndexOf('.') < 0 ? module + ".dll" : module, forwarder.Substring(dot + 1));
        }

        private static void ReadUnwindTable(ImageReader image, DirectoryEntry directory, Parsed p)
        {
            if (directory.RelativeVirtualAddress == 0 || directory.Size == 0) return;
            // As the loader does, a trailing partial entry is ignored.
            uint count = (uint)directory.Size / RuntimeFunctionSize;
            var table = image.At((uint)directory.RelativeVirtualAddress, (ulong)count * RuntimeFunctionSize, "the exception directory");
            p.UnwindStarts = new uint[count];
            p.UnwindEnds = new uint[count];
            p.UnwindPrimaries = new uint[count];
            var infos = new uint[count];
            for (uint i = 0; i < count; i++)
            {
                uint start = table.ReadUInt32(), end = table.ReadUInt32();
                infos[i] = table.ReadUInt32();
                if (start > end || end > p.SizeOfImage)
                    throw image.Invalid("exception directory entry " + i + " [0x" + start.ToString("x") + ", 0x" + end.ToString("x") + ") is not a range in the image");
                // The unwinder binary-searches this table: out of order, it would not find what we find.
                if (i > 0 && start < p.UnwindEnds[i - 1])
                    throw image.Invalid("exception directory entry " + i + " is out of order or overlaps the one before");
                p.UnwindStarts[i] = start;
                p.UnwindEnds[i] = end;
            }
            for (uint i = 0; i < count; i++)
                p.UnwindPrimaries[i] = p.Machine == MachineAmd64 ? PrimaryFunction(image, p.UnwindStarts[i], infos[i]) : p.UnwindStarts[i];
        }

        private const byte UnwFlagChainInfo = 4;
        /// <summary>Far more than any compiler chains (MSVC: one or two); a cycle in a hostile file ends here.</summary>
        private const int MaxChain = 32;

        /// <summary>
        /// Where a .pdata entry's chain of UNW_FLAG_CHAININFO unwind infos ends: the RUNTIME_FUNCTION after the
        /// unwind codes names the entry this one continues. Unreadable unwind info ends the chain: the entry is
        /// then its own function, which only narrows what is scanned with it.
        /// </summary>
        private static uint PrimaryFunction(ImageReader image, uint start, uint info)
        {
            for (int depth = 0; depth < MaxChain; depth++)
            {
                try
                {
                    var header = image.At(info, 4, "unwind info");
                    byte flags = (byte)(header.ReadByte() >> 3);
                    header.ReadByte();
                    byte codes = header.ReadByte();
                    if ((flags & UnwFlagChainInfo) == 0) return start;
                    var chained = image.At(info + 4 + 2 * (uint)((codes + 1) & ~1), 12, "chained unwind entry");
                    start = chained.ReadUInt32();
                    chained.ReadUInt32();
                    info = chained.ReadUInt32();
                }
                catch (ModuleFormatException) { return start; }
            }
            return start;
        }

        private static void ReadCoffSymbols(ImageReader image, uint offset, uint count, Parsed p)
        {
            ulong tableSize = (ulong)count * CoffSymbolSize;
            var table = image.ReadFile(offset, tableSize, "the COFF symbol table");
            ulong stringsOffset = offset + tableSize;
            byte[] strings = new byte[0];
            if (image.Length - stringsOffset >= 4)
            {
                uint stringsSize = U32(image.ReadFile(stringsOffset, 4, "the COFF string table size"), 0);
                if (stringsSize > 4) strings = image.ReadFile(stringsOffset, stringsSize, "the COFF string table");
            }

            for (uint i = 0; i < count; i++)
            {
                int r = (int)(i * CoffSymbolSize);
                uint value = U32(table, r + 8);
                short section = (short)U16(table, r + 12);
                ushort type = U16(table, r + 14);
                byte storageClass = table[r + 16], auxCount = table[r + 17];
                if (auxCount > count - 1 - i) throw image.Invalid("the auxiliary records of COFF symbol " + i + " run past the table");
                uint symbol = i;
                i += auxCount;

                if (section <= 0 || storageClass != CoffClassExternal && storageClass != CoffClassStatic) continue;
                bool isFunction = (type & CoffTypeDerivedMask) == CoffTypeFunction;
                // A section's own symbol (.text, .data, ...) is static, untyped and carries an auxiliary record.
                if (storageClass == CoffClassStatic && !isFunction && auxCount > 0) continue;
                if (section > p.Sections.Length) throw image.Invalid("COFF symbol " + symbol + " is in section " + section + ", which does not exist");
                var s = p.Sections[section - 1];
                // Labels at a section's end (e.g. __data_end__) are names, but no function starts there.
                if (value > (uint)Math.Max(s.VirtualSize, s.SizeOfRawData) || isFunction && value >= (uint)s.VirtualSize) continue;
                string name = CoffName(image, table, r, strings, symbol);
                if (name.Length == 0) continue;
                p.Symbols.Add(new CoffSymbol
                {
                    Name = name,
                    Rva = (uint)s.VirtualAddress + value,
                    Section = section - 1,
                    IsFunction = isFunction,
                    IsExternal = storageClass == CoffClassExternal,
                });
            }
        }

        private static string CoffName(ImageReader image, byte[] table, int record, byte[] strings, uint symbol)
        {
            if (U32(table, record) != 0)
            {
                int length = 0;
                while (length < 8 && table[record + length] != 0) length++;
                return Encoding.UTF8.GetString(table, record, length);
            }
            uint offset = U32(table, record + 4);
            if (offset < 4 || offset >= strings.Length) throw image.Invalid("the name of COFF symbol " + symbol + " is outside the string table");
            int end = Array.IndexOf(strings, (byte)0, (int)offset, Math.Min(strings.Length - (int)offset, MaxNameLength + 1));
            if (end < 0) throw image.Invalid("the name of COFF symbol " + symbol + " is not terminated within " + MaxNameLength + " bytes");
            image.ChargeName(end - (int)offset, "the name of COFF symbol " + symbol);
            return Encoding.UTF8.GetString(strings, (int)offset, end - (int)offset);
        }

        private static ushort U16(byte[] b, int p) => (ushort)(b[p] | b[p + 1] << 8);
        private static uint U32(byte[] b, int p) => (uint)(b[p] | b[p + 1] << 8 | b[p + 2] << 16 | b[p + 3] << 24);

        /// <summary>Bounds-checked reads at RVAs (through PEReader's section mapping) and at file offsets.</summary>
        private sealed class ImageReader
        {
            private readonly Stream _stream;
            private readonly string _source;
            private readonly bool _loaded;

            public ImageReader(PEReader pe, Stream stream, string source, bool loaded)
            {
                Pe = pe;
                _stream = stream;
                _source = source;
                _loaded = loaded;
                Length = (ulong)stream.Length;
                _nameBudget = 2 * Length + 4096;
            }

            /// <summary>
            /// Bytes of names still allowed. Each name is bounded, but every entry of a large name table (exports, COFF
            /// symbols) may point into the same long string, which would copy it once per entry: gigabytes from a small
            /// file. Real names and forwarders lie side by side in the image, so they add up to less than it.
            /// </summary>
            private ulong _nameBudget;

            public PEReader Pe { get; }
            public ulong Length { get; }

            public ModuleFormatException Invalid(string reason) => new ModuleFormatException(ModuleFormat.Pe, _source, reason);

            public BlobReader At(uint rva, ulong length, string what)
            {
                if (length == 0) return default;
                var block = Section(rva, what);
                if ((ulong)block.Length < length) throw Invalid(what + " runs past the end of its section" + (_loaded ? "" : "'s data in the file"));
                return block.GetReader(0, (int)length);
            }

            public string CString(uint rva, string what)
            {
                var block = Section(rva, what);
                var reader = block.GetReader(0, Math.Min(block.Length, MaxNameLength + 1));
                int length = reader.IndexOf(0);
                if (length < 0) throw Invalid(what + " is not terminated within its section or " + MaxNameLength + " bytes");
                ChargeName(length, what);
                return reader.ReadUTF8(length);
            }

            public void ChargeName(int length, string what)
            {
                if ((ulong)length > _nameBudget)
                    throw Invalid(what + " takes the names read past twice the image's size: its tables point many names into the same long string");
                _nameBudget -= (ulong)length;
            }

            private PEMemoryBlock Section(uint rva, string what)
            {
                var block = rva <= int.MaxValue ? Pe.GetSectionData((int)rva) : default;
                if (block.Length == 0) throw Invalid(what + " (at RVA 0x" + rva.ToString("x") + ") is not in any section's data");
                return block;
            }

            public byte[] ReadFile(ulong offset, ulong count, string what) =>
                ModuleFile.ReadExact(_stream, Length, offset, count, what, Invalid);
        }
    }
}
