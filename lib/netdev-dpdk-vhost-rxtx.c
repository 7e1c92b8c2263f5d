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


/* Receive and send: what the PMD threads run for a port (and the main
 * thread, for the packets that the switch sends itself, with
 * 'concurrent_txq').
 *
 * A burst reads the port's published 'vid' and the datapath state that
 * struct netdev_vhost lists, takes the vring's lock, and moves packets
 * through our virtqueue datapath (netdev-dpdk-vhost-virtq.c) or
 * librte_vhost's; then it counts, polices, and logs what went wrong, rate
 * limited.  No syscall, allocation or lock here is per packet, except the
 * copies of packets that are not DPDK mbufs. */

#include <config.h>

#include <errno.h>
#include <string.h>

#include <rte_mbuf.h>
#include <rte_spinlock.h>
#include <rte_vhost.h>

#include "coverage.h"
#include "csum.h"
#include "dp-packet.h"
#include "netdev-dpdk-vhost-private.h"
#include "openvswitch/vlog.h"
#include "ovs-rcu.h"
#include "packets.h"

COVERAGE_DEFINE(vhost_client_tx_copy);
COVERAGE_DEFINE(vhost_client_tx_contention);
COVERAGE_DEFINE(vhost_client_tx_sw_csum);
COVERAGE_DEFINE(vhost_client_tx_bad_offload);
COVERAGE_DEFINE(vhost_client_rx_no_mbuf);
COVERAGE_DEFINE(vhost_client_bad_desc);
COVERAGE_DEFINE(vhost_client_over_budget);
COVERAGE_DEFINE(vhost_client_bad_offload);

static struct vlog_rate_limit rl = VLOG_RATE_LIMIT_INIT(5, 20);

BUILD_ASSERT_DECL(NETDEV_MAX_BURST <= VHOST_VIRTQ_MAX_BURST);

struct netdev_rxq_vhost {
    struct netdev_rxq up;
    struct vhost_virtq_big big;     /* Spares for 64 kB segments. */
};

/* A guest's avail index runs more than a ring ahead of us: it is broken,
 * and its queue stays stopped until it resets it. */
static void
vhost_bad_avail_idx(const struct vhost_conn *c, const struct vhost_vring *vr,
                    uint16_t avail)
{
    static struct vlog_rate_limit bad_rl = VLOG_RATE_LIMIT_INIT(1, 5);
    char ifname[PATH_MAX];

    if (!rte_vhost_get_ifname(c->vid, ifname, sizeof ifname)) {
        VLOG_WARN_RL(&bad_rl, "%s: guest's avail index %"PRIu16" is more "
                     "than a ring (%"PRIu16") ahead of %"PRIu16"; queue "
                     "stopped", ifname, avail, vr->q.size,
                     vr->q.last_avail);
    }
}

/* Logs, rate-limited by 'drop_rl', that 'n' packets of 'vr' were dropped
 * because their descriptors 'why'. */
static void
vhost_log_drops(struct vlog_rate_limit *drop_rl, const struct vhost_conn *c,
                const struct vhost_vring *vr, uint32_t n, const char *why)
{
    char ifname[PATH_MAX];

    if (!VLOG_DROP_WARN(drop_rl)
        && !rte_vhost_get_ifname(c->vid, ifname, sizeof ifname)) {
        VLOG_WARN("%s: vring %d: dropped %"PRIu32" packet%s whose %s",
                  ifname, vr->index, n, n == 1 ? "" : "s", why);
    }
}

/* 'n' descriptor chains of 'vr' broke the rules: their packets were
 * dropped. */
static void
vhost_bad_desc(const struct vhost_conn *c, const struct vhost_vring *vr,
               uint32_t n)
{
    static struct vlog_rate_limit bad_rl = VLOG_RATE_LIMIT_INIT(1, 5);

    COVERAGE_ADD(vhost_client_bad_desc, n);
    vhost_log_drops(&bad_rl, c, vr, n, "descriptors are out of bounds, "
                    "loop, or lie outside guest memory");
}

/* 'n' packets of 'vr' were dropped because their virtio-net headers asked
 * for offloads that they do not fit. */
