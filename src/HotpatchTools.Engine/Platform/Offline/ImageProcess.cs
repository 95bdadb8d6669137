using System.Reflection.PortableExecutable;
using System.Security.Cryptography;
using HotpatchTools.Engine.Modules;

namespace HotpatchTools.Engine.Platform.Offline
{
    /// <summary>
    /// A process that exists only in memory: one module file laid out as the OS loader maps it, and nothing
    /// running. The engine plans, installs and removes patches in it exactly as in a live process, which makes
    /// it the way to check a patch against a module file ("or on disk, for offline checks"), also for an
    /// architecture or OS this machine cannot run.
    /// <para>
    /// PE: the headers and each section's raw data at ImageBase + VirtualAddress, the rest of SizeOfImage zero;
    /// loaded at its preferred base, so no base relocation applies. ELF: each PT_LOAD at its page-aligned
    /// address, the part past p_filesz zero; an executable (ET_EXEC) at its link-time addresses, a shared
    /// object or PIE at <see cref="ElfBase32"/> or <see cref="ElfBase64"/>, where Linux puts a PIE.
    /// No dynamic relocation is applied (position-independent code needs none in its text; a text relocation
    /// keeps its link-time value), no import is bound and no other module is loaded, so a patch naming
    /// `module!symbol` of another module cannot be assembled here.
    /// </para>
    /// </summary>
    internal sealed class ImageProcess : ITargetProcess
    {
        /// <summary>The process id it answers to: any positive id would do, as the cmdlets accept only those.</summary>
        public const int ProcessId = 1;
        public const ulong ElfBase32 = 0x5655_5000, ElfBase64 = 0x5555_5555_4000;

        private const uint PfX = 1, PfW = 2, PfR = 4;
        private const ushort EtExec = 2;

        private readonly ImageMemory _memory;
        private readonly Enumerator _modules;
        private readonly ThreadController _threads;

        /// <summary>Reads and maps the file now; later changes to the file are not seen.</summary>
        /// <param name="path">The module file.</param>
        /// <param name="moduleName">The module's name, where the path does not end in it (a file reached through /proc/PID/map_files).</param>
        /// <param name="debugFiles">Whether to look up the ELF file's separate debug file (its symbols name static functions).</param>
        public ImageProcess(string path, string? moduleName = null, bool debugFiles = true)
        {
            if (path == null) throw new ArgumentNullException(nameof(path));
            string fullPath = System.IO.Path.GetFullPath(path);
            var file = ModuleFile.Read(fullPath, ReadAll);
            Name = moduleName ?? System.IO.Path.GetFileName(fullPath);
            bool isPe = file.Length >= 2 && file[0] == 'M' && file[1] == 'Z';
            bool isElf = file.Length >= 4 && file[0] == 0x7f && file[1] == 'E' && file[2] == 'L' && file[3] == 'F';
            if (!isPe && !isElf)
                throw new HotpatchException(HotpatchErrorKind.Internal, fullPath + ": neither a PE (MZ) nor an ELF file.");

            Image = isPe ? PeImage.Parse(file, fullPath) : debugFiles ? DebugFiles.Attach(ElfImage.Parse(file, fullPath), fullPath) : ElfImage.Parse(file, fullPath);
            Bitness = Image.Bitness;
            _memory = new ImageMemory(this, Bitness);
            ulong moduleBase, moduleEnd;
            if (isPe) MapPe(file, fullPath, out moduleBase, out moduleEnd);
            else MapElf(file, fullPath, (ElfImage)Image, out moduleBase, out moduleEnd);

            string sha256;
            using (var sha = SHA256.Create()) sha256 = Hex.Lower(sha.ComputeHash(file));
            var module = new LoadedModule
            {
                Name = Name, Path = fullPath, ReadablePath = fullPath, Base = moduleBase, End = moduleEnd,
                Key = "offline:" + sha256 + ":" + fullPath,
            };
            _modules = new Enumerator(module, Image, sha256);
            _threads = new ThreadController(this);
        }

        public int Id => ProcessId;

