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

/* Drives the virtqueue datapath (lib/netdev-dpdk-vhost-virtq.c)
 * alone, as a guest would, with its rings, buffers and memory table laid
 * out in plain memory and mbufs that are plain structs: no OVS, no DPDK
 * EAL.  Each case checks exactly what the datapath read and wrote: the
 * packets, the used ring, the indexes, the counters, the notifications.
 * Built with AddressSanitizer, so a read or write outside what a case laid
 * out fails it.
 *
 * Prints one line per case and then "N passed, M failed"; exits 1 if any
 * failed.  It links no OVS library, so it allocates with the C library's
 * aligned_alloc() (guest memory is page-aligned, like a guest's). */

#include <config.h>
#include "netdev-dpdk-vhost-virtq.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <linux/virtio_net.h>

#include <rte_mbuf.h>
#include <rte_vhost.h>

/* Guest memory: two regions, adjacent in guest physical addresses but not
 * in ours, so that a buffer may straddle them. */
#define GPA_A 0x100000ULL
#define SIZE_A (1024 * 1024)
#define GPA_B (GPA_A + SIZE_A)
#define SIZE_B (64 * 1024)

/* Where the rings and buffers of a case lie, in guest physical memory. */
#define GPA_DESC GPA_A
#define GPA_AVAIL (GPA_A + 0x1000)
#define GPA_USED (GPA_A + 0x2000)
#define GPA_INDIRECT (GPA_A + 0x3000)
#define GPA_BUFS (GPA_A + 0x10000)
#define BUF_STRIDE 0x1000

#define QSIZE 8
#define HDR_LEN ((uint16_t) sizeof(struct virtio_net_hdr_mrg_rxbuf))
#define MBUF_ROOM 2048

static uint8_t *mem_a, *mem_b;
static struct rte_vhost_memory *mem;
static struct vhost_virtq_dev dev;
static struct vhost_virtq vq;
static int callfd;

static struct rte_mbuf mbufs[VHOST_VIRTQ_MAX_BURST];
static struct rte_mbuf big_mbuf;        /* A spare for 4 kB packets. */
static uint8_t *big_data;
#define BIG_ROOM 4096
static struct vhost_virtq_big big;
static struct rte_mbuf *pkts[VHOST_VIRTQ_MAX_BURST];
static uint8_t *mbuf_data[VHOST_VIRTQ_MAX_BURST];

static int n_checks_failed;

#define CHECK(COND) check(COND, #COND, __LINE__)
#define CHECK_EQ(A, B) check_eq(A, B, #A, #B, __LINE__)

static void
check(int ok, const char *what, int line)
{
    if (!ok) {
        printf("    line %d: %s is false\n", line, what);
        n_checks_failed++;
    }
}

static void
check_eq(uint64_t a, uint64_t b, const char *what_a, const char *what_b,
         int line)
{
    if (a != b) {
        printf("    line %d: %s is %"PRIu64", not %s (%"PRIu64")\n",
               line, what_a, a, what_b, b);
        n_checks_failed++;
    }
}

/* Returns our address of guest physical address 'gpa'. */
static void *
g2h(uint64_t gpa)
{
    if (gpa >= GPA_A && gpa < GPA_A + SIZE_A) {
        return mem_a + (gpa - GPA_A);
    } else if (gpa >= GPA_B && gpa < GPA_B + SIZE_B) {
        return mem_b + (gpa - GPA_B);
    }
    fprintf(stderr, "test-vhost-virtq: no guest memory at %#"PRIx64"\n", gpa);
    exit(2);
}

static struct vring_desc *
desc(int i)
{
    return (struct vring_desc *) g2h(GPA_DESC) + i;
}

static struct vring_avail *
avail(void)
{
    return g2h(GPA_AVAIL);
}

static struct vring_used *
used(void)
{
    return g2h(GPA_USED);
}

static uint64_t
buf_gpa(int i)
{
    return GPA_BUFS + (uint64_t) i * BUF_STRIDE;
}

static void
set_desc(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
         uint16_t next)
{
    d->addr = addr;
    d->len = len;
    d->flags = flags;
    d->next = next;
}

/* The guest makes descriptor chain 'head' available. */
static void
post(uint16_t head)
{
    avail()->ring[avail()->idx % QSIZE] = head;
    avail()->idx++;
}

/* A frame of 'len' bytes whose byte i is (seed + i), with a unicast
 * destination. */
static void
fill_frame(uint8_t *p, uint32_t len, uint8_t seed)
{
    for (uint32_t i = 0; i < len; i++) {
        p[i] = seed + i;
    }
    if (len) {
        p[0] &= ~1;
    }
}

static int
frame_ok(const uint8_t *p, uint32_t len, uint8_t seed)
{
    for (uint32_t i = 0; i < len; i++) {
        uint8_t want = seed + i;

        if (p[i] != (i ? want : (uint8_t) (want & ~1))) {
            return 0;
        }
    }
    return 1;
}

/* Interrupts the datapath sent the guest since the last call. */
static uint64_t
notifications(void)
{
    eventfd_t n;

    return eventfd_read(callfd, &n) ? 0 : n;
}

static void
reset_mbufs(void)
{
    for (int i = 0; i < VHOST_VIRTQ_MAX_BURST; i++) {
        struct rte_mbuf *m = &mbufs[i];

        memset(m, 0, sizeof *m);
        memset(mbuf_data[i], 0, RTE_PKTMBUF_HEADROOM + MBUF_ROOM);
        m->buf_addr = mbuf_data[i];
        m->buf_len = RTE_PKTMBUF_HEADROOM + MBUF_ROOM;
        m->data_off = RTE_PKTMBUF_HEADROOM;
        m->nb_segs = 1;
        pkts[i] = m;
    }
}

/* An mbuf holding a frame of 'len' bytes made by fill_frame(). */
static struct rte_mbuf *
frame_mbuf(int i, uint32_t len, uint8_t seed)
{
    struct rte_mbuf *m = &mbufs[i];

    fill_frame(rte_pktmbuf_mtod(m, uint8_t *), len, seed);
    m->data_len = m->pkt_len = len;
    return m;
}

/* A fresh ring of QSIZE entries, at avail and used index 'start', over
 * fresh guest memory, with 'hdr_len' bytes of virtio-net header. */
static void
setup(uint16_t start, uint16_t hdr_len)
{
    memset(mem_a, 0, SIZE_A);
    memset(mem_b, 0, SIZE_B);
    notifications();
    reset_mbufs();

    memset(&dev, 0, sizeof dev);
    dev.mem = mem;
    dev.hdr_len = hdr_len;
    dev.mrg_rxbuf = hdr_len == sizeof(struct virtio_net_hdr_mrg_rxbuf);

    memset(&big, 0, sizeof big);
    memset(&big_mbuf, 0, sizeof big_mbuf);
    big_mbuf.buf_addr = big_data;
    big_mbuf.buf_len = RTE_PKTMBUF_HEADROOM + BIG_ROOM;
    big_mbuf.data_off = RTE_PKTMBUF_HEADROOM;
    big_mbuf.nb_segs = 1;

    memset(&vq, 0, sizeof vq);
    vq.size = QSIZE;
    vq.desc = desc(0);
    vq.avail = avail();
    vq.used = used();
    vq.callfd = callfd;
    vq.last_avail = vq.last_used = start;
    avail()->idx = used()->idx = start;
    vhost_virtq_rearm(&vq);
}

/* The guest sends, in descriptor 'i' and buffer 'i', a header and a frame
 * of 'len' bytes. */