static void
vhost_bad_offload(const struct vhost_conn *c, const struct vhost_vring *vr,
                  uint32_t n)
{
    static struct vlog_rate_limit ol_rl = VLOG_RATE_LIMIT_INIT(1, 5);

    COVERAGE_ADD(vhost_client_bad_offload, n);
    vhost_log_drops(&ol_rl, c, vr, n, "virtio-net headers ask for a "
                    "checksum or segmentation that the packet does not fit");
}

/* 'n' packets of 'vr' were dropped because the guest's descriptor chains
 * took more steps than a burst may (VHOST_VIRTQ_STEP_BUDGET). */
static void
vhost_over_budget(const struct vhost_conn *c, const struct vhost_vring *vr,
                  uint32_t n)
{
    static struct vlog_rate_limit budget_rl = VLOG_RATE_LIMIT_INIT(1, 5);

    COVERAGE_ADD(vhost_client_over_budget, n);
    vhost_log_drops(&budget_rl, c, vr, n, "descriptor chains took more "
                    "than " OVS_STRINGIZE(VHOST_VIRTQ_STEP_BUDGET)
                    " steps in one burst");
}

/* Returns true if the ring indexes of 'vr', on our datapath, are
 * librte_vhost's: after the connection moved from librte_vhost's datapath
 * to ours (see struct vhost_vring), once the sends that were still under
 * way on librte_vhost's are done.  The caller holds 'vr->lock'. */
static inline bool
vhost_vring_synced(const struct vhost_conn *c, struct vhost_vring *vr)
{
    uint16_t avail, used;
    unsigned int busy;

    if (OVS_LIKELY(!vr->resync)) {
        return true;
    }
    atomic_read_explicit(&vr->slow_busy, &busy, memory_order_acquire);
    if (busy || rte_vhost_get_vring_base(c->vid, vr->index, &avail, &used)) {
        return false;
    }
    vhost_virtq_set_base(&vr->q, avail, used);
    vr->resync = false;
    return true;
}

/* After a burst of librte_vhost's datapath on 'vr': marks the pages that it
 * may have written without logging them (see vhost_vring_set_log()). */
static inline void
vhost_log_slow(int vid, const struct vhost_vring *vr)
{
    if (OVS_UNLIKELY(vr->log_desc_len)) {
        rte_vhost_log_write(vid, vr->log_desc_gpa, vr->log_desc_len);
        if (vr->log_event_gpa) {
            rte_vhost_log_write(vid, vr->log_event_gpa,
                                sizeof(struct vring_packed_desc_event));
        }
    }
}

/* Gives the guest copies of up to 'n' packets of 'pkts' on vring 'vr' of
 * queue pair 'qp', through librte_vhost's datapath, trying again up to
 * 'max_retries' times while the guest takes some.  Returns how many it
 * sent, and counts the retries in '*retries'.
 *
 * The caller holds 'vr->lock', which this releases while librte_vhost
 * sends (see struct vhost_vring) and takes again. */
static uint16_t
vhost_send_slow(const struct vhost_conn *c, struct vhost_vring *vr, int vid,
                int qp, struct rte_mbuf **pkts, uint16_t n, int max_retries,
                int *retries)
{
    unsigned int busy;
    uint16_t sent = 0;

    atomic_add_explicit(&vr->slow_busy, 1, &busy, memory_order_relaxed);
    rte_spinlock_unlock(&vr->lock);
    while (!vhost_conn_paused(c)) {
        uint16_t k = rte_vhost_enqueue_burst(vid, VHOST_GUEST_RX_VRING(qp),
                                             &pkts[sent], n - sent);

        sent += k;
        if (!k || sent == n || *retries >= max_retries) {
            break;
        }
        *retries += 1;
    }
    rte_spinlock_lock(&vr->lock);
    vhost_log_slow(vid, vr);
    vhost_virtq_count_mbufs(&vr->q, pkts, sent);
    atomic_sub_explicit(&vr->slow_busy, 1, &busy, memory_order_release);
    return sent;
}

/* Takes up to 'n' packets that the guest sent on 'vr' into mbufs from
 * 'mp', through our datapath.  Returns how many.  Chains that break the
 * rules and packets too long for an mbuf are dropped and counted in
 * 'qs'. */
static inline uint16_t
vhost_recv_fast(const struct vhost_conn *c, struct vhost_vring *vr,
                 struct rte_mempool *mp, struct rte_mbuf **pkts, uint16_t n,
                 struct vhost_virtq_big *big, struct vhost_queue_stats *qs)
{
    struct vhost_virtq_errors err;
    uint16_t avail, got;
    int n_avail;

