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


/* The virtqueue datapath (see netdev-dpdk-vhost-virtq.h).
 *
 * Entered by the thread that holds a vring's lock: a PMD thread, or the
 * main thread sending a packet of its own.  Nothing here locks, logs or
 * allocates: errors are counted for the caller. */

#include <config.h>
#include "netdev-dpdk-vhost-virtq.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <netinet/in.h>
#include <linux/if_ether.h>
#include <linux/virtio_net.h>

#include <rte_atomic.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_vhost.h>

#include "util.h"

#define VLAN_HLEN 4

/* The offload requests of an mbuf that we put in a virtio-net header. */
#define VHOST_TX_OL_MASK (RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_TCP_SEG)

/* Returns the host address of the guest physical range at 'gpa', '*len'
 * bytes long, shortening '*len' to what is contiguous there, or NULL if
 * 'gpa' is not in guest memory.  '*hint' is the region to look in
 * first. */
static inline void *
vhost_gpa_map(const struct rte_vhost_memory *mem, uint32_t *hint,
              uint64_t gpa, uint64_t *len)
{
    uint32_t first = *hint;
    const struct rte_vhost_mem_region *r = &mem->regions[first];
    uint64_t off = gpa - r->guest_phys_addr;

    if (OVS_UNLIKELY(off >= r->size)) {
        uint32_t i;

        for (i = 0; i < mem->nregions; i++) {
            r = &mem->regions[i];
            off = gpa - r->guest_phys_addr;
            if (off < r->size) {
                break;
            }
        }
        if (i == mem->nregions) {
            return NULL;
        }
        *hint = i;
    }
    if (OVS_UNLIKELY(*len > r->size - off)) {
        *len = r->size - off;
    }
    return (void *) (uintptr_t) (r->host_user_addr + off);
}

/* Same, for exactly 'len' bytes. */
static inline void *
vhost_gpa_map_all(const struct rte_vhost_memory *mem, uint32_t *hint,
                  uint64_t gpa, uint64_t len)
{
    uint64_t got = len;
    void *p = vhost_gpa_map(mem, hint, gpa, &got);

    return p && got == len ? p : NULL;
}

/* Returns true if the 'len' bytes at 'p', in our address space, lie in one
 * region of guest memory 'mem'. */
bool
vhost_virtq_in_mem(const struct rte_vhost_memory *mem, const void *p,
                   uint64_t len)
{
    uint64_t addr = (uintptr_t) p;

    for (uint32_t i = 0; mem && i < mem->nregions; i++) {
        const struct rte_vhost_mem_region *r = &mem->regions[i];
        uint64_t off = addr - r->host_user_addr;

        if (addr >= r->host_user_addr && off < r->size
            && len <= r->size - off) {
            return true;
        }
    }
    return false;
}

/* Returns NULL if the rings of 'vq' are fit for our datapath: for a split
 * ring, a size that is a power of 2, each ring aligned as the virtio
 * specification asks and all of it (for that size, and with the event
 * fields if the guest negotiated VIRTIO_RING_F_EVENT_IDX) in one region of
 * the guest memory of 'dev'; for a packed ring, a size up to 32768, and
 * the descriptor ring and both event suppression areas aligned and each
 * in one region.  Otherwise returns why not, as a phrase for a log
 * message.  The datapath reads and writes nowhere else. */
const char *
vhost_virtq_check(const struct vhost_virtq_dev *dev,
                  const struct vhost_virtq *vq)
{
    uint64_t size = vq->size;
    uint64_t event = dev->event_idx ? sizeof(uint16_t) : 0;

    if (vq->packed) {
        if (!size || size > 32768) {
            return "ring size is out of range";
        } else if ((uintptr_t) vq->desc_packed % 16
                   || (uintptr_t) vq->driver_event % 4
                   || (uintptr_t) vq->device_event % 4) {
            return "ring is misaligned";
        } else if (!vhost_virtq_in_mem(dev->mem, vq->desc_packed,
                                       size * sizeof *vq->desc_packed)
                   || !vhost_virtq_in_mem(dev->mem, vq->driver_event,
                                          sizeof *vq->driver_event)
                   || !vhost_virtq_in_mem(dev->mem, vq->device_event,
                                          sizeof *vq->device_event)) {
            return "packed ring lies outside guest memory";
        }
        return NULL;
    }

    if (!size || size & (size - 1)) {
        return "ring size is not a power of 2";
    } else if ((uintptr_t) vq->desc % 16 || (uintptr_t) vq->avail % 2
               || (uintptr_t) vq->used % 4) {
        return "ring is misaligned";
    } else if (!vhost_virtq_in_mem(dev->mem, vq->desc,
                                   size * sizeof *vq->desc)) {
        return "descriptor table lies outside guest memory";
    } else if (!vhost_virtq_in_mem(dev->mem, vq->avail,
                                   sizeof *vq->avail
                                   + size * sizeof vq->avail->ring[0]
                                   + event)) {
        return "avail ring lies outside guest memory";
    } else if (!vhost_virtq_in_mem(dev->mem, vq->used,
                                   sizeof *vq->used
                                   + size * sizeof vq->used->ring[0]
                                   + event)) {
        return "used ring lies outside guest memory";
    }
    return NULL;
}

/* Copies descriptor 'p' out of guest memory, each field once: the guest
 * may rewrite it meanwhile, and what we check must be what we use. */
static inline struct vring_desc
vhost_desc_load(const struct vring_desc *p)
{
    struct vring_desc d;

    d.addr = __atomic_load_n(&p->addr, __ATOMIC_RELAXED);
    d.len = __atomic_load_n(&p->len, __ATOMIC_RELAXED);
    d.flags = __atomic_load_n(&p->flags, __ATOMIC_RELAXED);
    d.next = __atomic_load_n(&p->next, __ATOMIC_RELAXED);
    return d;
}

static void
vhost_virtq_errors_init(struct vhost_virtq_errors *err)
{
    memset(err, 0, sizeof *err);
    err->bad_avail = -1;
}

/* Starts bringing the lines that the 'len' bytes at 'p' span into the
 * cache, the first four of a large packet (the hardware follows the
 * rest), ready to be written if 'write'. */
static inline void
vhost_prefetch(const char *p, uint32_t len, bool write)
{
    uintptr_t line = (uintptr_t) p & ~(uintptr_t) (CACHE_LINE_SIZE - 1);
    uintptr_t last = (((uintptr_t) p + MIN(len, 4 * CACHE_LINE_SIZE) - 1)
                      & ~(uintptr_t) (CACHE_LINE_SIZE - 1));

    for (; len && line <= last; line += CACHE_LINE_SIZE) {
#if defined(__x86_64__)
        if (write) {
            /* PREFETCHW (a no-op on the processors that lack it). */
            asm volatile("prefetchw %0"
                         : : "m" (*(const volatile char *) line));
            continue;
        }
#endif
        rte_prefetch0((const void *) line);
    }
}

/* Writes a virtio-net header of 'hdr_len' bytes at 'p' that asks for no
 * offloads and tells a guest with mergeable buffers that the packet took
 * 'num_buffers' of them.  Only what differs is written: the guest reads
 * this cache line for each packet and, without offloads, writes back the
 * same values, so a header that is already right stays shared between
 * the two CPUs instead of moving to ours and back. */
static inline void
vhost_put_hdr(char *p, uint16_t hdr_len, uint16_t num_buffers)
{
    /* The guest may place a buffer at any address: bytes, not structs. */
    char *nb = p + offsetof(struct virtio_net_hdr_mrg_rxbuf, num_buffers);
    uint64_t head;
    uint16_t tail, old;

    BUILD_ASSERT_DECL(sizeof(struct virtio_net_hdr)
                      == sizeof head + sizeof tail);
    memcpy(&head, p, sizeof head);
    memcpy(&tail, p + sizeof head, sizeof tail);
    if (head || tail) {
        memset(p, 0, sizeof(struct virtio_net_hdr));
    }
    if (hdr_len == sizeof(struct virtio_net_hdr_mrg_rxbuf)) {
        memcpy(&old, nb, sizeof old);
        if (old != num_buffers) {
            memcpy(nb, &num_buffers, sizeof num_buffers);
        }
    }
}

