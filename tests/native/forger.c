/* A hostile local process (Linux): it writes fake HotpatchTools cave headers into its own memory to make a
 * reader running as root allocate, loop or trust what it says. Driven over stdin like target.c:
 *   forge bighdr N     N one-page mappings, each a checksummed header claiming 1 MiB in a 4 KiB cave
 *   forge many N       N adjacent pages, each a complete and consistent one-page cave
 *   forge codelen      one cave whose site (at forged_site, holding its bytes) claims 2^31 bytes of code
 *   forge installed    one cave saying Installed for a site that still holds its original bytes
 *   map PATH           maps the first megabyte of a file read-only (a "module" under the file's name)
 *   mapmany DIR N      maps one page N times from a file whose path (made below DIR) is about 3,800 bytes long:
 *                      a /proc/PID/maps of N long lines (the mappings do not merge: each is at file offset 0)
 *   exec PATH ARGS     answers "ok", then runs another program under the same pid
 *   thread             starts a second thread that only waits (a process with one thread is patched differently)
 * Each answers "ok"; "call forged_site X" answers forged_site(X). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096u

static volatile int forged_bias = 1;

/* Starts with a RIP-relative load: a span the engine can detour (and relocate). */
__attribute__((noinline)) int forged_site(int x) {
    int b = forged_bias;
    return x * 3 + b;
}

static uint32_t fnv(const uint8_t *b, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (i >= 64 && i < 68 ? 0 : b[i])) * 16777619u;
    return h;
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* The fixed part and an id; returns the offset after the module name. */
static size_t header(uint8_t *p, uint32_t len, uint32_t cave_size, const char *id) {
    memcpy(p, "HPTCAVE1", 8);
    put32(p + 8, len);
    put32(p + 12, cave_size);
    put32(p + 16, 1); /* Installed */
    put32(p + 20, 0);
    put64(p + 24, 1767225600000ull);
    memset(p + 32, 0xab, 32);
    put32(p + 64, 0);
    size_t o = 68;
    p[o++] = (uint8_t)strlen(id);
    memcpy(p + o, id, strlen(id));
    o += strlen(id);
    p[o++] = 6;
    memcpy(p + o, "forger", 6);
    return o + 6;
}

static void trailer(uint8_t *cave, uint32_t size) {
    memcpy(cave + size - 16, "HPTCAVE1", 8);
    put32(cave + size - 8, size);
    put32(cave + size - 4, ~size);
}

