/* Benchmark target. argv[1] = number of "server" threads that loop clock_gettime + nanosleep(200us)
 * and record the longest gap between their iterations. Protocol on stdin/stdout, one line each:
 *   reset          -> "ok"            (clears the longest gap)
 *   gap            -> "<ns>"          (longest gap any thread saw since reset)
 *   gaps           -> "<ns> <ns> ..." (each thread's longest gap since reset, in creation order)
 *   bench <n>      -> "<ns per call>" (calls work_fn n times in a tight loop on this thread)   */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int work_fn(int);
static int (*volatile work_ptr)(int) = work_fn;
static atomic_llong max_gap;
#define MAX_THREADS 1024
static atomic_llong thread_gap[MAX_THREADS];
static atomic_int generation;

static long long now_ns(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000LL + t.tv_nsec; }

static void *sleeper(void *arg) {
    atomic_llong *mine = &thread_gap[(long)arg % MAX_THREADS];
    struct timespec d = { 0, 200000 };
    int gen = atomic_load(&generation);
    long long prev = now_ns();
    for (;;) {
        nanosleep(&d, NULL);
        long long t = now_ns();
        int g = atomic_load(&generation);
        if (g != gen) { gen = g; prev = t; continue; } /* a reset happened: start a fresh interval */
        long long gap = t - prev, cur = atomic_load(&max_gap);
        while (gap > cur && !atomic_compare_exchange_weak(&max_gap, &cur, gap)) {}
        if (gap > atomic_load(mine)) atomic_store(mine, gap);
        prev = t;
    }
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < n; i++) {
        pthread_t t;
        pthread_create(&t, NULL, sleeper, (void *)(long)i);
        pthread_detach(t);
    }
    printf("ready %d\n", getpid());
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        if (!strncmp(line, "reset", 5)) {
            atomic_fetch_add(&generation, 1);
            usleep(2000); /* let every thread see the new generation */
            atomic_store(&max_gap, 0);
            for (int i = 0; i < MAX_THREADS; i++) atomic_store(&thread_gap[i], 0);
            printf("ok\n");
        } else if (!strncmp(line, "gaps", 4)) {
            for (int i = 0; i < n && i < MAX_THREADS; i++) printf(i ? " %lld" : "%lld", (long long)atomic_load(&thread_gap[i]));
            printf("\n");
        } else if (!strncmp(line, "gap", 3)) {
            printf("%lld\n", (long long)atomic_load(&max_gap));
        } else if (!strncmp(line, "bench ", 6)) {
            long long count = atoll(line + 6);
            /* Each call depends on the previous result, so calls cannot overlap in the CPU. */
            int x = 1;
            long long t0 = now_ns();
            for (long long i = 0; i < count; i++) x = work_ptr(x & 1023);
            static volatile int sink; sink = x;
            long long t1 = now_ns();
            printf("%.3f\n", (double)(t1 - t0) / (double)count);
        } else if (!strncmp(line, "quit", 4)) {
            return 0;
        } else {
            printf("?\n");
        }
    }
    return 0;
}