/* Counts a packet of 'len' bytes to or from Ethernet address 'dst'. */
static inline void
vhost_virtq_count(uint64_t *stats, uint32_t len, const uint8_t *dst)
{
    int bin;

    if (len < 64) {
        bin = VHOST_VS_undersize_packets;
    } else if (len == 64) {
        bin = VHOST_VS_size_64_packets;
    } else if (len < 1024) {
        /* 65-127: 6 significant bits, 128-255: 7, ... */
        bin = (VHOST_VS_size_65_127_packets
               + (32 - __builtin_clz(len)) - 7);
    } else {
        bin = (len <= 1518 ? VHOST_VS_size_1024_1518_packets
               : VHOST_VS_size_1519_max_packets);
    }
    stats[bin]++;
    stats[VHOST_VS_good_bytes] += len;
    if (OVS_UNLIKELY(dst[0] & 1)) {
        static const uint8_t bcast[6] = {
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff
        };

        stats[memcmp(dst, bcast, sizeof bcast)
              ? VHOST_VS_multicast_packets
              : VHOST_VS_broadcast_packets]++;
    }
}

/* Counts the packets that librte_vhost's datapath moved on 'vq''s ring. */
void
vhost_virtq_count_mbufs(struct vhost_virtq *vq, struct rte_mbuf **pkts,
                        int n)
{
    vq->stats[VHOST_VS_good_packets] += n;
    for (int i = 0; i < n; i++) {
        vhost_virtq_count(vq->stats, pkts[i]->pkt_len,
                          rte_pktmbuf_mtod(pkts[i], const uint8_t *));
    }
}

/* Publishes what the datapath put in the used ring of 'vq' and interrupts
 * the guest if it asked for it. */
static void
vhost_virtq_publish(const struct vhost_virtq_dev *dev, struct vhost_virtq *vq)
{
    uint16_t new = vq->last_used;
    bool need;

    __atomic_store_n(&vq->used->idx, new, __ATOMIC_RELEASE);

    /* The guest must see the new index before we look at whether it wants
     * to hear of it (it looks at the index after it says so). */
    rte_atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (dev->event_idx) {
        uint16_t event = __atomic_load_n(&vq->avail->ring[vq->size],
                                         __ATOMIC_RELAXED);
        uint16_t old = vq->signalled_used;

        need = (!vq->signalled_valid
                || (uint16_t) (new - event - 1) < (uint16_t) (new - old));
    } else {
        need = !(__atomic_load_n(&vq->avail->flags, __ATOMIC_RELAXED)
                 & VRING_AVAIL_F_NO_INTERRUPT);
    }
    vq->signalled_used = new;
    vq->signalled_valid = true;
    if (need && vq->callfd >= 0) {
        eventfd_write(vq->callfd, 1);
        vq->stats[VHOST_VS_guest_notifications]++;
    }
}

/* A descriptor chain, as ranges of host memory. */
#define VHOST_CHAIN_VECS 64
struct vhost_chain {
    uint16_t head;
    uint16_t n_vecs;
    uint32_t len;                   /* Sum of 'vecs[*].len'. */
    struct {
        char *p;
        uint32_t len;
    } vecs[VHOST_CHAIN_VECS];
};

/* Adds the guest buffer of 'len' bytes at guest physical address 'addr'
 * to 'ch', as one range of our memory for each region it lies in.
 * Returns 0, or EINVAL if some of it is not in guest memory or 'ch' would
 * have too many ranges or bytes. */
static int
vhost_chain_add(const struct vhost_virtq_dev *dev, struct vhost_virtq *vq,
                struct vhost_chain *ch, uint64_t addr, uint32_t len)
{
    while (len) {
        uint64_t chunk = len;
        char *p = vhost_gpa_map(dev->mem, &vq->region, addr, &chunk);

        if (!p || ch->n_vecs >= VHOST_CHAIN_VECS
            || ch->len + chunk > UINT32_MAX) {
            return EINVAL;
        }
        ch->vecs[ch->n_vecs].p = p;
        ch->vecs[ch->n_vecs].len = chunk;
        ch->n_vecs++;
        ch->len += chunk;
        addr += chunk;
        len -= chunk;
    }
    return 0;
}

/* Reads the descriptor chain at 'head' of 'vq' into 'ch', taking a step
 * of '*budget' for each descriptor it reads.  Every buffer must be
 * writable by us if 'write' (a receive buffer).  Returns 0, EINVAL if the
 * chain breaks the rules, or EDQUOT if the budget ran out first. */
static int
vhost_chain_get(const struct vhost_virtq_dev *dev, struct vhost_virtq *vq,
                uint16_t head, struct vhost_chain *ch, uint32_t *budget,
                bool write)
{
    const struct vring_desc *descs = vq->desc;
    uint32_t n_descs = vq->size;
    uint32_t idx = head;
    struct vring_desc d;

    ch->head = head;
    ch->n_vecs = 0;
    ch->len = 0;
    if (head >= vq->size) {
        return EINVAL;
    } else if (!*budget) {
        return EDQUOT;
    }
    *budget -= 1;
    d = vhost_desc_load(&descs[head]);
    if (d.flags & VRING_DESC_F_INDIRECT) {
        /* The virtio specification caps an indirect table at the ring's
         * size, and forbids chaining it. */
        if (d.flags & VRING_DESC_F_NEXT
            || !d.len || d.len % sizeof d || d.len / sizeof d > vq->size) {
            return EINVAL;
        }
        descs = vhost_gpa_map_all(dev->mem, &vq->region, d.addr, d.len);
        if (!descs || (uintptr_t) descs % __alignof__(struct vring_desc)) {
            return EINVAL;
        }
        n_descs = d.len / sizeof d;
        idx = 0;
    } else {
        /* The head is the chain's first step. */
        *budget += 1;
    }
    for (uint32_t steps = 0; ; steps++) {
        if (idx >= n_descs || steps >= n_descs) {
            return EINVAL;
        } else if (!*budget) {
            return EDQUOT;
        }
        *budget -= 1;
        d = vhost_desc_load(&descs[idx]);
        if (d.flags & VRING_DESC_F_INDIRECT
            || (write && !(d.flags & VRING_DESC_F_WRITE))) {
            return EINVAL;
        }
        if (vhost_chain_add(dev, vq, ch, d.addr, d.len)) {
            return EINVAL;
        }
        if (!(d.flags & VRING_DESC_F_NEXT)) {
            return 0;
        }
        idx = d.next;
    }
}

/* Copies 'len' bytes between offset 'ofs' of 'ch' and 'buf': into 'ch' if
 * 'to_chain', otherwise out of it. */
static void
vhost_chain_copy(struct vhost_chain *ch, uint32_t ofs, void *buf_,
                 uint32_t len, bool to_chain)
{
    char *buf = buf_;

    for (int i = 0; len && i < ch->n_vecs; i++) {
        uint32_t chunk;

        if (ofs >= ch->vecs[i].len) {
            ofs -= ch->vecs[i].len;
            continue;
        }
        chunk = MIN(len, ch->vecs[i].len - ofs);
        if (to_chain) {
            memcpy(ch->vecs[i].p + ofs, buf, chunk);
        } else {
            memcpy(buf, ch->vecs[i].p + ofs, chunk);
        }
        buf += chunk;
        len -= chunk;
        ofs = 0;
    }
}

/* Returns the ones' complement sum of the 'len' bytes at 'p', added to
 * 'sum' (an even number of bytes before them). */