    n_avail = vhost_virtq_n_avail(&vr->q, &avail);
    if (OVS_UNLIKELY(n_avail < 0)) {
        vhost_bad_avail_idx(c, vr, avail);
        return 0;
    }
    n = MIN(n, n_avail);
    if (!n) {
        return 0;
    }
    if (OVS_UNLIKELY(rte_pktmbuf_alloc_bulk(mp, pkts, n))) {
        COVERAGE_INC(vhost_client_rx_no_mbuf);
        return 0;
    }

    got = vhost_virtq_dequeue(&c->vdev, &vr->q, pkts, n, big, &err);
    if (OVS_UNLIKELY(got < n)) {
        rte_pktmbuf_free_bulk(&pkts[got], n - got);
        qs->rx_oversize_drops += err.too_long;
        qs->rx_bad_desc_drops += err.bad_desc;
        qs->rx_budget_drops += err.over_budget;
        qs->rx_bad_offload_drops += err.bad_offload;
        if (err.bad_offload) {
            vhost_bad_offload(c, vr, err.bad_offload);
        }
        if (err.bad_desc) {
            vhost_bad_desc(c, vr, err.bad_desc);
        }
        if (err.over_budget) {
            vhost_over_budget(c, vr, err.over_budget);
        }
    }
    return got;
}

/* What a send through our datapath could not deliver at all. */
struct vhost_send_drops {
    uint64_t packets;               /* All of them. */
    uint64_t bytes;
    uint64_t bad_desc;              /* Receive buffers broke a rule. */
    uint64_t over_budget;           /* The step budget ran out. */
};

/* Gives the guest copies of up to 'n' packets on 'vr', through our
 * datapath.  Returns how many of 'pkts' it went through.  Those it could
 * not deliver at all are counted in '*drops'. */
static inline uint16_t
vhost_send_fast(const struct vhost_conn *c, struct vhost_vring *vr,
                 struct rte_mbuf **pkts, uint16_t n,
                 struct vhost_send_drops *drops)
{
    struct vhost_virtq_errors err;
    uint16_t done;

    done = vhost_virtq_enqueue(&c->vdev, &vr->q, pkts, n, &err);
    if (OVS_UNLIKELY(err.bad_desc || err.too_long || err.over_budget)) {
        drops->packets += err.bad_desc + err.too_long + err.over_budget;
        drops->bytes += err.dropped_bytes;
        drops->bad_desc += err.bad_desc;
        drops->over_budget += err.over_budget;
        if (err.bad_desc) {
            vhost_bad_desc(c, vr, err.bad_desc);
        }
        if (err.over_budget) {
            vhost_over_budget(c, vr, err.over_budget);
        }
    }
    if (OVS_UNLIKELY(err.bad_avail >= 0)) {
        vhost_bad_avail_idx(c, vr, err.bad_avail);
    }
    return done;
}

/* A RARP request from 'mac', which the guest's hypervisor asks us to send
 * on its behalf after a live migration (VHOST_USER_SEND_RARP), as
 * librte_vhost's datapath does. */
static struct rte_mbuf *
vhost_make_rarp(struct rte_mempool *mp, const struct eth_addr mac)
{
    struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
    struct dp_packet *p;

    if (!m) {
        return NULL;
    }
    p = CONTAINER_OF(m, struct dp_packet, mbuf);
    dp_packet_set_size(p, 0);
    compose_rarp(p, mac);
    if (dp_packet_size(p) < ETH_TOTAL_MIN) {
        dp_packet_put_zeros(p, ETH_TOTAL_MIN - dp_packet_size(p));
    }
    return m;
}

struct netdev_rxq *
netdev_vhost_rxq_alloc(void)
{
    struct netdev_rxq_vhost *rx = xzalloc(sizeof *rx);

    return &rx->up;
}

int
netdev_vhost_rxq_construct(struct netdev_rxq *rxq OVS_UNUSED)
{
    return 0;
}

void
netdev_vhost_rxq_destruct(struct netdev_rxq *rxq)
{
    struct netdev_rxq_vhost *rx = CONTAINER_OF(rxq, struct netdev_rxq_vhost,
                                               up);

    for (int i = 0; i < VHOST_VIRTQ_N_BIG; i++) {
        rte_pktmbuf_free(rx->big.m[i]);
        rx->big.m[i] = NULL;
    }
    rx->big.n = 0;
}

