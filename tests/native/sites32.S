# sites.S for 32-bit x86 (i686 mingw, the WoW64 tests under Wine): the same functions and the same cases,
# with the argument in eax (target.c declares them regparm(1) on i386) where sites.S has edi. What differs from
# x64 is what the engine must get right for x86: absolute addresses (with base relocations) where x64 is
# RIP-relative, no .pdata (function bounds come from the COFF symbols), and 4-byte stack slots.
#define FUNC(name) .globl _##name; .def _##name; .scl 2; .type 32; .endef; _##name:
#define ENDFUNC(name)
        .intel_syntax noprefix

        .data
        .globl _g_value
_g_value: .long 40
        .text

# int rip_first(int x) { return g_value + x; }  -- the first instruction holds an absolute address (relocated).
        FUNC(rip_first)
        add eax, dword ptr [_g_value]          # 03 05 abs32 (6 bytes)
        ret
        ENDFUNC(rip_first)

# int short_jcc(int x) { return x == 0 ? 2 : x + 1; }  -- a short jcc inside the span.
        FUNC(short_jcc)
        test eax, eax                          # 85 c0
        je 1f                                  # 74 xx
        lea eax, [eax + 1]                     # 8d 40 01
        ret
1:      mov eax, 2
        ret
        ENDFUNC(short_jcc)

# int triple(int x) { return 3 * x + 1; }
        FUNC(triple)
        lea eax, [eax + eax*2]                 # 8d 04 40
        add eax, 1                             # 83 c0 01
        ret
        ENDFUNC(triple)

# int branch_into(int x)  -- a later jump lands on byte 2, inside any 5-byte span.
        FUNC(branch_into)
        mov ecx, eax                           # 89 c1
        xor eax, eax                           # 31 c0   <- not a target
2:      add eax, ecx                           # 01 c8   <- target of the jl below (byte 4)
        add eax, 1
        cmp eax, 100
        jl 2b
        ret
        ENDFUNC(branch_into)

# int call_inside(int x)  -- `call ecx` returns into the middle of any span that covers it.
        FUNC(call_inside)
        lea ecx, [_ret_x]                      # 8d 0d abs32
        call ecx                               # ff d1
        nop
        nop
        nop
        ret
        ENDFUNC(call_inside)

        FUNC(ret_x)
        ret
        ENDFUNC(ret_x)

# int tiny(void)  -- shorter than a jump.
        FUNC(tiny)
        xor eax, eax
        ret
        ENDFUNC(tiny)

# void park_fn(void)  -- no portable blocking call here: spins on pause.
        FUNC(park_fn)
3:      pause
        jmp 3b
        ENDFUNC(park_fn)

# int loop_first(int x)  -- LOOP's target is the span's end; LOOP has no near form to relocate to.
        FUNC(loop_first)
        loop 5f                                # e2 03
        nop
        nop
        nop
5:      ret
        ENDFUNC(loop_first)

# void spin_fn(int *count)  -- spins inside its own first 9 bytes forever, counting each round in *count.
        FUNC(spin_fn)
6:      inc dword ptr [eax]                    # ff 00
        pause                                  # f3 90
        .byte 0xe9                             # jmp rel32 back to byte 0
        .long 6b - (. + 4)
        ENDFUNC(spin_fn)