static void
guest_send(int i, uint32_t len, uint8_t seed)
{
    uint8_t *p = g2h(buf_gpa(i));

    memset(p, 0, HDR_LEN);
    fill_frame(p + HDR_LEN, len, seed);
    set_desc(desc(i), buf_gpa(i), HDR_LEN + len, 0, 0);
    post(i);
}

/* The guest posts receive buffer 'i', 'len' bytes, its header garbage. */
static void
guest_post_rx(int i, uint32_t len)
{
    memset(g2h(buf_gpa(i)), 0xa5, len);
    set_desc(desc(i), buf_gpa(i), len, VRING_DESC_F_WRITE, 0);
    post(i);
}

/* Takes up to 'n' packets, as the switch does: as many as the guest made
 * available, if its avail index makes sense. */
static uint16_t
dequeue(uint16_t n, struct vhost_virtq_errors *err)
{
    uint16_t idx;
    int n_avail = vhost_virtq_n_avail(&vq, &idx);

    if (n_avail < 0) {
        memset(err, 0, sizeof *err);
        err->bad_avail = idx;
        return 0;
    }
    return vhost_virtq_dequeue(&dev, &vq, pkts, n < n_avail ? n : n_avail,
                               &big,
                               err);
}

static uint16_t
enqueue(uint16_t n, struct vhost_virtq_errors *err)
{
    return vhost_virtq_enqueue(&dev, &vq, pkts, n, err);
}

static void
test_dequeue_simple(void)
{
    struct vhost_virtq_errors err;
    uint16_t n_avail, idx;

    setup(0, HDR_LEN);
    guest_send(0, 60, 1);
    guest_send(1, 64, 2);
    guest_send(2, 1500, 3);
    CHECK_EQ(vhost_virtq_n_avail(&vq, &idx), 3);
    CHECK_EQ(idx, 3);

    n_avail = dequeue(3, &err);
    CHECK_EQ(n_avail, 3);
    CHECK_EQ(err.bad_desc + err.too_long, 0);
    CHECK_EQ(err.bad_avail, -1);
    CHECK_EQ(pkts[0]->pkt_len, 60);
    CHECK_EQ(pkts[1]->pkt_len, 64);
    CHECK_EQ(pkts[2]->pkt_len, 1500);
    CHECK_EQ(pkts[2]->data_len, 1500);
    CHECK(frame_ok(rte_pktmbuf_mtod(pkts[0], uint8_t *), 60, 1));
    CHECK(frame_ok(rte_pktmbuf_mtod(pkts[1], uint8_t *), 64, 2));
    CHECK(frame_ok(rte_pktmbuf_mtod(pkts[2], uint8_t *), 1500, 3));

    /* Each chain back, written to, unread. */
    CHECK_EQ(used()->idx, 3);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(used()->ring[i].id, i);
        CHECK_EQ(used()->ring[i].len, 0);
    }
    CHECK_EQ(vq.last_avail, 3);
    CHECK_EQ(vq.last_used, 3);
    CHECK_EQ(notifications(), 1);

    CHECK_EQ(vq.stats[VHOST_VS_good_packets], 3);
    CHECK_EQ(vq.stats[VHOST_VS_good_bytes], 60 + 64 + 1500);
    CHECK_EQ(vq.stats[VHOST_VS_undersize_packets], 1);
    CHECK_EQ(vq.stats[VHOST_VS_size_64_packets], 1);
    CHECK_EQ(vq.stats[VHOST_VS_size_1024_1518_packets], 1);
    CHECK_EQ(vq.stats[VHOST_VS_guest_notifications], 1);

    /* Nothing more: nothing moves, no interrupt. */
    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 0);
    CHECK_EQ(used()->idx, 3);
    CHECK_EQ(notifications(), 0);
}

/* Fewer mbufs than packets: the rest wait for the next burst. */
static void
test_dequeue_partial(void)
{
    struct vhost_virtq_errors err;

    setup(0, HDR_LEN);
    for (int i = 0; i < 5; i++) {
        guest_send(i, 100 + i, i);
    }
    CHECK_EQ(dequeue(2, &err), 2);
    CHECK_EQ(vq.last_avail, 2);
    CHECK_EQ(used()->idx, 2);
    reset_mbufs();
    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 3);
    CHECK_EQ(pkts[0]->pkt_len, 102);
    CHECK(frame_ok(rte_pktmbuf_mtod(pkts[2], uint8_t *), 104, 4));
    CHECK_EQ(used()->idx, 5);
    CHECK_EQ(used()->ring[4].id, 4);
}

/* Chains: the header alone, then the frame over two descriptors; and an
 * indirect table; and a buffer across two memory regions. */
static void
test_dequeue_chains(void)
{
    struct vring_desc *table = g2h(GPA_INDIRECT);
    struct vhost_virtq_errors err;
    uint8_t frame[300];
    uint8_t *edge;

    setup(0, HDR_LEN);
    fill_frame(frame, sizeof frame, 7);

    /* Chain 0 -> 5 -> 6: 12 + 100 + 200 bytes. */
    memset(g2h(buf_gpa(0)), 0, HDR_LEN);
    memcpy(g2h(buf_gpa(5)), frame, 100);
    memcpy(g2h(buf_gpa(6)), frame + 100, 200);
    set_desc(desc(0), buf_gpa(0), HDR_LEN, VRING_DESC_F_NEXT, 5);
    set_desc(desc(5), buf_gpa(5), 100, VRING_DESC_F_NEXT, 6);
    set_desc(desc(6), buf_gpa(6), 200, 0, 0);
    post(0);

    /* Indirect: a table of two, header and frame. */
    memset(g2h(buf_gpa(1)), 0, HDR_LEN);
    memcpy(g2h(buf_gpa(2)), frame, 300);
    set_desc(&table[0], buf_gpa(1), HDR_LEN, VRING_DESC_F_NEXT, 1);
    set_desc(&table[1], buf_gpa(2), 300, 0, 0);
    set_desc(desc(1), GPA_INDIRECT, 2 * sizeof *table,
             VRING_DESC_F_INDIRECT, 0);
    post(1);

    /* The last 100 bytes of region A and the first 212 of region B. */
    edge = g2h(GPA_B - 100);
    memset(edge, 0, HDR_LEN);
    memcpy(edge + HDR_LEN, frame, 100 - HDR_LEN);
    memcpy(g2h(GPA_B), frame + 100 - HDR_LEN, 300 - (100 - HDR_LEN));
    set_desc(desc(3), GPA_B - 100, HDR_LEN + 300, 0, 0);
    post(3);

    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 3);
    CHECK_EQ(err.bad_desc, 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(pkts[i]->pkt_len, 300);
        CHECK(!memcmp(rte_pktmbuf_mtod(pkts[i], uint8_t *), frame, 300));
    }
    CHECK_EQ(used()->ring[0].id, 0);
    CHECK_EQ(used()->ring[1].id, 1);
    CHECK_EQ(used()->ring[2].id, 3);
}

/* A guest that breaks the rules loses those packets, handed back to it,
 * and nobody else's; the rest of the burst goes through. */
