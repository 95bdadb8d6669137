using System.Security;
using System.Text;

namespace HotpatchTools.Engine.Modules
{
    /// <summary>
    /// An ELF executable or shared object (x86-64 or i386, little-endian): its build-id and defined symbols, at RVAs.
    /// Only the headers, notes and symbol tables are read, so a large library costs little more than a small one.
    /// </summary>
    internal sealed class ElfImage : IModuleImage
    {
        internal const byte SttObject = 1, SttFunc = 2, SttSection = 3, SttFile = 4, SttTls = 6, SttGnuIfunc = 10;
        private const byte StbLocal = 0;
        private const ushort EtExec = 2, EtDyn = 3;
        private const ushort EmI386 = 3, EmX86_64 = 62;
        private const uint PtLoad = 1, PtDynamic = 2, PtNote = 4, PtGnuEhFrame = 0x6474e550;
        private const uint PfX = 1;
        private const ulong DtNull = 0, DtSoname = 14;
        private const uint ShtProgbits = 1, ShtSymtab = 2, ShtStrtab = 3, ShtDynamic = 6, ShtNote = 7, ShtNobits = 8, ShtDynsym = 11, ShtGnuVersym = 0x6fffffff;
        private const ushort VersymHidden = 0x8000;
        private const ushort ShnUndef = 0, ShnAbs = 0xfff1, ShnCommon = 0xfff2, ShnXindex = 0xffff, PnXnum = 0xffff;
        private const uint NtGnuBuildId = 3;
        private const ulong PageMask = 0xfff;

        private readonly ElfSymbol[] _symbols;
        private readonly Dictionary<string, int> _byName;
        /// <summary>Indexes into <see cref="symbols"/> of functions with a size, sorted by start.</summary>
        private readonly int[] _functions;
        /// <summary>maxEnd[i] = the largest end among functions[0..i], to stop the backward search for containing ranges.</summary>
        private readonly ulong[] _maxEnd;

        /// <summary>.eh_frame FDE ranges, sorted by start, with the running maximum of their ends.</summary>
        private readonly ulong[] _fdeStarts, _fdeEnds, _fdeMaxEnd;
        private readonly Parts _parts;

        /// <summary>What a file holds besides its symbols, kept so that a debug file's symbols can be added to it.</summary>
        private sealed class Parts
        {
            public int Bitness;
            public ushort ElfType;
            public string? BuildId, Soname, DebugLink;
            public List<(ulong Start, ulong End)> Fdes = new List<(ulong, ulong)>();
            public List<CodeSegment> Code = new List<CodeSegment>();
            public List<(ulong Offset, ulong VirtualAddress, ulong FileSize, ulong MemorySize, uint Flags)> Loads = new List<(ulong, ulong, ulong, ulong, uint)>();
        }

        private ElfImage(Parts parts, ElfSymbol[] symbols, string? debugFile)
        {
            _parts = parts;
            Bitness = parts.Bitness;
            ElfType = parts.ElfType;
            BuildId = parts.BuildId;
            Soname = parts.Soname;
            DebugLink = parts.DebugLink;
            DebugFile = debugFile;
            CodeSegments = parts.Code.AsReadOnly();
            LoadSegments = parts.Loads.AsReadOnly();
            _symbols = symbols;
            Symbols = Array.AsReadOnly(symbols);

            _byName = new Dictionary<string, int>(StringComparer.Ordinal);
            var functionList = new List<int>();
            for (int i = 0; i < symbols.Length; i++)
            {
                var symbol = symbols[i];
                if (!_byName.TryGetValue(symbol.Name, out int best) || ResolveRank(symbol) > ResolveRank(symbols[best]))
                    _byName[symbol.Name] = i;
                if (symbol.IsFunction && symbol.Size != 0 && symbol.Rva + symbol.Size > symbol.Rva)
                    functionList.Add(i);
            }
            _functions = functionList.ToArray();
            var starts = new ulong[_functions.Length];
            for (int i = 0; i < _functions.Length; i++) starts[i] = symbols[_functions[i]].Rva;
            Array.Sort(starts, _functions);
            _maxEnd = new ulong[_functions.Length];
            for (int i = 0; i < _functions.Length; i++)
            {
                var f = symbols[_functions[i]];
                _maxEnd[i] = Math.Max(i == 0 ? 0 : _maxEnd[i - 1], f.Rva + f.Size);
            }

            var fdes = parts.Fdes;
            fdes.Sort((a, b) => a.Start.CompareTo(b.Start));
            _fdeStarts = new ulong[fdes.Count];
            _fdeEnds = new ulong[fdes.Count];
            _fdeMaxEnd = new ulong[fdes.Count];
            for (int i = 0; i < fdes.Count; i++)
            {
                _fdeStarts[i] = fdes[i].Start;
                _fdeEnds[i] = fdes[i].End;
                _fdeMaxEnd[i] = Math.Max(i == 0 ? 0 : _fdeMaxEnd[i - 1], fdes[i].End);
            }
        }

