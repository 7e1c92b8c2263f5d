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


/* Shared mempools: the mbufs that a port's guest sends into, shared by the
 * ports on one NUMA node with one MTU, created on a port's first guest,
 * grown by retiring a pool that runs short, and freed once their mbufs are
 * back.
 *
 * Entered with 'vhost_mutex' held: by the main thread (reconfigure, run,
 * wait) and by librte_vhost's thread (new_device(), a port's first
 * pool).  PMD threads use a pool only through a port's 'mp'. */

#include <config.h>

#include <errno.h>

#include <rte_errno.h>
#include <rte_mempool.h>

#include "coverage.h"
#include "dp-packet.h"
#include "netdev-dpdk-vhost-private.h"
#include "openvswitch/list.h"
#include "openvswitch/poll-loop.h"
#include "openvswitch/vlog.h"
#include "timeval.h"
#include "userspace-tso.h"

COVERAGE_DEFINE(vhost_client_mempool_create);
COVERAGE_DEFINE(vhost_client_mempool_retire);

/* Mempools, shared by the ports on one NUMA node with one MTU.
 *
 * A pool is sized for a number of rx queues, its slots: BASE mbufs for
 * the threads' caches and for what other ports hold on to (their tx
 * rings), plus SLOT mbufs for each rx queue of the ports that use it.  An
 * rx queue has at most a burst in flight at a time (what we send to a
 * guest is copied and freed at once), and twice that leaves room for
 * output batching.  The first pool for a NUMA node and MTU has MIN mbufs
 * (15 single-queue ports); when a port needs more slots than any of them
 * has left, it gets a new pool twice as large as the largest one, with at
 * most MAX mbufs (256 single-queue ports share 30716 mbufs in 4 pools,
 * about 75 MB).  A port takes one slot per rx queue, at most PORT_SLOTS:
 * one PMD thread polls many queues of a guest in turn.  A port keeps its
 * pool across reconnects and gives its slots back when it is destroyed
 * or its NUMA node or MTU changes; a pool is freed once no port uses it
 * and every mbuf is back.  Creating a pool touches all of its memory:
 * without hugepages, that is the main cost of a guest's first
 * connection. */
/* Other ports may hold on to many more of our mbufs than BASE: a NIC's
 * tx rings hold what was sent through them until the NIC is done, and
 * more when the link is slow or down.  Every CHECK_MS, a pool with more
 * than 3/4 of its mbufs in use is retired: its ports move to a new one,
 * twice as large (at most MAX), and it is freed once its mbufs are back.
 * The datapath never waits for it. */
#define VHOST_MP_CHECK_MS 100
#define VHOST_MP_MIN_MBUFS 2047
#define VHOST_MP_MAX_MBUFS 65535
#define VHOST_MP_BASE_MBUFS 1024
#define VHOST_MP_SLOT_MBUFS (2 * NETDEV_MAX_BURST)
#define VHOST_MP_PORT_SLOTS 64
#define VHOST_MP_CACHE 256
#define VHOST_BUF_ALIGN 1024

/* A shared mempool (see VHOST_MP_MIN_MBUFS). */
struct vhost_mp {
    struct ovs_list node;       /* In 'vhost_mps'. */
    struct rte_mempool *mp;
    int numa;
    int mtu;
    int slots;                  /* Rx queues it is sized for. */
    int used;                   /* Slots that ports hold. */
    int n_ports;                /* Ports that use it. */
    bool retired;               /* Too small: its ports move away. */
};
static struct ovs_list vhost_mps OVS_GUARDED_BY(vhost_mutex)
    = OVS_LIST_INITIALIZER(&vhost_mps);
static long long int vhost_mp_next_check OVS_GUARDED_BY(vhost_mutex);

/* Mempools that mbufs still in flight elsewhere keep alive. */
struct vhost_mp_garbage {
    struct ovs_list node;
    struct rte_mempool *mp;
};
static struct ovs_list mp_garbage OVS_GUARDED_BY(vhost_mutex)
    = OVS_LIST_INITIALIZER(&mp_garbage);

static void
vhost_mbuf_init(struct rte_mempool *mp OVS_UNUSED, void *opaque OVS_UNUSED,
                void *obj, unsigned int idx OVS_UNUSED)
{
    dp_packet_init_dpdk(obj);
}

/* Creates a mempool of 'n_mbufs' mbufs that are dp_packets with
 * 'data_room' bytes each (headroom included), on NUMA node 'numa', named
 * after 'mtu' (or "big" if it is 0). */
