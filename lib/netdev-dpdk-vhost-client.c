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

#include <config.h>
#include "netdev-dpdk-vhost-client.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/virtio_net.h>

#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_spinlock.h>
#include <rte_vhost.h>

#include "coverage.h"
#include "dirs.h"
#include "dp-packet.h"
#include "fatal-signal.h"
#include "hash.h"
#include "netdev-provider.h"
#include "openvswitch/dynamic-string.h"
#include "openvswitch/list.h"
#include "openvswitch/vlog.h"
#include "ovs-atomic.h"
#include "ovs-rcu.h"
#include "ovs-thread.h"
#include "packets.h"
#include "openvswitch/poll-loop.h"
#include "smap.h"
#include "timeval.h"
#include "unixctl.h"
#include "util.h"

VLOG_DEFINE_THIS_MODULE(netdev_dpdk_vhost_client);
static struct vlog_rate_limit rl = VLOG_RATE_LIMIT_INIT(5, 20);

COVERAGE_DEFINE(vhost_client_new_device);
COVERAGE_DEFINE(vhost_client_destroy_device);
COVERAGE_DEFINE(vhost_client_vring_state);
COVERAGE_DEFINE(vhost_client_mempool_create);
COVERAGE_DEFINE(vhost_client_tx_copy);
COVERAGE_DEFINE(vhost_client_tx_contention);

/* Port types:
 *
 *   dpdkvhostuserclient  We connect to the socket that the guest's
 *                        hypervisor listens on, and reconnect.
 *   dpdkvhostuser        We listen on <vhost-sock-dir>/<port name> and the
 *                        hypervisor connects.
 *
 * Accepted options (Interface options column):
 *
 *   vhost-server-path   (client) Absolute path of the unix socket that the
 *                       guest's hypervisor listens on.  Without it the port
 *                       exists but stays down.
 *   tx-retries-max      Enqueue retries when the guest's rx ring is full,
 *                       0 to 32 (default 8).
 *
 * Global knobs (Open_vSwitch other_config), read when DPDK initialises:
 * vhost-sock-dir (server sockets' directory, relative to the run
 * directory), vhost-iommu-support, vhost-postcopy-support.
 */
#define VHOST_TX_RETRIES_DEFAULT 8
#define VHOST_TX_RETRIES_MAX 32

/* Queue pairs a guest can bring (DPDK's VHOST_MAX_QUEUE_PAIRS). */
#define VHOST_MAX_QUEUE_PAIRS 128
#define VHOST_QP_WORDS DIV_ROUND_UP(VHOST_MAX_QUEUE_PAIRS, 64)

/* Device ids librte_vhost hands out (its MAX_VHOST_DEVICE). */
#define VHOST_MAX_VID 1024

/* Virtqueue numbering: for queue pair 'q', the guest receives on vring
 * 2q (our tx) and transmits on vring 2q + 1 (our rx). */
#define VHOST_GUEST_RX_VRING(Q) ((Q) * 2)
#define VHOST_GUEST_TX_VRING(Q) ((Q) * 2 + 1)

#define VHOST_MTU_MIN 68
#define VHOST_MTU_MAX 9702
#define VHOST_MTU_DEFAULT ETH_PAYLOAD_MAX
#define VHOST_FRAME_OVERHEAD (ETH_HEADER_LEN + 4)  /* Header and CRC. */
#define VHOST_BUF_ALIGN 1024

/* Mempool: enough mbufs for every rx queue's bursts in flight plus what
 * other ports may hold on to; at least this many. */
#define VHOST_MP_MIN_MBUFS 4096
#define VHOST_MP_MBUFS_PER_RXQ 2048
#define VHOST_MP_CACHE 256

/* Our own counters, beyond struct netdev_stats, as custom statistics. */
#define VHOST_CUSTOM_STATS                      \
    VHOST_CUSTOM_STAT(tx_retries)               \
    VHOST_CUSTOM_STAT(tx_failure_drops)         \
    VHOST_CUSTOM_STAT(tx_mtu_exceeded_drops)    \
    VHOST_CUSTOM_STAT(tx_disconnected_drops)

/* Counters of one queue.  Each is written by the one thread that polls
 * (rx) or sends on (tx) the queue; other threads only read them. */
struct vhost_queue_stats {
    uint64_t packets;
    uint64_t bytes;
    uint64_t dropped;
#define VHOST_CUSTOM_STAT(NAME) uint64_t NAME;
    VHOST_CUSTOM_STATS
#undef VHOST_CUSTOM_STAT
};

struct vhost_rxq_state {
    PADDED_MEMBERS(CACHE_LINE_SIZE,
        struct vhost_queue_stats stats;
    );
};

struct vhost_txq_state {
    PADDED_MEMBERS(CACHE_LINE_SIZE,
        rte_spinlock_t lock;    /* Taken only for concurrent senders. */
        int vring_qp;           /* Guest queue pair to enqueue to, or -1. */
        struct vhost_queue_stats stats;
    );
};

/* Guards every port's control state and 'vhost_devs'.  Never held across
 * rte_vhost_driver_*() calls: DPDK calls back into us from them, and its
 * reconnect thread calls new_connection() with its own lock held. */
static struct ovs_mutex vhost_mutex = OVS_MUTEX_INITIALIZER;

/* One port.
 *
 * Three kinds of state:
 *
 *   - Control state, guarded by 'vhost_mutex': configuration, what the
 *     vhost callbacks requested, what was applied.
 *
 *   - Datapath state read by PMD threads without locks: 'vid' (published
 *     with RCU), 'mp', 'rxqs', 'txqs', 'max_frame_len'.  Apart from 'vid'
 *     these change only in netdev_vhost_reconfigure(), when no PMD thread
 *     polls or sends on the port, or before 'vid' is published.
 *
 *   - Vring enable bits, written by the vring_state_changed callback with
 *     atomics because DPDK calls it with the device's virtqueue locks
 *     held, where taking any lock of ours could deadlock with a PMD.
 */
struct netdev_vhost {
    struct netdev up;
    bool server;                        /* dpdkvhostuser?  Immutable. */

    /* Datapath. */
    ovsrcu_index vid;                   /* Ready device, or -1. */
    struct rte_mempool *mp;
    struct vhost_rxq_state *rxqs;       /* up.n_rxq entries. */
    struct vhost_txq_state *txqs;       /* up.n_txq entries. */
    uint32_t max_frame_len;
    atomic_bool admin_up;
    atomic_int tx_retries_max;

    /* Vring enable state of the current connection. */
    atomic_uint64_t rx_enabled[VHOST_QP_WORDS];
    atomic_uint64_t tx_enabled[VHOST_QP_WORDS];
    atomic_uint64_t tx_seen[VHOST_QP_WORDS];

