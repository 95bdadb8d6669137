# A shared library the fault tests dlopen() into faulttarget and dlclose() again (Linux only).
        .intel_syntax noprefix
        .text
# int lib_triple(int x) { return 3 * x + 1; }  -- the same bytes as sites.S triple.
        .globl lib_triple
        .type lib_triple, @function
lib_triple:
        lea eax, [rdi + rdi*2]                 # 8d 04 7f
        add eax, 1                             # 83 c0 01
        ret
        .size lib_triple, .-lib_triple
        .section .note.GNU-stack,"",@progbits
