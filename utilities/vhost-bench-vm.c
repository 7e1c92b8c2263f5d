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

/* A "VM" for the benchmark's latency and TSO sections.
 *
 * It is a DPDK application with two virtio-user ports (given as EAL
 * --vdev arguments), which the switch forwards to each other.  One thread
 * does everything, so that on a host with two CPUs (one for the switch's
 * PMD thread, one for everything else) no second polling guest competes
 * for the other CPU.
 *
 * After EAL's arguments and "--", it takes one option:
 *
 *   --tso   negotiates checksum offloads, TSO and LRO (GUEST_TSO4/6) on
 *           both ports; the switch must offer them (userspace-tso-enable).
 *
 * Then it reads commands on stdin:
 *
 *   probe COUNT INTERVAL-US SIZE
 *       Round-trip times: stamps a frame and sends it on port 0, receives
 *       it on port 1 and sends it back there (the reflecting VM), and
 *       receives it on port 0 again; the round trip crosses the switch
 *       twice, as a request and its answer between two VMs do.  Sends
 *       COUNT probes of SIZE bytes, one every INTERVAL-US microseconds,
 *       and prints one line:
 *       "probes COUNT lost L p50 X p99 Y p999 Z max M" (nanoseconds).
 *       A probe not back within 10 ms is lost, and a late one is dropped
 *       when it arrives.
 *   stream SECONDS SIZE
 *       TCP segments (with --tso): sends frames of SIZE bytes that ask
 *       for segmentation into 1,448-byte segments (a guest's TCP stack
 *       sending through its virtio-net driver), on port 0, as fast as
 *       port 0 takes them with at most 24 on their way (a window), and
 *       receives them on port 1, for SECONDS after a warm-up of 0.2 s;
 *       prints one line:
 *       "sent S received R bad B bytes Y ns T": frames sent in the
 *       SECONDS, and of them received (up to 100 ms after: their numbers
 *       tell them apart), frames received with another length or without
 *       a segmentation request (LRO), and the bytes of all the frames
 *       received in the T ns.
 *   quit
 *
 * It prints "ready" once both ports are up. */

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#define N_PORTS 2
#define RING_SIZE 256
#define N_MBUFS 2047
#define N_MBUFS_TSO 8191        /* Two receive rings of up to 1024 each. */
#define BURST 32
#define MAX_PROBES 1000000
#define TIMEOUT_US 10000
#define MAGIC UINT64_C(0x6f76732d6c617432)     /* "ovs-lat2" */

/* Ethernet (14) + IPv4 (20) + UDP (8), then the probe. */
#define PROBE_OFS 42

/* TCP segments of the "stream" command: Ethernet (14) + IPv4 (20) + TCP
 * (20), then the payload, cut by whoever segments it into pieces of
 * TSO_MSS bytes (1500-byte IP packets).  A frame lies in one mbuf, whose
 * data room (a uint16_t, headroom included) bounds its size. */
#define TSO_HDR 54
#define TSO_NO_OFS 42           /* Of the TCP header's ack number. */
#define TSO_MSS 1448
#define TSO_MAX_FRAME (UINT16_MAX - RTE_PKTMBUF_HEADROOM)
#define N_BIG 2047              /* More than a transmit ring of 1024. */

/* Frames of "stream" on their way at most, as a TCP sender's window
 * (1.5 MB of 64 kB frames) bounds them: 24 frames of 32 receive buffers
 * of 2 kB each fit a receive ring of 1024, so that the switch need not
 * drop a frame for want of room in it. */
#define TSO_WINDOW 24
#define TSO_CACHE 256

struct probe {
    uint64_t magic;
    uint64_t seq;
};

static struct rte_mempool *pool;
static struct rte_mempool *big_pool;    /* With --tso, for "stream". */
static bool tso;

static void
die(const char *msg)
{
    fprintf(stderr, "vhost-bench-vm: %s\n", msg);
    exit(EXIT_FAILURE);
}

