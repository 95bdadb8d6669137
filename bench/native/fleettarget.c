/* One of many identical single-thread processes for the fleet benchmark: it maps the module (itself),
   calls work_fn now and then so the site is live code, and otherwise sleeps. */
#include <time.h>
int work_fn(int x);
volatile int sink;
int main(void)
{
    struct timespec ts = { 0, 50 * 1000 * 1000 };
    for (;;) { sink = work_fn(sink & 1023); nanosleep(&ts, 0); }
}
