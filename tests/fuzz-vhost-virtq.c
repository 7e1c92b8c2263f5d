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

/* A libFuzzer target for the virtqueue datapath
 * (lib/netdev-dpdk-vhost-virtq.c), split and packed rings: the input is a
 * guest.
 *
 * It lays out guest memory as the input says: one to three regions, each
 * with an inaccessible guard page on either side and nothing else mapped
 * near them, at guest physical addresses adjacent or apart; the rings of
 * one queue somewhere in the first region, of a size and with features
 * from the input.  A ring that vhost_virtq_check() refuses is not used
 * (as in the switch).  Then it runs the input's operations: writes of
 * guest memory (descriptors, rings, tables, buffers, including between
 * two bursts over the same descriptors), moves of the avail index,
 * dequeue and enqueue bursts.
 *
 * It checks that:
 *   - no byte outside guest memory is read or written (the guard pages
 *     and the mapping around them fault; mbufs are ASan-checked heap);
 *   - no burst takes more than VHOST_VIRTQ_STEP_BUDGET steps;
 *   - the counts add up: each entry taken is a packet delivered or a drop
 *     counted in one of the error counters, and as many used entries are
 *     published as entries were taken (dequeue); every packet of an
 *     enqueue is sent, dropped and counted, or left to the caller;
 *   - every mbuf is accounted for: a packet too long for its mbuf goes
 *     into a spare (features bit 64), which takes the mbuf's place, and
 *     no packet is longer than the mbuf that holds it;
 *   - on a packed ring, the used position follows the avail position
 *     (each chain taken is handed back in place), and a dequeue takes no
 *     more descriptors than vhost_virtq_n_avail() found.
 *
 * Input (little-endian):
 *   byte 0      number of regions - 1 (mod 3)
 *   byte 1      log2 of the ring size (mod 9); packed: the size - 1
 *               (mod 64)
 *   byte 2      features: 1 EVENT_IDX, 2 IN_ORDER, 4 MRG_RXBUF, 8 a
 *               10-byte header (legacy) rather than 12; 16: the guest
 *               has an interrupt eventfd; 32: a packed ring; 64:
 *               offloads both ways (the guest's virtio-net headers are
 *               applied; enqueued packets carry offload requests from
 *               the top bits of their length)
 *   bytes 3-5   pages of each region - 1 (mod 16)
 *   bytes 6-8   pages between a region and the previous one (0: adjacent)
 *   bytes 9-14  offsets of the descriptor table, avail ring and used ring
 *               (packed: descriptor ring, driver and device event areas)
 *               in the first region (16-bit, aligned down as needed)
 *   then operations, each a code byte (mod 5) and its arguments:
 *     0 write   u16 offset into guest memory (regions end to end), u8 n,
 *               n bytes
 *     1 avail   u16: the guest's avail index.  Packed: the guest makes
 *               the low byte (mod 33) descriptors available from our
 *               avail position on (if bit 15, with both flags set: a
 *               broken guest)
 *     2 dequeue u8: burst size (mod 33)
 *     3 enqueue u8: burst size (mod 33), u16: packet length (mod 2049);
 *               with offloads, its bits 12 to 15 ask for a TCP checksum,
 *               segmentation, IPv6 and (instead of TCP) UDP
 *     4 fill    u16 offset, u8 n, u8 value: n descriptors of 16 bytes
 *               from offset, each (addr = GPA of the offset + 256 * i,
 *               len = value * 8, flags and next, or id, from the index)
 */

#include <config.h>
#include "netdev-dpdk-vhost-virtq.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <linux/virtio_net.h>

#include <rte_mbuf.h>
#include <rte_vhost.h>

#define PAGE 4096
#define MAX_REGIONS 3
#define MAX_PAGES 16
#define GUARD PAGE
/* Each region lies in a slot of this size, alone but for guards. */
#define SLOT (2 * GUARD + MAX_PAGES * PAGE)
#define MBUF_ROOM 2048

static uint8_t *arena;
static int callfd;
static struct rte_vhost_memory *mem;
static struct rte_mbuf mbufs[VHOST_VIRTQ_MAX_BURST];
static struct rte_mbuf *pkts[VHOST_VIRTQ_MAX_BURST];
static uint8_t *mbuf_data[VHOST_VIRTQ_MAX_BURST];