static void
port_setup(uint16_t port)
{
    struct rte_eth_conf conf;
    struct rte_eth_link link;
    uint64_t deadline;

    memset(&conf, 0, sizeof conf);
    if (tso) {
        struct rte_eth_dev_info info;

        conf.rxmode.offloads = (RTE_ETH_RX_OFFLOAD_TCP_LRO
                                | RTE_ETH_RX_OFFLOAD_TCP_CKSUM);
        conf.txmode.offloads = (RTE_ETH_TX_OFFLOAD_TCP_TSO
                                | RTE_ETH_TX_OFFLOAD_TCP_CKSUM
                                | RTE_ETH_TX_OFFLOAD_MULTI_SEGS);
        if (rte_eth_dev_info_get(port, &info)
            || (info.rx_offload_capa & conf.rxmode.offloads)
               != conf.rxmode.offloads
            || (info.tx_offload_capa & conf.txmode.offloads)
               != conf.txmode.offloads) {
            die("--tso: the ports do not offer TSO, LRO and checksum "
                "offloads");
        }
    }
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
    struct rte_mbuf *pkts[BURST];
    struct rte_mbuf *found = NULL;

    while (!found && rte_get_timer_cycles() < deadline) {
        uint16_t n = rte_eth_rx_burst(port, 0, pkts, BURST);

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

/* Fills every mbuf of 'big_pool' once, so that the pages of its data
 * rooms are there before the first round and the payload that the
 * switch copies is not a page of zeros that the kernel shares. */
static void
big_pool_fill(void)
{
    static struct rte_mbuf *all[N_BIG];
    unsigned int n = 0;

    while (n < N_BIG && (all[n] = rte_pktmbuf_alloc(big_pool)) != NULL) {
        memset(rte_pktmbuf_mtod(all[n], void *), 0x5a, TSO_MAX_FRAME);
        n++;
    }
    for (unsigned int i = 0; i < n; i++) {
        rte_pktmbuf_free(all[i]);
    }
}

/* Turns 'm', whose data room holds a payload already, into TCP frame
 * number 'no' of a stream of frames of 'size' bytes that ask for
 * segmentation.  Its ack number is 'no', which tells the receiver which
 * frames to count. */
static void
tso_frame(struct rte_mbuf *m, unsigned int size, uint32_t no)
{
    static const uint8_t eth[RTE_ETHER_HDR_LEN] = {
        /* To 02:00:00:00:00:02 from 02:00:00:00:00:01, IPv4. */
        0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00,
    };
    struct rte_ipv4_hdr *ip;
    struct rte_tcp_hdr *tcp;
    uint8_t *d = (uint8_t *) rte_pktmbuf_append(m, size);

    memcpy(d, eth, sizeof eth);
    ip = (struct rte_ipv4_hdr *) (d + RTE_ETHER_HDR_LEN);
    memset(ip, 0, sizeof *ip);
    ip->version_ihl = RTE_IPV4_VHL_DEF;
    ip->total_length = rte_cpu_to_be_16(size - RTE_ETHER_HDR_LEN);
    ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
    ip->time_to_live = 64;
    ip->next_proto_id = IPPROTO_TCP;
    ip->src_addr = rte_cpu_to_be_32(RTE_IPV4(10, 0, 0, 1));
    ip->dst_addr = rte_cpu_to_be_32(RTE_IPV4(10, 0, 0, 2));
    ip->hdr_checksum = rte_ipv4_cksum(ip);

    tcp = (struct rte_tcp_hdr *) (ip + 1);
    memset(tcp, 0, sizeof *tcp);
    tcp->src_port = rte_cpu_to_be_16(5000);
    tcp->dst_port = rte_cpu_to_be_16(5001);
    tcp->sent_seq = rte_cpu_to_be_32(no * (size - TSO_HDR));
    tcp->recv_ack = rte_cpu_to_be_32(no);
    tcp->data_off = (sizeof *tcp / 4) << 4;
    tcp->tcp_flags = RTE_TCP_ACK_FLAG | RTE_TCP_PSH_FLAG;
    tcp->rx_win = rte_cpu_to_be_16(65535);

    m->l2_len = RTE_ETHER_HDR_LEN;
    m->l3_len = sizeof *ip;
    m->l4_len = sizeof *tcp;
    m->tso_segsz = TSO_MSS;
    m->ol_flags = (RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_TCP_CKSUM
                   | RTE_MBUF_F_TX_TCP_SEG);
    /* The partial checksum that the offload completes: the pseudo-header
     * (without the length, for a segmentation request). */
    tcp->cksum = rte_ipv4_phdr_cksum(ip, m->ol_flags);
}

/* The frame number of frame 'm' (see tso_frame()) into '*no'; false if it
 * is too short to have one. */
static bool
stream_no(const struct rte_mbuf *m, uint32_t *no)
{
    uint32_t buf;
    const void *p = rte_pktmbuf_read(m, TSO_NO_OFS, sizeof buf, &buf);

    if (!p) {
        return false;
    }
    memcpy(&buf, p, sizeof buf);
    *no = rte_be_to_cpu_32(buf);
    return true;
}

static void
run_stream(double seconds, unsigned int size)
{
    uint64_t hz = rte_get_timer_hz();
    uint64_t start = rte_get_timer_cycles() + hz / 5;
    uint64_t end = start + (uint64_t) (seconds * hz);
    uint64_t timeout = TIMEOUT_US * hz / 1000000;
    uint64_t sent = 0, received = 0, bad = 0, bytes = 0;
    uint64_t now = rte_get_timer_cycles(), last_rx = now;
    enum { WARM_UP, WINDOW, DRAIN } phase = WARM_UP;
    uint32_t no = 0, no_start = 0, no_end = 0;
    unsigned int in_flight = 0;

    for (;;) {
        struct rte_mbuf *pkts[BURST];
        uint16_t n = 0;

        now = rte_get_timer_cycles();
        if (phase == WARM_UP && now >= start) {
            phase = WINDOW;
            no_start = no;
        } else if (phase == WINDOW && now >= end) {
            /* What is on its way still counts as received when it
             * arrives, though not in the rate. */
            phase = DRAIN;
            no_end = no;
            end = now;
        } else if (phase == DRAIN
                   && (received >= sent || now - last_rx > 10 * timeout)) {
            break;
        }

        /* Sends up to the window, what port 0 takes now. */
        while (phase != DRAIN && n < BURST && in_flight + n < TSO_WINDOW) {
            struct rte_mbuf *m = rte_pktmbuf_alloc(big_pool);

            if (!m) {
                break;
            }
            tso_frame(m, size, no++);
            pkts[n++] = m;
        }
        if (n) {
            uint16_t n_sent = rte_eth_tx_burst(0, 0, pkts, n);

            rte_pktmbuf_free_bulk(pkts + n_sent, n - n_sent);
            in_flight += n_sent;
            if (phase == WINDOW) {
                sent += n_sent;
            }
        }

        n = rte_eth_rx_burst(1, 0, pkts, BURST);
        for (uint16_t i = 0; i < n; i++) {
            struct rte_mbuf *m = pkts[i];
            uint32_t fno;

            if (phase == WINDOW) {
                bytes += m->pkt_len;
            }
            if (phase == WARM_UP) {
                /* Not counted. */
            } else if (!stream_no(m, &fno)) {
                bad++;
            } else if ((int32_t) (fno - no_start) >= 0
                       && (phase == WINDOW || (int32_t) (fno - no_end) < 0)) {
                /* Sent in the window.  The segment size is the switch's
                 * to choose: OVS 3.1 takes it from the MTU of the port
                 * it sends on. */
                received++;
                if (m->pkt_len != size || !(m->ol_flags & RTE_MBUF_F_RX_LRO)
                    || !m->tso_segsz) {
                    bad++;
                }
            }
            rte_pktmbuf_free(m);
        }
        if (n) {
            in_flight -= RTE_MIN(n, in_flight);
            last_rx = now;
        } else if (in_flight && now - last_rx > timeout) {
            /* What has not come back in 10 ms is lost: send more. */
            in_flight = 0;
        }
        /* Nothing should come back on port 0; drain it all the same. */
        n = rte_eth_rx_burst(0, 0, pkts, BURST);
        rte_pktmbuf_free_bulk(pkts, n);
    }

    printf("sent %"PRIu64" received %"PRIu64" bad %"PRIu64
           " bytes %"PRIu64" ns %"PRIu64"\n", sent, received, bad, bytes,
           (end - start) * 1000000000 / hz);
}

int
main(int argc, char *argv[])
{
    char line[256];
    int n_eal = rte_eal_init(argc, argv);

    if (n_eal < 0) {
        die("EAL initialization failed");
    }
    for (int i = n_eal + 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tso")) {
            tso = true;
        } else {
            die("unknown option (after \"--\": --tso)");
        }
    }
    if (rte_eth_dev_count_avail() != N_PORTS) {
        die("needs exactly two ports (--vdev net_virtio_user...)");
    }
    /* With --tso, per-lcore caches recycle buffers as a guest's kernel
     * does: the last freed is the next used, still in the caches. */
    pool = rte_pktmbuf_pool_create("vm", tso ? N_MBUFS_TSO : N_MBUFS,
                                   tso ? TSO_CACHE : 0, 0,
                                   RTE_MBUF_DEFAULT_BUF_SIZE,
                                   rte_socket_id());
    if (!pool) {
        die("cannot create the mbuf pool");
    }
    if (tso) {
        big_pool = rte_pktmbuf_pool_create("big", N_BIG, TSO_CACHE, 0,
                                           UINT16_MAX, rte_socket_id());
        if (!big_pool) {
            die("cannot create the pool of 64 kB mbufs (more memory: -m)");
        }
        big_pool_fill();
    }
    for (uint16_t port = 0; port < N_PORTS; port++) {
        port_setup(port);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready\n");

    while (fgets(line, sizeof line, stdin)) {
        unsigned long count, interval_us;
        unsigned int size;
        double seconds;

        if (sscanf(line, "probe %lu %lu %u", &count, &interval_us, &size)
            == 3) {
            if (!count || count > MAX_PROBES || size < PROBE_OFS + 16
                || size > 1518) {
                printf("error: probe COUNT (1..%d) INTERVAL-US "
                       "SIZE (%d..1518)\n", MAX_PROBES, PROBE_OFS + 16);
                continue;
            }
            run_probes(count, interval_us, size);
        } else if (sscanf(line, "stream %lf %u", &seconds, &size) == 2) {
            if (!tso || !(seconds > 0 && seconds <= 600)
                || size <= TSO_HDR + TSO_MSS || size > TSO_MAX_FRAME) {
                printf("error: stream SECONDS (up to 600) SIZE (%d..%d), "
                       "with --tso\n", TSO_HDR + TSO_MSS + 1, TSO_MAX_FRAME);
                continue;
            }
            run_stream(seconds, size);
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