static void
test_dequeue_hostile(void)
{
    struct vring_desc *table = g2h(GPA_INDIRECT);
    struct vhost_virtq_errors err;

    setup(0, HDR_LEN);
    guest_send(0, 80, 1);
    post(QSIZE);                        /* Head out of the table. */
    set_desc(desc(2), buf_gpa(2), 64, VRING_DESC_F_NEXT, 2);
    post(2);                            /* A loop. */
    set_desc(desc(3), GPA_B + SIZE_B - 10, 64, 0, 0);
    post(3);                            /* Past the end of guest memory. */
    set_desc(desc(4), GPA_INDIRECT, 16, VRING_DESC_F_INDIRECT, 0);
    set_desc(&table[0], GPA_INDIRECT, 16, VRING_DESC_F_INDIRECT, 0);
    post(4);                            /* Nested indirect tables. */
    set_desc(desc(5), buf_gpa(5), HDR_LEN - 1, 0, 0);
    post(5);                            /* Shorter than its header. */
    guest_send(6, 90, 2);

    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 2);
    CHECK_EQ(err.bad_desc, 5);
    CHECK_EQ(err.too_long, 0);
    CHECK_EQ(pkts[0]->pkt_len, 80);
    CHECK_EQ(pkts[1]->pkt_len, 90);
    CHECK(frame_ok(rte_pktmbuf_mtod(pkts[1], uint8_t *), 90, 2));
    CHECK_EQ(used()->idx, 7);
    CHECK_EQ(vq.last_avail, 7);
    CHECK_EQ(used()->ring[1].id, QSIZE);
    CHECK_EQ(used()->ring[3].id, 3);
    CHECK_EQ(vq.stats[VHOST_VS_good_packets], 2);
}

/* A frame longer than an mbuf holds is dropped as too long. */
static void
test_dequeue_too_long(void)
{
    struct vhost_virtq_errors err;

    setup(0, HDR_LEN);
    guest_send(0, MBUF_ROOM + 1, 1);
    guest_send(1, MBUF_ROOM, 2);
    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 1);
    CHECK_EQ(err.too_long, 1);
    CHECK_EQ(err.bad_desc, 0);
    CHECK_EQ(pkts[0]->pkt_len, MBUF_ROOM);
    CHECK_EQ(used()->idx, 2);
}

/* An avail index more than a ring ahead stops the queue: nothing read,
 * nothing written. */
static void
test_bad_avail_idx(void)
{
    struct vhost_virtq_errors err;
    uint16_t idx;

    setup(0, HDR_LEN);
    guest_send(0, 80, 1);
    avail()->idx = QSIZE + 1;
    CHECK_EQ(vhost_virtq_n_avail(&vq, &idx), -1);
    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 0);
    CHECK_EQ(err.bad_avail, QSIZE + 1);
    CHECK_EQ(used()->idx, 0);
    CHECK_EQ(vq.last_avail, 0);
    CHECK_EQ(enqueue(1, &err), 0);
    CHECK_EQ(err.bad_avail, QSIZE + 1);
    CHECK_EQ(notifications(), 0);
}

/* The 16-bit indexes wrap around. */
static void
test_wrap(void)
{
    struct vhost_virtq_errors err;

    setup(65534, HDR_LEN);
    for (int i = 0; i < 4; i++) {
        guest_send(i, 70, i);
    }
    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 4);
    CHECK_EQ(vq.last_avail, 2);
    CHECK_EQ(used()->idx, 2);
    CHECK_EQ(used()->ring[65535 % QSIZE].id, 1);
    CHECK_EQ(used()->ring[1].id, 3);
}

/* With VIRTIO_F_IN_ORDER only the last used entry of a burst is
 * written. */
static void
test_in_order(void)
{
    struct vhost_virtq_errors err;

    setup(0, HDR_LEN);
    dev.in_order = true;
    for (int i = 0; i < 3; i++) {
        guest_send(i, 70, i);
    }
    for (int i = 0; i < 3; i++) {
        used()->ring[i].id = 0xbeef;
    }
    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 3);
    CHECK_EQ(used()->ring[0].id, 0xbeef);
    CHECK_EQ(used()->ring[1].id, 0xbeef);
    CHECK_EQ(used()->ring[2].id, 2);
    CHECK_EQ(used()->idx, 3);
}

static void
test_enqueue_simple(void)
{
    struct virtio_net_hdr_mrg_rxbuf *h;
    struct vhost_virtq_errors err;

    setup(0, HDR_LEN);
    for (int i = 0; i < 4; i++) {
        guest_post_rx(i, 2048);
    }
    frame_mbuf(0, 60, 1);
    frame_mbuf(1, 1000, 2);
    frame_mbuf(2, 1514, 3);
    CHECK_EQ(enqueue(3, &err), 3);
    CHECK_EQ(err.bad_desc + err.too_long, 0);
    for (int i = 0; i < 3; i++) {
        static const uint32_t lens[] = { 60, 1000, 1514 };
        uint8_t *p = g2h(buf_gpa(i));

        h = (void *) p;
        CHECK_EQ(h->hdr.flags, 0);
        CHECK_EQ(h->hdr.gso_type, 0);
        CHECK_EQ(h->hdr.csum_start, 0);
        CHECK_EQ(h->num_buffers, 1);
        CHECK(frame_ok(p + HDR_LEN, lens[i], i + 1));
        CHECK_EQ(p[HDR_LEN + lens[i]], 0xa5);  /* Nothing past it. */
        CHECK_EQ(used()->ring[i].id, i);
        CHECK_EQ(used()->ring[i].len, HDR_LEN + lens[i]);
    }
    CHECK_EQ(used()->idx, 3);
    CHECK_EQ(vq.last_avail, 3);
    CHECK_EQ(notifications(), 1);
    CHECK_EQ(vq.stats[VHOST_VS_good_packets], 3);
    CHECK_EQ(vq.stats[VHOST_VS_good_bytes], 60 + 1000 + 1514);
    CHECK_EQ(vq.stats[VHOST_VS_size_512_1023_packets], 1);
}

/* A ring with room for two takes two of three; a broadcast is counted as
 * such. */
static void
test_enqueue_full(void)
{
    struct vhost_virtq_errors err;

    setup(0, HDR_LEN);
    guest_post_rx(0, 2048);
    guest_post_rx(1, 2048);
    memset(rte_pktmbuf_mtod(frame_mbuf(0, 64, 1), uint8_t *), 0xff, 6);
    frame_mbuf(1, 64, 2);
    frame_mbuf(2, 64, 3);
    CHECK_EQ(enqueue(3, &err), 2);
    CHECK_EQ(err.bad_desc + err.too_long, 0);
    CHECK_EQ(used()->idx, 2);
    CHECK_EQ(vq.stats[VHOST_VS_broadcast_packets], 1);
    CHECK_EQ(vq.stats[VHOST_VS_multicast_packets], 0);
    CHECK_EQ(enqueue(1, &err), 0);
    CHECK_EQ(used()->idx, 2);
}

/* Mergeable buffers: a frame over three small buffers, the header's
 * num_buffers saying so. */
static void
test_enqueue_mergeable(void)
{
    struct virtio_net_hdr_mrg_rxbuf *h;
    struct vhost_virtq_errors err;
    uint8_t got[600];

    setup(0, HDR_LEN);
    for (int i = 0; i < 4; i++) {
        guest_post_rx(i, 256);
    }
    frame_mbuf(0, 600, 9);
    CHECK_EQ(enqueue(1, &err), 1);
    CHECK_EQ(used()->idx, 3);
    CHECK_EQ(used()->ring[0].len, 256);
    CHECK_EQ(used()->ring[1].len, 256);
    CHECK_EQ(used()->ring[2].len, HDR_LEN + 600 - 512);
    h = g2h(buf_gpa(0));
    CHECK_EQ(h->num_buffers, 3);
    memcpy(got, (uint8_t *) g2h(buf_gpa(0)) + HDR_LEN, 256 - HDR_LEN);
    memcpy(got + 256 - HDR_LEN, g2h(buf_gpa(1)), 256);
    memcpy(got + 512 - HDR_LEN, g2h(buf_gpa(2)), 600 - 512 + HDR_LEN);
    CHECK(frame_ok(got, 600, 9));
    CHECK_EQ(vq.last_avail, 3);
}