        /// <summary>
        /// This image with the symbols of its separate debug file (whose build-id the caller has checked) added:
        /// its .symtab names the static functions a stripped distribution library no longer lists.
        /// </summary>
        public ElfImage WithDebugSymbols(ElfImage debug, string debugPath)
        {
            if (debug == null) throw new ArgumentNullException(nameof(debug));
            var merged = new List<ElfSymbol>(_symbols);
            var seen = new HashSet<(string, ulong, ulong)>();
            foreach (var s in _symbols) seen.Add((s.Name, s.Rva, s.Size));
            foreach (var s in debug._symbols)
                if (seen.Add((s.Name, s.Rva, s.Size))) merged.Add(s);
            return new ElfImage(_parts, merged.ToArray(), debugPath);
        }

        public static ElfImage Load(string path)
        {
            return ModuleFile.Read(path, _stream => Read(_stream, path));
        }

        public static ElfImage Parse(byte[] data, string sourceName)
        {
            if (data == null) throw new ArgumentNullException(nameof(data));
            if (sourceName == null) throw new ArgumentNullException(nameof(sourceName));
            using (var _stream = new MemoryStream(data, false))
                return Read(_stream, sourceName);
        }

        public ModuleFormat Format => ModuleFormat.Elf;
        public int Bitness { get; }
        public string? BuildId { get; }
        public uint? TimeDateStamp => null;
        public uint? SizeOfImage => null;

        /// <summary>DT_SONAME, the name the dynamic linker and ldd know a library by (libz.so.1); null when absent.</summary>
        public string? Soname { get; }

        /// <summary>The file name in .gnu_debuglink; null when absent.</summary>
        public string? DebugLink { get; }

        /// <summary>The separate debug file whose symbols were added, or null.</summary>
        public string? DebugFile { get; }

        /// <summary>Executable PT_LOAD segments: where the code of each RVA lies in the file.</summary>
        public IReadOnlyList<CodeSegment> CodeSegments { get; }

        /// <summary>
        /// Every PT_LOAD, as read from the program header table this reader checked (extended numbering included), each
        /// within the file: what a loader maps, for the offline image. Addresses are the file's, not RVAs.
        /// </summary>
        public IReadOnlyList<(ulong Offset, ulong VirtualAddress, ulong FileSize, ulong MemorySize, uint Flags)> LoadSegments { get; }

        /// <summary>Number of .eh_frame FDEs read.</summary>
        public int FdeCount => _fdeStarts.Length;

        /// <summary>e_type: 2 (ET_EXEC) or 3 (ET_DYN).</summary>
        public ushort ElfType { get; }

        /// <summary>Defined symbols of .dynsym then .symtab; a symbol in both tables is listed once.</summary>
        public IReadOnlyList<ElfSymbol> Symbols { get; }

        public bool TryResolveSymbol(string name, out ulong rva)
        {
            if (name != null && _byName.TryGetValue(name, out int i))
            {
                rva = _symbols[i].Rva;
                return true;
            }
            rva = 0;
            return false;
        }

