# The 32-bit images the offline tests patch (X86Images: a PE32 DLL, an ELF32 executable and an ELF32 shared
# object, linked with -nostdlib so that every function bound comes from a symbol here): every site of sites.S,
# and after them the functions only those tests use, which take their argument on the stack.
#include "sites.S"
        .intel_syntax noprefix
        .text

# The DLL entry point (DllMain, stdcall with 12 bytes of arguments) and the ELF entry point.
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

FUNC(abs_mem)
        mov eax, dword ptr ADDR(g_value)   # a1 abs32
        add eax, [esp+4]                # 03 44 24 04
        ret
ENDFUNC(abs_mem)

FUNC(guarded)
        mov eax, [esp+4]                # 8b 44 24 04
        lea eax, [eax+eax*2]            # 8d 04 40
        ret
ENDFUNC(guarded)

#if !defined(_WIN32)
        .section .note.GNU-stack,"",@progbits
#endif
