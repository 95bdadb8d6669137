/* Test target: runs the functions of sites.S on request and under load, so tests can
 * patch a live process and see its behaviour from outside. Protocol: one command a line
 * on stdin, one answer a line on stdout. */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(_WIN32)
#include <windows.h>
typedef HANDLE thread_t;
static void start_thread(thread_t *t, void *(*fn)(void *), void *arg) { *t = CreateThread(NULL, 0, (LPTHREAD_START_ROUTINE)(void *)fn, arg, 0, NULL); }
static void join_thread(thread_t t) { WaitForSingleObject(t, INFINITE); CloseHandle(t); }
static void sleep_ms(int ms) { Sleep(ms); }
static int my_pid(void) { return (int)GetCurrentProcessId(); }
#else
#include <pthread.h>
#include <unistd.h>
typedef pthread_t thread_t;
static void start_thread(thread_t *t, void *(*fn)(void *), void *arg) { pthread_create(t, NULL, fn, arg); }
static void join_thread(thread_t t) { pthread_join(t, NULL); }
static void sleep_ms(int ms) { usleep(ms * 1000); }
static int my_pid(void) { return getpid(); }
#endif

/* sites.S is written once for the System V calling convention (argument in edi); on Windows
 * the harness calls it that way too, so every patch and expected byte is the same on both.
 * Assembled for 32-bit x86 (the WoW64 tests) it takes the argument in eax. */
#if defined(__i386__)
#define SITE __attribute__((regparm(1)))
#else
#define SITE __attribute__((sysv_abi))
#endif
SITE int rip_first(int), short_jcc(int), triple(int), branch_into(int), call_inside(int), tiny(void), loop_first(int);
SITE void park_fn(void), spin_fn(volatile int *count);

static int call_by_name(const char *fn, int x, int *ok) {
    *ok = 1;
    if (!strcmp(fn, "rip_first")) return rip_first(x);
    if (!strcmp(fn, "short_jcc")) return short_jcc(x);
    if (!strcmp(fn, "triple")) return triple(x);
    if (!strcmp(fn, "branch_into")) return branch_into(x);
    if (!strcmp(fn, "call_inside")) return call_inside(x);
    if (!strcmp(fn, "tiny")) return tiny();
    if (!strcmp(fn, "loop_first")) return loop_first(x);
    *ok = 0;
    return 0;
}

/* long long: a plain long is 32 bits on Windows and would wrap under load. */
static atomic_llong calls, errors;
static atomic_int stop_flag;
static thread_t hammers[64];
static int hammer_count;

/* Every hammer thread checks each result against the function's original meaning. */
static void *hammer(void *arg) {
    unsigned seed = (unsigned)(size_t)arg;
    while (!atomic_load(&stop_flag)) {
        seed = seed * 1103515245u + 12345u;
        int x = (int)((seed >> 8) % 1000);
        if (triple(x) != 3 * x + 1) atomic_fetch_add(&errors, 1);
        if (short_jcc(x) != (x == 0 ? 2 : x + 1)) atomic_fetch_add(&errors, 1);
        if (rip_first(x) != 40 + x) atomic_fetch_add(&errors, 1);
        atomic_fetch_add(&calls, 1);
    }
    return NULL;
}

/* Patch upgrades: each call of rip_first(-1) is counted by the answer it got (39 original, 7 and 9 the two
 * patch versions of the tests, anything else), so a swap between versions shows whether a call saw neither. */
static atomic_llong tally[4];
static void *tallier(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_flag)) {
        int r = rip_first(-1);
        atomic_fetch_add(&tally[r == 39 ? 0 : r == 7 ? 1 : r == 9 ? 2 : 3], 1);
    }
    return NULL;
}

static void *park(void *arg) { (void)arg; for (;;) park_fn(); return NULL; }

/* Incremented only by spin_fn's loop, which never leaves its span (sites.S). */
static volatile int spin_count;

static void *spin(void *arg) { (void)arg; spin_fn(&spin_count); return NULL; }

static void *sleeper(void *arg) { (void)arg; for (;;) sleep_ms(1); return NULL; }

#if defined(_WIN32)
/* Wine's own DLLs under load: CompareStringEx runs kernelbase's static compare_string on every call. */
static int compare_ok(void) {
    return CompareStringEx(L"en-US", 0, L"apple", -1, L"banana", -1, NULL, NULL, 0) == CSTR_LESS_THAN
        && CompareStringEx(L"en-US", 0, L"banana", -1, L"apple", -1, NULL, NULL, 0) == CSTR_GREATER_THAN
        && CompareStringEx(L"en-US", NORM_IGNORECASE, L"Apple", -1, L"aPPLE", -1, NULL, NULL, 0) == CSTR_EQUAL;
}

static void *comparer(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_flag)) {
        if (!compare_ok()) atomic_fetch_add(&errors, 1);
        atomic_fetch_add(&calls, 1);
    }
    return NULL;
}
#endif

#if !defined(_WIN32)
/* Threads whose state an injected system call must leave exactly as it was: one blocked in read() (the call
 * must be restarted, never fail), one spinning with a pattern in its AVX registers (upper halves included). */
static int pipe_fds[2];
static atomic_llong pokes;

static void *pipewait(void *arg) {
    (void)arg;
    for (;;) {
        char c;
        if (read(pipe_fds[0], &c, 1) == 1) atomic_fetch_add(&pokes, 1);
        else atomic_fetch_add(&errors, 1);
    }
    return NULL;
}