        /// <summary>The module's file name.</summary>
        public string Name { get; }

        /// <summary>The module's: 32 for PE32 and ELFCLASS32, 64 for PE32+ and ELFCLASS64.</summary>
        public int Bitness { get; }

        public bool HasExited => false;

        /// <summary>The parsed module file, as <see cref="IModuleEnumerator.OpenImage"/> returns it.</summary>
        public IModuleImage Image { get; }

        /// <summary>The one module, as <see cref="IModuleEnumerator.GetModules"/> lists it.</summary>
        public LoadedModule Module => _modules.Module;

        /// <summary>
        /// Where the threads of this imagined process stand; every <see cref="IThreadController.Freeze"/> reports
        /// them. Empty by default. A thread placed inside a span, or with a stack holding a return address into a
        /// cave, shows what the engine does when a live process has one there.
        /// </summary>
        public IList<ThreadSnapshot> SimulatedThreads { get; } = new List<ThreadSnapshot>();

        public IProcessMemory Memory => _memory;
        public IModuleEnumerator Modules => _modules;
        public IThreadController Threads => _threads;

        /// <summary>
        /// Releases nothing: the address space lives as long as this object, so that, as with a live process,
        /// the next session that opens it finds what an earlier one installed.
        /// </summary>
        public void Dispose() { }

        private static byte[] ReadAll(FileStream stream)
        {
            if (stream.Length > int.MaxValue) throw new HotpatchException(HotpatchErrorKind.Internal, stream.Name + ": larger than 2 GiB.");
            var bytes = new byte[stream.Length];
            int done = 0, n;
            while (done < bytes.Length && (n = stream.Read(bytes, done, bytes.Length - done)) > 0) done += n;
            if (done != bytes.Length) throw new IOException("the file shrank while it was read");
            return bytes;
        }

        private void MapPe(byte[] file, string path, out ulong imageBase, out ulong imageEnd)
        {
            // PeImage.Parse has validated the headers and that every section lies within SizeOfImage and the file.
            using var pe = new PEReader(new MemoryStream(file, false));
            var headers = pe.PEHeaders;
            var optional = headers.PEHeader!;
            imageBase = optional.ImageBase;
            imageEnd = imageBase + (ulong)optional.SizeOfImage;
            if (imageEnd > _memory.AddressLimit || imageEnd <= imageBase)
                throw new ModuleFormatException(ModuleFormat.Pe, path, "ImageBase 0x" + imageBase.ToString("x") + " + SizeOfImage does not fit in the address space");

            // The loader reserves all of SizeOfImage; what no section covers keeps the headers' read-only protection.
            int sizeOfImage = optional.SizeOfImage;
            _memory.Map(imageBase, (ulong)sizeOfImage, file, 0, Math.Min(Math.Min(optional.SizeOfHeaders, sizeOfImage), file.Length),
                readable: true, writable: false, executable: false, path);
            foreach (var s in headers.SectionHeaders)
            {
                // A VirtualSize of 0 means SizeOfRawData, as the loader reads it.
                int size = Math.Min(s.VirtualSize != 0 ? s.VirtualSize : s.SizeOfRawData, sizeOfImage - s.VirtualAddress);
                int raw = Math.Max(0, Math.Min(Math.Min(size, s.SizeOfRawData), file.Length - s.PointerToRawData));
                var c = s.SectionCharacteristics;
                _memory.Map(imageBase + (ulong)s.VirtualAddress, (ulong)size, file, s.PointerToRawData, raw,
                    (c & SectionCharacteristics.MemRead) != 0, (c & SectionCharacteristics.MemWrite) != 0, (c & SectionCharacteristics.MemExecute) != 0, path);
            }
        }