/* Fills the spares of 'big' (see struct vhost_virtq_big) from 'big_mp',
 * freeing the mbufs that a burst left in their place. */
static void
vhost_big_refill(struct vhost_virtq_big *big, struct rte_mempool *big_mp)
{
    big->room = (rte_pktmbuf_data_room_size(big_mp)
                 - RTE_PKTMBUF_HEADROOM);
    while (big->n < VHOST_VIRTQ_N_BIG) {
        struct rte_mbuf *m = rte_pktmbuf_alloc(big_mp);

        if (!m) {
            COVERAGE_INC(vhost_client_rx_no_mbuf);
            return;
        }
        rte_pktmbuf_free(big->m[big->n]);
        big->m[big->n++] = m;
    }
}

void
netdev_vhost_rxq_dealloc(struct netdev_rxq *rxq)
{
    free(CONTAINER_OF(rxq, struct netdev_rxq_vhost, up));
}

bool
netdev_vhost_rxq_enabled(struct netdev_rxq *rxq)
{
    struct netdev_vhost *dev = netdev_vhost_cast(rxq->netdev);

    /* Queue 0 also serves guests that report no vring states. */
    return rxq->queue_id == 0 || qp_bit_get(dev->rx_enabled, rxq->queue_id);
}

/* Puts the RARP request that the guest's hypervisor asked for, if any and
 * if no other thread took it, in '*pkt'.  Returns 1 if it did, else 0. */
static inline int
vhost_rarp_claim(struct vhost_conn *c, struct rte_mempool *mp,
                 struct rte_mbuf **pkt)
{
    bool pending;

    atomic_read_relaxed(&c->rarp_pending, &pending);
    if (OVS_LIKELY(!pending)) {
        return 0;
    }
    pending = atomic_exchange(&c->rarp_pending, false);
    *pkt = pending ? vhost_make_rarp(mp, c->rarp_mac) : NULL;
    return *pkt != NULL;
}

/* Receives a burst of packets that the guest transmitted. */
int
netdev_vhost_rxq_recv(struct netdev_rxq *rxq, struct dp_packet_batch *batch,
                      int *qfill)
{
    struct netdev_vhost *dev = netdev_vhost_cast(rxq->netdev);
    struct netdev_rxq_vhost *rx = CONTAINER_OF(rxq, struct netdev_rxq_vhost,
                                               up);
    int vid = ovsrcu_index_get(&dev->vid);
    struct rte_mbuf **pkts = (struct rte_mbuf **) batch->packets;
    struct vhost_queue_stats *stats;
    struct vhost_policer *policer;
    struct vhost_vring *vr;
    struct vhost_conn *c;
    uint16_t vring, n = 0;
    uint64_t bytes = 0;
    int fill = 0;
    bool up;

    atomic_read_relaxed(&dev->admin_up, &up);
    if (OVS_UNLIKELY(vid < 0 || !up)) {
        return EAGAIN;
    }

    c = dev->conn;
    vring = VHOST_GUEST_TX_VRING(rxq->queue_id);
    vr = vhost_conn_vring(c, vring);
    if (OVS_UNLIKELY(!vr) || OVS_UNLIKELY(!rte_spinlock_trylock(&vr->lock))) {
        return EAGAIN;
    }
    stats = &dev->rxqs[rxq->queue_id].stats;
    if (OVS_UNLIKELY(vhost_conn_paused(c))) {
        /* A vhost-user message is being handled. */
    } else if (OVS_LIKELY(c->fast)) {
        if (OVS_LIKELY(vr->ready)) {
            int first = vhost_rarp_claim(c, dev->mp, pkts);

            if (OVS_UNLIKELY(c->vdev.host_offloads) && dev->big_mp
                && rx->big.n < VHOST_VIRTQ_N_BIG) {
                vhost_big_refill(&rx->big, dev->big_mp);
            }
            n = first + vhost_recv_fast(c, vr, dev->mp, pkts + first,
                                         NETDEV_MAX_BURST - first, &rx->big,
                                         stats);
            if (qfill && n == NETDEV_MAX_BURST && !vr->q.packed) {
                fill = (uint16_t) (__atomic_load_n(&vr->q.avail->idx,
                                                   __ATOMIC_RELAXED)
                                   - vr->q.last_avail);
            }
        }
    } else if (OVS_LIKELY(!vhost_vring_bad(vr))) {
        /* It only tries librte_vhost's lock of the vring: it does not wait
         * for librte_vhost's thread while we hold ours. */
        n = rte_vhost_dequeue_burst(vid, vring, dev->mp, pkts,
                                    NETDEV_MAX_BURST);
        vhost_log_slow(vid, vr);
        vhost_virtq_count_mbufs(&vr->q, pkts, n);
    }
    rte_spinlock_unlock(&vr->lock);
    if (!n) {
        return EAGAIN;
    }

    if (qfill) {
        /* librte_vhost's count takes the vring's lock, which its thread
         * may hold while it waits for ours. */
        *qfill = (c->fast ? fill
                  : n == NETDEV_MAX_BURST
                  ? rte_vhost_rx_queue_count(vid, vring) & UINT16_MAX
                  : 0);
    }

    for (int i = 0; i < n; i++) {
        bytes += pkts[i]->pkt_len;
    }
    stats->packets += n;
    stats->bytes += bytes;

    policer = ovsrcu_get(struct vhost_policer *, &dev->policer);
    if (OVS_UNLIKELY(policer)) {
        int kept = vhost_policer_run(policer, pkts, n);

        stats->dropped += n - kept;
        stats->rx_qos_drops += n - kept;
        n = kept;
        if (!n) {
            return EAGAIN;
        }
    }

    batch->count = n;
    dp_packet_batch_init_packet_fields(batch);
    return 0;
}