        /// <summary>The symbol a name resolves to (as <see cref="TryResolveSymbol"/> picks it), with its size.</summary>
        public bool TryGetSymbol(string name, out ElfSymbol symbol)
        {
            bool found = name != null && _byName.TryGetValue(name, out int i);
            symbol = found ? _symbols[_byName[name!]] : default;
            return found;
        }

        public bool TryGetFunctionBounds(ulong rva, out ulong startRva, out ulong endRva, out string? name)
        {
            int lo = 0, hi = _functions.Length;
            while (lo < hi)
            {
                int mid = lo + (hi - lo) / 2;
                if (_symbols[_functions[mid]].Rva <= rva) lo = mid + 1; else hi = mid;
            }

            int best = -1;
            for (int i = lo - 1; i >= 0 && _maxEnd[i] > rva; i--)
            {
                int candidate = _functions[i];
                var f = _symbols[candidate];
                if (rva >= f.Rva + f.Size) continue;
                if (best < 0 || f.Size < _symbols[best].Size
                    || f.Size == _symbols[best].Size && (f.IsGlobal && !_symbols[best].IsGlobal
                        || f.IsGlobal == _symbols[best].IsGlobal && candidate < best))
                    best = candidate;
            }

            if (best < 0)
            {
                name = null;
                return TryGetFde(rva, out startRva, out endRva);
            }
            startRva = _symbols[best].Rva;
            endRva = startRva + _symbols[best].Size;
            name = _symbols[best].Name;
            return true;
        }

        /// <summary>The smallest .eh_frame FDE range containing rva (FDEs do not overlap in a sane file; a hostile one may).</summary>
        private bool TryGetFde(ulong rva, out ulong startRva, out ulong endRva)
        {
            int lo = 0, hi = _fdeStarts.Length;
            while (lo < hi)
            {
                int mid = lo + (hi - lo) / 2;
                if (_fdeStarts[mid] <= rva) lo = mid + 1; else hi = mid;
            }
            int best = -1;
            for (int i = lo - 1; i >= 0 && _fdeMaxEnd[i] > rva; i--)
                if (rva < _fdeEnds[i] && (best < 0 || _fdeEnds[i] - _fdeStarts[i] < _fdeEnds[best] - _fdeStarts[best])) best = i;
            startRva = best < 0 ? 0 : _fdeStarts[best];
            endRva = best < 0 ? 0 : _fdeEnds[best];
            return best >= 0;
        }

        /// <summary>The .eh_frame FDE ranges, sorted by start.</summary>
        public IEnumerable<(ulong Start, ulong End)> FdeRanges()
        {
            for (int i = 0; i < _fdeStarts.Length; i++) yield return (_fdeStarts[i], _fdeEnds[i]);
        }

        /// <summary>Every function range the file describes: symbols with a size, then .eh_frame FDEs.</summary>
        public IEnumerable<(ulong Start, ulong End)> FunctionRanges()
        {
            foreach (int i in _functions) yield return (_symbols[i].Rva, _symbols[i].Rva + _symbols[i].Size);
            for (int i = 0; i < _fdeStarts.Length; i++) yield return (_fdeStarts[i], _fdeEnds[i]);
        }

        /// <summary>
        /// The default version of a versioned name (what the dynamic linker binds an unversioned reference to, e.g.
        /// memcpy@@GLIBC_2.14 over memcpy@GLIBC_2.2.5), then typed symbols over untyped labels, then exported over
        /// file-local; ties keep table order, .dynsym first.
        /// </summary>
        private static int ResolveRank(ElfSymbol symbol)
        {
            bool typed = symbol.Type == SttFunc || symbol.Type == SttGnuIfunc || symbol.Type == SttObject;
            return (symbol.IsHiddenVersion ? 0 : 4) + (typed ? 2 : 0) + (symbol.IsGlobal ? 1 : 0);
        }

        private struct Section
        {
            public string Name;
            public uint Type;
            public ulong Address, Offset, Size, EntrySize, Alignment;
            public uint Link;
        }

        private struct Segment
        {
            public uint Type, Flags;
            public ulong Offset, VirtualAddress, FileSize, MemorySize, Alignment;
        }