        private void MapElf(byte[] file, string path, ElfImage image, out ulong moduleBase, out ulong moduleEnd)
        {
            // The PT_LOADs ElfImage.Parse read and checked (each within the file): reading the table again here, without
            // its extended numbering (e_phnum 0xffff: the count is in section 0), read past the end of the file.
            bool is64 = image.Bitness == 64;
            var loads = image.LoadSegments.Select(l => (l.Offset, Vaddr: l.VirtualAddress, l.FileSize, MemSize: l.MemorySize, l.Flags)).ToList();
            if (loads.Count == 0) throw new ModuleFormatException(ModuleFormat.Elf, path, "there is no PT_LOAD segment");

            // The same anchor as ElfImage's RVAs: where file offset 0 is mapped, else the lowest segment.
            const ulong pageMask = ImageMemory.PageSize - 1;
            var anchorSegment = loads.Any(l => l.Offset == 0) ? loads.First(l => l.Offset == 0) : loads.OrderBy(l => l.Vaddr).First();
            ulong anchor = anchorSegment.Vaddr & ~pageMask;
            moduleBase = image.ElfType == EtExec ? anchor : is64 ? ElfBase64 : ElfBase32;
            moduleEnd = moduleBase;
            ulong limit = _memory.AddressLimit;
            foreach (var l in loads)
            {
                ulong pageOffset = l.Vaddr & pageMask;
                bool fits = l.Vaddr >= anchor && moduleBase < limit && l.Vaddr - anchor < limit - moduleBase
                    && l.MemSize <= Math.Min(int.MaxValue - pageOffset, limit - moduleBase - (l.Vaddr - anchor));
                if (!fits || l.MemSize < l.FileSize || (l.Offset & pageMask) != pageOffset)
                    throw new ModuleFormatException(ModuleFormat.Elf, path,
                        "the PT_LOAD at 0x" + l.Vaddr.ToString("x") + " cannot be mapped (offset, size or address out of line)");
                ulong start = moduleBase + (l.Vaddr - anchor);
                // As mmap does: whole pages from the file, so the bytes before vaddr in its first page come along.
                _memory.Map(start - pageOffset, pageOffset + l.MemSize, file, (int)(l.Offset - pageOffset), (int)(pageOffset + l.FileSize),
                    (l.Flags & PfR) != 0, (l.Flags & PfW) != 0, (l.Flags & PfX) != 0, path);
                moduleEnd = Math.Max(moduleEnd, (start + l.MemSize + pageMask) & ~pageMask);
            }
        }

        private sealed class Enumerator : IModuleEnumerator
        {
            private readonly IModuleImage _image;
            private readonly string _sha256;

            public Enumerator(LoadedModule module, IModuleImage image, string sha256)
            {
                Module = module;
                _image = image;
                _sha256 = sha256;
            }

            public LoadedModule Module { get; }

            public IReadOnlyList<LoadedModule> GetModules() => new[] { Module };

            public IModuleImage OpenImage(LoadedModule module) => IsMine(module) ? _image : throw NotMine(module);

            /// <summary>Of the bytes that were loaded, which are the file's unless it changed since.</summary>
            public string ComputeSha256(LoadedModule module) => IsMine(module) ? _sha256 : throw NotMine(module);
            public string ReadablePath(LoadedModule module) => IsMine(module) ? module.ReadablePath : throw NotMine(module);

            private bool IsMine(LoadedModule module) => module != null && module.Key == Module.Key;

            private HotpatchException NotMine(LoadedModule module) =>
                new HotpatchException(HotpatchErrorKind.ModuleNotLoaded, "Module " + module?.Name + " is not loaded in the offline image of " + Module.Name + ".") { ProcessId = ProcessId };
        }

        private sealed class ThreadController : IThreadController
        {
            private readonly ImageProcess _process;

            public ThreadController(ImageProcess process) { _process = process; }

            public IFrozenProcess Freeze(TimeSpan timeout) => new Frozen(_process.SimulatedThreads.ToList());

            // Allocating in an image stops nothing.
            public bool AllocateWithinFreeze => false;
        }

        private sealed class Frozen : IFrozenProcess
        {
            public Frozen(IReadOnlyList<ThreadSnapshot> threads) { Threads = threads; }
            public IReadOnlyList<ThreadSnapshot> Threads { get; }
            // An image on disk has no threads to hold.
            public TimeSpan Held => TimeSpan.Zero;
            public void Dispose() { }
        }
    }
}