/* Spares for packets longer than MBUF_ROOM. */
#define BIG_ROOM 16384
#define N_BIG 2
static struct rte_mbuf big_mbufs[N_BIG];
static uint8_t *big_data[N_BIG];
static struct vhost_virtq_big big;

struct input {
    const uint8_t *p;
    size_t n;
};

static uint8_t
in_u8(struct input *in)
{
    uint8_t v = 0;

    if (in->n) {
        v = *in->p++;
        in->n--;
    }
    return v;
}

static uint16_t
in_u16(struct input *in)
{
    uint16_t lo = in_u8(in);

    return lo | (uint16_t) in_u8(in) << 8;
}

static void
fail(const char *what)
{
    fprintf(stderr, "fuzz-vhost-virtq: %s\n", what);
    __builtin_trap();
}

/* Guest memory 'i' in our address space, and its size. */
static uint8_t *
region_host(int i)
{
    return arena + (size_t) i * SLOT + GUARD;
}

static void
setup_once(void)
{
    size_t size = MAX_REGIONS * SLOT + GUARD;

    /* All inaccessible; each case opens its regions. */
    arena = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (arena == MAP_FAILED) {
        fail("mmap");
    }
    callfd = eventfd(0, EFD_NONBLOCK);
    if (callfd < 0) {
        fail("eventfd");
    }
    mem = calloc(1, sizeof *mem
                 + MAX_REGIONS * sizeof(struct rte_vhost_mem_region));
    for (int i = 0; i < VHOST_VIRTQ_MAX_BURST; i++) {
        mbuf_data[i] = aligned_alloc(64, RTE_PKTMBUF_HEADROOM + MBUF_ROOM);
    }
    for (int i = 0; i < N_BIG; i++) {
        big_data[i] = aligned_alloc(64, RTE_PKTMBUF_HEADROOM + BIG_ROOM);
    }
}

/* Gives the next dequeue N_BIG spares. */
static void
reset_big(void)
{
    memset(&big, 0, sizeof big);
    for (int i = 0; i < N_BIG; i++) {
        struct rte_mbuf *m = &big_mbufs[i];

        memset(m, 0, sizeof *m);
        m->buf_addr = big_data[i];
        m->buf_len = RTE_PKTMBUF_HEADROOM + BIG_ROOM;
        m->data_off = RTE_PKTMBUF_HEADROOM;
        m->nb_segs = 1;
        big.m[big.n++] = m;
    }
    big.room = BIG_ROOM;
}

/* Checks that the 'got' packets of a dequeue fit their mbufs and that
 * every mbuf is, once, in 'pkts' or in a slot of 'big' (the slots from
 * 'big.n' on hold the mbufs that spares replaced, for the caller to
 * free). */
static void
check_mbufs(uint16_t got)
{
    struct rte_mbuf *all[VHOST_VIRTQ_MAX_BURST + N_BIG];
    int n_all = 0;

    for (int i = 0; i < got; i++) {
        if (pkts[i]->data_len != pkts[i]->pkt_len
            || pkts[i]->pkt_len > pkts[i]->buf_len - pkts[i]->data_off) {
            fail("dequeue: a packet overran its mbuf");
        }
    }
    if (big.n < 0 || big.n > N_BIG) {
        fail("dequeue: spares miscounted");
    }
    for (int i = 0; i < big.n; i++) {
        if (!(big.m[i] >= big_mbufs && big.m[i] < big_mbufs + N_BIG)) {
            fail("dequeue: a spare is not one");
        }
    }
    for (int i = 0; i < VHOST_VIRTQ_MAX_BURST; i++) {
        all[n_all++] = pkts[i];
    }
    for (int i = 0; i < N_BIG; i++) {
        all[n_all++] = big.m[i];
    }
    for (int i = 0; i < n_all; i++) {
        bool known = ((all[i] >= mbufs
                       && all[i] < mbufs + VHOST_VIRTQ_MAX_BURST)
                      || (all[i] >= big_mbufs && all[i] < big_mbufs + N_BIG));

        if (!known) {
            fail("dequeue: an mbuf went missing");
        }
        for (int j = 0; j < i; j++) {
            if (all[j] == all[i]) {
                fail("dequeue: an mbuf is in two places");
            }
        }
    }
}