/* Without mergeable buffers a frame that does not fit the next buffer is
 * dropped, and the buffer waits for a smaller one; a buffer outside guest
 * memory is handed back empty, and the next frame takes the next one. */
static void
test_enqueue_drops(void)
{
    const uint32_t hdr_len = sizeof(struct virtio_net_hdr);
    struct vhost_virtq_errors err;

    setup(0, hdr_len);
    guest_post_rx(0, 100);
    frame_mbuf(0, 200, 1);
    CHECK_EQ(enqueue(1, &err), 1);
    CHECK_EQ(err.too_long, 1);
    CHECK_EQ(err.bad_desc, 0);
    CHECK_EQ(err.dropped_bytes, 200);
    CHECK_EQ(used()->idx, 0);
    CHECK_EQ(vq.last_avail, 0);
    frame_mbuf(0, 50, 2);
    CHECK_EQ(enqueue(1, &err), 1);
    CHECK_EQ(err.too_long, 0);
    CHECK_EQ(used()->idx, 1);
    CHECK_EQ(used()->ring[0].len, hdr_len + 50);
    CHECK(frame_ok((uint8_t *) g2h(buf_gpa(0)) + hdr_len, 50, 2));

    set_desc(desc(1), GPA_B + SIZE_B, 2048, VRING_DESC_F_WRITE, 0);
    post(1);
    guest_post_rx(2, 2048);
    frame_mbuf(0, 200, 3);
    frame_mbuf(1, 200, 4);
    CHECK_EQ(enqueue(2, &err), 2);
    CHECK_EQ(err.bad_desc, 1);
    CHECK_EQ(err.too_long, 0);
    CHECK_EQ(err.dropped_bytes, 200);
    CHECK_EQ(used()->idx, 3);
    CHECK_EQ(used()->ring[1].id, 1);
    CHECK_EQ(used()->ring[1].len, 0);
    CHECK_EQ(used()->ring[2].id, 2);
    CHECK_EQ(used()->ring[2].len, hdr_len + 200);
    CHECK(frame_ok((uint8_t *) g2h(buf_gpa(2)) + hdr_len, 200, 4));
    CHECK_EQ(vq.stats[VHOST_VS_good_packets], 2);
}

/* Interrupts: none while the guest says VRING_AVAIL_F_NO_INTERRUPT; with
 * VIRTIO_RING_F_EVENT_IDX, one when the used index passes the guest's
 * used_event. */
static void
test_notifications(void)
{
    struct vhost_virtq_errors err;
    uint16_t *used_event;

    setup(0, HDR_LEN);
    avail()->flags = VRING_AVAIL_F_NO_INTERRUPT;
    guest_send(0, 80, 1);
    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 1);
    CHECK_EQ(notifications(), 0);
    CHECK_EQ(vq.stats[VHOST_VS_guest_notifications], 0);

    setup(0, HDR_LEN);
    dev.event_idx = true;
    used_event = &avail()->ring[QSIZE];
    *used_event = 2;
    guest_send(0, 80, 1);
    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 1);
    CHECK_EQ(notifications(), 1);       /* The first always. */
    reset_mbufs();
    guest_send(1, 80, 1);
    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 1);
    CHECK_EQ(notifications(), 0);       /* used 2: not past 2 yet. */
    reset_mbufs();
    guest_send(2, 80, 1);
    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 1);
    CHECK_EQ(notifications(), 1);       /* used 3: past it. */
    CHECK_EQ(vq.stats[VHOST_VS_guest_notifications], 2);
}

/* Counts for librte_vhost's datapath. */
static void
test_count_mbufs(void)
{
    setup(0, HDR_LEN);
    frame_mbuf(0, 2000, 1);
    memset(rte_pktmbuf_mtod(frame_mbuf(1, 128, 2), uint8_t *), 0x01, 1);
    vhost_virtq_count_mbufs(&vq, pkts, 2);
    CHECK_EQ(vq.stats[VHOST_VS_good_packets], 2);
    CHECK_EQ(vq.stats[VHOST_VS_good_bytes], 2128);
    CHECK_EQ(vq.stats[VHOST_VS_size_1519_max_packets], 1);
    CHECK_EQ(vq.stats[VHOST_VS_size_128_255_packets], 1);
    CHECK_EQ(vq.stats[VHOST_VS_multicast_packets], 1);
}

/* A ring is used only if all of it lies in guest memory, for its size
 * and features, and it is aligned as the virtio specification asks. */
static void
test_ring_check(void)
{
    static const char *outside = "used ring lies outside guest memory";
    const char *why;

    setup(0, HDR_LEN);
    CHECK(!vhost_virtq_check(&dev, &vq));

    /* The used ring ends where its memory region does: fine, until the
     * guest negotiates EVENT_IDX, which adds 2 bytes past it. */
    vq.used = (struct vring_used *) (mem_b + SIZE_B - sizeof *vq.used
                                     - QSIZE * sizeof vq.used->ring[0]);
    CHECK(!vhost_virtq_check(&dev, &vq));
    dev.event_idx = true;
    why = vhost_virtq_check(&dev, &vq);
    CHECK(why && !strcmp(why, outside));
    dev.event_idx = false;

    /* A larger size stretches it past its region as well. */
    vq.size = QSIZE * 2;
    why = vhost_virtq_check(&dev, &vq);
    CHECK(why && !strcmp(why, outside));

    vq.used = used();
    vq.size = QSIZE - 1;
    why = vhost_virtq_check(&dev, &vq);
    CHECK(why && !strcmp(why, "ring size is not a power of 2"));

    vq.size = QSIZE;
    vq.desc = (struct vring_desc *) ((char *) desc(0) + 8);
    why = vhost_virtq_check(&dev, &vq);
    CHECK(why && !strcmp(why, "ring is misaligned"));

    vq.desc = (struct vring_desc *) (mem_b + SIZE_B - 4 * 16);
    why = vhost_virtq_check(&dev, &vq);
    CHECK(why && !strcmp(why, "descriptor table lies outside guest memory"));
}

/* Indirect tables hold at most as many descriptors as the ring, lie at an
 * address that is a multiple of 8, and are not chained. */
static void
test_indirect_limits(void)
{
    struct vring_desc *table = g2h(GPA_INDIRECT);
    struct vhost_virtq_errors err;
    uint8_t *p = g2h(buf_gpa(1));

    setup(0, HDR_LEN);
    /* A header and a frame in QSIZE descriptors (the last one the frame):
     * the most a table may hold. */
    memset(p, 0, HDR_LEN);
    fill_frame(p + HDR_LEN, 64, 7);
    for (int i = 0; i < QSIZE - 1; i++) {
        set_desc(&table[i], buf_gpa(1), i ? 0 : HDR_LEN,
                 VRING_DESC_F_NEXT, i + 1);
    }
    set_desc(&table[QSIZE - 1], buf_gpa(1) + HDR_LEN, 64, 0, 0);
    set_desc(desc(0), GPA_INDIRECT, 16 * QSIZE, VRING_DESC_F_INDIRECT, 0);
    post(0);
    /* One more: refused. */
    set_desc(desc(1), GPA_INDIRECT, 16 * (QSIZE + 1), VRING_DESC_F_INDIRECT,
             0);
    post(1);
    /* At an odd address. */
    set_desc(desc(2), GPA_INDIRECT + 4, 16, VRING_DESC_F_INDIRECT, 0);
    post(2);
    /* Chained. */
    set_desc(desc(3), GPA_INDIRECT, 16 * QSIZE,
             VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 4);
    post(3);

    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 1);
    CHECK_EQ(err.bad_desc, 3);
    CHECK_EQ(err.over_budget, 0);
    CHECK_EQ(err.steps, 1 + QSIZE + 3);
    CHECK_EQ(pkts[0]->pkt_len, 64);
    CHECK(frame_ok(rte_pktmbuf_mtod(pkts[0], uint8_t *), 64, 7));
    CHECK_EQ(used()->idx, 4);
}