        private static ElfImage Read(Stream stream, string source)
        {
            var file = new FileReader(stream, source);
            if (file.Length < 16) throw file.Invalid("the file is too short for an ELF header");
            var ident = file.Read(0, 16, "the ELF identification");
            if (ident[0] != 0x7f || ident[1] != (byte)'E' || ident[2] != (byte)'L' || ident[3] != (byte)'F')
                throw file.Invalid("bad magic (expected 7f 45 4c 46)");
            bool is64;
            switch (ident[4])
            {
                case 1: is64 = false; break;
                case 2: is64 = true; break;
                default: throw file.Invalid("unknown ELF class " + ident[4]);
            }
            if (ident[5] != 1) throw file.Invalid("only little-endian ELF is supported (EI_DATA is " + ident[5] + ")");

            var header = file.Read(0, is64 ? 64u : 52u, "the ELF header");
            ushort type = U16(header, 16), machine = U16(header, 18);
            if (type != EtExec && type != EtDyn)
                throw file.Invalid("e_type " + type + " is neither an executable (ET_EXEC) nor a shared object (ET_DYN)");
            if (machine != (is64 ? EmX86_64 : EmI386))
                throw file.Invalid("e_machine " + machine + " is not " + (is64 ? "x86-64" : "i386") + " for a " + (is64 ? 64 : 32) + "-bit file");

            ulong phOffset = Word(is64, header, 0, 32, 28);
            ulong shOffset = Word(is64, header, 0, 40, 32);
            int o = is64 ? 54 : 42;
            ushort phEntrySize = U16(header, o), phCount16 = U16(header, o + 2);
            ushort shEntrySize = U16(header, o + 4), shCount16 = U16(header, o + 6), shStringIndex16 = U16(header, o + 8);

            var sections = ReadSections(file, is64, shOffset, shEntrySize, shCount16, shStringIndex16, out ulong extendedPhCount);
            ulong phCount = phCount16 == PnXnum && sections.Length > 0 ? extendedPhCount : phCount16;
            var segments = ReadSegments(file, is64, phOffset, phEntrySize, phCount);

            ulong loadBase = LoadBase(file, segments);
            var parts = new Parts { Bitness = is64 ? 64 : 32, ElfType = type };
            parts.BuildId = FindBuildId(file, sections, segments);
            parts.Soname = FindSoname(file, is64, sections);
            parts.DebugLink = FindDebugLink(file, sections);
            parts.Fdes = ReadFdes(file, is64, sections, segments, loadBase);
            foreach (var s in segments)
                if (s.Type == PtLoad) parts.Loads.Add((s.Offset, s.VirtualAddress, s.FileSize, s.MemorySize, s.Flags));
            foreach (var s in segments)
                if (s.Type == PtLoad && (s.Flags & PfX) != 0 && s.FileSize > 0 && s.VirtualAddress >= loadBase)
                    parts.Code.Add(new CodeSegment(s.VirtualAddress - loadBase, s.Offset, s.FileSize));
            var symbols = ReadSymbols(file, is64, sections, loadBase);
            return new ElfImage(parts, symbols, null);
        }

        private static string? FindSoname(FileReader file, bool is64, Section[] sections)
        {
            foreach (var s in sections)
            {
                if (s.Type != ShtDynamic) continue;
                if (s.Link >= sections.Length || sections[s.Link].Type != ShtStrtab) return null;
                var dynamic = file.ReadSection(s, "the dynamic section");
                int entry = is64 ? 16 : 8;
                for (int p = 0; p + entry <= dynamic.Length; p += entry)
                {
                    ulong tag = Word(is64, dynamic, p, 0, 0);
                    if (tag == DtNull) break;
                    if (tag != DtSoname) continue;
                    ulong value = Word(is64, dynamic, p, 8, 4);
                    if (value > uint.MaxValue) throw file.Invalid("DT_SONAME is outside the dynamic string table");
                    var strings = file.ReadSection(sections[s.Link], "the dynamic string table");
                    return CString(file, strings, (uint)value, "DT_SONAME");
                }
                return null;
            }
            return null;
        }