static void
reset_mbufs(uint32_t len)
{
    for (int i = 0; i < VHOST_VIRTQ_MAX_BURST; i++) {
        struct rte_mbuf *m = &mbufs[i];

        memset(m, 0, sizeof *m);
        m->buf_addr = mbuf_data[i];
        m->buf_len = RTE_PKTMBUF_HEADROOM + MBUF_ROOM;
        m->data_off = RTE_PKTMBUF_HEADROOM;
        m->nb_segs = 1;
        m->data_len = m->pkt_len = len;
        memset(mbuf_data[i] + RTE_PKTMBUF_HEADROOM, 0x5a, len);
        pkts[i] = m;
    }
}

/* Returns our address of byte 'ofs' of guest memory, the regions taken
 * end to end, and its guest physical address in '*gpa'; NULL if there
 * is no such byte. */
static uint8_t *
mem_at(uint32_t ofs, uint32_t n, uint64_t *gpa)
{
    for (uint32_t i = 0; i < mem->nregions; i++) {
        const struct rte_vhost_mem_region *r = &mem->regions[i];

        if (ofs < r->size) {
            if (n > r->size - ofs) {
                return NULL;
            }
            *gpa = r->guest_phys_addr + ofs;
            return region_host(i) + ofs;
        }
        ofs -= r->size;
    }
    return NULL;
}

static void
check_budget(const struct vhost_virtq_errors *err)
{
    if (err->steps > VHOST_VIRTQ_STEP_BUDGET) {
        fail("a burst took more steps than its budget");
    }
}

#define PACKED_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define PACKED_USED (1u << VRING_PACKED_DESC_F_USED)

/* The guest makes 'n' descriptors of packed ring 'vq' available from our
 * avail position on, or, if 'broken', marks them with both flags. */
static void
packed_make_avail(struct vhost_virtq *vq, uint16_t n, bool broken)
{
    uint16_t pos = vq->last_avail;
    bool wrap = vq->avail_wrap;

    for (uint16_t i = 0; i < n && i < vq->size; i++) {
        struct vring_packed_desc *d = &vq->desc_packed[pos];
        uint16_t flags = d->flags & ~(PACKED_AVAIL | PACKED_USED);

        d->flags = flags | (broken ? PACKED_AVAIL | PACKED_USED
                            : wrap ? PACKED_AVAIL : PACKED_USED);
        if (++pos == vq->size) {
            pos = 0;
            wrap = !wrap;
        }
    }
}

/* Checks that the used position of packed ring 'vq' is where its avail
 * position is: each chain taken is handed back in place. */
