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


#ifndef NETDEV_DPDK_VHOST_VIRTQ_H
#define NETDEV_DPDK_VHOST_VIRTQ_H 1

/* Our datapath for split and packed virtqueues.
 *
 * librte_vhost negotiates with the guest's hypervisor and maps its memory
 * and rings; for a guest without dirty page logging or an IOMMU (what
 * most guests use), the PMD threads then move packets through the rings
 * with the functions here rather than with rte_vhost_dequeue_burst() and
 * rte_vhost_enqueue_burst(): a burst reads the avail ring once, prefetches
 * every descriptor and then every buffer before it copies, and takes no
 * lock of librte_vhost's.
 *
 * This unit owns chain walking, guest address translation, the copies, the
 * used ring, the guest's notification and the virtio-net header's offload
 * requests (checksums and TCP segmentation, both ways).  It knows nothing
 * of ports, connections or locks: its caller holds the ring's lock (one
 * thread per ring at a time) and makes sure the ring does not change
 * meanwhile.  It
 * calls no function of Open vSwitch or of a running DPDK (only DPDK's
 * inline mbuf accessors, on mbufs its caller provides, and eventfd_write()
 * for notifications), so that a test program can drive it alone, with
 * rings and guest memory laid out in plain memory.
 *
 * The guest is not trusted: every index it writes is bounded before use;
 * a ring is used only once vhost_virtq_check() found all of it in guest
 * memory for its current size and features; an indirect table has at
 * most as many entries as the ring; a chain is followed at most as many
 * steps as its table has entries, and a call at most
 * VHOST_VIRTQ_STEP_BUDGET steps in all; each field of a descriptor is
 * copied out of guest memory once before it is checked and used (a
 * guest that rewrites a descriptor meanwhile changes nothing we already
 * checked, though a descriptor may be read again by a later step or
 * burst); and every address must lie in guest memory.  A chain that
 * breaks a rule is handed back to the guest unused and its packet dropped
 * (and counted), rather than stalling the queue. */

#include <stdbool.h>
#include <stdint.h>
#include <linux/virtio_ring.h>

struct rte_mbuf;
struct rte_vhost_memory;

/* Most packets one call moves. */
#define VHOST_VIRTQ_MAX_BURST 32

/* Most descriptors one call reads while it follows chains (each entry of
 * a chain or an indirect table is a step; a lone descriptor on the fast
 * path is not).  A well-behaved guest needs at most a few hundred for a
 * burst (32 chains of up to 19 descriptors: Linux's largest); a guest
 * that makes us walk more loses the packet whose chain ran out of steps
 * and, on the receive ring, the rest of the burst, counted in
 * 'over_budget'.  So a guest with chains of 65,535 empty descriptors
 * costs the thread that serves it a few microseconds a burst, not
 * seconds. */
#define VHOST_VIRTQ_STEP_BUDGET 4096

/* Per-vring counters, kept by the datapath for each connection.  They
 * carry librte_vhost's names (see rte_vhost_vring_stats_get_names());
 * "guest_notifications" counts the interrupts that our own datapath sent
 * the guest. */
#define VHOST_VRING_STATS                           \
    VHOST_VRING_STAT(good_packets)                  \
    VHOST_VRING_STAT(good_bytes)                    \
    VHOST_VRING_STAT(multicast_packets)             \
    VHOST_VRING_STAT(broadcast_packets)             \
    VHOST_VRING_STAT(undersize_packets)             \
    VHOST_VRING_STAT(size_64_packets)               \
    VHOST_VRING_STAT(size_65_127_packets)           \
    VHOST_VRING_STAT(size_128_255_packets)          \
    VHOST_VRING_STAT(size_256_511_packets)          \
    VHOST_VRING_STAT(size_512_1023_packets)         \
    VHOST_VRING_STAT(size_1024_1518_packets)        \
    VHOST_VRING_STAT(size_1519_max_packets)         \
    VHOST_VRING_STAT(guest_notifications)

enum vhost_vring_stat {
#define VHOST_VRING_STAT(NAME) VHOST_VS_##NAME,
    VHOST_VRING_STATS
#undef VHOST_VRING_STAT
    VHOST_N_VRING_STATS
};

/* What the rings of one connection share: the guest's memory and what the
 * guest negotiated. */
struct vhost_virtq_dev {
    const struct rte_vhost_memory *mem;   /* Guest memory, or NULL. */
    uint16_t hdr_len;               /* Of the virtio-net header. */
    bool packed;                    /* VIRTIO_F_RING_PACKED. */
    bool host_offloads;             /* VIRTIO_NET_F_CSUM: the guest may
                                     * leave checksums and segmentation
                                     * to us (its headers say). */
    bool guest_offloads;            /* VIRTIO_NET_F_GUEST_CSUM: it takes
                                     * them from us. */
    bool event_idx;                 /* VIRTIO_RING_F_EVENT_IDX. */
    bool in_order;                  /* VIRTIO_F_IN_ORDER. */
    bool mrg_rxbuf;                 /* VIRTIO_NET_F_MRG_RXBUF. */
};

/* One virtqueue, split or packed.
 *
 * A packed ring is one table of descriptors that the guest makes available
 * and we hand back in place, in ring order: 'last_avail' and 'last_used'
 * are then positions in that table (below 'size'), each with the wrap
 * counter that the virtio specification pairs with it. */