    /* Control. */
    struct ovs_list list_node OVS_GUARDED_BY(vhost_mutex);
    char *path OVS_GUARDED_BY(vhost_mutex);      /* Configured. */
    char *reg_path OVS_GUARDED_BY(vhost_mutex);  /* Registered. */
    int conn_vid OVS_GUARDED_BY(vhost_mutex);    /* Connection, or -1. */
    int req_vid OVS_GUARDED_BY(vhost_mutex);     /* Ready device, or -1. */
    int req_n_rxq OVS_GUARDED_BY(vhost_mutex);
    int req_n_txq OVS_GUARDED_BY(vhost_mutex);
    int req_numa OVS_GUARDED_BY(vhost_mutex);
    int req_mtu OVS_GUARDED_BY(vhost_mutex);
    int numa OVS_GUARDED_BY(vhost_mutex);        /* Of 'mp'. */
    int mtu OVS_GUARDED_BY(vhost_mutex);
    uint64_t features OVS_GUARDED_BY(vhost_mutex);
    struct eth_addr hwaddr OVS_GUARDED_BY(vhost_mutex);
    enum netdev_flags flags OVS_GUARDED_BY(vhost_mutex);
    struct vhost_queue_stats base_rx OVS_GUARDED_BY(vhost_mutex);
    struct vhost_queue_stats base_tx OVS_GUARDED_BY(vhost_mutex);
    uint64_t connects OVS_GUARDED_BY(vhost_mutex);
    long long int reannounce_at OVS_GUARDED_BY(vhost_mutex);
};

struct netdev_rxq_vhost {
    struct netdev_rxq up;
};

static struct ovs_list vhost_devs OVS_GUARDED_BY(vhost_mutex)
    = OVS_LIST_INITIALIZER(&vhost_devs);

/* Port of each librte_vhost connection, for callbacks that must not lock. */
static ATOMIC(struct netdev_vhost *) vid_devs[VHOST_MAX_VID];

/* Mempools that mbufs still in flight elsewhere keep alive. */
struct vhost_mp_garbage {
    struct ovs_list node;
    struct rte_mempool *mp;
};
static struct ovs_list mp_garbage OVS_GUARDED_BY(vhost_mutex)
    = OVS_LIST_INITIALIZER(&mp_garbage);

/* Global knobs, from Open_vSwitch other_config at registration. */
static char *vhost_sock_dir;
static bool vhost_iommu_enabled;
static bool vhost_postcopy_enabled;

static struct netdev_vhost *
netdev_vhost_cast(const struct netdev *netdev)
{
    return CONTAINER_OF(netdev, struct netdev_vhost, up);
}

static const char *
vhost_name(const struct netdev_vhost *dev)
{
    return netdev_get_name(&dev->up);
}

static uint32_t
vhost_frame_len(int mtu)
{
    return mtu + VHOST_FRAME_OVERHEAD;
}

/* Bit helpers for the vring enable maps. */
static bool
qp_bit_get(atomic_uint64_t *map, int qp)
{
    uint64_t word;

    atomic_read_relaxed(&map[qp / 64], &word);
    return (word >> (qp % 64)) & 1;
}

static bool
qp_bit_set(atomic_uint64_t *map, int qp, bool value)
{
    uint64_t bit = UINT64_C(1) << (qp % 64);
    uint64_t old;

    if (value) {
        atomic_or(&map[qp / 64], bit, &old);
    } else {
        atomic_and(&map[qp / 64], ~bit, &old);
    }
    return ((old & bit) != 0) != value;
}

static void
qp_map_clear(atomic_uint64_t *map)
{
    for (int i = 0; i < VHOST_QP_WORDS; i++) {
        atomic_store_relaxed(&map[i], 0);
    }
}

static struct netdev_vhost *
vid_dev_get(int vid)
{
    struct netdev_vhost *dev = NULL;

    if (vid >= 0 && vid < VHOST_MAX_VID) {
        atomic_read_explicit(&vid_devs[vid], &dev, memory_order_acquire);
    }
    return dev;
}

static void
vid_dev_set(int vid, struct netdev_vhost *dev)
{
    if (vid >= 0 && vid < VHOST_MAX_VID) {
        atomic_store_explicit(&vid_devs[vid], dev, memory_order_release);
    }
}

static struct netdev_vhost *
vhost_find_by_reg_path(const char *path)
    OVS_REQUIRES(vhost_mutex)
{
    struct netdev_vhost *dev;

    LIST_FOR_EACH (dev, list_node, &vhost_devs) {
        if (dev->reg_path && !strcmp(dev->reg_path, path)) {
            return dev;
        }
    }
    return NULL;
}

/* Publishes 'vid' (or -1) to the PMD threads and tells the bridge that the
 * carrier may have changed.
 *
 * The bridge writes link_state from a status transaction, and its IDL drops
 * a write equal to the value it last read.  After a restart the database
 * still says "up" from the previous process while the initial configuration
 * transaction, still in flight, says "down": a device that becomes ready in
 * that window would stay "down" in the database.  So every change is
 * announced again a little later, when the bridge's view has settled. */
static void
vhost_publish(struct netdev_vhost *dev, int vid)
    OVS_REQUIRES(vhost_mutex)
{
    ovsrcu_index_set(&dev->vid, vid);
    netdev_change_seq_changed(&dev->up);
    dev->reannounce_at = time_msec() + 1000;
}

/* Mempools. */

static void
vhost_mbuf_init(struct rte_mempool *mp OVS_UNUSED, void *opaque OVS_UNUSED,
                void *obj, unsigned int idx OVS_UNUSED)
{
    dp_packet_init_dpdk(obj);
}

/* Creates a mempool for 'dev' whose mbufs are dp_packets able to hold a
 * frame of 'mtu' bytes of payload, on NUMA node 'numa'. */
