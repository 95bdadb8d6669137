# Functions with exactly known bytes, one per engine case. Each declares its bounds the way
# a real module does: .type/.size (ELF symbol sizes) or .seh_proc (a PE x64 .pdata entry).
#if defined(_WIN32)
#define FUNC(name) .globl name; .def name; .scl 2; .type 32; .endef; .seh_proc name; name: .seh_endprologue
#define ENDFUNC(name) .seh_endproc
#else
#define FUNC(name) .globl name; .type name, @function; name:
#define ENDFUNC(name) .size name, .-name
#endif
        .intel_syntax noprefix
        .text

        .data
        .globl g_value
g_value: .long 40
        .text

# int rip_first(int x) { return g_value + x; }  -- the first instruction is RIP-relative.
        FUNC(rip_first)
        mov eax, dword ptr [rip + g_value]     # 8b 05 rel32 (6 bytes)
        add eax, edi
        ret
        ENDFUNC(rip_first)

# int short_jcc(int x) { return x == 0 ? 2 : x + 1; }  -- a short jcc inside the span.
        FUNC(short_jcc)
        test edi, edi                          # 85 ff
        je 1f                                  # 74 xx
        lea eax, [rdi + 1]                     # 8d 47 01
        ret
1:      mov eax, 2
        ret
        ENDFUNC(short_jcc)

# int triple(int x) { return 3 * x + 1; }  -- the stress and demo-style site.
        FUNC(triple)
        lea eax, [rdi + rdi*2]                 # 8d 04 7f
        add eax, 1                             # 83 c0 01
        ret
        ENDFUNC(triple)

# int branch_into(int x)  -- a later jump lands on byte 2, inside any 5-byte span.
        FUNC(branch_into)
        xor eax, eax                           # 31 c0
2:      add eax, edi                           # 01 f8   <- target of the jne below
        add eax, 1                             # 83 c0 01
        cmp eax, 100
        jl 2b
        ret
        ENDFUNC(branch_into)

# int call_inside(int x)  -- `call rax` returns into the middle of any span that covers it.
        FUNC(call_inside)
        lea rax, [rip + ret_x]                 # 48 8d 05 rel32
        call rax                               # ff d0
        nop
        nop
        nop
        ret
        ENDFUNC(call_inside)

        FUNC(ret_x)
        mov eax, edi
        ret
        ENDFUNC(ret_x)

# int tiny(void)  -- shorter than a jump: the span would run past its end.
        FUNC(tiny)
        xor eax, eax
        ret
        ENDFUNC(tiny)

# void park_fn(void)  -- blocks in pause(); its resume point (the syscall) lies inside the span.
        FUNC(park_fn)
        xor eax, eax                           # 31 c0
        mov al, 34                             # b0 22   (SYS_pause)
        syscall                                # 0f 05
        ret
        ENDFUNC(park_fn)

# int loop_first(int x)  -- LOOP's target is the span's end: outside the copied bytes, and
# LOOP has no near form to relocate to.
        FUNC(loop_first)
        loop 5f                                # e2 03
        nop
        nop
        nop
5:      mov eax, edi
        ret
        ENDFUNC(loop_first)

# void spin_fn(int *count)  -- spins inside its own first 9 bytes forever, counting each round in *count: a
# count that moves proves a thread is in the loop, on any OS, without stopping it. The loop is exactly the span
# a jump overwrites (the rel32 jmp crosses byte 5), and its only branch lands on the span's first byte, which is
# allowed; the thread sits mostly on the pause, strictly inside the span.
        FUNC(spin_fn)
6:      inc dword ptr [rdi]                    # ff 07
        pause                                  # f3 90
        .byte 0xe9                             # jmp rel32 back to byte 0 (e9 f7 ff ff ff)
        .long 6b - (. + 4)
        ENDFUNC(spin_fn)

#if !defined(_WIN32)
        .section .note.GNU-stack,"",@progbits
#endif