/* Offload requests that a packet may carry to us. */
#define VHOST_TX_OFFLOAD_MASK (RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_TCP_SEG)

/* Completes the TCP or UDP checksum that the sender of 'p' left partial
 * (holding the pseudo-header sum) and clears the request. */
static void
vhost_csum_complete(struct dp_packet *p)
{
    void *l4 = dp_packet_l4(p);
    bool tcp = dp_packet_hwol_l4_is_tcp(p);
    ovs_be16 *field = (tcp
                       ? &((struct tcp_header *) l4)->tcp_csum
                       : &((struct udp_header *) l4)->udp_csum);
    uint32_t partial = (dp_packet_hwol_is_ipv4(p)
                        ? packet_csum_pseudoheader(dp_packet_l3(p))
                        : packet_csum_pseudoheader6(dp_packet_l3(p)));

    COVERAGE_INC(vhost_client_tx_sw_csum);
    *field = 0;
    *field = csum_finish(csum_continue(partial, l4, dp_packet_l4_size(p)));
    if (!tcp && !*field) {
        *field = htons(0xffff);
    }
    *dp_packet_ol_flags_ptr(p) &= ~RTE_MBUF_F_TX_L4_MASK;
}

/* Prepares 'p', which asks for checksum or segmentation offload, for the
 * guest: sets the header lengths and segment size that librte_vhost puts
 * in the virtio-net header, or completes the checksum here for a guest
 * that does not take partial ones.  Returns false if 'p' cannot be sent
 * (no L4 header where its flags say there is one). */
static bool
vhost_tx_prep_offload(const struct netdev_vhost *dev, struct dp_packet *p)
{
    struct rte_mbuf *m = &p->mbuf;
    const char *l3 = dp_packet_l3(p);
    const char *l4 = dp_packet_l4(p);

    if (OVS_UNLIKELY(!l3 || !l4)) {
        return false;
    }
    if (dev->tx_sw_csum) {
        /* The datapath sends no segments to such a guest. */
        vhost_csum_complete(p);
        return true;
    }
    m->l2_len = l3 - (const char *) dp_packet_eth(p);
    m->l3_len = l4 - l3;
    if (m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) {
        const struct tcp_header *th = dp_packet_l4(p);
        int mtu = dev->max_frame_len - VHOST_FRAME_OVERHEAD;

        m->l4_len = TCP_OFFSET(th->tcp_ctl) * 4;
        m->tso_segsz = mtu - m->l3_len - m->l4_len;
        m->ol_flags |= RTE_MBUF_F_TX_TCP_CKSUM;
        if (m->ol_flags & RTE_MBUF_F_TX_IPV4) {
            /* The virtio-net header has no IP checksum request: the
             * segment's IP header goes to the guest whole. */
            struct ip_header *ip = dp_packet_l3(p);

            ip->ip_csum = 0;
            ip->ip_csum = csum(ip, m->l3_len);
            m->ol_flags &= ~RTE_MBUF_F_TX_IP_CKSUM;
        }
    }
    return true;
}