static uint32_t
vhost_csum_add(uint32_t sum, const uint8_t *p, uint32_t len)
{
    uint32_t i;

    for (i = 0; i + 1 < len; i += 2) {
        sum += (uint32_t) p[i] << 8 | p[i + 1];
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if (i < len) {
        sum += (uint32_t) p[i] << 8;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return sum;
}

/* Applies what the virtio-net header 'h' asks of the packet that 'm'
 * holds (a copy of the guest's, so its bytes stay put while we look):
 * sets its offload flags and header lengths as Open vSwitch takes them
 * from librte_vhost (a partial TCP or UDP checksum right after the IP
 * header; TCP segmentation of an IPv4 or IPv6 packet), or completes a
 * partial checksum that lies elsewhere.  Returns 0, or EPROTO if the
 * header asks for what the packet does not fit (a checksum past its end,
 * segmentation of what is not TCP, a segment size of 0). */
static int
vhost_rx_offload(const struct virtio_net_hdr *h, struct rte_mbuf *m)
{
    const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *);
    uint32_t len = m->data_len;
    uint8_t gso = h->gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
    bool csum = h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM;
    uint32_t l2 = ETH_HLEN, l3 = 0, l4 = 0;
    uint16_t type;
    uint64_t ol = 0;
    uint8_t proto = 0;

    if (!csum && gso == VIRTIO_NET_HDR_GSO_NONE) {
        return 0;
    } else if (len < ETH_HLEN) {
        return EPROTO;
    }

    /* Up to two VLAN tags, then IPv4 or IPv6 (without extension
     * headers). */
    type = p[12] << 8 | p[13];
    for (int i = 0; i < 2 && (type == ETH_P_8021Q || type == ETH_P_8021AD)
                    && l2 + VLAN_HLEN <= len; i++) {
        type = p[l2 + 2] << 8 | p[l2 + 3];
        l2 += VLAN_HLEN;
    }
    if (type == ETH_P_IP && l2 + 20 <= len
        && (p[l2] & 0xf) * 4 >= 20 && l2 + (p[l2] & 0xf) * 4 <= len) {
        l3 = (p[l2] & 0xf) * 4;
        proto = p[l2 + 9];
        ol |= RTE_MBUF_F_TX_IPV4;
    } else if (type == ETH_P_IPV6 && l2 + 40 <= len) {
        l3 = 40;
        proto = p[l2 + 6];
        ol |= RTE_MBUF_F_TX_IPV6;
    }
    if (proto == IPPROTO_TCP && l2 + l3 + 20 <= len) {
        l4 = (p[l2 + l3 + 12] >> 4) * 4;
        if (l4 < 20 || l2 + l3 + l4 > len) {
            l4 = 0;
        }
    }

    if (gso != VIRTIO_NET_HDR_GSO_NONE) {
        bool v4 = ol & RTE_MBUF_F_TX_IPV4;

        if (!l4 || !h->gso_size
            || (gso != VIRTIO_NET_HDR_GSO_TCPV4
                && gso != VIRTIO_NET_HDR_GSO_TCPV6)
            || v4 != (gso == VIRTIO_NET_HDR_GSO_TCPV4)
            || (csum && (h->csum_start != l2 + l3 || h->csum_offset != 16))) {
            return EPROTO;
        }
        m->ol_flags |= ol | RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_TCP_CKSUM;
        m->l2_len = l2;
        m->l3_len = l3;
        m->l4_len = l4;
        m->tso_segsz = h->gso_size;
        return 0;
    }

    /* A partial checksum, the pseudo-header's sum in its field. */
    if ((uint32_t) h->csum_start + h->csum_offset + 2 > len) {
        return EPROTO;
    } else if (l3 && h->csum_start == l2 + l3
               && ((proto == IPPROTO_TCP && l4 && h->csum_offset == 16)
                   || (proto == IPPROTO_UDP && l2 + l3 + 8 <= len
                       && h->csum_offset == 6))) {
        m->ol_flags |= ol | (proto == IPPROTO_TCP ? RTE_MBUF_F_TX_TCP_CKSUM
                                                  : RTE_MBUF_F_TX_UDP_CKSUM);
        m->l2_len = l2;
        m->l3_len = l3;
    } else {
        /* Elsewhere: complete it here. */
        uint8_t *field = rte_pktmbuf_mtod_offset(m, uint8_t *,
                                                 h->csum_start
                                                 + h->csum_offset);
        uint16_t sum;

        sum = ~vhost_csum_add(0, p + h->csum_start, len - h->csum_start);
        if (!sum && proto == IPPROTO_UDP) {
            sum = 0xffff;
        }
        field[0] = sum >> 8;
        field[1] = sum;
    }
    return 0;
}

/* Copies the packet in 'ch' (without its virtio-net header) into '*mp',
 * or, if it does not fit there, into a spare mbuf of 'big' (if any), which
 * takes the place of '*mp'; then applies the header's offload requests if
 * 'dev' takes them.  Returns 0, EINVAL if 'ch' is shorter than the
 * header, EMSGSIZE if the packet fits in no mbuf, ENOBUFS if it needs a
 * spare and none is left, or EPROTO (see vhost_rx_offload()). */
static int
vhost_chain_to_pkt(const struct vhost_virtq_dev *dev, struct vhost_chain *ch,
                   struct rte_mbuf **mp, struct vhost_virtq_big *big)
{
    struct rte_mbuf *m = *mp;
    uint32_t len;

    if (ch->len < dev->hdr_len) {
        return EINVAL;
    }
    len = ch->len - dev->hdr_len;
    if (len > rte_pktmbuf_tailroom(m)) {
        if (!big || len > big->room) {
            return EMSGSIZE;
        } else if (big->n <= 0 || big->n > VHOST_VIRTQ_N_BIG
                   || len > rte_pktmbuf_tailroom(big->m[big->n - 1])) {
            return ENOBUFS;
        }
        big->n--;
        *mp = big->m[big->n];
        big->m[big->n] = m;
        m = *mp;
    }
    vhost_chain_copy(ch, dev->hdr_len, rte_pktmbuf_mtod(m, void *), len,
                     false);
    m->data_len = m->pkt_len = len;
    if (dev->host_offloads) {
        struct virtio_net_hdr h;

        vhost_chain_copy(ch, 0, &h, sizeof h, false);
        return vhost_rx_offload(&h, m);
    }
    return 0;
}

/* Copies the packet in the chain at 'head' into '*mp' (see
 * vhost_chain_to_pkt()).  Returns 0, EINVAL if the chain breaks the
 * rules, EDQUOT if '*budget' ran out, EMSGSIZE if the packet fits in no
 * mbuf, or EPROTO. */
static int
vhost_dequeue_chain(const struct vhost_virtq_dev *dev, struct vhost_virtq *vq,
                    uint16_t head, struct rte_mbuf **mp,
                    struct vhost_virtq_big *big, uint32_t *budget)
{
    struct vhost_chain ch;
    int error;

    error = vhost_chain_get(dev, vq, head, &ch, budget, false);
    return error ? error : vhost_chain_to_pkt(dev, &ch, mp, big);
}

/* Takes a packet that the fast path copied into 'm' from the buffer at
 * 'src' (its virtio-net header before it): applies the header's offload
 * requests if 'dev' takes them.  Returns 0 or EPROTO. */
static inline int
vhost_fast_offload(const struct vhost_virtq_dev *dev, const char *src,
                   struct rte_mbuf *m)
{
    struct virtio_net_hdr h;

    if (OVS_LIKELY(!dev->host_offloads)) {
        return 0;
    }
    memcpy(&h, src - dev->hdr_len, sizeof h);
    return vhost_rx_offload(&h, m);
}

/* Counts in '*err' a packet that a dequeue dropped for 'error'. */
static void
vhost_count_rx_error(struct vhost_virtq_errors *err, int error)
{
    if (error == EMSGSIZE) {
        err->too_long++;
    } else if (error == EDQUOT) {
        err->over_budget++;
    } else if (error == EPROTO) {
        err->bad_offload++;
    } else {
        err->bad_desc++;
    }
}

/* Reads the 'n' heads that the guest made available on 'vq' from index
 * 'first' on into 'heads', and starts bringing their descriptors into the
 * cache. */
static inline void
vhost_virtq_heads(const struct vhost_virtq *vq, uint16_t first, uint16_t n,
                  uint16_t *heads)
{
    uint16_t mask = vq->size - 1;

    for (int i = 0; i < n; i++) {
        heads[i] = __atomic_load_n(&vq->avail->ring[(uint16_t) (first + i)
                                                    & mask],
                                   __ATOMIC_RELAXED);
        rte_prefetch0(&vq->desc[heads[i] & mask]);
    }
}

/* Returns our address of the buffer of descriptor 'head' of 'vq' and its
 * length in '*lenp', if that descriptor stands alone (no chain, no
 * indirect table), is writable by us if 'write' (and only then: we never
 * look at that flag on the guest's transmit ring) and all of its buffer
 * lies in one region of guest memory; otherwise NULL: the general path
 * looks at it. */
static inline char *
vhost_virtq_lone_buf(const struct vhost_virtq_dev *dev,
                     struct vhost_virtq *vq, uint16_t head, uint32_t *lenp,
                     bool write)
{
    uint16_t mask = (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT
                     | (write ? VRING_DESC_F_WRITE : 0));
    struct vring_desc d;

    if (OVS_UNLIKELY(head >= vq->size)) {
        return NULL;
    }
    d = vhost_desc_load(&vq->desc[head]);
    if (OVS_UNLIKELY((d.flags & mask) != (write ? VRING_DESC_F_WRITE : 0))) {
        return NULL;
    }
    *lenp = d.len;
    return vhost_gpa_map_all(dev->mem, &vq->region, d.addr, d.len);
}

/* vhost_virtq_dequeue() on a split ring.  The avail index is not read
 * again: the guest writes its line all the time. */
static uint16_t
vhost_split_dequeue(const struct vhost_virtq_dev *dev, struct vhost_virtq *vq,
                    struct rte_mbuf **pkts, uint16_t n,
                    struct vhost_virtq_big *big,
                    struct vhost_virtq_errors *err)
{
    uint16_t mask = vq->size - 1;
    uint16_t last = vq->last_avail;
    uint16_t hdr_len = dev->hdr_len;
    uint16_t heads[VHOST_VIRTQ_MAX_BURST];
    const char *srcs[VHOST_VIRTQ_MAX_BURST];
    uint32_t lens[VHOST_VIRTQ_MAX_BURST];
    uint32_t budget = VHOST_VIRTQ_STEP_BUDGET;
    uint16_t got = 0;

    vhost_virtq_errors_init(err);
    n = MIN(n, MIN(vq->size, VHOST_VIRTQ_MAX_BURST));
    if (!n) {
        return 0;
    }

    /* Every descriptor, then every buffer, on its way into the cache
     * before the first copy. */
    vhost_virtq_heads(vq, last, n, heads);
    for (int i = 0; i < n; i++) {
        uint32_t len;
        const char *src = vhost_virtq_lone_buf(dev, vq, heads[i], &len,
                                               false);

        srcs[i] = NULL;
        if (OVS_LIKELY(src && len >= hdr_len)) {
            srcs[i] = src + hdr_len;
            lens[i] = len - hdr_len;
            vhost_prefetch(srcs[i], lens[i], false);
        }
    }

    for (int i = 0; i < n; i++) {
        struct rte_mbuf *m = pkts[got];
        struct vring_used_elem *u;
        int error;

        if (OVS_LIKELY(srcs[i] && lens[i] <= rte_pktmbuf_tailroom(m))) {
            memcpy(rte_pktmbuf_mtod(m, void *), srcs[i], lens[i]);
            m->data_len = m->pkt_len = lens[i];
            error = vhost_fast_offload(dev, srcs[i], m);
        } else {
            error = vhost_dequeue_chain(dev, vq, heads[i], &pkts[got], big,
                                        &budget);
            m = pkts[got];
            if (OVS_UNLIKELY(error == EDQUOT)) {
                n = i + 1;
            } else if (OVS_UNLIKELY(error == ENOBUFS)) {
                /* It waits for the next burst. */
                if (dev->in_order && i) {
                    u = &vq->used->ring[(uint16_t) (vq->last_used + i - 1)
                                        & mask];
                    u->id = heads[i - 1];
                    u->len = 0;
                }
                n = i;
                break;
            }
        }
        if (!dev->in_order || i == n - 1) {
            /* With VIRTIO_F_IN_ORDER, the last entry of a batch stands for
             * the batch. */
            u = &vq->used->ring[(uint16_t) (vq->last_used + i) & mask];
            u->id = heads[i];
            u->len = 0;
        }
        if (OVS_LIKELY(!error)) {
            vhost_virtq_count(vq->stats, m->pkt_len,
                              rte_pktmbuf_mtod(m, const uint8_t *));
            got++;
        } else {
            m->ol_flags = 0;
            vhost_count_rx_error(err, error);
        }
    }
    err->steps = VHOST_VIRTQ_STEP_BUDGET - budget;
    vq->last_avail = last + n;
    vq->last_used += n;
    vq->stats[VHOST_VS_good_packets] += got;
    vhost_virtq_publish(dev, vq);
    return got;
}

/* Copies 'len' bytes from offset 'ofs' of packet 'm', across its
 * segments, to offset 'ch_ofs' of 'ch'. */
static void
vhost_mbuf_to_chain(struct vhost_chain *ch, uint32_t ch_ofs,
                    const struct rte_mbuf *m, uint32_t ofs, uint32_t len)
{
    const struct rte_mbuf *seg = m;

    while (seg && ofs >= seg->data_len) {
        ofs -= seg->data_len;
        seg = seg->next;
    }
    for (; len && seg; seg = seg->next) {
        uint32_t chunk = MIN(len, seg->data_len - ofs);

        vhost_chain_copy(ch, ch_ofs,
                         rte_pktmbuf_mtod_offset(seg, char *, ofs), chunk,
                         true);
        ch_ofs += chunk;
        len -= chunk;
        ofs = 0;
    }
}

/* Writes the virtio-net header of packet 'm', which took 'num_buffers'
 * receive buffers, the first of them 'first': with the checksum and
 * segmentation requests of 'm' if the guest takes them. */
static void
vhost_chain_put_hdr(const struct vhost_virtq_dev *dev,
                    struct vhost_chain *first, uint16_t num_buffers,
                    const struct rte_mbuf *m)
{
    uint64_t ol = m->ol_flags & VHOST_TX_OL_MASK;
    struct virtio_net_hdr_mrg_rxbuf hdr;

    if (OVS_LIKELY(!ol || !dev->guest_offloads)
        && first->vecs[0].len >= dev->hdr_len) {
        vhost_put_hdr(first->vecs[0].p, dev->hdr_len, num_buffers);
        return;
    }
    memset(&hdr, 0, sizeof hdr);
    hdr.num_buffers = num_buffers;
    if (ol && dev->guest_offloads) {
        uint64_t l4 = ol & RTE_MBUF_F_TX_L4_MASK;

        if (ol & RTE_MBUF_F_TX_TCP_SEG || l4 == RTE_MBUF_F_TX_TCP_CKSUM) {
            hdr.hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
            hdr.hdr.csum_offset = 16;
        } else if (l4 == RTE_MBUF_F_TX_UDP_CKSUM) {
            hdr.hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
            hdr.hdr.csum_offset = 6;
        }
        hdr.hdr.csum_start = m->l2_len + m->l3_len;
        if (ol & RTE_MBUF_F_TX_TCP_SEG) {
            hdr.hdr.gso_type = (m->ol_flags & RTE_MBUF_F_TX_IPV6
                                ? VIRTIO_NET_HDR_GSO_TCPV6
                                : VIRTIO_NET_HDR_GSO_TCPV4);
            hdr.hdr.gso_size = m->tso_segsz;
            hdr.hdr.hdr_len = m->l2_len + m->l3_len + m->l4_len;
        }
    }
    vhost_chain_copy(first, 0, &hdr, dev->hdr_len, true);
}

/* Counts in 'err' the drop of 'pkts[done]', for which an enqueue's slow
 * path returned 'error' (neither 0 nor EAGAIN).  EDQUOT drops the rest of
 * the 'n' packets too: the burst is over.  Returns where the burst goes
 * on: 'done', or 'n' after EDQUOT. */
static uint16_t
vhost_enqueue_drop(struct vhost_virtq_errors *err, int error,
                   struct rte_mbuf **pkts, uint16_t done, uint16_t n)
{
    if (error == EDQUOT) {
        for (; done < n; done++) {
            err->over_budget++;
            err->dropped_bytes += pkts[done]->pkt_len;
        }
        return n;
    }
    if (error == EINVAL) {
        err->bad_desc++;
    } else {
        err->too_long++;
    }
    err->dropped_bytes += pkts[done]->pkt_len;
    return done;
}

/* Puts 'm' into receive buffers of 'vq' in the general way: chains of
 * descriptors, buffers that span memory regions, and with mergeable
 * receive buffers, several buffers.  'avail' is the guest's avail index.
 * Returns 0 if it was sent, EAGAIN if the guest has no room for it now,
 * EMSGSIZE if it never will (its buffers are too small), EINVAL if a
 * buffer breaks the rules or EDQUOT if '*budget' ran out (either way the
 * buffers it took are given back, empty). */
static int
vhost_enqueue_slow(const struct vhost_virtq_dev *dev, struct vhost_virtq *vq,
                   uint16_t avail, struct rte_mbuf *m, uint32_t *budget)
{
    uint16_t mask = vq->size - 1;
    uint32_t total = m->pkt_len + dev->hdr_len;
    uint32_t done = 0;
    struct vhost_chain first, more;
    uint16_t taken = 0;

    while (done < total) {
        struct vhost_chain *ch = taken ? &more : &first;
        struct vring_used_elem *u;
        uint32_t ofs = 0, chunk;
        uint16_t head;
        int error;

        if ((uint16_t) (avail - vq->last_avail) <= taken) {
            return EAGAIN;
        }
        head = __atomic_load_n(&vq->avail->ring[(uint16_t) (vq->last_avail
                                                            + taken) & mask],
                               __ATOMIC_RELAXED);
        error = vhost_chain_get(dev, vq, head, ch, budget, true);
        if (!error && !taken && ch->len < dev->hdr_len) {
            error = EINVAL;
        }
        if (error) {
            /* Give the chain back, empty, with those taken before. */
            u = &vq->used->ring[(uint16_t) (vq->last_used + taken) & mask];
            u->id = head;
            u->len = 0;
            for (int i = 0; i < taken; i++) {
                vq->used->ring[(uint16_t) (vq->last_used + i) & mask].len = 0;
            }
            vq->last_avail += taken + 1;
            vq->last_used += taken + 1;
            return error;
        }
        if (!taken) {
            if (!dev->mrg_rxbuf && ch->len < total) {
                return EMSGSIZE;
            }
            ofs = done = dev->hdr_len;
        }
        chunk = MIN(ch->len - ofs, total - done);
        vhost_mbuf_to_chain(ch, ofs, m, done - dev->hdr_len, chunk);
        done += chunk;
        u = &vq->used->ring[(uint16_t) (vq->last_used + taken) & mask];
        u->id = head;
        u->len = ofs + chunk;
        taken++;
    }
    vhost_chain_put_hdr(dev, &first, taken, m);
    vq->last_avail += taken;
    vq->last_used += taken;
    return 0;
}

/* vhost_virtq_enqueue() on a split ring. */
static uint16_t
vhost_split_enqueue(const struct vhost_virtq_dev *dev, struct vhost_virtq *vq,
                    struct rte_mbuf **pkts, uint16_t n,
                    struct vhost_virtq_errors *err)
{
    uint16_t mask = vq->size - 1;
    uint16_t first = vq->last_avail;
    uint16_t first_used = vq->last_used;
    uint16_t hdr_len = dev->hdr_len;
    uint16_t heads[VHOST_VIRTQ_MAX_BURST];
    char *dsts[VHOST_VIRTQ_MAX_BURST];
    uint32_t caps[VHOST_VIRTQ_MAX_BURST];
    uint32_t budget = VHOST_VIRTQ_STEP_BUDGET;
    uint16_t avail, n_pre, done = 0;
    uint64_t sent = 0;
    int n_free;

    vhost_virtq_errors_init(err);
    n_free = vhost_virtq_n_avail(vq, &avail);
    if (OVS_UNLIKELY(n_free < 0)) {
        err->bad_avail = avail;
        return 0;
    } else if (!n_free) {
        return 0;
    }

    /* Guess one buffer a packet: every descriptor, then every buffer, on
     * its way into the cache before the first copy. */
    n = MIN(n, VHOST_VIRTQ_MAX_BURST);
    n_pre = MIN(n, n_free);
    vhost_virtq_heads(vq, first, n_pre, heads);
    for (int i = 0; i < n_pre; i++) {
        dsts[i] = vhost_virtq_lone_buf(dev, vq, heads[i], &caps[i], true);
        if (dsts[i] && caps[i] > hdr_len) {
            /* The header's line is read first: see vhost_put_hdr(). */
            rte_prefetch0(dsts[i]);
            vhost_prefetch(dsts[i] + hdr_len,
                           MIN(caps[i] - hdr_len, pkts[i]->pkt_len), true);
        }
    }

    for (; done < n; done++) {
        struct rte_mbuf *m = pkts[done];
        uint16_t k = vq->last_avail - first;
        uint32_t total = m->pkt_len + hdr_len;

        if (OVS_LIKELY(k < n_pre && dsts[k] && caps[k] >= total
                       && m->nb_segs == 1
                       && !(m->ol_flags & VHOST_TX_OL_MASK))) {
            struct vring_used_elem *u;

            vhost_put_hdr(dsts[k], hdr_len, 1);
            memcpy(dsts[k] + hdr_len, rte_pktmbuf_mtod(m, void *),
                   m->pkt_len);
            u = &vq->used->ring[vq->last_used++ & mask];
            u->id = heads[k];
            u->len = total;
            vq->last_avail++;
        } else {
            int error = vhost_enqueue_slow(dev, vq, avail, m, &budget);

            if (error == EAGAIN) {
                break;
            } else if (OVS_UNLIKELY(error)) {
                done = vhost_enqueue_drop(err, error, pkts, done, n);
                if (error == EDQUOT) {
                    break;
                }
                continue;
            }
        }
        vhost_virtq_count(vq->stats, m->pkt_len,
                          rte_pktmbuf_mtod(m, const uint8_t *));
        sent++;
    }
    err->steps = VHOST_VIRTQ_STEP_BUDGET - budget;
    vq->stats[VHOST_VS_good_packets] += sent;
    if (vq->last_used != first_used) {
        vhost_virtq_publish(dev, vq);
    }
    return done;
}

/* Packed virtqueues.
 *
 * The guest makes a descriptor available by writing its flags with the
 * AVAIL bit equal to its wrap counter and the USED bit the other way; we
 * hand a buffer back by writing the buffer's id, the length we wrote and
 * flags with both bits equal to our wrap counter, at our used position.
 * A chain takes consecutive descriptors of the ring (its buffer id is its
 * last one's) and one used entry, after which our used position skips
 * the chain's length.  An indirect descriptor stands alone in the ring.
 *
 * A burst first looks at the descriptors the guest made available, up to
 * its size: lone buffers are mapped and their lines prefetched, and chains
 * are measured (their length in the ring and their id); then it copies,
 * reading a chain's descriptors a second time, each field once.  A chain
 * that changed length in between, or runs longer than
 * VHOST_PACKED_MAX_CHAIN descriptors or into a descriptor the guest did
 * not make available, breaks the rules: it is handed back empty, and its
 * packet dropped.  The first used entry's flags are written last, so the
 * guest sees a burst's buffers come back at once. */

#define VHOST_PACKED_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define VHOST_PACKED_USED (1u << VRING_PACKED_DESC_F_USED)

/* Most descriptors one chain takes in a packed ring (Linux's largest
 * take 19; an indirect table takes one). */
#define VHOST_PACKED_MAX_CHAIN VHOST_CHAIN_VECS

/* Most receive buffers one packet takes (mergeable receive buffers): a
 * 64 kB packet in buffers of 1,518 bytes takes 44. */
#define VHOST_PACKED_MAX_BUFS 64

/* A chain of a packed ring that a burst takes. */
struct vhost_packed_elem {
    uint16_t pos;                   /* Position of its first descriptor. */
    uint16_t n_descs;               /* Descriptors it takes in the ring. */
    uint16_t id;                    /* Buffer id: of the last one. */
    bool bad;                       /* Broke the rules when measured. */
};

/* The used entry whose flags a burst writes last. */
struct vhost_packed_batch {
    struct vring_packed_desc *first;
    uint16_t first_flags;
};

static inline bool
vhost_packed_avail(uint16_t flags, bool wrap)
{
    return (!!(flags & VHOST_PACKED_AVAIL) == wrap
            && !!(flags & VHOST_PACKED_USED) != wrap);
}

/* The flags of descriptor 'pos' of 'vq': read before the rest of it. */
static inline uint16_t
vhost_packed_flags(const struct vhost_virtq *vq, uint16_t pos)
{
    return __atomic_load_n(&vq->desc_packed[pos].flags, __ATOMIC_ACQUIRE);
}

/* Copies packed descriptor 'p', whose flags were read as 'flags', out of
 * guest memory, each field once. */
static inline struct vring_packed_desc
vhost_packed_desc_rest(const struct vring_packed_desc *p, uint16_t flags)
{
    struct vring_packed_desc d;

    d.addr = __atomic_load_n(&p->addr, __ATOMIC_RELAXED);
    d.len = __atomic_load_n(&p->len, __ATOMIC_RELAXED);
    d.id = __atomic_load_n(&p->id, __ATOMIC_RELAXED);
    d.flags = flags;
    return d;
}

/* Copies packed descriptor 'p' out of guest memory, each field once. */
static inline struct vring_packed_desc
vhost_packed_desc_load(const struct vring_packed_desc *p)
{
    return vhost_packed_desc_rest(p, __atomic_load_n(&p->flags,
                                                     __ATOMIC_RELAXED));
}

/* Returns position 'pos' of a ring of 'size' moved on by 'n' (at most
 * 'size'), flipping '*wrap' if it wraps. */
static inline uint16_t
vhost_packed_advance(uint16_t pos, uint16_t n, uint16_t size, bool *wrap)
{
    uint32_t p = (uint32_t) pos + n;

    if (p >= size) {
        p -= size;
        *wrap = !*wrap;
    }
    return p;
}

int
vhost_virtq_n_avail_packed(const struct vhost_virtq *vq)
{
    int max = MIN(vq->size, VHOST_VIRTQ_MAX_BURST);
    uint16_t pos = vq->last_avail;
    bool wrap = vq->avail_wrap;
    bool last_wrap = wrap;
    uint16_t last;
    int n;

    /* A guest makes descriptors available in ring order: if the last one
     * of a full burst is, so are those before it (a guest that says
     * otherwise only makes the caller provide more mbufs than it takes),
     * and the lines in between are left for the burst to read. */
    last = vhost_packed_advance(pos, max - 1, vq->size, &last_wrap);
    if (vhost_packed_avail(vhost_packed_flags(vq, last), last_wrap)) {
        return max;
    }
    for (n = 0; n < max; n++) {
        if (!vhost_packed_avail(vhost_packed_flags(vq, pos), wrap)) {
            break;
        }
        pos = vhost_packed_advance(pos, 1, vq->size, &wrap);
    }
    return n;
}

/* Measures the chain that the guest made available at position 'pos' of
 * 'vq' (with wrap counter 'wrap') into '*el', taking a step of '*budget'
 * for each descriptor.  Returns 0; EINVAL if the chain breaks the rules
 * ('el->n_descs' is then how many descriptors to hand back); or EDQUOT if
 * the budget ran out first (nothing is taken: the chain is short enough
 * to be measured by the next burst). */
static int
vhost_packed_measure(struct vhost_virtq *vq, uint16_t pos, bool wrap,
                     struct vhost_packed_elem *el, uint32_t *budget)
{
    uint32_t max = MIN(vq->size, VHOST_PACKED_MAX_CHAIN);

    el->pos = pos;
    el->n_descs = 0;
    el->bad = false;
    for (;;) {
        uint16_t flags;

        if (!*budget) {
            return EDQUOT;
        }
        *budget -= 1;
        flags = vhost_packed_flags(vq, pos);
        if (el->n_descs && !vhost_packed_avail(flags, wrap)) {
            /* The descriptor before said "next", but this one is not the
             * guest's to give. */
            el->bad = true;
            return EINVAL;
        }
        el->id = __atomic_load_n(&vq->desc_packed[pos].id, __ATOMIC_RELAXED);
        el->n_descs++;
        if (!(flags & VRING_DESC_F_NEXT)) {
            return 0;
        } else if (el->n_descs >= max) {
            el->bad = true;
            return EINVAL;
        }
        pos = vhost_packed_advance(pos, 1, vq->size, &wrap);
    }
}

/* Reads the chain 'el' of 'vq', measured before, into 'ch', taking a step
 * of '*budget' for each descriptor it reads (of the ring or of an indirect
 * table).  Every buffer must be writable by us if 'write'.  Returns 0,
 * EINVAL if the chain breaks the rules (or changed since it was
 * measured), or EDQUOT if the budget ran out first. */
static int
vhost_packed_chain_get(const struct vhost_virtq_dev *dev,
                       struct vhost_virtq *vq,
                       const struct vhost_packed_elem *el,
                       struct vhost_chain *ch, uint32_t *budget, bool write)
{
    uint16_t pos = el->pos;
    bool unused = false;

    ch->head = el->id;
    ch->n_vecs = 0;
    ch->len = 0;
    for (uint16_t i = 0; i < el->n_descs; i++) {
        bool last = i + 1 == el->n_descs;
        struct vring_packed_desc d;

        if (!*budget) {
            return EDQUOT;
        }
        *budget -= 1;
        d = vhost_packed_desc_load(&vq->desc_packed[pos]);
        if (!(d.flags & VRING_DESC_F_NEXT) != last) {
            return EINVAL;
        }
        if (d.flags & VRING_DESC_F_INDIRECT) {
            const struct vring_packed_desc *table;
            uint32_t n;

            /* The virtio specification caps an indirect table at the
             * ring's size, and forbids chaining it. */
            if (el->n_descs != 1 || !d.len || d.len % sizeof d
                || d.len / sizeof d > vq->size) {
                return EINVAL;
            }
            table = vhost_gpa_map_all(dev->mem, &vq->region, d.addr, d.len);
            if (!table || (uintptr_t) table % __alignof__(d)) {
                return EINVAL;
            }
            n = d.len / sizeof d;
            for (uint32_t j = 0; j < n; j++) {
                struct vring_packed_desc e;

                if (!*budget) {
                    return EDQUOT;
                }
                *budget -= 1;
                e = vhost_packed_desc_load(&table[j]);
                if (e.flags & VRING_DESC_F_INDIRECT
                    || (write && !(e.flags & VRING_DESC_F_WRITE))
                    || vhost_chain_add(dev, vq, ch, e.addr, e.len)) {
                    return EINVAL;
                }
            }
            return 0;
        }
        if ((write && !(d.flags & VRING_DESC_F_WRITE))
            || vhost_chain_add(dev, vq, ch, d.addr, d.len)) {
            return EINVAL;
        }
        pos = vhost_packed_advance(pos, 1, vq->size, &unused);
    }
    return 0;
}

/* Hands buffer 'id', which took 'n_descs' descriptors, back to the guest
 * at the used position of 'vq', with 'len' bytes written into it, and
 * moves the used position on.  The first entry of a burst gets its flags
 * in vhost_packed_publish(). */
static inline void
vhost_packed_put_used(struct vhost_virtq *vq, uint16_t id, uint32_t len,
                      uint16_t n_descs, struct vhost_packed_batch *b)
{
    struct vring_packed_desc *u = &vq->desc_packed[vq->last_used];
    uint16_t flags = vq->used_wrap ? VHOST_PACKED_AVAIL | VHOST_PACKED_USED
                                   : 0;

    if (len) {
        flags |= VRING_DESC_F_WRITE;
    }
    __atomic_store_n(&u->id, id, __ATOMIC_RELAXED);
    __atomic_store_n(&u->len, len, __ATOMIC_RELAXED);
    if (!b->first) {
        b->first = u;
        b->first_flags = flags;
    } else {
        __atomic_store_n(&u->flags, flags, __ATOMIC_RELEASE);
    }
    vq->last_used = vhost_packed_advance(vq->last_used, n_descs, vq->size,
                                         &vq->used_wrap);
}

/* Returns position 'pos' with wrap counter 'wrap' of a ring of 'size' as
 * one count modulo twice the size. */
static inline uint32_t
vhost_packed_linear(uint32_t pos, bool wrap, uint32_t size)
{
    return (pos + (wrap ? size : 0)) % (2 * size);
}

/* Publishes the buffers that a burst handed back on 'vq' (the flags of
 * the first, written last) and interrupts the guest if it asked for
 * it. */
static void
vhost_packed_publish(const struct vhost_virtq_dev *dev, struct vhost_virtq *vq,
                     const struct vhost_packed_batch *b)
{
    uint16_t flags;
    bool need;

    if (!b->first) {
        return;
    }
    __atomic_store_n(&b->first->flags, b->first_flags, __ATOMIC_RELEASE);

    /* The guest must see the buffers before we look at whether it wants
     * to hear of them (it looks at them after it says so). */
    rte_atomic_thread_fence(__ATOMIC_SEQ_CST);
    flags = __atomic_load_n(&vq->driver_event->flags, __ATOMIC_RELAXED);
    if (flags == VRING_PACKED_EVENT_FLAG_DESC && dev->event_idx
        && vq->signalled_valid) {
        /* It wants to hear once we are past the entry at 'off_wrap': an
         * interrupt if that entry lies in [old, new). */
        uint16_t off_wrap = __atomic_load_n(&vq->driver_event->off_wrap,
                                            __ATOMIC_RELAXED);
        uint32_t size = vq->size;
        uint32_t old = vhost_packed_linear(vq->signalled_used,
                                           vq->signalled_wrap, size);
        uint32_t new = vhost_packed_linear(vq->last_used, vq->used_wrap,
                                           size);
        uint32_t event = vhost_packed_linear(off_wrap & 0x7fff,
                                             off_wrap >> 15, size);

        need = ((event + 2 * size - old) % (2 * size)
                < (new + 2 * size - old) % (2 * size));
    } else {
        need = flags != VRING_PACKED_EVENT_FLAG_DISABLE;
    }
    vq->signalled_used = vq->last_used;
    vq->signalled_wrap = vq->used_wrap;
    vq->signalled_valid = true;
    if (need && vq->callfd >= 0) {
        eventfd_write(vq->callfd, 1);
        vq->stats[VHOST_VS_guest_notifications]++;
    }
}

/* vhost_virtq_dequeue() on a packed ring. */
static uint16_t
vhost_packed_dequeue(const struct vhost_virtq_dev *dev, struct vhost_virtq *vq,
                     struct rte_mbuf **pkts, uint16_t n,
                     struct vhost_virtq_big *big,
                     struct vhost_virtq_errors *err)
{
    struct vhost_packed_elem els[VHOST_VIRTQ_MAX_BURST];
    const char *srcs[VHOST_VIRTQ_MAX_BURST];
    uint32_t lens[VHOST_VIRTQ_MAX_BURST];
    struct vhost_packed_batch batch = { NULL, 0 };
    uint32_t budget = VHOST_VIRTQ_STEP_BUDGET;
    uint16_t hdr_len = dev->hdr_len;
    uint16_t pos = vq->last_avail;
    bool wrap = vq->avail_wrap;
    uint16_t got = 0;
    int i;

    vhost_virtq_errors_init(err);
    n = MIN(n, MIN(vq->size, VHOST_VIRTQ_MAX_BURST));

    /* Every lone descriptor mapped and its buffer on its way into the
     * cache, every chain measured, before the first copy. */
    for (i = 0; i < n; i++) {
        uint16_t flags = vhost_packed_flags(vq, pos);

        if (!vhost_packed_avail(flags, wrap)) {
            break;
        }
        srcs[i] = NULL;
        if (OVS_LIKELY(!(flags & (VRING_DESC_F_NEXT
                                  | VRING_DESC_F_INDIRECT)))) {
            struct vring_packed_desc d;
            const char *src;

            d = vhost_packed_desc_rest(&vq->desc_packed[pos], flags);
            els[i].pos = pos;
            els[i].n_descs = 1;
            els[i].id = d.id;
            els[i].bad = false;
            src = vhost_gpa_map_all(dev->mem, &vq->region, d.addr, d.len);
            if (OVS_LIKELY(src && d.len >= hdr_len)) {
                srcs[i] = src + hdr_len;
                lens[i] = d.len - hdr_len;
                vhost_prefetch(srcs[i], lens[i], false);
            }
        } else if (vhost_packed_measure(vq, pos, wrap, &els[i], &budget)
                   == EDQUOT) {
            break;
        }
        pos = vhost_packed_advance(pos, els[i].n_descs, vq->size, &wrap);
    }
    n = i;

    for (i = 0; i < n; i++) {
        struct vhost_packed_elem *el = &els[i];
        struct rte_mbuf *m = pkts[got];
        int error;

        if (OVS_LIKELY(srcs[i] && lens[i] <= rte_pktmbuf_tailroom(m))) {
            memcpy(rte_pktmbuf_mtod(m, void *), srcs[i], lens[i]);
            m->data_len = m->pkt_len = lens[i];
            error = vhost_fast_offload(dev, srcs[i], m);
        } else if (el->bad) {
            error = EINVAL;
        } else {
            struct vhost_chain ch;

            error = vhost_packed_chain_get(dev, vq, el, &ch, &budget, false);
            if (!error) {
                error = vhost_chain_to_pkt(dev, &ch, &pkts[got], big);
                m = pkts[got];
                if (OVS_UNLIKELY(error == ENOBUFS)) {
                    /* It waits for the next burst. */
                    break;
                }
            } else if (OVS_UNLIKELY(error == EDQUOT)) {
                n = i + 1;
            }
        }
        vhost_packed_put_used(vq, el->id, 0, el->n_descs, &batch);
        vq->last_avail = vhost_packed_advance(vq->last_avail, el->n_descs,
                                              vq->size, &vq->avail_wrap);
        if (OVS_LIKELY(!error)) {
            vhost_virtq_count(vq->stats, m->pkt_len,
                              rte_pktmbuf_mtod(m, const uint8_t *));
            got++;
        } else {
            m->ol_flags = 0;
            vhost_count_rx_error(err, error);
        }
    }
    err->steps = VHOST_VIRTQ_STEP_BUDGET - budget;
    vq->stats[VHOST_VS_good_packets] += got;
    vhost_packed_publish(dev, vq, &batch);
    return got;
}

/* Puts 'm' into receive buffers of packed ring 'vq' in the general way
 * (see vhost_enqueue_slow()).  Returns 0 if it was sent, EAGAIN if the
 * guest has no room for it now (nothing was taken), EMSGSIZE if its
 * buffers are too small (nothing was taken), EINVAL if a buffer breaks the
 * rules or EDQUOT if '*budget' ran out (either way the buffers it took
 * are given back, empty). */
static int
vhost_packed_enqueue_slow(const struct vhost_virtq_dev *dev,
                          struct vhost_virtq *vq, struct rte_mbuf *m,
                          uint32_t *budget, struct vhost_packed_batch *b)
{
    struct vhost_packed_elem bufs[VHOST_PACKED_MAX_BUFS];
    uint32_t lens[VHOST_PACKED_MAX_BUFS];
    uint32_t total = m->pkt_len + dev->hdr_len;
    uint16_t pos = vq->last_avail;
    bool wrap = vq->avail_wrap;
    struct vhost_chain first, more;
    uint32_t done = 0;
    uint16_t taken = 0;
    int error = 0;

    while (done < total) {
        struct vhost_chain *ch = taken ? &more : &first;
        struct vhost_packed_elem *el;
        uint32_t ofs = 0, chunk;

        if (taken >= VHOST_PACKED_MAX_BUFS) {
            return EMSGSIZE;
        } else if (!vhost_packed_avail(vhost_packed_flags(vq, pos), wrap)) {
            return EAGAIN;
        }
        el = &bufs[taken];
        error = vhost_packed_measure(vq, pos, wrap, el, budget);
        if (error == EDQUOT) {
            /* Not taken: give back those before it. */
            break;
        }
        if (!error) {
            error = vhost_packed_chain_get(dev, vq, el, ch, budget, true);
        }
        if (!error && !taken && ch->len < dev->hdr_len) {
            error = EINVAL;
        }
        if (error) {
            lens[taken++] = 0;
            break;
        }
        if (!taken) {
            if (!dev->mrg_rxbuf && ch->len < total) {
                return EMSGSIZE;
            }
            ofs = done = dev->hdr_len;
        }
        chunk = MIN(ch->len - ofs, total - done);
        vhost_mbuf_to_chain(ch, ofs, m, done - dev->hdr_len, chunk);
        done += chunk;
        lens[taken++] = ofs + chunk;
        pos = vhost_packed_advance(pos, el->n_descs, vq->size, &wrap);
    }
    if (!error) {
        vhost_chain_put_hdr(dev, &first, taken, m);
    }
    for (int i = 0; i < taken; i++) {
        vhost_packed_put_used(vq, bufs[i].id, error ? 0 : lens[i],
                              bufs[i].n_descs, b);
        vq->last_avail = vhost_packed_advance(vq->last_avail,
                                              bufs[i].n_descs, vq->size,
                                              &vq->avail_wrap);
    }
    return error;
}

/* vhost_virtq_enqueue() on a packed ring. */
static uint16_t
vhost_packed_enqueue(const struct vhost_virtq_dev *dev, struct vhost_virtq *vq,
                     struct rte_mbuf **pkts, uint16_t n,
                     struct vhost_virtq_errors *err)
{
    char *dsts[VHOST_VIRTQ_MAX_BURST];
    uint32_t caps[VHOST_VIRTQ_MAX_BURST];
    uint16_t ids[VHOST_VIRTQ_MAX_BURST];
    struct vhost_packed_batch batch = { NULL, 0 };
    uint32_t budget = VHOST_VIRTQ_STEP_BUDGET;
    uint16_t hdr_len = dev->hdr_len;
    uint16_t pos = vq->last_avail;
    bool wrap = vq->avail_wrap;
    uint16_t done = 0;
    uint32_t k = 0;                 /* Descriptors taken. */
    int n_pre;
    uint64_t sent = 0;

    vhost_virtq_errors_init(err);
    n = MIN(n, VHOST_VIRTQ_MAX_BURST);

    /* Guess one buffer a packet: the lone buffers the guest made
     * available, up to the first that is not, mapped and on their way
     * into the cache before the first copy. */
    for (n_pre = 0; n_pre < MIN(n, vq->size); n_pre++) {
        uint16_t flags = vhost_packed_flags(vq, pos);
        struct vring_packed_desc d;

        if (!vhost_packed_avail(flags, wrap)
            || (flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT
                         | VRING_DESC_F_WRITE)) != VRING_DESC_F_WRITE) {
            break;
        }
        d = vhost_packed_desc_rest(&vq->desc_packed[pos], flags);
        ids[n_pre] = d.id;
        caps[n_pre] = d.len;
        dsts[n_pre] = vhost_gpa_map_all(dev->mem, &vq->region, d.addr,
                                        d.len);
        if (dsts[n_pre] && d.len > hdr_len) {
            /* The header's line is read first: see vhost_put_hdr(). */
            rte_prefetch0(dsts[n_pre]);
            vhost_prefetch(dsts[n_pre] + hdr_len,
                           MIN(d.len - hdr_len, pkts[n_pre]->pkt_len), true);
        }
        pos = vhost_packed_advance(pos, 1, vq->size, &wrap);
    }

    for (; done < n; done++) {
        struct rte_mbuf *m = pkts[done];
        uint32_t total = m->pkt_len + hdr_len;

        if (OVS_LIKELY(k < n_pre && dsts[k] && caps[k] >= total
                       && m->nb_segs == 1
                       && !(m->ol_flags & VHOST_TX_OL_MASK))) {
            vhost_put_hdr(dsts[k], hdr_len, 1);
            memcpy(dsts[k] + hdr_len, rte_pktmbuf_mtod(m, void *),
                   m->pkt_len);
            vhost_packed_put_used(vq, ids[k], total, 1, &batch);
            vq->last_avail = vhost_packed_advance(vq->last_avail, 1,
                                                  vq->size, &vq->avail_wrap);
            k++;
        } else {
            uint16_t before = vq->last_avail;
            bool before_wrap = vq->avail_wrap;
            int error = vhost_packed_enqueue_slow(dev, vq, m, &budget,
                                                  &batch);

            /* Descriptors taken, for the guesses above. */
            k += ((vq->last_avail + (vq->avail_wrap != before_wrap
                                     ? vq->size : 0)) - before);
            if (error == EAGAIN) {
                break;
            } else if (OVS_UNLIKELY(error)) {
                done = vhost_enqueue_drop(err, error, pkts, done, n);
                if (error == EDQUOT) {
                    break;
                }
                continue;
            }
        }
        vhost_virtq_count(vq->stats, m->pkt_len,
                          rte_pktmbuf_mtod(m, const uint8_t *));
        sent++;
    }
    err->steps = VHOST_VIRTQ_STEP_BUDGET - budget;
    vq->stats[VHOST_VS_good_packets] += sent;
    vhost_packed_publish(dev, vq, &batch);
    return done;
}