/* Receive buffers that the guest did not make writable are handed back
 * unwritten, and the packet is dropped. */
static void
test_enqueue_readonly(void)
{
    struct vhost_virtq_errors err;

    setup(0, HDR_LEN);
    memset(g2h(buf_gpa(0)), 0xa5, 256);
    set_desc(desc(0), buf_gpa(0), 256, 0, 0);
    post(0);
    guest_post_rx(1, 256);
    frame_mbuf(0, 64, 1);
    frame_mbuf(1, 64, 2);

    CHECK_EQ(enqueue(2, &err), 2);
    CHECK_EQ(err.bad_desc, 1);
    CHECK_EQ(err.dropped_bytes, 64);
    CHECK_EQ(used()->idx, 2);
    CHECK_EQ(used()->ring[0].id, 0);
    CHECK_EQ(used()->ring[0].len, 0);
    CHECK_EQ(*(uint8_t *) g2h(buf_gpa(0)), 0xa5);
    CHECK_EQ(used()->ring[1].id, 1);
    CHECK_EQ(used()->ring[1].len, HDR_LEN + 64);
    CHECK(frame_ok((uint8_t *) g2h(buf_gpa(1)) + HDR_LEN, 64, 2));
}

/* Packed rings.  The descriptor ring lies where the split one does, the
 * driver's event area where the avail ring does and the device's where
 * the used ring does.  The guest starts with wrap counters set, as a
 * driver does. */

#define P_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define P_USED (1u << VRING_PACKED_DESC_F_USED)

static uint16_t g_avail, g_used;        /* The guest's positions. */
static bool g_avail_wrap, g_used_wrap;  /* And wrap counters. */

static struct vring_packed_desc *
pdesc(int i)
{
    return (struct vring_packed_desc *) g2h(GPA_DESC) + i;
}

static struct vring_packed_desc_event *
driver_event(void)
{
    return g2h(GPA_AVAIL);
}

/* A fresh packed ring of 'size' descriptors at position 'start' (wrap
 * counters set), with 'hdr_len' bytes of virtio-net header. */
static void
setup_packed(uint16_t size, uint16_t start, uint16_t hdr_len)
{
    setup(0, hdr_len);
    dev.packed = true;
    vq.packed = true;
    vq.size = size;
    vq.desc_packed = pdesc(0);
    vq.driver_event = driver_event();
    vq.device_event = g2h(GPA_USED);
    vq.last_avail = vq.last_used = start;
    vq.avail_wrap = vq.used_wrap = true;
    g_avail = g_used = start;
    g_avail_wrap = g_used_wrap = true;
    vhost_virtq_rearm(&vq);
}

/* The guest makes a descriptor available at its position: buffer 'addr'
 * of 'len' bytes, id 'id', and 'flags' (NEXT, WRITE, INDIRECT).  Returns
 * its position. */
static uint16_t
ppost(uint64_t addr, uint32_t len, uint16_t id, uint16_t flags)
{
    struct vring_packed_desc *d = pdesc(g_avail);
    uint16_t pos = g_avail;

    d->addr = addr;
    d->len = len;
    d->id = id;
    d->flags = flags | (g_avail_wrap ? P_AVAIL : P_USED);
    if (++g_avail == vq.size) {
        g_avail = 0;
        g_avail_wrap = !g_avail_wrap;
    }
    return pos;
}

/* The guest sends a header and a frame of 'len' bytes in buffer 'i',
 * id 'i'. */
static void
pguest_send(int i, uint32_t len, uint8_t seed)
{
    uint8_t *p = g2h(buf_gpa(i));

    memset(p, 0, HDR_LEN);
    fill_frame(p + HDR_LEN, len, seed);
    ppost(buf_gpa(i), HDR_LEN + len, i, 0);
}

/* Whether the device handed a buffer back at the guest's used position. */
static bool
pused_pending(void)
{
    uint16_t f = pdesc(g_used)->flags;

    return (!!(f & P_AVAIL) == g_used_wrap && !!(f & P_USED) == g_used_wrap);
}

/* Checks that the device handed back buffer 'id', 'len' bytes written,
 * at the guest's used position, and moves that on by 'n_descs'. */
static void
check_pused(uint16_t id, uint32_t len, uint16_t n_descs, int line)
{
    const struct vring_packed_desc *d = pdesc(g_used);

    check(pused_pending(), "the entry is used", line);
    check_eq(d->id, id, "id", "want", line);
    check_eq(d->len, len, "len", "want", line);
    check_eq(!!(d->flags & VRING_DESC_F_WRITE), !!len, "WRITE", "len > 0",
             line);
    g_used += n_descs;
    if (g_used >= vq.size) {
        g_used -= vq.size;
        g_used_wrap = !g_used_wrap;
    }
}
#define CHECK_PUSED(ID, LEN, N) check_pused(ID, LEN, N, __LINE__)

static void
test_packed_dequeue(void)
{
    struct vhost_virtq_errors err;
    struct vring_packed_desc *table;
    uint8_t *p;
    uint16_t idx;

    setup_packed(QSIZE, 0, HDR_LEN);
    CHECK_EQ(vhost_virtq_n_avail(&vq, &idx), 0);
    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 0);
    CHECK(!pused_pending());

    pguest_send(0, 60, 1);
    pguest_send(1, 1500, 2);
    /* A chain of two: the header alone, then the frame; its id is the
     * last descriptor's. */
    p = g2h(buf_gpa(2));
    memset(p, 0, HDR_LEN);
    fill_frame(p + 64, 100, 3);
    ppost(buf_gpa(2), HDR_LEN, 99, VRING_DESC_F_NEXT);
    ppost(buf_gpa(2) + 64, 100, 7, 0);
    /* An indirect table of two: the header with 10 bytes, then 90. */
    table = g2h(GPA_INDIRECT);
    p = g2h(buf_gpa(3));
    memset(p, 0, HDR_LEN);
    fill_frame(p + HDR_LEN, 100, 4);
    table[0] = (struct vring_packed_desc) { buf_gpa(3), HDR_LEN + 10, 0, 0 };
    table[1] = (struct vring_packed_desc) { buf_gpa(3) + HDR_LEN + 10, 90,
                                            0, 0 };
    ppost(GPA_INDIRECT, 2 * sizeof *table, 5, VRING_DESC_F_INDIRECT);

    CHECK_EQ(vhost_virtq_n_avail(&vq, &idx), 5);
    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 4);
    CHECK_EQ(err.bad_desc + err.too_long + err.over_budget, 0);
    CHECK_EQ(pkts[0]->pkt_len, 60);
    CHECK_EQ(pkts[1]->pkt_len, 1500);
    CHECK_EQ(pkts[2]->pkt_len, 100);
    CHECK_EQ(pkts[3]->pkt_len, 100);
    CHECK(frame_ok(rte_pktmbuf_mtod(pkts[0], uint8_t *), 60, 1));
    CHECK(frame_ok(rte_pktmbuf_mtod(pkts[1], uint8_t *), 1500, 2));
    CHECK(frame_ok(rte_pktmbuf_mtod(pkts[2], uint8_t *), 100, 3));
    CHECK(frame_ok(rte_pktmbuf_mtod(pkts[3], uint8_t *), 100, 4));

    CHECK_PUSED(0, 0, 1);
    CHECK_PUSED(1, 0, 1);
    CHECK_PUSED(7, 0, 2);
    CHECK_PUSED(5, 0, 1);
    CHECK(!pused_pending());
    CHECK_EQ(vq.last_avail, 5);
    CHECK_EQ(vq.last_used, 5);
    CHECK(vq.avail_wrap && vq.used_wrap);
    CHECK_EQ(notifications(), 1);
    CHECK_EQ(vq.stats[VHOST_VS_good_packets], 4);
    CHECK_EQ(vq.stats[VHOST_VS_good_bytes], 60 + 1500 + 100 + 100);

    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 0);
    CHECK_EQ(notifications(), 0);
}

