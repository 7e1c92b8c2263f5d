/* stream-rx: the guest's end of the migration test's verified stream.
 *
 * Usage: stream-rx PORT
 *
 * Receives UDP datagrams on PORT, each made by tests/vhost-migrate.py:
 *
 *     offset  size  field
 *          0     4  magic "VMST"
 *          4     4  type: 0 data, 1 end (network byte order, as below)
 *          8     4  sequence number (data); end: the next sequence number
 *         12     4  payload length N; end: the stream's first sequence
 *                   number
 *         16     4  FNV-1a checksum of the payload
 *         20     N  payload: N bytes of a pool of 64 kB of xorshift32
 *                    bytes (seed 1), from an offset that the sequence
 *                    number determines (see payload_ok())
 *
 * A data datagram is accepted only if its length, checksum and payload are
 * all what its sequence number says; anything else counts as bad.  On each
 * end datagram it prints one line on stdout (the console):
 *
 *   STREAM-REPORT sent=S received=R bad=B dup=D lost=L runs=K longest=M
 *                 udp_csum_errors=C udp_rcvbuf_errors=E lost_ranges=A-B,...
 *
 * S is the number of data datagrams of the stream that the end datagram
 * ends, R counts the distinct ones received, L = S - R, K and M are the
 * number of runs of consecutive lost sequence numbers and the longest, and
 * C and E are the kernel's counts of UDP datagrams dropped for a bad
 * checksum and for a full socket buffer (which never reach this
 * program).  The first 8 lost ranges are listed. */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_SEQ (1u << 22)
#define MAX_PAYLOAD 1400

#define POOL_SIZE 65536
#define PROC_NET_SNMP "/proc/net/snmp"

static uint8_t seen[MAX_SEQ / 8];
static uint8_t pool[POOL_SIZE + MAX_PAYLOAD];

static uint32_t
xorshift32(uint32_t *s)
{
    uint32_t x = *s;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

static uint32_t
fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 16777619u;
    }
    return h;
}

static int
payload_ok(uint32_t seq, const uint8_t *p, size_t n)
{
    uint32_t off = (seq * 2654435761u) % POOL_SIZE;

    return !memcmp(p, pool + off, n);
}

static unsigned long
udp_counter(const char *name)
{
    char line[1024], hdr[1024];
    unsigned long value = 0;
    FILE *f = fopen(PROC_NET_SNMP, "r");

    if (!f) {
        return 0;
    }
    hdr[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "Udp:", 4) && !strncmp(hdr, "Udp:", 4)) {
            /* Find the column named InCsumErrors in the header line. */
            char *hs, *vs, *h, *v;
            h = strtok_r(hdr, " \n", &hs);
            v = strtok_r(line, " \n", &vs);
            while (h && v) {
                if (!strcmp(h, name)) {
                    value = strtoul(v, NULL, 10);
                    break;
                }
                h = strtok_r(NULL, " \n", &hs);
                v = strtok_r(NULL, " \n", &vs);
            }
            break;
        }
        memcpy(hdr, line, sizeof line);
    }
    fclose(f);
    return value;
}

static void
report(uint32_t first, uint32_t sent, unsigned long bad, unsigned long dup)
{
    unsigned long received = 0, lost = 0, runs = 0, longest = 0, run = 0;
    char ranges[512];
    size_t off = 0;
    uint32_t start = 0;

    ranges[0] = '\0';
    if (sent > MAX_SEQ) {
        sent = MAX_SEQ;
    }
    if (first > sent) {
        first = sent;
    }
    for (uint32_t i = first; i <= sent; i++) {
        int got = i < sent && (seen[i / 8] & (1u << (i % 8)));

        if (i < sent && got) {
            received++;
        }
        if (i < sent && !got) {
            if (!run) {
                start = i;
            }
            run++;
            lost++;
        } else if (run) {
            runs++;
            if (run > longest) {
                longest = run;
            }
            if (runs <= 8 && off < sizeof ranges - 32) {
                off += snprintf(ranges + off, sizeof ranges - off, "%s%u-%u",
                                off ? "," : "", start, i - 1);
            }
            run = 0;
        }
    }
    printf("STREAM-REPORT sent=%u received=%lu bad=%lu dup=%lu lost=%lu "
           "runs=%lu longest=%lu udp_csum_errors=%lu udp_rcvbuf_errors=%lu "
           "lost_ranges=%s\n",
           sent - first, received, bad, dup, lost, runs, longest,
           udp_counter("InCsumErrors"), udp_counter("RcvbufErrors"),
           off ? ranges : "none");
    fflush(stdout);
}

int
main(int argc, char *argv[])
{
    struct sockaddr_in sin;
    unsigned long bad = 0, dup = 0;
    uint8_t buf[2048];
    int fd;

    uint32_t seed = 1;
    for (size_t i = 0; i < sizeof pool; i++) {
        pool[i] = xorshift32(&seed);
    }

    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("socket");
        return 1;
    }
    /* Room for seconds of the stream: a guest under TCG may not run this
     * program for a while after a migration. */
    int rcvbuf = 8 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf)) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    }
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(atoi(argv[1]));
    if (bind(fd, (struct sockaddr *) &sin, sizeof sin) < 0) {
        perror("bind");
        return 1;
    }
    printf("stream-rx: listening on UDP port %s\n", argv[1]);
    fflush(stdout);

    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        uint32_t f[5];

        if (n < 20 || memcmp(buf, "VMST", 4)) {
            if (n >= 0) {
                bad++;
            }
            continue;
        }
        memcpy(f, buf, sizeof f);
        uint32_t type = ntohl(f[1]), seq = ntohl(f[2]), len = ntohl(f[3]);
        uint32_t sum = ntohl(f[4]);

        if (type == 1) {
            report(len, seq, bad, dup);
        } else if (type != 0 || len > MAX_PAYLOAD || n != 20 + (ssize_t) len
                   || seq >= MAX_SEQ || fnv1a(buf + 20, len) != sum
                   || !payload_ok(seq, buf + 20, len)) {
            bad++;
        } else if (seen[seq / 8] & (1u << (seq % 8))) {
            dup++;
        } else {
            seen[seq / 8] |= 1u << (seq % 8);
        }
    }
}
