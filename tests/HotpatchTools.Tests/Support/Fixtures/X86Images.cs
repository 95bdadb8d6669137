using HotpatchTools.Engine.Platform.Offline;

namespace HotpatchTools.Tests.Support
{
    /// <summary>
    /// One 32-bit source with exactly known bytes, built three ways: a PE32 DLL (MinGW), an ELF32 executable and
    /// an ELF32 shared object (binutils). No 32-bit process can run here, so the engine patches them offline.
    /// </summary>
    public sealed class X86Images : IDisposable
    {
        public const string Pe = "pe", ElfExec = "elf-exec", ElfShared = "elf-shared";

        // Each function's bytes are in the comments; # comments only after code, where cpp leaves them alone.
        private const string Source = @"
#if defined(_WIN32)
#define SYM(name) _##name
#define FUNC(name) .globl SYM(name); .def SYM(name); .scl 2; .type 32; .endef; SYM(name):
#define ENDFUNC(name)
#else
#define SYM(name) name
#define FUNC(name) .globl name; .type name, @function; name:
#define ENDFUNC(name) .size name, .-name
#endif
        .intel_syntax noprefix
        .data
        .globl SYM(g_value)
SYM(g_value): .long 40
        .text

FUNC(entry)
        mov eax, 1
        ret 12
ENDFUNC(entry)

FUNC(callee)
        mov eax, [esp+4]                # 8b 44 24 04
        add eax, 7                      # 83 c0 07
        ret                             # c3
ENDFUNC(callee)

FUNC(call_first)
        call SYM(callee)                # e8 rel32: returns to the end of a 5-byte span
        add eax, 1                      # 83 c0 01
        ret
ENDFUNC(call_first)

FUNC(short_jcc)
        xor eax, eax                    # 31 c0
        test ecx, ecx                   # 85 c9
        je 1f                           # 74 04     to byte 10
        lea eax, [ecx+1]                # 8d 41 01
        ret                             # c3
1:      mov eax, 2                      # b8 02 00 00 00
        ret
ENDFUNC(short_jcc)

FUNC(abs_mem)
        mov eax, dword ptr [SYM(g_value)]  # a1 abs32
        add eax, [esp+4]                # 03 44 24 04
        ret
ENDFUNC(abs_mem)

FUNC(guarded)
        mov eax, [esp+4]                # 8b 44 24 04
        lea eax, [eax+eax*2]            # 8d 04 40
        ret
ENDFUNC(guarded)

FUNC(branch_into)
        xor eax, eax                    # 31 c0
2:      add eax, ecx                    # 01 c8     the jl below lands here, on byte 2 of the span
        add eax, 1                      # 83 c0 01
        cmp eax, 100
        jl 2b
        ret
ENDFUNC(branch_into)

FUNC(call_inside)
        call ecx                        # ff d1     returns to byte 2 of the span
        nop
        nop
        nop
        ret
ENDFUNC(call_inside)

FUNC(loop_out)
        loop 3f                         # e2 06     leaves the span, and loop has no rel32 form
        mov eax, 1                      # b8 01 00 00 00
        ret
3:      xor eax, eax
        ret
ENDFUNC(loop_out)

FUNC(tiny)
        xor eax, eax                    # 31 c0
        ret                             # c3        3 bytes: a jump would run into after_tiny
ENDFUNC(tiny)

FUNC(after_tiny)
        mov eax, 1
        ret
ENDFUNC(after_tiny)

FUNC(last)
        ret
ENDFUNC(last)
";

        private readonly Dictionary<string, string> _paths = new Dictionary<string, string>();
        private readonly Dictionary<string, Dictionary<string, ulong>> _symbols = new Dictionary<string, Dictionary<string, ulong>>();

        public X86Images()
        {
            Dir = Directory.CreateTempSubdirectory("x86offline-").FullName;
            string source = Path.Combine(Dir, "sites32.S"), obj = Path.Combine(Dir, "sites32.o");
            File.WriteAllText(source, Source);
            _paths[Pe] = Path.Combine(Dir, "sites32.dll");
            _paths[ElfExec] = Path.Combine(Dir, "sites32");
            _paths[ElfShared] = Path.Combine(Dir, "libsites32.so");
            // -nostdlib: only this code in .text, so every function bound comes from a symbol above.
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
