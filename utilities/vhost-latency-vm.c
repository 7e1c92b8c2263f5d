/*
 * Copyright (c) 2026 The ovs-vhost-client authors.
 *
 * Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at:
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 *
 * Unless required by applicable law or agreed to in writing, software
 * distributed under the License is distributed on an "AS IS" BASIS,
 * WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 * See the License for the specific language governing permissions and
 * limitations under the License.
 */

/* A "VM" that measures round-trip times through a switch, for the
 * benchmark's latency section.
 *
 * It is a DPDK application with two virtio-user ports (given as EAL
 * --vdev arguments), which the switch forwards to each other.  One thread
 * does everything, so that on a host with two CPUs (one for the switch's
 * PMD thread, one for everything else) no second polling guest competes
 * for the other CPU: it stamps a frame and sends it on port 0, receives it
 * on port 1 and sends it back there (the reflecting VM), and receives it on
 * port 0 again.  The round trip crosses the switch twice, as a request and
 * its answer between two VMs do.
 *
 * After EAL's arguments and "--", it reads commands on stdin:
 *
 *   probe COUNT INTERVAL-US SIZE
 *       sends COUNT probes of SIZE bytes, one every INTERVAL-US
 *       microseconds, and prints one line:
 *       "probes COUNT lost L p50 X p99 Y p999 Z max M" (nanoseconds).
 *   quit
 *
 * It prints "ready" once both ports are up.  A probe not back within
 * 10 ms is lost, and a late one is dropped when it arrives. */

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#define N_PORTS 2
#define RING_SIZE 256
#define N_MBUFS 2047
#define MAX_PROBES 1000000
#define TIMEOUT_US 10000
#define MAGIC UINT64_C(0x6f76732d6c617432)     /* "ovs-lat2" */

/* Ethernet (14) + IPv4 (20) + UDP (8), then the probe. */
#define PROBE_OFS 42

struct probe {
    uint64_t magic;
    uint64_t seq;
};

static struct rte_mempool *pool;

static void
die(const char *msg)
{
    fprintf(stderr, "vhost-latency-vm: %s\n", msg);
    exit(EXIT_FAILURE);
}

static void
port_setup(uint16_t port)
{
    struct rte_eth_conf conf;
    struct rte_eth_link link;
    uint64_t deadline;

    memset(&conf, 0, sizeof conf);
    if (rte_eth_dev_configure(port, 1, 1, &conf)
        || rte_eth_rx_queue_setup(port, 0, RING_SIZE, 0, NULL, pool)
        || rte_eth_tx_queue_setup(port, 0, RING_SIZE, 0, NULL)
        || rte_eth_dev_start(port)) {
        die("cannot set a port up");
    }

    /* The switch connects to us (we are the vhost-user server). */
    deadline = rte_get_timer_cycles() + 120 * rte_get_timer_hz();
    do {
        rte_delay_ms(10);
        memset(&link, 0, sizeof link);
        rte_eth_link_get_nowait(port, &link);
    } while (!link.link_status && rte_get_timer_cycles() < deadline);
    if (!link.link_status) {
        die("a port did not come up within 120 s");
    }
}

static struct rte_mbuf *
probe_frame(uint64_t seq, unsigned int size)
{
    static const uint8_t head[PROBE_OFS] = {
        /* Ethernet: to 02:00:00:00:00:02 from 02:00:00:00:00:01, IPv4. */
        0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00,
        /* IPv4, 10.0.0.1 -> 10.0.0.2, UDP (lengths and checksum are not
         * looked at by the switch's flows). */
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0,
        10, 0, 0, 1, 10, 0, 0, 2,
        /* UDP 4000 -> 4001. */
        0x0f, 0xa0, 0x0f, 0xa1, 0, 0, 0, 0,
    };
    struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
    struct probe p = { MAGIC, seq };
    uint8_t *d;

    if (!m) {
        return NULL;
    }
    d = (uint8_t *) rte_pktmbuf_append(m, size);
    if (!d) {
        rte_pktmbuf_free(m);
        return NULL;
    }
    memset(d, 0, size);
    memcpy(d, head, sizeof head);
    memcpy(d + PROBE_OFS, &p, sizeof p);
    return m;
}

/* The probe's sequence number if 'm' is a probe, otherwise UINT64_MAX. */
static uint64_t
probe_seq(const struct rte_mbuf *m)
{
    struct probe p;

    if (rte_pktmbuf_data_len(m) < PROBE_OFS + sizeof p) {
        return UINT64_MAX;
    }
    memcpy(&p, rte_pktmbuf_mtod_offset(m, const uint8_t *, PROBE_OFS),
           sizeof p);
    return p.magic == MAGIC ? p.seq : UINT64_MAX;
}

