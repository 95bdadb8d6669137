# work_fn: a ~20 ns function with known first bytes for the call-overhead benchmark.
# int work_fn(int x): a chain of dependent multiplies; the loop target lies beyond the first 8 bytes.
        .intel_syntax noprefix
        .text
        .globl work_fn
        .type work_fn, @function
work_fn:
        mov eax, edi                           # 89 f8
        add eax, 1                             # 83 c0 01
        mov ecx, 20                            # b9 14 00 00 00
1:      imul eax, eax, 3
        add eax, 7
        dec ecx
        jnz 1b
        ret
        .size work_fn, .-work_fn

        .section .note.GNU-stack,"",@progbits