static struct rte_mempool *
vhost_mp_create(const struct netdev_vhost *dev, int numa, int mtu,
                int n_rxq)
{
    static atomic_count mp_serial = ATOMIC_COUNT_INIT(0);
    char name[RTE_MEMPOOL_NAMESIZE];
    uint32_t data_room, priv, elt, n_mbufs;
    struct rte_mempool *mp;

    data_room = ROUND_UP(vhost_frame_len(mtu) + 2 * VLAN_HEADER_LEN,
                         VHOST_BUF_ALIGN) + RTE_PKTMBUF_HEADROOM;
    /* The private area holds the rest of struct dp_packet; pad it so that
     * every element stays cache-line aligned. */
    priv = sizeof(struct dp_packet) - sizeof(struct rte_mbuf);
    elt = sizeof(struct dp_packet) + data_room;
    priv += ROUND_UP(elt, RTE_CACHE_LINE_SIZE) - elt;
    n_mbufs = MAX(VHOST_MP_MIN_MBUFS, n_rxq * VHOST_MP_MBUFS_PER_RXQ);
    /* Mempools are most efficient at a power of two minus one. */
    n_mbufs = ROUND_UP_POW2(n_mbufs) - 1;

    snprintf(name, sizeof name, "vhc%u_%08x",
             atomic_count_inc(&mp_serial),
             hash_string(vhost_name(dev), 0));
    mp = rte_pktmbuf_pool_create(name, n_mbufs, VHOST_MP_CACHE, priv,
                                 data_room, numa);
    if (!mp) {
        VLOG_ERR("%s: could not create a mempool of %"PRIu32" mbufs of "
                 "%"PRIu32" bytes on NUMA node %d: %s",
                 vhost_name(dev), n_mbufs, data_room, numa,
                 rte_strerror(rte_errno));
        return NULL;
    }
    rte_mempool_obj_iter(mp, vhost_mbuf_init, NULL);
    COVERAGE_INC(vhost_client_mempool_create);
    VLOG_INFO("%s: mempool %s: %"PRIu32" mbufs of %"PRIu32" bytes on NUMA "
              "node %d", vhost_name(dev), name, n_mbufs, data_room, numa);
    return mp;
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

/* vhost callbacks.  They record what changed and, where the datapath must
 * follow, request a reconfiguration. */

static int
new_connection(int vid)
    OVS_EXCLUDED(vhost_mutex)
{
    char path[PATH_MAX];
    struct netdev_vhost *dev;

    if (rte_vhost_get_ifname(vid, path, sizeof path)) {
        return -1;
    }
    if (vid < 0 || vid >= VHOST_MAX_VID) {
        VLOG_ERR("%s: vhost device id %d out of range", path, vid);
        return -1;
    }

    ovs_mutex_lock(&vhost_mutex);
    dev = vhost_find_by_reg_path(path);
    if (dev) {
        dev->conn_vid = vid;
        qp_map_clear(dev->rx_enabled);
        qp_map_clear(dev->tx_enabled);
        qp_map_clear(dev->tx_seen);
        vid_dev_set(vid, dev);
        VLOG_INFO("%s: connected to vhost-user socket %s",
                  vhost_name(dev), path);
    }
    ovs_mutex_unlock(&vhost_mutex);

    return dev ? 0 : -1;
}

/* Publishes the ready device to the PMD threads if nothing else must
 * change first; otherwise leaves that to a reconfiguration. */
static bool vhost_try_publish(struct netdev_vhost *dev)
    OVS_REQUIRES(vhost_mutex);

static int
new_device(int vid)
    OVS_EXCLUDED(vhost_mutex)
{
    struct netdev_vhost *dev;
    uint64_t features = 0;
    int n_qp, numa;

    COVERAGE_INC(vhost_client_new_device);

    n_qp = rte_vhost_get_vring_num(vid) / 2;
    n_qp = MIN(MAX(n_qp, 1), VHOST_MAX_QUEUE_PAIRS);
    numa = rte_vhost_get_numa_node(vid);
    if (numa < 0) {
        numa = rte_lcore_to_socket_id(rte_get_main_lcore());
    }
    rte_vhost_get_negotiated_features(vid, &features);

    /* The PMD threads poll; the guest need not kick us. */
    for (int i = 0; i < n_qp * 2; i++) {
        rte_vhost_enable_guest_notification(vid, i, 0);
    }

    ovs_mutex_lock(&vhost_mutex);
    dev = vid_dev_get(vid);
    if (!dev) {
        ovs_mutex_unlock(&vhost_mutex);
        VLOG_WARN_RL(&rl, "vhost device %d: no port for it", vid);
        return -1;
    }
    dev->req_vid = vid;
    dev->req_n_rxq = n_qp;
    dev->req_numa = numa;
    dev->features = features;
    dev->connects++;
    if (!vhost_try_publish(dev)) {
        netdev_request_reconfigure(&dev->up);
    }
    VLOG_INFO("%s: vhost-user device ready (vid %d, %d queue pairs, "
              "NUMA node %d)", vhost_name(dev), vid, n_qp, numa);
    ovs_mutex_unlock(&vhost_mutex);

    return 0;
}

static void
destroy_device(int vid)
    OVS_EXCLUDED(vhost_mutex)
{
    struct netdev_vhost *dev;
    bool was_published = false;

    COVERAGE_INC(vhost_client_destroy_device);

    ovs_mutex_lock(&vhost_mutex);
    dev = vid_dev_get(vid);
    if (dev) {
        was_published = ovsrcu_index_get(&dev->vid) >= 0;
        dev->req_vid = -1;
        vhost_publish(dev, -1);
        VLOG_INFO("%s: vhost-user device stopped (vid %d)",
                  vhost_name(dev), vid);
    }
    ovs_mutex_unlock(&vhost_mutex);

    if (was_published) {
        /* DPDK tears the device down when we return: wait until no PMD
         * thread can still be using 'vid'.  A thread that was quiescent
         * (DPDK's own, or ours inside rte_vhost_driver_unregister()) must
         * be left quiescent, or it would stall every later grace period. */
        bool was_quiescent = ovsrcu_is_quiescent();

        ovsrcu_synchronize();
        if (was_quiescent) {
            ovsrcu_quiesce_start();
        }
    }
}

static void
destroy_connection(int vid)
    OVS_EXCLUDED(vhost_mutex)
{
    struct netdev_vhost *dev;

    ovs_mutex_lock(&vhost_mutex);
    dev = vid_dev_get(vid);
    if (dev) {
        vid_dev_set(vid, NULL);
        dev->conn_vid = -1;
        dev->req_vid = -1;
        qp_map_clear(dev->rx_enabled);
        qp_map_clear(dev->tx_enabled);
        qp_map_clear(dev->tx_seen);
        /* Back to one queue until the next guest says otherwise. */
        if (dev->req_n_rxq != 1) {
            dev->req_n_rxq = 1;
            netdev_request_reconfigure(&dev->up);
        }
        VLOG_INFO("%s: vhost-user connection closed%s", vhost_name(dev),
                  !dev->reg_path ? ""
                  : dev->server ? "; waiting for a new one"
                  : "; reconnecting");
    }
    ovs_mutex_unlock(&vhost_mutex);
}

/* Called with the device's virtqueue locks held: atomics only. */
static int
vring_state_changed(int vid, uint16_t vring, int enable)
{
    struct netdev_vhost *dev = vid_dev_get(vid);
    int qp = vring / 2;

    COVERAGE_INC(vhost_client_vring_state);
    if (!dev || qp >= VHOST_MAX_QUEUE_PAIRS) {
        return 0;
    }

    if (vring % 2) {
        /* Guest tx vring: one of our rx queues. */
        if (qp_bit_set(dev->rx_enabled, qp, enable)) {
            netdev_change_seq_changed(&dev->up);
        }
    } else {
        qp_bit_set(dev->tx_seen, qp, true);
        if (qp_bit_set(dev->tx_enabled, qp, enable)) {
            netdev_request_reconfigure(&dev->up);
        }
    }
    VLOG_DBG("vhost device %d: vring %u %s", vid, vring,
             enable ? "enabled" : "disabled");
    return 0;
}

static const struct rte_vhost_device_ops vhost_ops = {
    .new_device = new_device,
    .destroy_device = destroy_device,
    .vring_state_changed = vring_state_changed,
    .new_connection = new_connection,
    .destroy_connection = destroy_connection,
};

/* Maps each of our tx queues onto a guest queue pair that the guest
 * enabled, so that a guest with fewer queues than we have senders still
 * receives everything. */
static void
vhost_remap_txqs(struct netdev_vhost *dev, int n_qp)
    OVS_REQUIRES(vhost_mutex)
{
    int enabled[VHOST_MAX_QUEUE_PAIRS];
    int n_enabled = 0;

    for (int qp = 0; qp < n_qp; qp++) {
        if (qp_bit_get(dev->tx_enabled, qp)) {
            enabled[n_enabled++] = qp;
        }
    }
    if (!n_enabled && !qp_bit_get(dev->tx_seen, 0)) {
        /* A guest that reports no vring states uses queue pair 0. */
        enabled[n_enabled++] = 0;
    }
    for (int i = 0; i < dev->up.n_txq; i++) {
        dev->txqs[i].vring_qp = n_enabled ? enabled[i % n_enabled] : -1;
    }
}

static bool
vhost_try_publish(struct netdev_vhost *dev)
    OVS_REQUIRES(vhost_mutex)
{
    if (dev->req_vid < 0
        || !dev->mp
        || dev->req_n_rxq != dev->up.n_rxq
        || dev->req_numa != dev->numa
        || dev->req_mtu != dev->mtu
        || netdev_is_reconf_required(&dev->up)) {
        return false;
    }
    vhost_remap_txqs(dev, dev->req_n_rxq);
    vhost_publish(dev, dev->req_vid);
    return true;
}

/* Socket registration.  Called without 'vhost_mutex': DPDK may call back
 * (new_connection() when the peer is already listening). */
static int
vhost_register(const char *path, bool server)
    OVS_EXCLUDED(vhost_mutex)
{
    uint64_t flags = RTE_VHOST_USER_LINEARBUF_SUPPORT;
    const char *step;
    int err;

    if (!server) {
        flags |= RTE_VHOST_USER_CLIENT;
    }
    if (vhost_iommu_enabled) {
        flags |= RTE_VHOST_USER_IOMMU_SUPPORT;
    }
    if (vhost_postcopy_enabled) {
        flags |= RTE_VHOST_USER_POSTCOPY_SUPPORT;
    }

    step = "register";
    err = rte_vhost_driver_register(path, flags);
    if (err) {
        goto out;
    }
    step = "set callbacks for";
    err = rte_vhost_driver_callback_register(path, &vhost_ops);
    if (err) {
        goto out_unregister;
    }
    /* No checksum offload (and so none of the offloads that need it):
     * the guest sends complete packets. */
    step = "set features of";
    err = rte_vhost_driver_disable_features(path,
                                            1ULL << VIRTIO_NET_F_CSUM);
    if (err) {
        goto out_unregister;
    }
    step = "start";
    err = rte_vhost_driver_start(path);
    if (err) {
        goto out_unregister;
    }
    if (server) {
        /* Ours from now on: remove it however we exit. */
        fatal_signal_add_file_to_unlink(path);
    }
    return 0;

out_unregister:
    rte_vhost_driver_unregister(path);
out:
    VLOG_ERR("could not %s vhost-user %s socket %s", step,
             server ? "server" : "client", path);
    return EPROTO;
}

static void
vhost_unregister(const char *path, bool server)
    OVS_EXCLUDED(vhost_mutex)
{
    /* destroy_device() may run on the vhost thread while we wait here for
     * it to finish, and it waits for an RCU grace period: be quiescent. */
    ovsrcu_quiesce_start();
    rte_vhost_driver_unregister(path);
    ovsrcu_quiesce_end();
    if (server) {
        /* DPDK removes the socket itself; make sure, quietly. */
        fatal_signal_remove_file_to_unlink(path);
        if (unlink(path) && errno != ENOENT) {
            VLOG_WARN("could not remove %s: %s", path, ovs_strerror(errno));
        }
    }
}

/* Makes way for a server socket at 'path': removes a socket file that
 * nobody listens on any more (left by a crash), refuses anything else. */
static int
vhost_clear_stale_socket(const char *name, const char *path, char **errp)
{
    struct sockaddr_un sun;
    struct stat st;
    int fd, error;

    if (lstat(path, &st)) {
        return 0;
    }
    if (!S_ISSOCK(st.st_mode)) {
        VLOG_WARN_BUF(errp, "%s: %s exists and is not a socket", name, path);
        return EEXIST;
    }

    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    ovs_strlcpy(sun.sun_path, path, sizeof sun.sun_path);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) {
        return 0;
    }
    error = connect(fd, (struct sockaddr *) &sun, sizeof sun) ? errno : 0;
    close(fd);
    if (!error) {
        VLOG_WARN_BUF(errp, "%s: socket %s is in use by another process",
                      name, path);
        return EADDRINUSE;
    }
    if (unlink(path) && errno != ENOENT) {
        VLOG_WARN_BUF(errp, "%s: could not remove stale socket %s (%s)",
                      name, path, ovs_strerror(errno));
        return errno;
    }
    VLOG_INFO("%s: removed stale socket %s", name, path);
    return 0;
}