/* A ring whose size is not a power of 2, around its end twice: the wrap
 * counters flip, and with them the flags that mean "available" and
 * "used". */
static void
test_packed_wrap(void)
{
    struct vhost_virtq_errors err;
    uint16_t a, u;

    setup_packed(5, 3, HDR_LEN);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 4; i++) {
            pguest_send(i, 64 + i, round * 4 + i);
        }
        CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 4);
        for (int i = 0; i < 4; i++) {
            CHECK(frame_ok(rte_pktmbuf_mtod(pkts[i], uint8_t *), 64 + i,
                           round * 4 + i));
            CHECK_PUSED(i, 0, 1);
        }
        /* (A slot the device never wrote looks used to a guest whose
         * counter is 0: what it has not made available, it never reads.) */
        CHECK_EQ(vq.last_used, g_used);
        CHECK_EQ(vq.used_wrap, g_used_wrap);
        reset_mbufs();
    }
    /* 12 from position 3 of 5: position 0, after three wraps. */
    CHECK_EQ(vq.last_avail, 0);
    CHECK(!vq.avail_wrap && !vq.used_wrap);

    /* librte_vhost's form: the wrap counter in bit 15. */
    vhost_virtq_get_base(&vq, &a, &u);
    CHECK_EQ(a, 0);
    CHECK_EQ(u, 0);
    vhost_virtq_set_base(&vq, 0x8002, 0x8002);
    CHECK_EQ(vq.last_avail, 2);
    CHECK(vq.avail_wrap && vq.used_wrap);
    vhost_virtq_get_base(&vq, &a, &u);
    CHECK_EQ(a, 0x8002);
    CHECK_EQ(u, 0x8002);
}

/* Chains that break the rules are handed back empty and counted, and the
 * packets around them still go through. */
static void
test_packed_hostile(void)
{
    struct vhost_virtq_errors err;
    uint16_t idx;

    setup_packed(QSIZE, 0, HDR_LEN);
    pguest_send(0, 64, 1);
    /* Outside guest memory. */
    ppost(0xdead0000, 100, 1, 0);
    /* An indirect table longer than the ring. */
    ppost(GPA_INDIRECT, (QSIZE + 1) * sizeof(struct vring_packed_desc), 2,
          VRING_DESC_F_INDIRECT);
    /* Indirect and "next" at once. */
    ppost(GPA_INDIRECT, sizeof(struct vring_packed_desc), 3,
          VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT);
    ppost(buf_gpa(4), 100, 4, 0);
    pguest_send(5, 65, 2);
    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 2);
    CHECK_EQ(err.bad_desc, 3);
    CHECK(frame_ok(rte_pktmbuf_mtod(pkts[0], uint8_t *), 64, 1));
    CHECK(frame_ok(rte_pktmbuf_mtod(pkts[1], uint8_t *), 65, 2));
    CHECK_PUSED(0, 0, 1);
    CHECK_PUSED(1, 0, 1);
    CHECK_PUSED(2, 0, 1);
    CHECK_PUSED(4, 0, 2);
    CHECK_PUSED(5, 0, 1);
    CHECK(!pused_pending());
    reset_mbufs();

    /* A chain that says "next" into a descriptor the guest did not make
     * available: handed back as far as it went, nothing more taken. */
    ppost(buf_gpa(6), 100, 6, VRING_DESC_F_NEXT);
    CHECK_EQ(vhost_virtq_n_avail(&vq, &idx), 1);
    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 0);
    CHECK_EQ(err.bad_desc, 1);
    CHECK_PUSED(6, 0, 1);
    CHECK(!pused_pending());
    CHECK_EQ(vq.last_avail, g_avail);

    /* A chain longer than a ring: the ring is the limit. */
    setup_packed(QSIZE, 0, HDR_LEN);
    for (int i = 0; i < QSIZE; i++) {
        ppost(buf_gpa(i), 16, i, VRING_DESC_F_NEXT);
    }
    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 0);
    CHECK_EQ(err.bad_desc, 1);
    CHECK_PUSED(QSIZE - 1, 0, QSIZE);
    CHECK(!vq.avail_wrap);
}

static void
test_packed_enqueue(void)
{
    struct vhost_virtq_errors err;
    uint8_t *p;

    setup_packed(QSIZE, 0, HDR_LEN);
    CHECK_EQ(enqueue(1, &err), 0);
    for (int i = 0; i < 4; i++) {
        memset(g2h(buf_gpa(i)), 0xa5, 2048);
        ppost(buf_gpa(i), 2048, 10 + i, VRING_DESC_F_WRITE);
    }
    frame_mbuf(0, 64, 1);
    frame_mbuf(1, 1500, 2);
    /* Longer than one buffer: two, with mergeable buffers. */
    mbufs[2].buf_len = RTE_PKTMBUF_HEADROOM + MBUF_ROOM;
    frame_mbuf(2, 2040, 3);
    frame_mbuf(3, 100, 4);
    CHECK_EQ(enqueue(4, &err), 3);
    CHECK_EQ(err.bad_desc + err.too_long, 0);
    CHECK_PUSED(10, HDR_LEN + 64, 1);
    CHECK_PUSED(11, HDR_LEN + 1500, 1);
    CHECK_PUSED(12, 2048, 1);
    CHECK_PUSED(13, HDR_LEN + 2040 - 2048, 1);
    CHECK(!pused_pending());
    p = g2h(buf_gpa(0));
    CHECK_EQ(((struct virtio_net_hdr_mrg_rxbuf *) p)->num_buffers, 1);
    CHECK(frame_ok(p + HDR_LEN, 64, 1));
    CHECK(frame_ok((uint8_t *) g2h(buf_gpa(1)) + HDR_LEN, 1500, 2));
    p = g2h(buf_gpa(2));
    CHECK_EQ(((struct virtio_net_hdr_mrg_rxbuf *) p)->num_buffers, 2);
    CHECK(frame_ok(p + HDR_LEN, 2048 - HDR_LEN, 3));
    p = g2h(buf_gpa(3));
    for (int i = 0; i < 2040 - (2048 - HDR_LEN); i++) {
        CHECK_EQ(p[i], (uint8_t) (3 + 2048 - HDR_LEN + i));
    }
    CHECK_EQ(notifications(), 1);
    CHECK_EQ(vq.stats[VHOST_VS_good_packets], 3);

    /* The fourth packet waits for buffers; then a chain of two takes it,
     * and a buffer without WRITE is handed back and its packet dropped. */
    ppost(buf_gpa(4), 16, 99, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT);
    ppost(buf_gpa(4) + 16, 1000, 14, VRING_DESC_F_WRITE);
    ppost(buf_gpa(5), 1000, 15, 0);
    pkts[0] = frame_mbuf(3, 100, 4);
    pkts[1] = frame_mbuf(4, 100, 5);
    CHECK_EQ(enqueue(2, &err), 2);
    CHECK_EQ(err.bad_desc, 1);
    CHECK_EQ(err.dropped_bytes, 100);
    CHECK_PUSED(14, HDR_LEN + 100, 2);
    CHECK_PUSED(15, 0, 1);
    CHECK(!pused_pending());
    CHECK(frame_ok((uint8_t *) g2h(buf_gpa(4)) + HDR_LEN, 100, 4));
}