static struct rte_mempool *
vhost_mp_create__(int numa, int mtu, uint32_t n_mbufs, uint32_t data_room,
                  uint32_t cache)
{
    static atomic_count mp_serial = ATOMIC_COUNT_INIT(0);
    char name[RTE_MEMPOOL_NAMESIZE];
    uint32_t priv, elt;
    struct rte_mempool *mp;

    /* The private area holds the rest of struct dp_packet; pad it so that
     * every element stays cache-line aligned. */
    priv = sizeof(struct dp_packet) - sizeof(struct rte_mbuf);
    elt = sizeof(struct dp_packet) + data_room;
    priv += ROUND_UP(elt, RTE_CACHE_LINE_SIZE) - elt;

    if (mtu) {
        snprintf(name, sizeof name, "vhc%u_n%d_m%d",
                 atomic_count_inc(&mp_serial), numa, mtu);
    } else {
        snprintf(name, sizeof name, "vhc%u_n%d_big",
                 atomic_count_inc(&mp_serial), numa);
    }
    mp = rte_pktmbuf_pool_create(name, n_mbufs, cache, priv, data_room,
                                 numa);
    if (!mp) {
        VLOG_ERR("could not create a mempool of %"PRIu32" mbufs of "
                 "%"PRIu32" bytes on NUMA node %d: %s", n_mbufs, data_room,
                 numa, rte_strerror(rte_errno));
        return NULL;
    }
    rte_mempool_obj_iter(mp, vhost_mbuf_init, NULL);
    COVERAGE_INC(vhost_client_mempool_create);
    VLOG_INFO("mempool %s: %"PRIu32" mbufs of %"PRIu32" bytes on NUMA "
              "node %d", name, n_mbufs, data_room, numa);
    return mp;
}

/* Creates a mempool of 'n_mbufs' mbufs that are dp_packets able to hold
 * a frame of 'mtu' bytes of payload, on NUMA node 'numa'. */
static struct rte_mempool *
vhost_mp_create(int numa, int mtu, uint32_t n_mbufs)
{
    uint32_t data_room = (ROUND_UP(vhost_frame_len(mtu)
                                   + 2 * VLAN_HEADER_LEN, VHOST_BUF_ALIGN)
                          + RTE_PKTMBUF_HEADROOM);

    return vhost_mp_create__(numa, mtu, n_mbufs, data_room, VHOST_MP_CACHE);
}

/* Mbufs for TCP segments of up to 64 kB (an mbuf's largest), one pool per
 * NUMA node for every port, created on first use and kept: each rx queue
 * of a guest that leaves segmentation to us holds VHOST_VIRTQ_N_BIG spares
 * (see struct vhost_virtq_big), and sends of such segments that are not
 * mbufs take one (vhost_copy_to_mbuf()).  1023 of them are 64 MB. */
#define VHOST_BIG_MBUFS 1023
#define VHOST_BIG_CACHE 32
static struct rte_mempool *vhost_big_mps[RTE_MAX_NUMA_NODES]
    OVS_GUARDED_BY(vhost_mutex);

struct rte_mempool *
vhost_big_mp_get(int numa)
    OVS_REQUIRES(vhost_mutex)
{
    int i = numa >= 0 && numa < RTE_MAX_NUMA_NODES ? numa : 0;

    if (!vhost_big_mps[i]) {
        /* An mbuf's largest, kept a multiple of a cache line. */
        vhost_big_mps[i] = vhost_mp_create__(numa, 0, VHOST_BIG_MBUFS,
                                             UINT16_MAX & ~63,
                                             VHOST_BIG_CACHE);
    }
    return vhost_big_mps[i];
}

static int
vhost_mp_port_slots(int n_rxq)
{
    return MIN(MAX(n_rxq, 1), VHOST_MP_PORT_SLOTS);
}

/* Returns a shared mempool for NUMA node 'numa' and 'mtu' with 'slots'
 * slots taken for the caller, or NULL. */
static struct vhost_mp *
vhost_mp_get(int numa, int mtu, int slots)
    OVS_REQUIRES(vhost_mutex)
{
    uint32_t n_mbufs = VHOST_MP_MIN_MBUFS;
    struct vhost_mp *vmp;
    struct rte_mempool *mp;

    LIST_FOR_EACH (vmp, node, &vhost_mps) {
        if (vmp->numa == numa && vmp->mtu == mtu) {
            if (!vmp->retired && vmp->used + slots <= vmp->slots) {
                goto out;
            }
            n_mbufs = MAX(n_mbufs, vmp->mp->size * 2 + 1);
        }
    }
    n_mbufs = MAX(n_mbufs, (VHOST_MP_BASE_MBUFS
                            + slots * VHOST_MP_SLOT_MBUFS));
    n_mbufs = MIN(ROUND_UP_POW2(n_mbufs + 1) - 1, VHOST_MP_MAX_MBUFS);

    mp = vhost_mp_create(numa, mtu, n_mbufs);
    if (!mp) {
        return NULL;
    }
    vmp = xzalloc(sizeof *vmp);
    vmp->mp = mp;
    vmp->numa = numa;
    vmp->mtu = mtu;
    vmp->slots = MAX((int) (n_mbufs - VHOST_MP_BASE_MBUFS)
                     / VHOST_MP_SLOT_MBUFS, slots);
    ovs_list_push_back(&vhost_mps, &vmp->node);
out:
    vmp->used += slots;
    vmp->n_ports++;
    return vmp;
}

