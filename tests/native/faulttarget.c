/* Fault-test target (Linux only): loads and unloads a shared library on command.
 * Protocol as target.c: one command a line on stdin, one answer a line on stdout.
 *   load PATH  -> ok | error MSG      unload -> ok | error MSG
 *   call X     -> lib_triple(X)       quit   -> bye */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    char line[4096];
    void *lib = NULL;
    int (*fn)(int) = NULL;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready %d\n", getpid());
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        int x;
        if (!strncmp(line, "load ", 5)) {
            lib = dlopen(line + 5, RTLD_NOW | RTLD_LOCAL);
            fn = lib ? (int (*)(int))dlsym(lib, "lib_triple") : NULL;
            if (fn) printf("ok\n"); else printf("error %s\n", dlerror());
        } else if (!strcmp(line, "unload")) {
            int r = lib ? dlclose(lib) : -1;
            lib = NULL; fn = NULL;
            if (r == 0) printf("ok\n"); else printf("error not loaded\n");
        } else if (sscanf(line, "call %d", &x) == 1) {
            if (fn) printf("%d\n", fn(x)); else printf("error not loaded\n");
        } else if (!strcmp(line, "quit")) {
            printf("bye\n");
            return 0;
        } else {
            printf("?\n");
        }
    }
    return 0;
}
