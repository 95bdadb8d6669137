# Functions with exactly known bytes, one per engine case. Each has .type/.size so the
# engine knows its bounds, as it would from a real library's symbol table.
        .intel_syntax noprefix
        .text

        .data
        .globl g_value
g_value: .long 40
        .text

# int rip_first(int x) { return g_value + x; }  -- the first instruction is RIP-relative.
        .globl rip_first
        .type rip_first, @function
rip_first:
        mov eax, dword ptr [rip + g_value]     # 8b 05 rel32 (6 bytes)
        add eax, edi
        ret
        .size rip_first, .-rip_first

# int short_jcc(int x) { return x == 0 ? 2 : x + 1; }  -- a short jcc inside the span.
        .globl short_jcc
        .type short_jcc, @function
short_jcc:
        test edi, edi                          # 85 ff
        je 1f                                  # 74 xx
        lea eax, [rdi + 1]                     # 8d 47 01
        ret
1:      mov eax, 2
        ret
        .size short_jcc, .-short_jcc

# int triple(int x) { return 3 * x + 1; }  -- the stress and demo-style site.
        .globl triple
        .type triple, @function
triple:
        lea eax, [rdi + rdi*2]                 # 8d 04 7f
        add eax, 1                             # 83 c0 01
        ret
        .size triple, .-triple

# int branch_into(int x)  -- a later jump lands on byte 2, inside any 5-byte span.
        .globl branch_into
        .type branch_into, @function
branch_into:
        xor eax, eax                           # 31 c0
2:      add eax, edi                           # 01 f8   <- target of the jne below
        add eax, 1                             # 83 c0 01
        cmp eax, 100
        jl 2b
        ret
        .size branch_into, .-branch_into

# int call_inside(int x)  -- `call rax` returns into the middle of any span that covers it.
        .globl call_inside
        .type call_inside, @function
call_inside:
        lea rax, [rip + ret_x]                 # 48 8d 05 rel32
        call rax                               # ff d0
        nop
        nop
        nop
        ret
        .size call_inside, .-call_inside

        .globl ret_x
        .type ret_x, @function
ret_x:
        mov eax, edi
        ret
        .size ret_x, .-ret_x

# int tiny(void)  -- shorter than a jump: the span would run past its end.
        .globl tiny
        .type tiny, @function
tiny:
        xor eax, eax
        ret
        .size tiny, .-tiny

# void park_fn(void)  -- blocks in pause(); its resume point (the syscall) lies inside the span.
        .globl park_fn
        .type park_fn, @function
park_fn:
        xor eax, eax                           # 31 c0
        mov al, 34                             # b0 22   (SYS_pause)
        syscall                                # 0f 05
        ret
        .size park_fn, .-park_fn

# int loop_first(int x)  -- LOOP's target is the span's end: outside the copied bytes, and
# LOOP has no near form to relocate to.
        .globl loop_first
        .type loop_first, @function
loop_first:
        loop 5f                                # e2 03
        nop
        nop
        nop
5:      mov eax, edi
        ret
        .size loop_first, .-loop_first

        .section .note.GNU-stack,"",@progbits