/* netdev class. */

static struct netdev *
netdev_vhost_alloc(void)
{
    struct netdev_vhost *dev = xzalloc_cacheline(sizeof *dev);

    return &dev->up;
}

static void
netdev_vhost_dealloc(struct netdev *netdev)
{
    free_cacheline(netdev_vhost_cast(netdev));
}

static void
vhost_stats_add(struct vhost_queue_stats *dst,
                const struct vhost_queue_stats *src)
{
    dst->packets += src->packets;
    dst->bytes += src->bytes;
    dst->dropped += src->dropped;
#define VHOST_CUSTOM_STAT(NAME) dst->NAME += src->NAME;
    VHOST_CUSTOM_STATS
#undef VHOST_CUSTOM_STAT
}

/* Sums the counters of 'dev''s rx and tx queues, including those of queues
 * that reconfigurations removed. */
static void
vhost_sum_stats(const struct netdev_vhost *dev, struct vhost_queue_stats *rx,
                struct vhost_queue_stats *tx)
    OVS_REQUIRES(vhost_mutex)
{
    *rx = dev->base_rx;
    *tx = dev->base_tx;
    for (int i = 0; dev->rxqs && i < dev->up.n_rxq; i++) {
        vhost_stats_add(rx, &dev->rxqs[i].stats);
    }
    for (int i = 0; dev->txqs && i < dev->up.n_txq; i++) {
        vhost_stats_add(tx, &dev->txqs[i].stats);
    }
}

static void
vhost_queues_resize(struct netdev_vhost *dev, int n_rxq, int n_txq)
    OVS_REQUIRES(vhost_mutex)
{
    if (n_rxq == dev->up.n_rxq && n_txq == dev->up.n_txq && dev->rxqs) {
        return;
    }

    /* Keep the counters of the queues that go. */
    vhost_sum_stats(dev, &dev->base_rx, &dev->base_tx);

    free_cacheline(dev->rxqs);
    free_cacheline(dev->txqs);
    dev->rxqs = xzalloc_cacheline(n_rxq * sizeof *dev->rxqs);
    dev->txqs = xzalloc_cacheline(n_txq * sizeof *dev->txqs);
    for (int i = 0; i < n_txq; i++) {
        rte_spinlock_init(&dev->txqs[i].lock);
        dev->txqs[i].vring_qp = -1;
    }
    dev->up.n_rxq = n_rxq;
    dev->up.n_txq = n_txq;
}

static void
vhost_construct(struct netdev_vhost *dev, bool server)
{
    dev->server = server;

    ovsrcu_index_init(&dev->vid, -1);
    atomic_init(&dev->admin_up, true);
    atomic_init(&dev->tx_retries_max, VHOST_TX_RETRIES_DEFAULT);
    for (int i = 0; i < VHOST_QP_WORDS; i++) {
        atomic_init(&dev->rx_enabled[i], 0);
        atomic_init(&dev->tx_enabled[i], 0);
        atomic_init(&dev->tx_seen[i], 0);
    }

    ovs_mutex_lock(&vhost_mutex);
    dev->conn_vid = -1;
    dev->req_vid = -1;
    dev->req_n_rxq = 1;
    dev->req_n_txq = 1;
    dev->numa = dev->req_numa = rte_lcore_to_socket_id(rte_get_main_lcore());
    dev->mtu = dev->req_mtu = VHOST_MTU_DEFAULT;
    dev->max_frame_len = vhost_frame_len(dev->mtu);
    dev->flags = NETDEV_UP | NETDEV_PROMISC;
    dev->hwaddr = eth_addr_zero;
    eth_addr_random(&dev->hwaddr);
    eth_addr_mark_random(&dev->hwaddr);
    vhost_queues_resize(dev, 1, 1);
    ovs_list_push_back(&vhost_devs, &dev->list_node);
    ovs_mutex_unlock(&vhost_mutex);
}