static void *vecspin(void *arg) {
    (void)arg;
    static const unsigned long long pattern[4] = { 0x1122334455667788ULL, 0x99aabbccddeeff00ULL, 0x0123456789abcdefULL, 0xfedcba9876543210ULL };
    for (;;) {
        int mask;
        __asm__ volatile(
            "vmovdqu (%1), %%ymm8\n"
            "mov $50000000, %%ecx\n"
            "1: vpcmpeqq (%1), %%ymm8, %%ymm9\n"
            "vpmovmskb %%ymm9, %0\n"
            "cmp $-1, %0\n"
            "jne 2f\n"
            "dec %%ecx\n"
            "jnz 1b\n"
            "2: vzeroupper\n"
            : "=&r"(mask) : "r"(pattern) : "ecx", "xmm8", "xmm9", "cc", "memory");
        if (mask != -1) atomic_fetch_add(&errors, 1);
    }
    return NULL;
}
#endif

int main(void) {
    char line[256], fn[64];
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready %d\n", my_pid());
    while (fgets(line, sizeof line, stdin)) {
        int x = 0, n = 0, ok;
        if (sscanf(line, "call %63s %d", fn, &x) >= 1 && !strncmp(line, "call", 4)) {
            int r = call_by_name(fn, x, &ok);
            if (ok) printf("%d\n", r); else printf("unknown %s\n", fn);
        } else if (sscanf(line, "hammer %d", &n) == 1) {
            atomic_store(&stop_flag, 0);
            for (int i = 0; i < n && hammer_count < 64; i++) start_thread(&hammers[hammer_count++], hammer, (void *)(size_t)(i + 1));
            printf("ok\n");
        } else if (sscanf(line, "tally %d", &n) == 1) {
            atomic_store(&stop_flag, 0);
            for (int i = 0; i < 4; i++) atomic_store(&tally[i], 0);
            for (int i = 0; i < n && hammer_count < 64; i++) start_thread(&hammers[hammer_count++], tallier, NULL);
            printf("ok\n");
        } else if (!strncmp(line, "counts", 6)) {
            printf("%lld %lld %lld %lld\n", (long long)atomic_load(&tally[0]), (long long)atomic_load(&tally[1]), (long long)atomic_load(&tally[2]), (long long)atomic_load(&tally[3]));
        } else if (!strncmp(line, "calm", 4)) {
            atomic_store(&stop_flag, 1);
            while (hammer_count > 0) join_thread(hammers[--hammer_count]);
            printf("ok\n");
        } else if (sscanf(line, "sleepers %d", &n) == 1) {
            for (int i = 0; i < n; i++) { thread_t t; start_thread(&t, sleeper, NULL); }
            printf("ok\n");
        } else if (!strncmp(line, "park", 4)) {
            /* A thread that stays inside a span: blocked in a syscall (Linux) or spinning (any OS). "ok" only once
             * the spinning thread is proven inside its span (spin_count moved); a new thread may take long to
             * be scheduled on a loaded machine (under Wine it was not there yet 20 ms after it was created). */
            thread_t t;
            int spinning = strstr(line, "spin") != NULL;
            int before = spin_count;
            start_thread(&t, spinning ? spin : park, NULL);
            if (spinning) {
                int waited = 0;
                while (spin_count == before && waited < 30000) { sleep_ms(1); waited++; }
                printf(spin_count != before ? "ok\n" : "not spinning\n");
            } else {
                sleep_ms(20);
                printf("ok\n");
            }
#if defined(_WIN32)
        } else if (!strncmp(line, "winpid", 6)) {
            printf("%lu\n", (unsigned long)GetCurrentProcessId());
        } else if (sscanf(line, "module %63s", fn) == 1) {
            /* The loader's view, an oracle independent of the engine: a module's base, or an export's address. */
            char *bang = strchr(fn, '!');
            if (bang) *bang = 0;
            HMODULE m = GetModuleHandleA(fn);
            void *at = m && bang ? (void *)GetProcAddress(m, bang + 1) : (void *)m;
            printf("%llx\n", (unsigned long long)(size_t)at);
        } else if (sscanf(line, "comparers %d", &n) == 1) {
            atomic_store(&stop_flag, 0);
            for (int i = 0; i < n && hammer_count < 64; i++) start_thread(&hammers[hammer_count++], comparer, NULL);
            printf("ok\n");
        } else if (!strncmp(line, "compare", 7)) {
            printf("%d\n", compare_ok());
#endif
#if !defined(_WIN32)
        } else if (!strncmp(line, "pipewait", 8)) {
            thread_t t;
            if (pipe(pipe_fds) == 0) start_thread(&t, pipewait, NULL);
            printf("ok\n");
        } else if (!strncmp(line, "poke", 4)) {
            long long before = atomic_load(&pokes);
            if (write(pipe_fds[1], "x", 1) != 1) atomic_fetch_add(&errors, 1);
            for (int i = 0; i < 1000 && atomic_load(&pokes) == before; i++) sleep_ms(1);
            printf("%lld\n", (long long)atomic_load(&pokes));
        } else if (!strncmp(line, "vecspin", 7)) {
            thread_t t;
            start_thread(&t, vecspin, NULL);
            printf("ok\n");
#endif
        } else if (!strncmp(line, "stats", 5)) {
            printf("%lld %lld\n", (long long)atomic_load(&calls), (long long)atomic_load(&errors));
        } else if (!strncmp(line, "quit", 4)) {
            atomic_store(&stop_flag, 1);
            printf("bye\n");
            return 0;
        } else {
            printf("?\n");
        }
    }
    return 0;
}
