using HotpatchTools.Engine.Platform.Offline;

namespace HotpatchTools.Tests.Support
{
    /// <summary>
    /// One 32-bit source with exactly known bytes (tests/native/x86offline.S: the sites of sites.S assembled for i386,
    /// and a few functions of its own), built three ways: a PE32 DLL (MinGW), an ELF32 executable and an ELF32 shared
    /// object (binutils). No 32-bit process can run here, so the engine patches them offline.
    /// </summary>
    public sealed class X86Images : IDisposable
    {
        public const string Pe = "pe", ElfExec = "elf-exec", ElfShared = "elf-shared";

        private readonly Dictionary<string, string> _paths = new Dictionary<string, string>();
        private readonly Dictionary<string, Dictionary<string, ulong>> _symbols = new Dictionary<string, Dictionary<string, ulong>>();

        public X86Images()
        {
            Dir = Directory.CreateTempSubdirectory("x86offline-").FullName;
            string source = Path.Combine(NativeBuild.NativeDir, "x86offline.S"), obj = Path.Combine(Dir, "sites32.o");
            _paths[Pe] = Path.Combine(Dir, "sites32.dll");
            _paths[ElfExec] = Path.Combine(Dir, "sites32");
            _paths[ElfShared] = Path.Combine(Dir, "libsites32.so");
            // -nostdlib: only that code in .text, so every function bound comes from one of its symbols.
            NativeBuild.Run(PeSamples.Gcc32, "-shared", "-nostdlib", "-Wl,--export-all-symbols", "-Wl,-e,_entry", "-o", _paths[Pe], source);
            NativeBuild.Run("gcc", "-m32", "-c", "-o", obj, source);
            NativeBuild.Run("ld", "-m", "elf_i386", "-e", "entry", "-o", _paths[ElfExec], obj);
            // -Bsymbolic binds call_first's call at link time; abs_mem's absolute operand still needs a text
            // relocation, which nothing here applies (see Unrelocated).
            NativeBuild.Run("ld", "-m", "elf_i386", "-shared", "-Bsymbolic", "-z", "notext", "-o", _paths[ElfShared], obj);

            foreach (var kind in _paths.Keys)
            {
                string nm = kind == Pe ? PeSamples.Prefix32 + "nm" : "nm";
                ulong bias = kind == ElfShared ? ImageProcess.ElfBase32 : 0;
                _symbols[kind] = NativeBuild.Run(nm, "--defined-only", _paths[kind]).Split('\n', StringSplitOptions.RemoveEmptyEntries)
                    .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(f => f.Length == 3)
                    .GroupBy(f => kind == Pe && f[2].StartsWith("_") ? f[2].Substring(1) : f[2])
                    .ToDictionary(g => g.Key, g => Convert.ToUInt64(g.First()[0], 16) + bias);
            }
        }

        public string Dir { get; }

        public string PathOf(string kind) => _paths[kind];

        /// <summary>nm's address of a symbol, where the offline image puts it: PE and ET_EXEC at link-time addresses.</summary>
        public ulong Va(string kind, string symbol) => _symbols[kind][symbol];

        public void Dispose() => Directory.Delete(Dir, true);
    }
}