static int
netdev_vhost_client_construct(struct netdev *netdev)
{
    vhost_construct(netdev_vhost_cast(netdev), false);
    return 0;
}

static int
netdev_vhost_server_construct(struct netdev *netdev)
{
    vhost_construct(netdev_vhost_cast(netdev), true);
    return 0;
}

static void
netdev_vhost_destruct(struct netdev *netdev)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);
    char *reg_path;

    /* The datapath no longer polls or sends on this port.  Unregistering
     * destroys the connection through our callbacks, which still find the
     * port. */
    ovs_mutex_lock(&vhost_mutex);
    reg_path = dev->reg_path;
    ovs_mutex_unlock(&vhost_mutex);
    if (reg_path) {
        vhost_unregister(reg_path, dev->server);
    }

    ovs_mutex_lock(&vhost_mutex);
    if (dev->conn_vid >= 0) {
        vid_dev_set(dev->conn_vid, NULL);
    }
    ovs_list_remove(&dev->list_node);
    vhost_mp_release(dev->mp);
    dev->mp = NULL;
    free(dev->path);
    free(dev->reg_path);
    free_cacheline(dev->rxqs);
    free_cacheline(dev->txqs);
    ovs_mutex_unlock(&vhost_mutex);
}

/* Checks a vhost-server-path value; returns a positive errno and reports
 * through 'errp' what is wrong with it. */
static int
vhost_check_path(const struct netdev_vhost *dev, const char *path,
                 char **errp)
    OVS_REQUIRES(vhost_mutex)
{
    struct sockaddr_un sun;
    struct netdev_vhost *other;

    if (path[0] != '/') {
        VLOG_WARN_BUF(errp, "%s: vhost-server-path \"%s\" is not an "
                      "absolute path", vhost_name(dev), path);
        return EINVAL;
    }
    if (strlen(path) >= sizeof sun.sun_path) {
        VLOG_WARN_BUF(errp, "%s: socket path %s is too long: %"PRIuSIZE
                      " bytes, a unix socket path holds at most %"PRIuSIZE,
                      vhost_name(dev), path, strlen(path),
                      sizeof sun.sun_path - 1);
        return ENAMETOOLONG;
    }
    LIST_FOR_EACH (other, list_node, &vhost_devs) {
        if (other != dev
            && ((other->path && !strcmp(other->path, path))
                || (other->reg_path && !strcmp(other->reg_path, path)))) {
            VLOG_WARN_BUF(errp, "%s: vhost-server-path \"%s\" is already "
                          "used by port %s", vhost_name(dev), path,
                          vhost_name(other));
            return EEXIST;
        }
    }
    return 0;
}

static int
netdev_vhost_set_config(struct netdev *netdev, const struct smap *args,
                        char **errp)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);
    const char *name = netdev_get_name(netdev);
    const char *retries_s = smap_get(args, "tx-retries-max");
    const char *mode = dev->server ? "server" : "client";
    int retries = VHOST_TX_RETRIES_DEFAULT;
    char *server_path = NULL;
    char *old_reg = NULL;
    const char *path;
    int err = 0;

    if (dev->server) {
        /* The socket is named after the port. */
        if (strchr(name, '/')) {
            VLOG_WARN_BUF(errp, "\"%s\" is not a valid name for a "
                          "vhost-user port: it must not contain '/'", name);
            return EINVAL;
        }
        path = server_path = xasprintf("%s/%s", vhost_sock_dir, name);
    } else {
        path = smap_get(args, "vhost-server-path");
        if (path && !path[0]) {
            path = NULL;
        }
    }
    if (retries_s) {
        char *end;
        long int v = strtol(retries_s, &end, 10);

        if (!retries_s[0] || *end || v < 0 || v > VHOST_TX_RETRIES_MAX) {
            VLOG_WARN_BUF(errp, "%s: tx-retries-max \"%s\" is not an integer "
                          "from 0 to %d", name, retries_s,
                          VHOST_TX_RETRIES_MAX);
            err = EINVAL;
            goto out;
        }
        retries = v;
    }

    ovs_mutex_lock(&vhost_mutex);
    if (path) {
        err = vhost_check_path(dev, path, errp);
        if (err) {
            ovs_mutex_unlock(&vhost_mutex);
            goto out;
        }
    }
    atomic_store_relaxed(&dev->tx_retries_max, retries);
    if (nullable_string_is_equal(path, dev->reg_path)) {
        ovs_mutex_unlock(&vhost_mutex);
        goto out;
    }
    free(dev->path);
    dev->path = nullable_xstrdup(path);
    old_reg = dev->reg_path;
    dev->reg_path = NULL;
    ovs_mutex_unlock(&vhost_mutex);

    /* The path changed: leave the old socket, then join the new one. */
    if (old_reg) {
        vhost_unregister(old_reg, dev->server);
        VLOG_INFO("%s: unregistered vhost-user %s socket %s", name, mode,
                  old_reg);
        free(old_reg);
    }
    if (!path) {
        VLOG_INFO("%s: options:vhost-server-path is not set; the port stays "
                  "down until it is", name);
        netdev_change_seq_changed(netdev);
        goto out;
    }

    if (dev->server) {
        err = vhost_clear_stale_socket(name, path, errp);
        if (err) {
            goto out;
        }
    }

    /* new_connection() finds the port by 'reg_path': set it first. */
    ovs_mutex_lock(&vhost_mutex);
    dev->reg_path = xstrdup(path);
    ovs_mutex_unlock(&vhost_mutex);

    err = vhost_register(path, dev->server);

    ovs_mutex_lock(&vhost_mutex);
    if (err) {
        free(dev->reg_path);
        dev->reg_path = NULL;
        VLOG_WARN_BUF(errp, "%s: could not register vhost-user %s socket %s",
                      name, mode, path);
    } else {
        VLOG_INFO("%s: registered vhost-user %s socket %s", name, mode, path);
    }
    ovs_mutex_unlock(&vhost_mutex);
    netdev_change_seq_changed(netdev);

out:
    free(server_path);
    return err;
}

static int
netdev_vhost_get_config(const struct netdev *netdev, struct smap *args)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);
    int retries;

    ovs_mutex_lock(&vhost_mutex);
    if (dev->path && !dev->server) {
        smap_add(args, "vhost-server-path", dev->path);
    }
    ovs_mutex_unlock(&vhost_mutex);
    atomic_read_relaxed(&dev->tx_retries_max, &retries);
    if (retries != VHOST_TX_RETRIES_DEFAULT) {
        smap_add_format(args, "tx-retries-max", "%d", retries);
    }
    return 0;
}