        private static string? FindDebugLink(FileReader file, Section[] sections)
        {
            foreach (var s in sections)
            {
                if (s.Name != ".gnu_debuglink" || s.Type != ShtProgbits) continue;
                var data = file.ReadSection(s, "the .gnu_debuglink section");
                if (data.Length == 0) return null;
                string name = CString(file, data, 0, "the .gnu_debuglink file name");
                // A name, not a path: it is looked up in fixed directories, and must not climb out of them.
                return name.Length == 0 || name.IndexOf('/') >= 0 || name == "." || name == ".." ? null : name;
            }
            return null;
        }

        /// <summary>Largest .eh_frame read: far above any real library's (glibc's is ~200 KB), far below memory trouble.</summary>
        private const ulong MaxEhFrame = 64 << 20;

        /// <summary>
        /// .eh_frame by its section header; without section headers (a sstrip-ed file), through PT_GNU_EH_FRAME:
        /// .eh_frame_hdr's eh_frame_ptr locates it, and the terminator or the end of its segment ends it.
        /// </summary>
        private static List<(ulong, ulong)> ReadFdes(FileReader file, bool is64, Section[] sections, Segment[] segments, ulong loadBase)
        {
            foreach (var s in sections)
            {
                if (s.Name != ".eh_frame" || s.Type != ShtProgbits) continue;
                if (s.Size > MaxEhFrame) throw file.Invalid(".eh_frame is larger than " + (MaxEhFrame >> 20) + " MB");
                return EhFrame.Parse(file.ReadSection(s, "the .eh_frame section"), s.Address, loadBase, is64, file.Invalid);
            }
            if (sections.Length > 0) return new List<(ulong, ulong)>();
            foreach (var h in segments)
            {
                if (h.Type != PtGnuEhFrame || h.FileSize < 8) continue;
                var hdr = file.Read(h.Offset, Math.Min(h.FileSize, 16), "the .eh_frame_hdr header");
                if (hdr[0] != 1) return new List<(ulong, ulong)>();
                long pos = 4;
                ulong? frame = EhFrame.ReadEncoded(hdr, ref pos, hdr.Length, hdr[1], h.VirtualAddress + 4, is64);
                if (frame == null) return new List<(ulong, ulong)>();
                foreach (var load in segments)
                {
                    if (load.Type != PtLoad || frame.Value < load.VirtualAddress || frame.Value - load.VirtualAddress >= load.FileSize) continue;
                    ulong skip = frame.Value - load.VirtualAddress;
                    ulong count = Math.Min(load.FileSize - skip, MaxEhFrame);
                    return EhFrame.Parse(file.Read(load.Offset + skip, count, "the .eh_frame section"), frame.Value, loadBase, is64, file.Invalid);
                }
                throw file.Invalid(".eh_frame_hdr points to 0x" + frame.Value.ToString("x") + ", which no PT_LOAD maps from the file");
            }
            return new List<(ulong, ulong)>();
        }

        private static Section[] ReadSections(FileReader file, bool is64, ulong offset, ushort entrySize, ushort count16,
            ushort stringIndex16, out ulong extendedPhCount)
        {
            extendedPhCount = 0;
            if (offset == 0) return new Section[0];
            uint minEntry = is64 ? 64u : 40u;
            if (entrySize < minEntry) throw file.Invalid("e_shentsize " + entrySize + " is smaller than a section header");

            // Section 0 carries the real counts when they do not fit in the ELF header (extended numbering).
            var first = file.Read(offset, minEntry, "section header 0");
            ulong count = count16 == 0 ? Word(is64, first, 0, 32, 20) : count16;
            ulong stringIndex = stringIndex16 == ShnXindex ? U32(first, is64 ? 40 : 24) : stringIndex16;
            extendedPhCount = U32(first, is64 ? 44 : 28);
            if (count == 0) return new Section[0];
            if (count > (file.Length - Math.Min(offset, file.Length)) / entrySize)
                throw file.Invalid("the section header table (" + count + " entries at 0x" + offset.ToString("x") + ") lies outside the file");

            var table = file.Read(offset, count * entrySize, "the section header table");
            var sections = new Section[count];
            for (ulong i = 0; i < count; i++)
            {
                int p = (int)(i * entrySize);
                ref var s = ref sections[i];
                s.Name = "";
                s.Type = U32(table, p + 4);
                s.Address = Word(is64, table, p, 16, 12);
                s.Offset = Word(is64, table, p, 24, 16);
                s.Size = Word(is64, table, p, 32, 20);
                s.Link = U32(table, p + (is64 ? 40 : 24));
                s.Alignment = Word(is64, table, p, 48, 32);
                s.EntrySize = Word(is64, table, p, 56, 36);
                if (s.Type != ShtNobits && s.Type != 0 && (s.Offset > file.Length || s.Size > file.Length - s.Offset))
                    throw file.Invalid("section " + i + " lies outside the file");
            }

            if (stringIndex != ShnUndef)
            {
                if (stringIndex >= count) throw file.Invalid("e_shstrndx " + stringIndex + " is not a section");
                var names = file.ReadSection(sections[stringIndex], "the section name table");
                for (ulong i = 0; i < count; i++)
                    sections[i].Name = CString(file, names, U32(table, (int)(i * entrySize)), "section " + i + " name");
            }
            return sections;
        }