/* The driver's event suppression: off, on, or at one position (with
 * VIRTIO_RING_F_EVENT_IDX). */
static void
test_packed_notifications(void)
{
    struct vhost_virtq_errors err;

    setup_packed(QSIZE, 0, HDR_LEN);
    dev.event_idx = true;
    driver_event()->flags = VRING_PACKED_EVENT_FLAG_DISABLE;
    pguest_send(0, 64, 1);
    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 1);
    CHECK_EQ(notifications(), 0);

    driver_event()->flags = VRING_PACKED_EVENT_FLAG_ENABLE;
    pguest_send(1, 64, 1);
    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 1);
    CHECK_EQ(notifications(), 1);

    /* Once we are past position 4 of this lap: not at 2 or 3 ... */
    driver_event()->flags = VRING_PACKED_EVENT_FLAG_DESC;
    driver_event()->off_wrap = 4 | 0x8000;
    for (int i = 2; i < 4; i++) {
        pguest_send(i, 64, 1);
        CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 1);
        CHECK_EQ(notifications(), 0);
    }
    /* ... at 4 ... */
    pguest_send(4, 64, 1);
    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 1);
    CHECK_EQ(notifications(), 1);
    /* ... and, for position 1 of the next lap, not before it. */
    driver_event()->off_wrap = 1;
    for (int i = 5; i < 9; i++) {
        pguest_send(i % QSIZE, 64, 1);
        CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 1);
        CHECK_EQ(notifications(), 0);
    }
    pguest_send(1, 64, 1);
    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 1);
    CHECK_EQ(notifications(), 1);
    CHECK_EQ(vq.stats[VHOST_VS_guest_notifications], 3);
}

static void
test_packed_ring_check(void)
{
    setup_packed(QSIZE, 0, HDR_LEN);
    CHECK(!vhost_virtq_check(&dev, &vq));
    vq.size = 32768;
    CHECK(!vhost_virtq_check(&dev, &vq));
    vq.size = 32769;
    CHECK(!strcmp(vhost_virtq_check(&dev, &vq), "ring size is out of range"));
    vq.size = 0;
    CHECK(!strcmp(vhost_virtq_check(&dev, &vq), "ring size is out of range"));
    vq.size = 5;
    CHECK(!vhost_virtq_check(&dev, &vq));
    vq.driver_event = (void *) ((char *) driver_event() + 2);
    CHECK(!strcmp(vhost_virtq_check(&dev, &vq), "ring is misaligned"));
    vq.driver_event = (void *) (mem_b + SIZE_B);
    CHECK(!strcmp(vhost_virtq_check(&dev, &vq),
                  "packed ring lies outside guest memory"));
    vq.driver_event = driver_event();
    vq.desc_packed = (void *) (mem_a + SIZE_A - 64);
    CHECK(!strcmp(vhost_virtq_check(&dev, &vq),
                  "packed ring lies outside guest memory"));
}

/* Offloads. */

/* Writes at 'p' an Ethernet, IPv4 (or, if 'v6', IPv6) and TCP (or, if
 * 'udp', UDP) frame of 'len' bytes, its payload from fill_frame(). */
static void
make_l4_frame(uint8_t *p, uint32_t len, bool v6, bool udp)
{
    uint32_t l3 = v6 ? 40 : 20;

    fill_frame(p, len, 7);
    p[12] = v6 ? 0x86 : 0x08;
    p[13] = v6 ? 0xdd : 0x00;
    if (v6) {
        p[14] = 0x60;
        p[14 + 6] = udp ? 17 : 6;
    } else {
        p[14] = 0x45;
        p[14 + 9] = udp ? 17 : 6;
    }
    if (!udp) {
        p[14 + l3 + 12] = 5 << 4;       /* A 20-byte TCP header. */
    }
}

/* The guest sends a frame made by make_l4_frame() in buffer 'i' with
 * virtio-net header 'h'. */
static void
guest_send_hdr(int i, uint32_t len, const struct virtio_net_hdr *h, bool v6,
               bool udp)
{
    uint8_t *p = g2h(buf_gpa(i));

    memset(p, 0, HDR_LEN);
    memcpy(p, h, sizeof *h);
    make_l4_frame(p + HDR_LEN, len, v6, udp);
    set_desc(desc(i), buf_gpa(i), HDR_LEN + len, 0, 0);
    post(i);
}

