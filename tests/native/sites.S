# Functions with exactly known bytes, one per engine case, written once for x86-64 and for i386 (the WoW64
# target under Wine, and the offline 32-bit images of x86offline.S). Byte comments give x64 / i386 where the
# two encodings differ. Each function declares its bounds the way a real module does: .type/.size (ELF symbol
# sizes), .seh_proc (a PE x64 .pdata entry), or nothing on i386 PE (bounds come from the COFF symbols).
#
# What differs between the ISAs is only this, named here once:
#   ARG      the int argument as it arrives: edi (System V, as target.c calls on x64), eax (regparm(1) on i386)
#   ARGP     that register at pointer size, for addressing through it
#   TMP      a pointer-size register the functions may clobber that is not ARG (on i386 eax holds the argument)
#   ADDR(s)  a memory operand naming s: RIP-relative on x64, an absolute (base-relocated) address on i386
#   SYM(s)   s as the object file spells it: i386 PE prefixes C symbols with an underscore
#if defined(__x86_64__)
#define ARG edi
#define ARGP rdi
#define TMP rax
#define ADDR(s) [rip + s]
#else
#define ARG eax
#define ARGP eax
#define TMP ecx
#define ADDR(s) [SYM(s)]
#endif
#if defined(_WIN32) && defined(__i386__)
#define SYM(name) _##name
#else
#define SYM(name) name
#endif
#if defined(_WIN32) && defined(__x86_64__)
#define FUNC(name) .globl name; .def name; .scl 2; .type 32; .endef; .seh_proc name; name: .seh_endprologue
#define ENDFUNC(name) .seh_endproc
#elif defined(_WIN32)
#define FUNC(name) .globl SYM(name); .def SYM(name); .scl 2; .type 32; .endef; SYM(name):
#define ENDFUNC(name)
#else
#define FUNC(name) .globl name; .type name, @function; name:
#define ENDFUNC(name) .size name, .-name
#endif
        .intel_syntax noprefix

        .data
        .globl SYM(g_value)
SYM(g_value): .long 40
        .text

# int rip_first(int x) { return g_value + x; }  -- the first instruction addresses g_value: RIP-relative on x64,
# an absolute address (relocated) on i386, which has no RIP-relative form.
        FUNC(rip_first)
#if defined(__x86_64__)
        mov eax, dword ptr ADDR(g_value)       # 8b 05 rel32 (6 bytes)
        add eax, ARG                           # 01 f8
#else
        add eax, dword ptr ADDR(g_value)       # 03 05 abs32 (6 bytes)
#endif
        ret
        ENDFUNC(rip_first)

# int short_jcc(int x) { return x == 0 ? 2 : x + 1; }  -- a short jcc inside the span.
        FUNC(short_jcc)
        test ARG, ARG                          # 85 ff / 85 c0
        je 1f                                  # 74 04
        lea eax, [ARGP + 1]                    # 8d 47 01 / 8d 40 01
        ret
1:      mov eax, 2
        ret
        ENDFUNC(short_jcc)

# int triple(int x) { return 3 * x + 1; }  -- the stress and demo-style site.
        FUNC(triple)
        lea eax, [ARGP + ARGP*2]               # 8d 04 7f / 8d 04 40
        add eax, 1                             # 83 c0 01
        ret
        ENDFUNC(triple)

# int branch_into(int x)  -- a later jump lands inside any 5-byte span: on byte 2 on x64, on byte 4 on i386,
# which first moves x out of eax, where the sum is kept.
        FUNC(branch_into)
#if defined(__x86_64__)
#define BRANCH_X ARG
#else
        mov ecx, eax                           #       / 89 c1
#define BRANCH_X ecx
#endif
        xor eax, eax                           # 31 c0
2:      add eax, BRANCH_X                      # 01 f8 / 01 c8   <- the target of the jl below
        add eax, 1                             # 83 c0 01
        cmp eax, 100
        jl 2b
        ret
        ENDFUNC(branch_into)

# int call_inside(int x)  -- the indirect call returns into the middle of any span that covers it.
        FUNC(call_inside)
        lea TMP, ADDR(ret_x)                   # 48 8d 05 rel32 / 8d 0d abs32
        call TMP                               # ff d0 / ff d1
        nop
        nop
        nop
        ret
        ENDFUNC(call_inside)

        FUNC(ret_x)
        mov eax, ARG                           # 89 f8 / 89 c0 (x is in eax already: a no-op)
        ret
        ENDFUNC(ret_x)

# int tiny(void)  -- shorter than a jump: the span would run past its end.
        FUNC(tiny)
        xor eax, eax
        ret
        ENDFUNC(tiny)

# void park_fn(void)  -- x64: blocks in pause(), its resume point (the syscall) inside the span. i386 has no
# blocking call to make here (no libc, no system call convention of its own under WoW64): it spins on pause.
        FUNC(park_fn)
#if defined(__x86_64__)
        xor eax, eax                           # 31 c0
        mov al, 34                             # b0 22   (SYS_pause)
        syscall                                # 0f 05
        ret
#else
3:      pause
        jmp 3b
#endif
        ENDFUNC(park_fn)

# int loop_first(int x)  -- LOOP target is the span end: outside the copied bytes, and LOOP has no near form to
# relocate to.
        FUNC(loop_first)
        loop 5f                                # e2 03
        nop
        nop
        nop
5:      mov eax, ARG
        ret
        ENDFUNC(loop_first)

# void spin_fn(int *count)  -- spins inside its own first 9 bytes forever, counting each round in *count: a
# count that moves proves a thread is in the loop, on any OS, without stopping it. The loop is exactly the span
# a jump overwrites (the rel32 jmp crosses byte 5), and its only branch lands on the first byte of the span,
# which is allowed; the thread sits mostly on the pause, strictly inside the span.
        FUNC(spin_fn)
6:      inc dword ptr [ARGP]                   # ff 07 / ff 00
        pause                                  # f3 90
        .byte 0xe9                             # jmp rel32 back to byte 0 (e9 f7 ff ff ff)
        .long 6b - (. + 4)
        ENDFUNC(spin_fn)

#if !defined(_WIN32)
        .section .note.GNU-stack,"",@progbits
#endif