        private static Segment[] ReadSegments(FileReader file, bool is64, ulong offset, ushort entrySize, ulong count)
        {
            if (offset == 0 || count == 0) throw file.Invalid("there are no program headers");
            uint minEntry = is64 ? 56u : 32u;
            if (entrySize < minEntry) throw file.Invalid("e_phentsize " + entrySize + " is smaller than a program header");
            if (count > (file.Length - Math.Min(offset, file.Length)) / entrySize)
                throw file.Invalid("the program header table lies outside the file");

            var table = file.Read(offset, count * entrySize, "the program header table");
            var segments = new Segment[count];
            for (ulong i = 0; i < count; i++)
            {
                int p = (int)(i * entrySize);
                ref var s = ref segments[i];
                s.Type = U32(table, p);
                s.Flags = U32(table, p + (is64 ? 4 : 24));
                s.Offset = Word(is64, table, p, 8, 4);
                s.VirtualAddress = Word(is64, table, p, 16, 8);
                s.FileSize = Word(is64, table, p, 32, 16);
                s.MemorySize = Word(is64, table, p, 40, 20);
                s.Alignment = Word(is64, table, p, 48, 28);
                if ((s.Type == PtLoad || s.Type == PtNote) && (s.Offset > file.Length || s.FileSize > file.Length - s.Offset))
                    throw file.Invalid("segment " + i + " lies outside the file");
            }
            return segments;
        }

        /// <summary>The address where file offset 0 is mapped, so that RVA = vaddr - base (IModuleImage's convention).</summary>
        private static ulong LoadBase(FileReader file, Segment[] segments)
        {
            ulong? lowest = null;
            foreach (var s in segments)
            {
                if (s.Type != PtLoad) continue;
                if (s.Offset == 0) return s.VirtualAddress & ~PageMask;
                if (lowest == null || s.VirtualAddress < lowest) lowest = s.VirtualAddress;
            }
            if (lowest == null) throw file.Invalid("there is no PT_LOAD segment");
            return lowest.Value & ~PageMask;
        }

        private static string? FindBuildId(FileReader file, Section[] sections, Segment[] segments)
        {
            foreach (var s in sections)
                if (s.Type == ShtNote && s.Name == ".note.gnu.build-id")
                    return FindBuildIdNote(file, file.ReadSection(s, "the .note.gnu.build-id section"), s.Alignment);
            foreach (var s in segments)
            {
                if (s.Type != PtNote) continue;
                var id = FindBuildIdNote(file, file.Read(s.Offset, s.FileSize, "a PT_NOTE segment"), s.Alignment);
                if (id != null) return id;
            }
            return null;
        }