static void
packed_check_positions(const struct vhost_virtq *vq)
{
    if (vq->last_avail >= vq->size || vq->last_used != vq->last_avail
        || vq->used_wrap != vq->avail_wrap) {
        fail("packed: used and avail positions parted");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = { data, size };
    struct vhost_virtq_dev dev;
    struct vhost_virtq vq;
    uint8_t n_regions, size_byte, features;
    uint16_t desc_ofs, avail_ofs, used_ofs;
    uint64_t gpa = 0x1000000;
    uint8_t *r0;
    int ops = 0;

    if (!arena) {
        setup_once();
    }
    if (size < 15) {
        return 0;
    }

    n_regions = in_u8(&in) % MAX_REGIONS + 1;
    memset(&vq, 0, sizeof vq);
    size_byte = in_u8(&in);
    features = in_u8(&in);
    vq.packed = features & 32;
    vq.size = vq.packed ? size_byte % 64 + 1 : 1u << (size_byte % 9);
    mem->nregions = n_regions;
    for (int i = 0; i < MAX_REGIONS; i++) {
        uint32_t pages = in_u8(&in) % MAX_PAGES + 1;

        if (i < n_regions) {
            struct rte_vhost_mem_region *r = &mem->regions[i];

            memset(r, 0, sizeof *r);
            r->size = pages * PAGE;
            r->host_user_addr = (uintptr_t) region_host(i);
            if (mprotect(region_host(i), r->size, PROT_READ | PROT_WRITE)) {
                fail("mprotect");
            }
            memset(region_host(i), 0, r->size);
        }
    }
    for (int i = 0; i < MAX_REGIONS; i++) {
        uint8_t gap = in_u8(&in);

        if (i < n_regions) {
            mem->regions[i].guest_phys_addr = gpa + (uint64_t) gap * PAGE;
            gpa = mem->regions[i].guest_phys_addr + mem->regions[i].size;
        }
    }

    memset(&dev, 0, sizeof dev);
    dev.mem = mem;
    dev.event_idx = features & 1;
    dev.in_order = features & 2;
    dev.mrg_rxbuf = features & 4;
    dev.packed = vq.packed;
    dev.host_offloads = dev.guest_offloads = features & 64;
    dev.hdr_len = (features & 8 ? sizeof(struct virtio_net_hdr)
                   : sizeof(struct virtio_net_hdr_mrg_rxbuf));

    r0 = region_host(0);
    desc_ofs = in_u16(&in) & ~15;
    avail_ofs = in_u16(&in) & (vq.packed ? ~3 : ~1);
    used_ofs = in_u16(&in) & ~3;
    vq.desc = (struct vring_desc *) (r0 + desc_ofs);
    vq.avail = (struct vring_avail *) (r0 + avail_ofs);
    vq.used = (struct vring_used *) (r0 + used_ofs);
    vq.callfd = features & 16 ? callfd : -1;
    if (vhost_virtq_check(&dev, &vq)) {
        goto out;               /* The switch would not use the ring. */
    }
    vhost_virtq_rearm(&vq);
    vq.avail_wrap = vq.used_wrap = true;

    while (in.n && ops++ < 64) {
        struct vhost_virtq_errors err;
        uint8_t op = in_u8(&in) % 5;

        if (op == 0) {
            uint16_t ofs = in_u16(&in);
            uint8_t n = in_u8(&in);
            uint64_t unused;
            uint8_t *p = mem_at(ofs, n, &unused);

            for (int i = 0; i < n; i++) {
                uint8_t b = in_u8(&in);

                if (p) {
                    p[i] = b;
                }
            }
        } else if (op == 1) {
            uint16_t v = in_u16(&in);

            if (vq.packed) {
                packed_make_avail(&vq, v % 256 % (VHOST_VIRTQ_MAX_BURST + 1),
                                  v & 0x8000);
            } else {
                vq.avail->idx = v;
            }
        } else if (vq.packed && op == 2) {
            uint16_t n = in_u8(&in) % (VHOST_VIRTQ_MAX_BURST + 1);
            uint16_t unused, first = vq.last_avail, got;
            bool first_wrap = vq.avail_wrap;
            int n_avail = vhost_virtq_n_avail(&vq, &unused);
            uint16_t flags = vq.desc_packed[first].flags;
            /* The first descriptor is available: the burst takes it
             * (vhost_virtq_n_avail() may say more than there is). */
            bool first_ok = (!!(flags & PACKED_AVAIL) == first_wrap
                             && !!(flags & PACKED_USED) != first_wrap);
            uint32_t taken;

            reset_mbufs(0);
            reset_big();
            got = vhost_virtq_dequeue(&dev, &vq, pkts,
                                      n < n_avail ? n : n_avail, &big, &err);
            check_budget(&err);
            taken = (vq.last_avail + (vq.avail_wrap != first_wrap
                                      ? vq.size : 0) - first);
            if (got > n || got + err.bad_desc + err.too_long
                + err.over_budget + err.bad_offload > n || taken > vq.size
                || (first_ok && n_avail && n && !taken)) {
                fail("dequeue (packed): the counts do not add up");
            }
            packed_check_positions(&vq);
            check_mbufs(got);
        } else if (op == 2) {
            uint16_t n = in_u8(&in) % (VHOST_VIRTQ_MAX_BURST + 1);
            uint16_t avail_idx, first_avail = vq.last_avail;
            uint16_t first_used = vq.last_used, got;
            uint16_t taken;
            int n_avail = vhost_virtq_n_avail(&vq, &avail_idx);

            if (n_avail < 0) {
                continue;
            }
            reset_mbufs(0);
            reset_big();
            got = vhost_virtq_dequeue(&dev, &vq, pkts,
                                      n < n_avail ? n : n_avail, &big, &err);
            check_budget(&err);
            taken = vq.last_avail - first_avail;
            if (taken > n || got + err.bad_desc + err.too_long
                + err.over_budget + err.bad_offload != taken) {
                fail("dequeue: the counts do not add up");
            }
            if ((uint16_t) (vq.last_used - first_used) != taken
                || (taken && vq.used->idx != vq.last_used)) {
                fail("dequeue: used entries do not match those taken");
            }
            check_mbufs(got);
        } else if (op == 3) {
            uint16_t n = in_u8(&in) % (VHOST_VIRTQ_MAX_BURST + 1);
            uint16_t raw = in_u16(&in);
            uint16_t len = raw % (MBUF_ROOM + 1);
            uint64_t good = vq.stats[VHOST_VS_good_packets];
            uint16_t first_used = vq.last_used, done;

            reset_mbufs(len);
            if (features & 64) {
                for (int i = 0; i < VHOST_VIRTQ_MAX_BURST; i++) {
                    struct rte_mbuf *m = pkts[i];

                    m->ol_flags = ((raw & 0x1000 ? RTE_MBUF_F_TX_TCP_CKSUM
                                    : 0)
                                   | (raw & 0x2000 ? RTE_MBUF_F_TX_TCP_SEG
                                      : 0)
                                   | (raw & 0x4000 ? RTE_MBUF_F_TX_IPV6
                                      : RTE_MBUF_F_TX_IPV4)
                                   | (raw & 0x8000 ? RTE_MBUF_F_TX_UDP_CKSUM
                                      : 0));
                    m->l2_len = 14;
                    m->l3_len = raw & 0x4000 ? 40 : 20;
                    m->l4_len = 20;
                    m->tso_segsz = len / 3;
                }
            }
            done = vhost_virtq_enqueue(&dev, &vq, pkts, n, &err);
            check_budget(&err);
            if (done > n
                || (vq.stats[VHOST_VS_good_packets] - good) + err.bad_desc
                   + err.too_long + err.over_budget != done) {
                fail("enqueue: the counts do not add up");
            }
            if (vq.packed) {
                packed_check_positions(&vq);
            } else if (vq.last_used != first_used
                       && vq.used->idx != vq.last_used) {
                fail("enqueue: used index not published");
            }
        } else {
            uint16_t ofs = in_u16(&in) & ~15;
            uint8_t n = in_u8(&in);
            uint8_t value = in_u8(&in);
            uint16_t flags;

            for (int i = 0; i < n; i++) {
                uint64_t desc_gpa, buf_gpa;
                struct vring_desc *d = (struct vring_desc *)
                    mem_at(ofs + 16 * i, 16, &desc_gpa);

                if (!d || !mem_at((ofs + 256 * i) % 0x10000, 1, &buf_gpa)) {
                    break;
                }
                d->addr = buf_gpa;
                d->len = value * 8;
                flags = (i % 3 == 0 ? VRING_DESC_F_WRITE
                         : i % 3 == 1 ? VRING_DESC_F_NEXT
                         : (value & 0x7));
                if (vq.packed) {
                    /* Packed: id, then flags (their avail bits too). */
                    struct vring_packed_desc *pd = (void *) d;

                    pd->id = (uint16_t) (i + 1);
                    pd->flags = flags | (value & 0x80 ? PACKED_AVAIL : 0);
                } else {
                    d->flags = flags;
                    d->next = (uint16_t) (i + 1);
                }
            }
        }
    }

out:
    if (features & 16) {
        eventfd_t unused;

        eventfd_read(callfd, &unused);
    }
    for (int i = 0; i < n_regions; i++) {
        mprotect(region_host(i), mem->regions[i].size, PROT_NONE);
    }
    return 0;
}