static uint8_t *map_rw(size_t size) {
    uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Caves live in private anonymous r-x memory. */
static int seal(uint8_t *p, size_t size) { return mprotect(p, size, PROT_READ | PROT_EXEC); }

static int forge_bighdr(int n) {
    const uint32_t claimed = 1u << 20;
    /* Headers on every other page: each its own r-x mapping, the pages between read-only so none merge. */
    size_t size = (size_t)2 * n * PAGE + claimed;
    uint8_t *p = map_rw(size);
    if (!p) return -1;
    for (int i = 0; i < n; i++) {
        uint8_t *c = p + (size_t)2 * i * PAGE;
        size_t o = header(c, claimed, PAGE, "FORGED-BIG");
        c[o] = 0; c[o + 1] = 0; /* no sites */
    }
    /* Each checksum covers the next megabyte, later headers included: last first. */
    for (int i = n - 1; i >= 0; i--) put32(p + (size_t)2 * i * PAGE + 64, fnv(p + (size_t)2 * i * PAGE, claimed));
    for (int i = 0; i < n; i++) {
        if (seal(p + (size_t)2 * i * PAGE, PAGE) != 0) return -1;
        if (mprotect(p + (size_t)(2 * i + 1) * PAGE, PAGE, PROT_READ) != 0) return -1;
    }
    return 0;
}

static int forge_many(int n) {
    uint8_t *p = map_rw((size_t)n * PAGE);
    if (!p) return -1;
    for (int i = 0; i < n; i++) {
        uint8_t *c = p + (size_t)i * PAGE;
        size_t o = header(c, 0, PAGE, "FORGED-MANY");
        c[o++] = 0; c[o++] = 0;
        put32(c + 8, (uint32_t)o);
        put32(c + 64, fnv(c, o));
        trailer(c, PAGE);
    }
    return seal(p, (size_t)n * PAGE);
}

/* One site at forged_site whose recorded bytes are those there now. */
static int forge_one(const char *id, uint32_t code_offset, uint32_t code_length) {
    uint8_t *c = map_rw(PAGE);
    if (!c) return -1;
    const uint8_t *site = (const uint8_t *)(uintptr_t)&forged_site;
    size_t o = header(c, 0, PAGE, id);
    c[o++] = 1; c[o++] = 0;               /* one site */
    put64(c + o, (uint64_t)(uintptr_t)site); o += 8;
    c[o++] = 0;                           /* insert */
    c[o++] = 5; c[o++] = 0;               /* span 5 */
    memcpy(c + o, site, 5); o += 5;       /* original */
    memcpy(c + o, site, 5); o += 5;       /* written: what is there, so the site "holds the jump" */
    put32(c + o, code_offset); o += 4;
    put32(c + o, code_length); o += 4;
    put32(c + 8, (uint32_t)o);
    put32(c + 64, fnv(c, o));
    trailer(c, PAGE);
    return seal(c, PAGE);
}

static int map_many(const char *dir, int n) {
    char comp[251];
    memset(comp, 'x', 250);
    comp[250] = 0;
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (int i = 0; i < 15 && d >= 0; i++) {
        mkdirat(d, comp, 0700);
        int next = openat(d, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        close(d);
        d = next;
    }
    if (d < 0) return -1;
    int fd = openat(d, "page", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    close(d);
    if (fd < 0 || ftruncate(fd, PAGE) != 0) return -1;
    for (int i = 0; i < n; i++)
        if (mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED) return -1;
    return 0;
}

static void *idle(void *arg) {
    (void)arg;
    for (;;) pause();
    return NULL;
}

int main(void) {
    char line[256], what[32], what_dir[201];
    int n = 0, x = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready %d\n", (int)getpid());
    while (fgets(line, sizeof line, stdin)) {
        int r = -1;
        if (sscanf(line, "call forged_site %d", &x) == 1) { printf("%d\n", forged_site(x)); continue; }
        if (!strncmp(line, "exec ", 5)) {
            char *argv[8];
            int k = 0;
            line[strcspn(line, "\n")] = 0;
            for (char *tok = strtok(line + 5, " "); tok && k < 7; tok = strtok(NULL, " ")) argv[k++] = tok;
            argv[k] = NULL;
            printf("ok\n");
            fflush(stdout);
            execv(argv[0], argv);
            printf("failed\n");
            continue;
        }
        if (!strncmp(line, "thread", 6)) {
            pthread_t t;
            printf(pthread_create(&t, NULL, idle, NULL) == 0 ? "ok\n" : "failed\n");
            continue;
        }
        if (sscanf(line, "mapmany %200s %d", what_dir, &n) == 2) {
            printf(map_many(what_dir, n) == 0 ? "ok\n" : "failed\n");
            continue;
        }
        if (!strncmp(line, "map ", 4)) {
            line[strcspn(line, "\n")] = 0;
            int fd = open(line + 4, O_RDONLY | O_CLOEXEC);
            void *m = fd < 0 ? MAP_FAILED : mmap(NULL, 1u << 20, PROT_READ, MAP_PRIVATE, fd, 0);
            printf(m == MAP_FAILED ? "failed\n" : "ok\n");
            continue;
        }
        if (sscanf(line, "forge %31s %d", what, &n) < 1) { printf("unknown\n"); continue; }
        if (!strcmp(what, "bighdr")) r = forge_bighdr(n);
        else if (!strcmp(what, "many")) r = forge_many(n);
        else if (!strcmp(what, "codelen")) r = forge_one("FORGED-LEN", 256, 0x80000000u);
        else if (!strcmp(what, "installed")) r = forge_one("FORGED-STATE", 0, 0);
        printf(r == 0 ? "ok\n" : "failed\n");
    }
    return 0;
}