static void vhost_mp_release(struct rte_mempool *)
    OVS_REQUIRES(vhost_mutex);

/* Gives back 'slots' slots of 'vmp', which one port used. */
void
vhost_mp_put(struct vhost_mp *vmp, int slots)
    OVS_REQUIRES(vhost_mutex)
{
    if (!vmp) {
        return;
    }
    vmp->used -= slots;
    if (!--vmp->n_ports) {
        ovs_list_remove(&vmp->node);
        vhost_mp_release(vmp->mp);
        free(vmp);
    }
}

/* Retires the pools that are short of mbufs (see VHOST_MP_CHECK_MS). */
static void
vhost_mp_check(void)
    OVS_REQUIRES(vhost_mutex)
{
    long long int now = time_msec();
    struct netdev_vhost *dev;
    struct vhost_mp *vmp;
    bool retired = false;

    if (now < vhost_mp_next_check) {
        return;
    }
    vhost_mp_next_check = now + VHOST_MP_CHECK_MS;
    LIST_FOR_EACH (vmp, node, &vhost_mps) {
        unsigned int in_use = rte_mempool_in_use_count(vmp->mp);

        if (!vmp->retired && vmp->mp->size < VHOST_MP_MAX_MBUFS
            && in_use > vmp->mp->size / 4 * 3) {
            COVERAGE_INC(vhost_client_mempool_retire);
            VLOG_INFO("mempool %s: %u of %u mbufs in use: moving its %d "
                      "ports to a larger one", vmp->mp->name, in_use,
                      vmp->mp->size, vmp->n_ports);
            vmp->retired = retired = true;
        }
    }
    if (retired) {
        LIST_FOR_EACH (dev, list_node, &vhost_devs) {
            if (dev->vmp && dev->vmp->retired) {
                netdev_request_reconfigure(&dev->up);
            }
        }
    }
}

/* Makes 'dev' use a mempool for its NUMA node and MTU with a slot for each
 * of its rx queues: the one it has, or another one.  The datapath does not
 * use 'dev''s mempool meanwhile: a reconfiguration, or 'vid' not published
 * yet. */
void
vhost_mp_update(struct netdev_vhost *dev)
    OVS_REQUIRES(vhost_mutex)
{
    int slots = vhost_mp_port_slots(dev->up.n_rxq);
    struct vhost_mp *old = dev->vmp;

    if (userspace_tso_enabled() && (old || dev->req_vid >= 0)) {
        dev->big_mp = vhost_big_mp_get(dev->numa);
    }
    if (old && old->numa == dev->numa && old->mtu == dev->mtu
        && !old->retired && old->used - dev->mp_slots + slots <= old->slots) {
        old->used += slots - dev->mp_slots;
        dev->mp_slots = slots;
        return;
    }
    if (old || dev->req_vid >= 0) {
        /* A new pool (the first guest brings the port its first one), got
         * before the old one goes, so that it knows how large that was. */
        dev->vmp = vhost_mp_get(dev->numa, dev->mtu, slots);
        dev->mp = dev->vmp ? dev->vmp->mp : NULL;
        vhost_mp_put(old, dev->mp_slots);
        dev->mp_slots = dev->vmp ? slots : 0;
    }
}

/* Frees 'mp' once every mbuf is back, now or on a later sweep. */
static void
vhost_mp_release(struct rte_mempool *mp)
    OVS_REQUIRES(vhost_mutex)
{
    if (!mp) {
        return;
    }
    if (rte_mempool_full(mp)) {
        rte_mempool_free(mp);
    } else {
        struct vhost_mp_garbage *g = xmalloc(sizeof *g);

        g->mp = mp;
        ovs_list_push_back(&mp_garbage, &g->node);
    }
}

static void
vhost_mp_sweep(void)
    OVS_REQUIRES(vhost_mutex)
{
    struct vhost_mp_garbage *g;

    LIST_FOR_EACH_SAFE (g, node, &mp_garbage) {
        if (rte_mempool_full(g->mp)) {
            ovs_list_remove(&g->node);
            rte_mempool_free(g->mp);
            free(g);
        }
    }
}

/* Frees the retired pools whose mbufs are back and retires those that run
 * short.  Main thread. */
void
vhost_mp_run(void)
    OVS_REQUIRES(vhost_mutex)
{
    vhost_mp_sweep();
    vhost_mp_check();
}

/* Makes the main thread wake up for vhost_mp_run() while it has something
 * to do: a port with a guest ('receiving') takes mbufs from a pool, and a
 * retired pool waits for its mbufs to come back.  Without either, the
 * main thread need not wake up to look at the pools. */
void
vhost_mp_wait(bool receiving)
    OVS_REQUIRES(vhost_mutex)
{
    if (receiving || !ovs_list_is_empty(&mp_garbage)) {
        poll_timer_wait_until(vhost_mp_next_check);
    }
}