/* Takes the next 'n' packets that the guest sent on 'vq' into 'pkts',
 * empty mbufs that the caller provides, or for a packet longer than
 * those, into a spare of 'big' (if not NULL).  'n' is at most what
 * vhost_virtq_n_avail() returned and at most VHOST_VIRTQ_MAX_BURST.
 * Returns how many packets it put in 'pkts[0]' onwards; the caller keeps
 * the mbufs after them, and those in 'big'.  A guest that negotiated
 * offloads gets its virtio-net headers applied (vhost_rx_offload()).
 * Chains that break the rules, packets too long for an mbuf and packets
 * whose headers ask for what they do not fit are handed back to the guest,
 * and counted in '*err'.  If
 * the step budget runs out, the chain at hand is handed back too and the
 * burst ends there: the guest's later entries wait for the next call. */
uint16_t
vhost_virtq_dequeue(const struct vhost_virtq_dev *dev, struct vhost_virtq *vq,
                    struct rte_mbuf **pkts, uint16_t n,
                    struct vhost_virtq_big *big,
                    struct vhost_virtq_errors *err)
{
    return (vq->packed
            ? vhost_packed_dequeue(dev, vq, pkts, n, big, err)
            : vhost_split_dequeue(dev, vq, pkts, n, big, err));
}

/* Gives the guest copies of up to 'n' packets of 'pkts' on 'vq' (the
 * caller still owns them, and frees them).  Returns how many of 'pkts' it
 * went through: the guest's ring may fill up before.  Those it could not
 * deliver at all are counted in '*err'.  If the step budget runs out, the
 * packet at hand and all after it are dropped (and counted): they went
 * through too. */
uint16_t
vhost_virtq_enqueue(const struct vhost_virtq_dev *dev, struct vhost_virtq *vq,
                    struct rte_mbuf **pkts, uint16_t n,
                    struct vhost_virtq_errors *err)
{
    return (vq->packed
            ? vhost_packed_enqueue(dev, vq, pkts, n, err)
            : vhost_split_enqueue(dev, vq, pkts, n, err));
}