/* Copies 'pkt', which is not an mbuf, into mbufs from 'mp', chained if it
 * does not fit in one (TCP segments of up to 64 kB), with its offload
 * requests. */
static struct rte_mbuf *
vhost_copy_to_mbuf(struct rte_mempool *mp, struct rte_mempool *big_mp,
                   const struct dp_packet *pkt)
{
    const char *data = dp_packet_data(pkt);
    uint32_t len = dp_packet_size(pkt);
    struct rte_mbuf *head = NULL, *tail = NULL;
    uint32_t done = 0;

    if (big_mp && len > (rte_pktmbuf_data_room_size(mp)
                         - RTE_PKTMBUF_HEADROOM)
        && len <= (rte_pktmbuf_data_room_size(big_mp)
                   - RTE_PKTMBUF_HEADROOM)) {
        /* One mbuf, for our datapath, which takes no chains. */
        mp = big_mp;
    }
    do {
        struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
        uint32_t chunk;

        if (OVS_UNLIKELY(!m)) {
            rte_pktmbuf_free(head);
            return NULL;
        }
        chunk = MIN(len - done, rte_pktmbuf_tailroom(m));
        memcpy(rte_pktmbuf_mtod(m, void *), data + done, chunk);
        m->data_len = chunk;
        done += chunk;
        if (!head) {
            head = m;
        } else {
            tail->next = m;
            head->nb_segs++;
        }
        tail = m;
    } while (done < len);

    head->pkt_len = len;
    head->ol_flags = pkt->mbuf.ol_flags & VHOST_TX_OFFLOAD_MASK;
    if (head->ol_flags) {
        head->ol_flags |= pkt->mbuf.ol_flags & (RTE_MBUF_F_TX_IPV4
                                                | RTE_MBUF_F_TX_IPV6
                                                | RTE_MBUF_F_TX_IP_CKSUM);
        head->tx_offload = pkt->mbuf.tx_offload;
    }
    return head;
}

/* Sends a burst to the guest.  The guest's rx ring takes copies, so every
 * mbuf is freed here, sent or not. */