static int
netdev_vhost_set_tx_multiq(struct netdev *netdev, unsigned int n_txq)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);

    ovs_mutex_lock(&vhost_mutex);
    n_txq = MAX(n_txq, 1);
    if (dev->req_n_txq != n_txq) {
        dev->req_n_txq = n_txq;
        netdev_request_reconfigure(netdev);
    }
    ovs_mutex_unlock(&vhost_mutex);
    return 0;
}

/* Applies what was requested to what the datapath uses.  The datapath
 * calls this with no PMD thread polling or sending on the port. */
static int
netdev_vhost_reconfigure(struct netdev *netdev)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);

    ovs_mutex_lock(&vhost_mutex);
    vhost_queues_resize(dev, dev->req_n_rxq, dev->req_n_txq);

    if (dev->mp && (dev->numa != dev->req_numa || dev->mtu != dev->req_mtu)) {
        vhost_mp_release(dev->mp);
        dev->mp = NULL;
    }
    dev->numa = dev->req_numa;
    dev->mtu = dev->req_mtu;
    dev->max_frame_len = vhost_frame_len(dev->mtu);

    if (dev->req_vid >= 0 && !dev->mp) {
        dev->mp = vhost_mp_create(dev, dev->numa, dev->mtu, dev->up.n_rxq);
    }
    if (dev->req_vid >= 0 && dev->mp) {
        vhost_remap_txqs(dev, dev->req_n_rxq);
        vhost_publish(dev, dev->req_vid);
    } else if (ovsrcu_index_get(&dev->vid) >= 0) {
        vhost_publish(dev, -1);
    }
    netdev_change_seq_changed(netdev);
    ovs_mutex_unlock(&vhost_mutex);

    return 0;
}

/* Datapath. */

static struct netdev_rxq *
netdev_vhost_rxq_alloc(void)
{
    struct netdev_rxq_vhost *rx = xzalloc(sizeof *rx);

    return &rx->up;
}

static int
netdev_vhost_rxq_construct(struct netdev_rxq *rxq OVS_UNUSED)
{
    return 0;
}

static void
netdev_vhost_rxq_destruct(struct netdev_rxq *rxq OVS_UNUSED)
{
}

static void
netdev_vhost_rxq_dealloc(struct netdev_rxq *rxq)
{
    free(CONTAINER_OF(rxq, struct netdev_rxq_vhost, up));
}

static bool
netdev_vhost_rxq_enabled(struct netdev_rxq *rxq)
{
    struct netdev_vhost *dev = netdev_vhost_cast(rxq->netdev);

    /* Queue 0 also serves guests that report no vring states. */
    return rxq->queue_id == 0 || qp_bit_get(dev->rx_enabled, rxq->queue_id);
}

/* Receives a burst of packets that the guest transmitted. */
static int
netdev_vhost_rxq_recv(struct netdev_rxq *rxq, struct dp_packet_batch *batch,
                      int *qfill)
{
    struct netdev_vhost *dev = netdev_vhost_cast(rxq->netdev);
    int vid = ovsrcu_index_get(&dev->vid);
    struct rte_mbuf **pkts = (struct rte_mbuf **) batch->packets;
    struct vhost_queue_stats *stats;
    uint16_t vring, n;
    uint64_t bytes = 0;
    bool up;

    atomic_read_relaxed(&dev->admin_up, &up);
    if (OVS_UNLIKELY(vid < 0 || !up)) {
        return EAGAIN;
    }

    vring = VHOST_GUEST_TX_VRING(rxq->queue_id);
    n = rte_vhost_dequeue_burst(vid, vring, dev->mp, pkts, NETDEV_MAX_BURST);
    if (!n) {
        return EAGAIN;
    }

    if (qfill) {
        *qfill = (n == NETDEV_MAX_BURST
                  ? rte_vhost_rx_queue_count(vid, vring) & UINT16_MAX
                  : 0);
    }

    for (int i = 0; i < n; i++) {
        bytes += pkts[i]->pkt_len;
    }
    stats = &dev->rxqs[rxq->queue_id].stats;
    stats->packets += n;
    stats->bytes += bytes;

    batch->count = n;
    dp_packet_batch_init_packet_fields(batch);
    return 0;
}

/* Copies 'pkt', which is not an mbuf, into an mbuf from 'mp'. */
static struct rte_mbuf *
vhost_copy_to_mbuf(struct rte_mempool *mp, const struct dp_packet *pkt)
{
    uint32_t len = dp_packet_size(pkt);
    struct rte_mbuf *m = rte_pktmbuf_alloc(mp);

    if (OVS_UNLIKELY(!m)) {
        return NULL;
    }
    if (OVS_UNLIKELY(rte_pktmbuf_tailroom(m) < len)) {
        rte_pktmbuf_free(m);
        return NULL;
    }
    memcpy(rte_pktmbuf_mtod(m, void *), dp_packet_data(pkt), len);
    m->data_len = len;
    m->pkt_len = len;
    return m;
}

/* Sends a burst to the guest.  The guest's rx ring takes copies, so every
 * mbuf is freed here, sent or not. */
static int
netdev_vhost_send(struct netdev *netdev, int qid,
                  struct dp_packet_batch *batch, bool concurrent_txq)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);
    int vid = ovsrcu_index_get(&dev->vid);
    struct rte_mbuf *pkts[NETDEV_MAX_BURST];
    struct vhost_txq_state *txq;
    struct dp_packet *packet;
    int n_pkts = 0, sent = 0, retries = 0, max_retries;
    uint32_t max_len = dev->max_frame_len;
    uint64_t bytes = 0, mtu_drops = 0, copy_drops = 0;
    int vring;
    bool up;

    txq = &dev->txqs[qid % netdev->n_txq];
    vring = txq->vring_qp;
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

        if (OVS_LIKELY(packet->source == DPBUF_DPDK)) {
            m = &packet->mbuf;
        } else {
            COVERAGE_INC(vhost_client_tx_copy);
            m = vhost_copy_to_mbuf(dev->mp, packet);
            dp_packet_delete(packet);
            if (OVS_UNLIKELY(!m)) {
                copy_drops++;
                continue;
            }
        }
        if (OVS_UNLIKELY(m->pkt_len > max_len)) {
            mtu_drops++;
            rte_pktmbuf_free(m);
            continue;
        }
        bytes += m->pkt_len;
        pkts[n_pkts++] = m;
    }

    atomic_read_relaxed(&dev->tx_retries_max, &max_retries);
    while (sent < n_pkts) {
        uint16_t n = rte_vhost_enqueue_burst(vid, VHOST_GUEST_RX_VRING(vring),
                                             &pkts[sent], n_pkts - sent);

        sent += n;
        if (!n || sent == n_pkts || retries >= max_retries) {
            break;
        }
        retries++;
    }

    if (OVS_UNLIKELY(sent < n_pkts)) {
        for (int i = sent; i < n_pkts; i++) {
            bytes -= pkts[i]->pkt_len;
        }
    }
    rte_pktmbuf_free_bulk(pkts, n_pkts);

    txq->stats.packets += sent;
    txq->stats.bytes += bytes;
    if (OVS_UNLIKELY(sent < n_pkts || mtu_drops || copy_drops || retries)) {
        txq->stats.dropped += (n_pkts - sent) + mtu_drops + copy_drops;
        txq->stats.tx_failure_drops += (n_pkts - sent) + copy_drops;
        txq->stats.tx_mtu_exceeded_drops += mtu_drops;
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

/* Control: state, statistics, settings. */

static int
netdev_vhost_get_carrier(const struct netdev *netdev, bool *carrier)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);

    *carrier = ovsrcu_index_get(&dev->vid) >= 0;
    return 0;
}