        private static string? FindBuildIdNote(FileReader file, byte[] notes, ulong alignment)
        {
            // Notes are 4-aligned, except in the 8-aligned note sections some linkers emit (e.g. .note.gnu.property).
            ulong align = alignment == 8 ? 8u : 4u;
            ulong pos = 0, length = (ulong)notes.Length;
            // The last note may end unpadded at the end of its section: pos then lies past the end, and ends the walk.
            while (pos < length && length - pos >= 12)
            {
                int p = (int)pos;
                ulong nameSize = U32(notes, p), descSize = U32(notes, p + 4);
                uint type = U32(notes, p + 8);
                // As binutils reads them: the descriptor starts where the 12-byte header and the name end, aligned; in an
                // 8-aligned ELF64 note that is 16 bytes in for "GNU\0", not 12 plus the name rounded up to 8.
                ulong descStart = pos + AlignUp(12 + nameSize, align);
                if (descStart > length || descSize > length - descStart)
                    throw file.Invalid("a note runs past the end of its section");
                if (type == NtGnuBuildId && nameSize == 4 && notes[p + 12] == (byte)'G' && notes[p + 13] == (byte)'N'
                    && notes[p + 14] == (byte)'U' && notes[p + 15] == 0)
                {
                    if (descSize == 0) throw file.Invalid("the GNU build-id note is empty");
                    var sb = new StringBuilder((int)descSize * 2);
                    for (ulong i = 0; i < descSize; i++) sb.Append(notes[(int)(descStart + i)].ToString("x2"));
                    return sb.ToString();
                }
                pos = descStart + AlignUp(descSize, align);
            }
            return null;
        }

        private static ulong AlignUp(ulong value, ulong align) => (value + align - 1) & ~(align - 1);

        private static ElfSymbol[] ReadSymbols(FileReader file, bool is64, Section[] sections, ulong loadBase)
        {
            var result = new List<ElfSymbol>();
            var seen = new HashSet<(string, ulong, ulong)>();
            // .dynsym first: its names are the exported ones, which win ties in TryResolveSymbol.
            foreach (uint tableType in new[] { ShtDynsym, ShtSymtab })
            {
                for (int t = 0; t < sections.Length; t++)
                {
                    var table = sections[t];
                    if (table.Type != tableType) continue;
                    string what = (tableType == ShtDynsym ? "the dynamic symbol table" : "the symbol table") + " (section " + t + ")";
                    uint minEntry = is64 ? 24u : 16u;
                    ulong entrySize = table.EntrySize == 0 ? minEntry : table.EntrySize;
                    if (entrySize < minEntry || entrySize > int.MaxValue) throw file.Invalid(what + " has entry size " + table.EntrySize);
                    if (table.Link >= sections.Length || sections[table.Link].Type != ShtStrtab)
                        throw file.Invalid(what + " does not link to a string table");
                    var data = file.ReadSection(table, what);
                    var strings = file.ReadSection(sections[table.Link], "the string table of " + what);
                    ulong count = (ulong)data.Length / entrySize;
                    var versions = ReadVersions(file, sections, t, count);
                    for (ulong i = 1; i < count; i++)
                    {
                        int p = (int)(i * entrySize);
                        uint nameOffset = U32(data, p);
                        byte info = data[p + (is64 ? 4 : 12)];
                        ushort sectionIndex = U16(data, p + (is64 ? 6 : 14));
                        ulong value = Word(is64, data, p, 8, 4), size = Word(is64, data, p, 16, 8);
                        byte type = (byte)(info & 0xf);
                        // Undefined, absolute (version names, file names) and common symbols have no address in the
                        // image, TLS ones only an offset in the TLS block, section symbols no name.
                        if (sectionIndex == ShnUndef || sectionIndex == ShnAbs || sectionIndex == ShnCommon
                            || type == SttSection || type == SttFile || type == SttTls || value < loadBase)
                            continue;
                        string name = CString(file, strings, nameOffset, what + " entry " + i + " name");
                        if (name.Length == 0 || !seen.Add((name, value, size))) continue;
                        bool hidden = versions != null && (U16(versions, (int)(2 * i)) & VersymHidden) != 0;
                        result.Add(new ElfSymbol(name, value - loadBase, size, type, info >> 4 != StbLocal, hidden));
                    }
                }
            }
            return result.ToArray();
        }

