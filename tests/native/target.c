/* Test target: runs the functions of sites.S on request and under load, so tests can
 * patch a live process and see its behaviour from outside. Protocol: one command a line
 * on stdin, one answer a line on stdout. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int rip_first(int), short_jcc(int), triple(int), branch_into(int), call_inside(int), tiny(void), loop_first(int);
void park_fn(void);

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

static atomic_long calls, errors;
static atomic_int stop_flag;
static pthread_t hammers[64];
static int hammer_count;

/* Every hammer thread checks each result against the function's original meaning. */
static void *hammer(void *arg) {
    unsigned seed = (unsigned)(long)arg;
    while (!atomic_load(&stop_flag)) {
        int x = (int)(rand_r(&seed) % 1000);
        if (triple(x) != 3 * x + 1) atomic_fetch_add(&errors, 1);
        if (short_jcc(x) != (x == 0 ? 2 : x + 1)) atomic_fetch_add(&errors, 1);
        if (rip_first(x) != 40 + x) atomic_fetch_add(&errors, 1);
        atomic_fetch_add(&calls, 1);
    }
    return NULL;
}

static void *park(void *arg) { (void)arg; for (;;) park_fn(); return NULL; }

static void *sleeper(void *arg) { (void)arg; for (;;) usleep(1000); return NULL; }

int main(void) {
    char line[256], fn[64];
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready %d\n", getpid());
    while (fgets(line, sizeof line, stdin)) {
        int x = 0, n = 0, ok;
        if (sscanf(line, "call %63s %d", fn, &x) >= 1 && !strncmp(line, "call", 4)) {
            int r = call_by_name(fn, x, &ok);
            if (ok) printf("%d\n", r); else printf("unknown %s\n", fn);
        } else if (sscanf(line, "hammer %d", &n) == 1) {
            atomic_store(&stop_flag, 0);
            for (int i = 0; i < n && hammer_count < 64; i++) pthread_create(&hammers[hammer_count++], NULL, hammer, (void *)(long)(i + 1));
            printf("ok\n");
        } else if (!strncmp(line, "calm", 4)) {
            atomic_store(&stop_flag, 1);
            while (hammer_count > 0) pthread_join(hammers[--hammer_count], NULL);
            printf("ok\n");
        } else if (sscanf(line, "sleepers %d", &n) == 1) {
            for (int i = 0; i < n; i++) { pthread_t t; pthread_create(&t, NULL, sleeper, NULL); }
            printf("ok\n");
        } else if (!strncmp(line, "park", 4)) {
            pthread_t t; pthread_create(&t, NULL, park, NULL);
            usleep(20000);
            printf("ok\n");
        } else if (!strncmp(line, "stats", 5)) {
            printf("%ld %ld\n", atomic_load(&calls), atomic_load(&errors));
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