static long long int
netdev_vhost_get_carrier_resets(const struct netdev *netdev)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);
    long long int connects;

    ovs_mutex_lock(&vhost_mutex);
    connects = dev->connects;
    ovs_mutex_unlock(&vhost_mutex);
    return connects;
}

static int
netdev_vhost_get_stats(const struct netdev *netdev,
                       struct netdev_stats *stats)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);
    struct vhost_queue_stats rx, tx;

    ovs_mutex_lock(&vhost_mutex);
    vhost_sum_stats(dev, &rx, &tx);
    ovs_mutex_unlock(&vhost_mutex);

    stats->rx_packets = rx.packets;
    stats->rx_bytes = rx.bytes;
    stats->rx_dropped = rx.dropped;
    stats->rx_errors = 0;
    stats->tx_packets = tx.packets;
    stats->tx_bytes = tx.bytes;
    stats->tx_dropped = tx.dropped;
    stats->tx_errors = 0;
    return 0;
}

static int
netdev_vhost_get_custom_stats(const struct netdev *netdev,
                              struct netdev_custom_stats *custom)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);
    struct vhost_queue_stats rx, tx;
    int i = 0;

    ovs_mutex_lock(&vhost_mutex);
    vhost_sum_stats(dev, &rx, &tx);
    ovs_mutex_unlock(&vhost_mutex);

#define VHOST_CUSTOM_STAT(NAME) + 1
    custom->size = 0 VHOST_CUSTOM_STATS;
#undef VHOST_CUSTOM_STAT
    custom->counters = xcalloc(custom->size, sizeof *custom->counters);
#define VHOST_CUSTOM_STAT(NAME)                                     \
    ovs_strlcpy(custom->counters[i].name, "ovs_" #NAME,             \
                NETDEV_CUSTOM_STATS_NAME_SIZE);                     \
    custom->counters[i++].value = tx.NAME;
    VHOST_CUSTOM_STATS
#undef VHOST_CUSTOM_STAT
    return 0;
}

static void
vhost_put_status(const struct netdev_vhost *dev, struct smap *args)
    OVS_REQUIRES(vhost_mutex)
{
    int vid = ovsrcu_index_get(&dev->vid);

    smap_add(args, "mode", dev->server ? "server" : "client");
    smap_add(args, "status", vid >= 0 ? "connected" : "disconnected");
    if (dev->path) {
        smap_add(args, "socket", dev->path);
    } else {
        smap_add(args, "reason", "options:vhost-server-path is not set");
    }
    smap_add_format(args, "numa", "%d", dev->numa);
    smap_add_format(args, "n_rxq", "%d", dev->up.n_rxq);
    smap_add_format(args, "n_txq", "%d", dev->up.n_txq);
    if (vid >= 0) {
        smap_add_format(args, "features", "0x%016"PRIx64, dev->features);
        smap_add_format(args, "num_of_vrings", "%u",
                        rte_vhost_get_vring_num(vid));
    }
}

static int
netdev_vhost_get_status(const struct netdev *netdev, struct smap *args)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);

    ovs_mutex_lock(&vhost_mutex);
    vhost_put_status(dev, args);
    ovs_mutex_unlock(&vhost_mutex);
    return 0;
}

static int
netdev_vhost_get_numa_id(const struct netdev *netdev)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);
    int numa;

    ovs_mutex_lock(&vhost_mutex);
    numa = dev->numa;
    ovs_mutex_unlock(&vhost_mutex);
    return numa;
}

static int
netdev_vhost_get_mtu(const struct netdev *netdev, int *mtup)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);

    ovs_mutex_lock(&vhost_mutex);
    *mtup = dev->req_mtu;
    ovs_mutex_unlock(&vhost_mutex);
    return 0;
}

static int
netdev_vhost_set_mtu(struct netdev *netdev, int mtu)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);

    if (mtu < VHOST_MTU_MIN || mtu > VHOST_MTU_MAX) {
        VLOG_WARN("%s: unsupported MTU %d (from %d to %d)",
                  netdev_get_name(netdev), mtu, VHOST_MTU_MIN, VHOST_MTU_MAX);
        return EINVAL;
    }

    ovs_mutex_lock(&vhost_mutex);
    if (dev->req_mtu != mtu) {
        dev->req_mtu = mtu;
        netdev_request_reconfigure(netdev);
    }
    ovs_mutex_unlock(&vhost_mutex);
    return 0;
}

static int
netdev_vhost_set_etheraddr(struct netdev *netdev, const struct eth_addr mac)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);

    ovs_mutex_lock(&vhost_mutex);
    if (!eth_addr_equals(dev->hwaddr, mac)) {
        dev->hwaddr = mac;
        netdev_change_seq_changed(netdev);
    }
    ovs_mutex_unlock(&vhost_mutex);
    return 0;
}

static int
netdev_vhost_get_etheraddr(const struct netdev *netdev, struct eth_addr *mac)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);

    ovs_mutex_lock(&vhost_mutex);
    *mac = dev->hwaddr;
    ovs_mutex_unlock(&vhost_mutex);
    return 0;
}

static int
netdev_vhost_update_flags(struct netdev *netdev, enum netdev_flags off,
                          enum netdev_flags on, enum netdev_flags *old_flagsp)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);

    if ((off | on) & ~(NETDEV_UP | NETDEV_PROMISC)) {
        return EINVAL;
    }

    ovs_mutex_lock(&vhost_mutex);
    *old_flagsp = dev->flags;
    dev->flags |= on;
    dev->flags &= ~off;
    if (dev->flags != *old_flagsp) {
        atomic_store_relaxed(&dev->admin_up, (dev->flags & NETDEV_UP) != 0);
        netdev_change_seq_changed(netdev);
    }
    ovs_mutex_unlock(&vhost_mutex);
    return 0;
}

static void
netdev_vhost_run(const struct netdev_class *class OVS_UNUSED)
{
    long long int now = time_msec();
    struct netdev_vhost *dev;

    ovs_mutex_lock(&vhost_mutex);
    vhost_mp_sweep();
    LIST_FOR_EACH (dev, list_node, &vhost_devs) {
        if (dev->reannounce_at && now >= dev->reannounce_at) {
            dev->reannounce_at = 0;
            netdev_change_seq_changed(&dev->up);
        }
    }
    ovs_mutex_unlock(&vhost_mutex);
}

static void
netdev_vhost_wait(const struct netdev_class *class OVS_UNUSED)
{
    struct netdev_vhost *dev;

    ovs_mutex_lock(&vhost_mutex);
    LIST_FOR_EACH (dev, list_node, &vhost_devs) {
        if (dev->reannounce_at) {
            poll_timer_wait_until(dev->reannounce_at);
        }
    }
    ovs_mutex_unlock(&vhost_mutex);
}

/* unixctl. */

