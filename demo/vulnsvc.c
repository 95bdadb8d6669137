/* vulnsvc: a tiny record service with a deliberate bug, for the HotpatchTools demo.
 *
 * Twice a second it answers a "client" request. A request is a record: one length byte,
 * then the payload. parse_record() trusts the length byte and copies that many bytes out of
 * the 64-byte record buffer, so a crafted record with a large length leaks the secret that
 * lives beside the buffer (the shape of Heartbleed). The micropatch HP-DEMO-0001 adds the
 * missing bounds check live, without restarting the service. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct session {
    unsigned char record[64];
    char secret[64];
};

/* Returns the number of bytes copied into out, or -1 for a rejected record. */
__attribute__((noinline)) int parse_record(const unsigned char *record, unsigned len, char *out)
{
    unsigned i;
    for (i = 0; i < len; i++)
        out[i] = (char)record[1 + i];
    out[i] = 0;
    return (int)len;
}

int main(void)
{
    struct session s;
    char reply[256];
    setvbuf(stdout, NULL, _IOLBF, 0);
    strcpy(s.secret, "API-KEY=sk_live_7f3a9c1e");
    printf("vulnsvc %d: serving\n", getpid());
    for (int request = 1;; request++) {
        /* Every other client is malicious: it claims 100 bytes but sends 5. */
        int evil = request % 2 == 0;
        memset(s.record, 0, sizeof s.record);
        s.record[0] = evil ? 100 : 5;
        memcpy(s.record + 1, "hello", 5);
        int n = parse_record(s.record, s.record[0], reply);
        for (int i = 0; i < n; i++) if ((unsigned char)reply[i] < 32) reply[i] = '.';
        if (n < 0)
            printf("request %d (%s): rejected\n", request, evil ? "malicious" : "normal");
        else
            printf("request %d (%s): replied %d bytes: %s\n", request, evil ? "malicious" : "normal", n, reply);
        usleep(500000);
    }
}