struct vhost_virtq {
    /* The ring: set while no burst runs on it. */
    bool packed;
    uint16_t size;                  /* Split: a power of 2.  Packed: up to
                                     * 32768. */
    uint16_t last_avail;            /* Next avail ring entry to take. */
    uint16_t last_used;             /* Next used ring entry to fill. */
    bool avail_wrap;                /* Packed: wrap counters of */
    bool used_wrap;                 /* 'last_avail' and 'last_used'. */
    union {
        struct vring_desc *desc;
        struct vring_packed_desc *desc_packed;
    };
    union {
        struct vring_avail *avail;
        struct vring_packed_desc_event *driver_event;
    };
    union {
        struct vring_used *used;
        struct vring_packed_desc_event *device_event;
    };
    int callfd;                     /* Interrupts the guest, or -1. */

    /* The datapath's own. */
    uint16_t signalled_used;        /* 'last_used' at the last interrupt. */
    bool signalled_wrap;            /* Packed: 'used_wrap' then. */
    bool signalled_valid;
    uint32_t region;                /* Memory region of the last lookup. */
    uint64_t stats[VHOST_N_VRING_STATS];
};

/* Spare mbufs for packets longer than the caller's mbufs: TCP segments
 * of up to 64 kB from a guest that leaves segmentation to us.  The caller
 * puts them in 'm[0]' to 'm[n - 1]' before a burst, each with 'room'
 * bytes of tailroom; a burst that needs one takes the last, puts the
 * caller's mbuf that it replaces in its slot and decrements 'n'.  A packet
 * that needs one when none is left ends the burst: it waits in the ring
 * for the next. */
#define VHOST_VIRTQ_N_BIG 8
struct vhost_virtq_big {
    struct rte_mbuf *m[VHOST_VIRTQ_N_BIG];
    int n;
    uint32_t room;
};

/* What went wrong in a burst, for the caller to count and log. */
struct vhost_virtq_errors {
    uint32_t bad_desc;      /* Packets dropped: chains that broke a rule. */
    uint32_t bad_offload;   /* Dequeue: packets dropped whose virtio-net
                             * header asked for an offload that they do
                             * not fit (see vhost_virtq_dequeue()). */
    uint32_t too_long;      /* Packets dropped: longer than an mbuf
                             * (dequeue) or than the guest's buffers
                             * (enqueue). */
    uint64_t dropped_bytes; /* Enqueue: bytes of the packets dropped. */
    uint32_t over_budget;   /* Packets dropped: the call ran out of
                             * steps (see VHOST_VIRTQ_STEP_BUDGET). */
    uint32_t steps;         /* Steps the call took. */
    int32_t bad_avail;      /* Enqueue: the guest's avail index if it ran
                             * more than a ring ahead (nothing moved),
                             * else -1. */
};

int vhost_virtq_n_avail_packed(const struct vhost_virtq *);

/* Returns how many entries the guest made available on 'vq' that we have
 * not taken yet, or -1 if its avail index runs more than a ring ahead of
 * us (a broken guest), and stores the index in '*availp'.
 *
 * On a packed ring, returns how many descriptors in a row from
 * 'last_avail' on the guest made available, at most
 * VHOST_VIRTQ_MAX_BURST (a packet may take several; a guest that makes
 * them available out of order may make it say more than there are), and
 * stores 0 in '*availp'. */
static inline int
vhost_virtq_n_avail(const struct vhost_virtq *vq, uint16_t *availp)
{
    uint16_t avail, n;

    if (vq->packed) {
        *availp = 0;
        return vhost_virtq_n_avail_packed(vq);
    }
    avail = __atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE);
    n = avail - vq->last_avail;
    *availp = avail;
    return n > vq->size ? -1 : n;
}

/* The ring indexes of 'vq' as librte_vhost's rte_vhost_get_vring_base()
 * and rte_vhost_set_vring_base() give them: on a packed ring, with the
 * wrap counter in bit 15. */
static inline void
vhost_virtq_get_base(const struct vhost_virtq *vq, uint16_t *avail,
                     uint16_t *used)
{
    *avail = vq->last_avail | (vq->packed && vq->avail_wrap ? 0x8000 : 0);
    *used = vq->last_used | (vq->packed && vq->used_wrap ? 0x8000 : 0);
}

static inline void
vhost_virtq_set_base(struct vhost_virtq *vq, uint16_t avail, uint16_t used)
{
    if (vq->packed) {
        vq->last_avail = avail & 0x7fff;
        vq->avail_wrap = avail >> 15;
        vq->last_used = used & 0x7fff;
        vq->used_wrap = used >> 15;
    } else {
        vq->last_avail = avail;
        vq->last_used = used;
    }
}

/* Resets the datapath's own state of 'vq' for a ring that was set anew. */
static inline void
vhost_virtq_rearm(struct vhost_virtq *vq)
{
    vq->signalled_valid = false;
    vq->region = 0;
}

bool vhost_virtq_in_mem(const struct rte_vhost_memory *, const void *,
                        uint64_t len);
const char *vhost_virtq_check(const struct vhost_virtq_dev *,
                              const struct vhost_virtq *);

uint16_t vhost_virtq_dequeue(const struct vhost_virtq_dev *,
                             struct vhost_virtq *, struct rte_mbuf **pkts,
                             uint16_t n, struct vhost_virtq_big *,
                             struct vhost_virtq_errors *);
uint16_t vhost_virtq_enqueue(const struct vhost_virtq_dev *,
                             struct vhost_virtq *, struct rte_mbuf **pkts,
                             uint16_t n, struct vhost_virtq_errors *);
void vhost_virtq_count_mbufs(struct vhost_virtq *, struct rte_mbuf **pkts,
                             int n);

#endif /* netdev-dpdk-vhost-virtq.h */