static void
vhost_show_port(struct ds *reply, const struct netdev_vhost *dev)
    OVS_REQUIRES(vhost_mutex)
{
    struct vhost_queue_stats rx, tx;
    struct smap status = SMAP_INITIALIZER(&status);
    const struct smap_node **nodes;

    vhost_put_status(dev, &status);
    ds_put_format(reply, "%s:\n", vhost_name(dev));
    nodes = smap_sort(&status);
    for (size_t i = 0; i < smap_count(&status); i++) {
        ds_put_format(reply, "  %s: %s\n", nodes[i]->key, nodes[i]->value);
    }
    free(nodes);
    smap_destroy(&status);

    ds_put_format(reply, "  vid: %d\n  connects: %"PRIu64"\n",
                  dev->conn_vid, dev->connects);
    ds_put_format(reply, "  mtu: %d\n", dev->mtu);
    if (dev->mp) {
        ds_put_format(reply, "  mempool: %s, %u mbufs, %u in use\n",
                      dev->mp->name, dev->mp->size,
                      rte_mempool_in_use_count(dev->mp));
    } else {
        ds_put_cstr(reply, "  mempool: none\n");
    }
    for (int i = 0; i < dev->up.n_rxq; i++) {
        ds_put_format(reply, "  rxq %d: %s\n", i,
                      i == 0 || qp_bit_get(CONST_CAST(atomic_uint64_t *,
                                                      dev->rx_enabled), i)
                      ? "enabled" : "disabled");
    }
    for (int i = 0; i < dev->up.n_txq; i++) {
        ds_put_format(reply, "  txq %d: queue pair %d\n", i,
                      dev->txqs[i].vring_qp);
    }
    vhost_sum_stats(dev, &rx, &tx);
    ds_put_format(reply, "  rx: %"PRIu64" packets, %"PRIu64" bytes, "
                  "%"PRIu64" dropped\n", rx.packets, rx.bytes, rx.dropped);
    ds_put_format(reply, "  tx: %"PRIu64" packets, %"PRIu64" bytes, "
                  "%"PRIu64" dropped\n", tx.packets, tx.bytes, tx.dropped);
#define VHOST_CUSTOM_STAT(NAME) \
    ds_put_format(reply, "  %s: %"PRIu64"\n", #NAME, tx.NAME);
    VHOST_CUSTOM_STATS
#undef VHOST_CUSTOM_STAT
}

static void
vhost_unixctl_show(struct unixctl_conn *conn, int argc, const char *argv[],
                   void *aux OVS_UNUSED)
{
    struct ds reply = DS_EMPTY_INITIALIZER;
    struct netdev_vhost *dev;
    bool found = false;

    ovs_mutex_lock(&vhost_mutex);
    LIST_FOR_EACH (dev, list_node, &vhost_devs) {
        if (argc < 2 || !strcmp(argv[1], vhost_name(dev))) {
            vhost_show_port(&reply, dev);
            found = true;
        }
    }
    ovs_mutex_unlock(&vhost_mutex);

    if (argc >= 2 && !found) {
        unixctl_command_reply_error(conn, "no such vhost-user port");
    } else {
        unixctl_command_reply(conn, ds_cstr(&reply));
    }
    ds_destroy(&reply);
}

static int
netdev_vhost_class_init(void)
{
    static struct ovsthread_once once = OVSTHREAD_ONCE_INITIALIZER;

    if (ovsthread_once_start(&once)) {
        unixctl_command_register("vhost-client/show", "[port]", 0, 1,
                                 vhost_unixctl_show, NULL);
        ovsthread_once_done(&once);
    }
    return 0;
}

#define NETDEV_VHOST_CLASS_COMMON                               \
    .is_pmd = true,                                             \
    .init = netdev_vhost_class_init,                            \
    .run = netdev_vhost_run,                                    \
    .wait = netdev_vhost_wait,                                  \
    .alloc = netdev_vhost_alloc,                                \
    .destruct = netdev_vhost_destruct,                          \
    .dealloc = netdev_vhost_dealloc,                            \
    .get_config = netdev_vhost_get_config,                      \
    .set_config = netdev_vhost_set_config,                      \
    .reconfigure = netdev_vhost_reconfigure,                    \
    .set_tx_multiq = netdev_vhost_set_tx_multiq,                \
    .send = netdev_vhost_send,                                  \
    .set_etheraddr = netdev_vhost_set_etheraddr,                \
    .get_etheraddr = netdev_vhost_get_etheraddr,                \
    .get_mtu = netdev_vhost_get_mtu,                            \
    .set_mtu = netdev_vhost_set_mtu,                            \
    .get_carrier = netdev_vhost_get_carrier,                    \
    .get_carrier_resets = netdev_vhost_get_carrier_resets,      \
    .get_stats = netdev_vhost_get_stats,                        \
    .get_custom_stats = netdev_vhost_get_custom_stats,          \
    .get_status = netdev_vhost_get_status,                      \
    .get_numa_id = netdev_vhost_get_numa_id,                    \
    .update_flags = netdev_vhost_update_flags,                  \
    .rxq_alloc = netdev_vhost_rxq_alloc,                        \
    .rxq_construct = netdev_vhost_rxq_construct,                \
    .rxq_destruct = netdev_vhost_rxq_destruct,                  \
    .rxq_dealloc = netdev_vhost_rxq_dealloc,                    \
    .rxq_enabled = netdev_vhost_rxq_enabled,                    \
    .rxq_recv = netdev_vhost_rxq_recv

static const struct netdev_class vhost_client_class = {
    .type = "dpdkvhostuserclient",
    NETDEV_VHOST_CLASS_COMMON,
    .construct = netdev_vhost_client_construct,
};

static const struct netdev_class vhost_server_class = {
    .type = "dpdkvhostuser",
    NETDEV_VHOST_CLASS_COMMON,
    .construct = netdev_vhost_server_construct,
};

void
netdev_dpdk_vhost_client_register(const struct smap *ovs_other_config)
{
    const char *sock_dir = smap_get_def(ovs_other_config, "vhost-sock-dir",
                                        "");

    if (strstr(sock_dir, "..")) {
        VLOG_ERR("vhost-sock-dir \"%s\" must not contain \"..\"; using the "
                 "run directory %s", sock_dir, ovs_rundir());
        sock_dir = "";
    }
    vhost_sock_dir = (sock_dir[0]
                      ? xasprintf("%s/%s", ovs_rundir(), sock_dir)
                      : xstrdup(ovs_rundir()));
    vhost_iommu_enabled = smap_get_bool(ovs_other_config,
                                        "vhost-iommu-support", false);
    vhost_postcopy_enabled = smap_get_bool(ovs_other_config,
                                           "vhost-postcopy-support", false);
    VLOG_INFO("vhost-user client ports: IOMMU support %s, postcopy support "
              "%s", vhost_iommu_enabled ? "enabled" : "disabled",
              vhost_postcopy_enabled ? "enabled" : "disabled");
    if (mkdir(vhost_sock_dir, 0755) && errno != EEXIST) {
        VLOG_ERR("could not create vhost-sock-dir %s: %s", vhost_sock_dir,
                 ovs_strerror(errno));
    }
    VLOG_INFO("vhost-user server sockets in %s", vhost_sock_dir);
    netdev_register_provider(&vhost_client_class);
    netdev_register_provider(&vhost_server_class);
}