        /// <summary>The .gnu.version entries (one 16-bit word per symbol) of symbol table section <paramref name="table"/>, if any.</summary>
        private static byte[]? ReadVersions(FileReader file, Section[] sections, int table, ulong count)
        {
            foreach (var s in sections)
            {
                if (s.Type != ShtGnuVersym || s.Link != table) continue;
                var versions = file.ReadSection(s, "the symbol version table");
                if ((ulong)versions.Length < 2 * count)
                    throw file.Invalid("the symbol version table has fewer entries than its symbol table");
                return versions;
            }
            return null;
        }

        private static string CString(FileReader file, byte[] table, uint offset, string what)
        {
            if (offset >= table.Length) throw file.Invalid(what + " is outside its string table");
            int end = Array.IndexOf(table, (byte)0, (int)offset);
            if (end < 0) throw file.Invalid(what + " is not terminated");
            file.ChargeName(end - (int)offset, what);
            return Encoding.UTF8.GetString(table, (int)offset, end - (int)offset);
        }

        private static ushort U16(byte[] b, int p) => (ushort)(b[p] | b[p + 1] << 8);
        private static uint U32(byte[] b, int p) => (uint)(b[p] | b[p + 1] << 8 | b[p + 2] << 16 | b[p + 3] << 24);
        private static ulong U64(byte[] b, int p) => U32(b, p) | (ulong)U32(b, p + 4) << 32;

        /// <summary>
        /// An address-sized field (Addr, Off, Xword): 8 bytes at <paramref name="at64"/> in ELF64, 4 at
        /// <paramref name="at32"/> in ELF32. The classes differ in widths and order, not meaning, so one reader serves both.
        /// </summary>
        private static ulong Word(bool is64, byte[] b, int p, int at64, int at32) => is64 ? U64(b, p + at64) : U32(b, p + at32);

        /// <summary>Bounds-checked reads, so that no offset or count in a corrupt file can index out of range or over-allocate.</summary>
        private sealed class FileReader(Stream stream, string source)
        {
            private readonly Stream _stream = stream;
            private readonly string _source = source;

            public ulong Length { get; } = (ulong)stream.Length;

            public ModuleFormatException Invalid(string reason) => new ModuleFormatException(ModuleFormat.Elf, _source, reason);

            /// <summary>
            /// Bytes of names still allowed. Every symbol may name the same long string (at the same or a later offset), so
            /// without a bound on their sum a small file makes the reader copy its string table once per symbol: gigabytes.
            /// Real names lie side by side in their tables (sharing at most a suffix), so they add up to less than the file.
            /// </summary>
            private ulong _nameBudget = 2 * (ulong)stream.Length + 4096;

            public void ChargeName(int length, string what)
            {
                if ((ulong)length > _nameBudget)
                    throw Invalid(what + " takes the names read past twice the file's size: its tables point many names into the same long string");
                _nameBudget -= (ulong)length;
            }

            public byte[] ReadSection(Section section, string what) =>
                section.Type == ShtNobits ? new byte[0] : Read(section.Offset, section.Size, what);

            /// <summary>
            /// The most bytes read from one file. Each table is read once or twice, but a section header table may list the
            /// same large table thousands of times (each one read and walked: hours from a 10 MB file), and a sparse file
            /// may claim tables of gigabytes that read as zeros; an honest file needs a small multiple of its size, and no
            /// module's symbol tables come near a gigabyte.
            /// </summary>
            private readonly ulong _readLimit = Math.Min(3 * (ulong)stream.Length + (1 << 20), (ulong)ModuleFile.MaxHashBytes);
            private ulong _read;

            public byte[] Read(ulong offset, ulong count, string what)
            {
                // Past the file's end is the more telling error, which ReadExact gives.
                if (offset <= Length && count <= Length - offset && count > _readLimit - _read)
                    throw Invalid(what + " takes the bytes read past " + (_readLimit == (ulong)ModuleFile.MaxHashBytes ? "1 GiB, more than any module's tables"
                        : "three times the file's size: its headers point many tables at the same data"));
                var bytes = ModuleFile.ReadExact(_stream, Length, offset, count, what, Invalid);
                _read += count;
                return bytes;
            }
        }
    }
}