int
netdev_vhost_send(struct netdev *netdev, int qid,
                  struct dp_packet_batch *batch, bool concurrent_txq)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);
    int vid = ovsrcu_index_get(&dev->vid);
    struct rte_mbuf *pkts[NETDEV_MAX_BURST];
    struct vhost_txq_state *txq;
    struct dp_packet *packet;
    struct vhost_vring *vr;
    struct vhost_conn *c;
    struct vhost_qos *qos;
    int n_pkts = 0, sent = 0, retries = 0, max_retries;
    uint32_t max_len = dev->max_frame_len;
    uint64_t bytes = 0, mtu_drops = 0, fail_drops = 0, qos_drops = 0;
    struct vhost_send_drops drops = { 0, 0, 0, 0 };
    int vring;
    bool up;

    txq = &dev->txqs[qid % netdev->n_txq];
    atomic_read_relaxed(&txq->vring_qp, &vring);
    atomic_read_relaxed(&dev->admin_up, &up);
    if (OVS_UNLIKELY(vid < 0 || vring < 0 || !up)) {
        int n = dp_packet_batch_size(batch);

        dp_packet_delete_batch(batch, true);
        if (concurrent_txq) {
            rte_spinlock_lock(&txq->lock);
        }
        txq->stats.dropped += n;
        txq->stats.tx_disconnected_drops += n;
        if (concurrent_txq) {
            rte_spinlock_unlock(&txq->lock);
        }
        return 0;
    }

    if (OVS_UNLIKELY(concurrent_txq)) {
        if (!rte_spinlock_trylock(&txq->lock)) {
            COVERAGE_INC(vhost_client_tx_contention);
            rte_spinlock_lock(&txq->lock);
        }
    }

    DP_PACKET_BATCH_FOR_EACH (i, packet, batch) {
        struct rte_mbuf *m;

        if (OVS_UNLIKELY(*dp_packet_ol_flags_ptr(packet)
                         & VHOST_TX_OFFLOAD_MASK)
            && !vhost_tx_prep_offload(dev, packet)) {
            COVERAGE_INC(vhost_client_tx_bad_offload);
            dp_packet_delete(packet);
            fail_drops++;
            continue;
        }
        if (OVS_LIKELY(packet->source == DPBUF_DPDK)) {
            m = &packet->mbuf;
        } else {
            COVERAGE_INC(vhost_client_tx_copy);
            m = vhost_copy_to_mbuf(dev->mp, dev->big_mp, packet);
            if (m) {
                /* Keep the queue that egress QoS looks at. */
                CONTAINER_OF(m, struct dp_packet, mbuf)->md.skb_priority
                    = packet->md.skb_priority;
            }
            dp_packet_delete(packet);
            if (OVS_UNLIKELY(!m)) {
                fail_drops++;
                continue;
            }
        }
        if (OVS_UNLIKELY(m->pkt_len > max_len)
            && !(m->ol_flags & RTE_MBUF_F_TX_TCP_SEG)) {
            mtu_drops++;
            rte_pktmbuf_free(m);
            continue;
        }
        bytes += m->pkt_len;
        pkts[n_pkts++] = m;
    }

    qos = ovsrcu_get(struct vhost_qos *, &dev->qos);
    if (OVS_UNLIKELY(qos)) {
        int kept = vhost_qos_run(qos, pkts, n_pkts, &bytes);

        qos_drops = n_pkts - kept;
        n_pkts = kept;
    }

    atomic_read_relaxed(&dev->tx_retries_max, &max_retries);
    c = dev->conn;
    vr = vhost_conn_vring(c, VHOST_GUEST_RX_VRING(vring));
    if (OVS_LIKELY(vr) && n_pkts) {
        rte_spinlock_lock(&vr->lock);
        if (OVS_UNLIKELY(vhost_conn_paused(c))) {
            /* A vhost-user message is being handled. */
        } else if (OVS_LIKELY(c->fast)) {
            while (OVS_LIKELY(vr->ready) && vhost_vring_synced(c, vr)
                   && !vhost_conn_paused(c)) {
                uint16_t n = vhost_send_fast(c, vr, &pkts[sent],
                                              n_pkts - sent, &drops);

                sent += n;
                if (!n || sent == n_pkts || retries >= max_retries) {
                    break;
                }
                retries++;
            }
        } else if (OVS_LIKELY(!vhost_vring_bad(vr))) {
            sent = vhost_send_slow(c, vr, vid, vring, pkts, n_pkts,
                                   max_retries, &retries);
        }
        rte_spinlock_unlock(&vr->lock);
    }

    if (OVS_UNLIKELY(sent < n_pkts)) {
        for (int i = sent; i < n_pkts; i++) {
            bytes -= pkts[i]->pkt_len;
        }
    }
    rte_pktmbuf_free_bulk(pkts, n_pkts);
    /* Packets that the guest's buffers could never take. */
    sent -= drops.packets;
    bytes -= drops.bytes;
    fail_drops += drops.packets;
    txq->stats.tx_bad_desc_drops += drops.bad_desc;
    txq->stats.tx_budget_drops += drops.over_budget;

    txq->stats.packets += sent;
    txq->stats.bytes += bytes;
    if (OVS_UNLIKELY(sent < n_pkts || mtu_drops || fail_drops || retries
                     || qos_drops)) {
        int unsent = n_pkts - drops.packets - sent;

        txq->stats.dropped += unsent + mtu_drops + fail_drops + qos_drops;
        txq->stats.tx_failure_drops += unsent + fail_drops;
        txq->stats.tx_mtu_exceeded_drops += mtu_drops;
        txq->stats.tx_qos_drops += qos_drops;
        txq->stats.tx_retries += retries;
        if (mtu_drops) {
            VLOG_WARN_RL(&rl, "%s: dropped %"PRIu64" packets longer than "
                         "%"PRIu32" bytes", netdev_get_name(netdev),
                         mtu_drops, max_len);
        }
    }

    if (OVS_UNLIKELY(concurrent_txq)) {
        rte_spinlock_unlock(&txq->lock);
    }
    return 0;
}