/* Polls 'port' until probe 'seq' arrives or 'deadline' passes; frees
 * everything else.  Returns the probe or NULL. */
static struct rte_mbuf *
wait_probe(uint16_t port, uint64_t seq, uint64_t deadline)
{
    struct rte_mbuf *pkts[32];
    struct rte_mbuf *found = NULL;

    while (!found && rte_get_timer_cycles() < deadline) {
        uint16_t n = rte_eth_rx_burst(port, 0, pkts, 32);

        for (uint16_t i = 0; i < n; i++) {
            if (!found && probe_seq(pkts[i]) == seq) {
                found = pkts[i];
            } else {
                rte_pktmbuf_free(pkts[i]);
            }
        }
    }
    return found;
}

static bool
send_one(uint16_t port, struct rte_mbuf *m)
{
    if (rte_eth_tx_burst(port, 0, &m, 1) == 1) {
        return true;
    }
    rte_pktmbuf_free(m);
    return false;
}

static int
cmp_u64(const void *a_, const void *b_)
{
    uint64_t a = *(const uint64_t *) a_;
    uint64_t b = *(const uint64_t *) b_;

    return a < b ? -1 : a > b;
}

static void
run_probes(unsigned long count, unsigned long interval_us, unsigned int size)
{
    static uint64_t rtt[MAX_PROBES];
    static uint64_t seq;
    uint64_t hz = rte_get_timer_hz();
    uint64_t interval = interval_us * hz / 1000000;
    uint64_t timeout = TIMEOUT_US * hz / 1000000;
    uint64_t next = rte_get_timer_cycles();
    unsigned long n = 0, lost = 0;

    for (unsigned long i = 0; i < count; i++) {
        struct rte_mbuf *m;
        uint64_t t0;

        while (rte_get_timer_cycles() < next) {
            rte_pause();
        }
        next += interval;

        seq++;
        m = probe_frame(seq, size);
        t0 = rte_get_timer_cycles();
        if (!m || !send_one(0, m)) {
            lost++;
            continue;
        }
        /* The reflecting VM. */
        m = wait_probe(1, seq, t0 + timeout);
        if (!m || !send_one(1, m)) {
            lost++;
            continue;
        }
        m = wait_probe(0, seq, t0 + timeout);
        if (!m) {
            lost++;
            continue;
        }
        rtt[n++] = (rte_get_timer_cycles() - t0) * 1000000000 / hz;
        rte_pktmbuf_free(m);
    }

    if (!n) {
        printf("probes %lu lost %lu p50 0 p99 0 p999 0 max 0\n", count, lost);
        return;
    }
    qsort(rtt, n, sizeof *rtt, cmp_u64);
    printf("probes %lu lost %lu p50 %"PRIu64" p99 %"PRIu64" p999 %"PRIu64
           " max %"PRIu64"\n", count, lost, rtt[n / 2], rtt[n * 99 / 100],
           rtt[n * 999 / 1000], rtt[n - 1]);
}

int
main(int argc, char *argv[])
{
    char line[256];
    int n_eal = rte_eal_init(argc, argv);

    if (n_eal < 0) {
        die("EAL initialization failed");
    }
    if (rte_eth_dev_count_avail() != N_PORTS) {
        die("needs exactly two ports (--vdev net_virtio_user...)");
    }
    pool = rte_pktmbuf_pool_create("latency", N_MBUFS, 0, 0,
                                   RTE_MBUF_DEFAULT_BUF_SIZE,
                                   rte_socket_id());
    if (!pool) {
        die("cannot create the mbuf pool");
    }
    for (uint16_t port = 0; port < N_PORTS; port++) {
        port_setup(port);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready\n");

    while (fgets(line, sizeof line, stdin)) {
        unsigned long count, interval_us;
        unsigned int size;

        if (sscanf(line, "probe %lu %lu %u", &count, &interval_us, &size)
            == 3) {
            if (!count || count > MAX_PROBES || size < PROBE_OFS + 16
                || size > 1518) {
                printf("error: probe COUNT (1..%d) INTERVAL-US "
                       "SIZE (%d..1518)\n", MAX_PROBES, PROBE_OFS + 16);
                continue;
            }
            run_probes(count, interval_us, size);
        } else if (!strncmp(line, "quit", 4)) {
            break;
        } else {
            printf("error: unknown command\n");
        }
    }
    for (uint16_t port = 0; port < N_PORTS; port++) {
        rte_eth_dev_stop(port);
        rte_eth_dev_close(port);
    }
    rte_eal_cleanup();
    return 0;
}