static void
test_offload_dequeue(void)
{
    struct virtio_net_hdr h;
    struct vhost_virtq_errors err;
    uint8_t *p;

    setup(0, HDR_LEN);
    dev.host_offloads = true;
    big.m[0] = &big_mbuf;
    big.n = 1;
    big.room = BIG_ROOM;

    /* 0: a partial TCP checksum over IPv4.  1: a 3000-byte TCP segment
     * over IPv6 (into the spare).  2: a checksum past the end.  3:
     * segmentation of UDP.  4: a partial checksum elsewhere than TCP or
     * UDP (completed here).  5: no request. */
    memset(&h, 0, sizeof h);
    h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h.csum_start = 34;
    h.csum_offset = 16;
    guest_send_hdr(0, 100, &h, false, false);
    h.csum_start = 54;
    h.gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
    h.gso_size = 1440;
    guest_send_hdr(1, 3000, &h, true, false);
    memset(&h, 0, sizeof h);
    h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h.csum_start = 90;
    h.csum_offset = 16;
    guest_send_hdr(2, 100, &h, false, false);
    memset(&h, 0, sizeof h);
    h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
    h.gso_size = 1000;
    guest_send_hdr(3, 100, &h, false, true);
    memset(&h, 0, sizeof h);
    h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h.csum_start = 14;
    h.csum_offset = 4;
    guest_send_hdr(4, 60, &h, false, false);
    p = g2h(buf_gpa(4)) + HDR_LEN;
    p[12] = 0x88;               /* Not IP. */
    p[13] = 0xb5;
    p[18] = p[19] = 0;
    memset(&h, 0, sizeof h);
    guest_send_hdr(5, 100, &h, false, false);

    CHECK_EQ(dequeue(VHOST_VIRTQ_MAX_BURST, &err), 4);
    CHECK_EQ(err.bad_offload, 2);
    CHECK_EQ(err.bad_desc + err.too_long, 0);
    CHECK_EQ(used()->idx, 6);

    CHECK_EQ(pkts[0]->ol_flags, RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_TCP_CKSUM);
    CHECK_EQ(pkts[0]->l2_len, 14);
    CHECK_EQ(pkts[0]->l3_len, 20);

    CHECK(pkts[1] == &big_mbuf);
    CHECK_EQ(big.n, 0);
    CHECK(big.m[0] == &mbufs[1]);
    CHECK_EQ(pkts[1]->pkt_len, 3000);
    CHECK_EQ(pkts[1]->ol_flags, (RTE_MBUF_F_TX_IPV6 | RTE_MBUF_F_TX_TCP_SEG
                                 | RTE_MBUF_F_TX_TCP_CKSUM));
    CHECK_EQ(pkts[1]->l3_len, 40);
    CHECK_EQ(pkts[1]->l4_len, 20);
    CHECK_EQ(pkts[1]->tso_segsz, 1440);

    /* The sum over bytes 14..59, the field holding its start value (0
     * here), is 0xffff minus what the field now holds. */
    p = rte_pktmbuf_mtod(pkts[2], uint8_t *);
    CHECK_EQ(pkts[2]->ol_flags, 0);
    {
        uint32_t sum = 0;

        for (int i = 14; i + 1 < 60; i += 2) {
            sum += p[i] << 8 | p[i + 1];
        }
        while (sum >> 16) {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        CHECK_EQ(sum, 0xffff);
    }
    CHECK_EQ(pkts[3]->ol_flags, 0);
    CHECK_EQ(pkts[3]->pkt_len, 100);
}

static void
test_offload_enqueue(void)
{
    struct virtio_net_hdr_mrg_rxbuf *h;
    struct vhost_virtq_errors err;
    struct rte_mbuf *m;

    setup(0, HDR_LEN);
    dev.guest_offloads = true;
    guest_post_rx(0, 2048);
    guest_post_rx(1, 2048);
    guest_post_rx(2, 2048);

    /* A TCP segment over IPv4, in two mbufs of 1000 and 500 bytes. */
    m = frame_mbuf(0, 1500, 1);
    make_l4_frame(rte_pktmbuf_mtod(m, uint8_t *), 1500, false, false);
    m->data_len = 1000;
    m->nb_segs = 2;
    m->next = frame_mbuf(1, 500, 0);
    memcpy(rte_pktmbuf_mtod(m->next, uint8_t *),
           rte_pktmbuf_mtod(m, uint8_t *) + 1000, 500);
    m->ol_flags = (RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_TCP_SEG
                   | RTE_MBUF_F_TX_TCP_CKSUM);
    m->l2_len = 14;
    m->l3_len = 20;
    m->l4_len = 20;
    m->tso_segsz = 700;
    pkts[0] = m;
    /* A partial UDP checksum. */
    m = frame_mbuf(2, 200, 2);
    make_l4_frame(rte_pktmbuf_mtod(m, uint8_t *), 200, true, true);
    m->ol_flags = RTE_MBUF_F_TX_IPV6 | RTE_MBUF_F_TX_UDP_CKSUM;
    m->l2_len = 14;
    m->l3_len = 40;
    pkts[1] = m;
    /* Nothing asked. */
    pkts[2] = frame_mbuf(3, 64, 3);

    CHECK_EQ(enqueue(3, &err), 3);
    CHECK_EQ(err.bad_desc + err.too_long, 0);
    CHECK_EQ(used()->idx, 3);
    CHECK_EQ(used()->ring[0].len, HDR_LEN + 1500);

    h = g2h(buf_gpa(0));
    CHECK_EQ(h->hdr.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
    CHECK_EQ(h->hdr.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
    CHECK_EQ(h->hdr.gso_size, 700);
    CHECK_EQ(h->hdr.hdr_len, 54);
    CHECK_EQ(h->hdr.csum_start, 34);
    CHECK_EQ(h->hdr.csum_offset, 16);
    CHECK_EQ(h->num_buffers, 1);
    {
        uint8_t want[1500];

        make_l4_frame(want, 1500, false, false);
        CHECK(!memcmp((uint8_t *) h + HDR_LEN, want, 1500));
    }

    h = g2h(buf_gpa(1));
    CHECK_EQ(h->hdr.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
    CHECK_EQ(h->hdr.gso_type, VIRTIO_NET_HDR_GSO_NONE);
    CHECK_EQ(h->hdr.csum_start, 54);
    CHECK_EQ(h->hdr.csum_offset, 6);

    h = g2h(buf_gpa(2));
    CHECK_EQ(h->hdr.flags, 0);
    CHECK_EQ(h->hdr.gso_type, 0);
    CHECK_EQ(h->num_buffers, 1);
}

int
main(void)
{
    static const struct {
        const char *name;
        void (*run)(void);
    } tests[] = {
#define TEST(NAME) { #NAME, test_##NAME }
        TEST(dequeue_simple),
        TEST(dequeue_partial),
        TEST(dequeue_chains),
        TEST(dequeue_hostile),
        TEST(dequeue_too_long),
        TEST(bad_avail_idx),
        TEST(wrap),
        TEST(in_order),
        TEST(enqueue_simple),
        TEST(enqueue_full),
        TEST(enqueue_mergeable),
        TEST(enqueue_drops),
        TEST(notifications),
        TEST(count_mbufs),
        TEST(ring_check),
        TEST(indirect_limits),
        TEST(enqueue_readonly),
        TEST(packed_dequeue),
        TEST(packed_wrap),
        TEST(packed_hostile),
        TEST(packed_enqueue),
        TEST(packed_notifications),
        TEST(packed_ring_check),
        TEST(offload_dequeue),
        TEST(offload_enqueue),
#undef TEST
    };
    int passed = 0, failed = 0;

    setvbuf(stdout, NULL, _IONBF, 0);
    mem_a = aligned_alloc(4096, SIZE_A);
    mem_b = aligned_alloc(4096, SIZE_B);
    mem = aligned_alloc(8, sizeof *mem + 2 * sizeof mem->regions[0]);
    callfd = eventfd(0, EFD_NONBLOCK);
    if (!mem_a || !mem_b || !mem || callfd < 0) {
        perror("test-vhost-virtq");
        return 1;
    }
    memset(mem, 0, sizeof *mem + 2 * sizeof mem->regions[0]);
    mem->nregions = 2;
    mem->regions[0].guest_phys_addr = GPA_A;
    mem->regions[0].host_user_addr = (uintptr_t) mem_a;
    mem->regions[0].size = SIZE_A;
    mem->regions[1].guest_phys_addr = GPA_B;
    mem->regions[1].host_user_addr = (uintptr_t) mem_b;
    mem->regions[1].size = SIZE_B;
    big_data = aligned_alloc(64, RTE_PKTMBUF_HEADROOM + BIG_ROOM);
    for (int i = 0; i < VHOST_VIRTQ_MAX_BURST; i++) {
        mbuf_data[i] = aligned_alloc(64, RTE_PKTMBUF_HEADROOM + MBUF_ROOM);
        if (!mbuf_data[i]) {
            perror("test-vhost-virtq");
            return 1;
        }
    }

    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        n_checks_failed = 0;
        tests[i].run();
        printf("%-20s %s\n", tests[i].name, n_checks_failed ? "FAILED" : "ok");
        if (n_checks_failed) {
            failed++;
        } else {
            passed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);

    for (int i = 0; i < VHOST_VIRTQ_MAX_BURST; i++) {
        free(mbuf_data[i]);
    }
    free(big_data);
    free(mem);
    free(mem_b);
    free(mem_a);
    close(callfd);
    return failed != 0;
}
