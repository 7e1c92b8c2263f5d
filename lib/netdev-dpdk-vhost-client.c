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


/* The vhost-user netdev classes: what Open vSwitch calls for a
 * "dpdkvhostuserclient" or "dpdkvhostuser" port outside its datapath
 * (construct, configure, reconfigure, state, statistics, settings), the
 * globals the units share, and the registration.  The units are listed in
 * netdev-dpdk-vhost-private.h.
 *
 * Entered by the main thread (the class functions, run and wait; the
 * bridge and dpif-netdev call them) and, for a port's state and
 * statistics, by any thread that asks: everything here that a port's
 * control state holds is read and written with 'vhost_mutex' held.
 * netdev_vhost_reconfigure() runs with no PMD thread polling or sending
 * on the port. */

#include <config.h>
#include "netdev-dpdk-vhost-client.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <linux/virtio_net.h>

#include <rte_lcore.h>
#include <rte_spinlock.h>
#include <rte_vhost.h>

#include "dirs.h"
#include "openvswitch/vlog.h"

VLOG_DEFINE_THIS_MODULE(netdev_dpdk_vhost_client);

#define NETDEV_VHOST_DEFINES_VLOG_MODULE 1
#include "netdev-dpdk-vhost-private.h"

#include "openvswitch/dynamic-string.h"
#include "openvswitch/list.h"
#include "openvswitch/poll-loop.h"
#include "ovs-atomic.h"
#include "ovs-rcu.h"
#include "ovs-thread.h"
#include "smap.h"
#include "timeval.h"
#include "userspace-tso.h"
#include "util.h"

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
 * directory), vhost-iommu-support, vhost-postcopy-support; and OVS's own
 * userspace-tso-enable, read when a port registers its socket.
 *
 * Offloads.  Without userspace-tso-enable the guest is offered no checksum
 * offload (and so none of the offloads that need it): it sends complete
 * packets and receives complete packets.  With it, the guest may send TCP
 * segments of up to 64 kB and packets with partial TCP/UDP checksums
 * (librte_vhost marks them with the mbuf tx offload flags, and places
 * large ones in external buffers), and it receives them when it negotiated
 * VIRTIO_NET_F_GUEST_TSO4/6 and VIRTIO_NET_F_GUEST_CSUM.  For a guest
 * without GUEST_CSUM, we complete checksums in software; to a guest
 * without guest TSO, OVS drops TCP segments larger than its MTU (we offer
 * no TSO then: OVS 3.1 has no software segmentation).
 */

/* The state the units share (see netdev-dpdk-vhost-private.h). */
struct ovs_mutex vhost_mutex = OVS_MUTEX_INITIALIZER;
struct ovs_mutex vhost_txmap_mutex = OVS_MUTEX_INITIALIZER;

struct ovs_list vhost_devs OVS_GUARDED_BY(vhost_mutex)
    = OVS_LIST_INITIALIZER(&vhost_devs);

char *vhost_sock_dir;
bool vhost_iommu_enabled;
bool vhost_postcopy_enabled;

static const char *const vhost_vring_stat_names[] = {
#define VHOST_VRING_STAT(NAME) #NAME,
    VHOST_VRING_STATS
#undef VHOST_VRING_STAT
};

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
#define VHOST_CUSTOM_STAT(DIR, NAME) dst->NAME += src->NAME;
    VHOST_CUSTOM_STATS
#undef VHOST_CUSTOM_STAT
}

/* Sums the counters of 'dev''s rx and tx queues, including those of queues
 * that reconfigurations removed. */
void
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
    dev->rxqs = xzalloc_cacheline(n_rxq * sizeof *dev->rxqs);
    dev->up.n_rxq = n_rxq;

    ovs_mutex_lock(&vhost_txmap_mutex);
    free_cacheline(dev->txqs);
    dev->txqs = xzalloc_cacheline(n_txq * sizeof *dev->txqs);
    for (int i = 0; i < n_txq; i++) {
        rte_spinlock_init(&dev->txqs[i].lock);
        atomic_init(&dev->txqs[i].vring_qp, -1);
    }
    dev->up.n_txq = n_txq;
    ovs_mutex_unlock(&vhost_txmap_mutex);
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
        atomic_init(&dev->tx_off[i], 0);
    }

    atomic_init(&dev->conn_vid, -1);
    ovsrcu_init(&dev->policer, NULL);
    ovsrcu_init(&dev->qos, NULL);

    ovs_mutex_lock(&vhost_mutex);
    dev->req_vid = -1;
    dev->req_n_rxq = 1;
    dev->req_n_txq = 1;
    dev->numa = dev->req_numa = rte_lcore_to_socket_id(rte_get_main_lcore());
    dev->mtu = dev->req_mtu = VHOST_MTU_DEFAULT;
    dev->max_frame_len = vhost_frame_len(dev->mtu);
    /* Until a guest says what it takes. */
    dev->up.ol_flags = vhost_tx_offloads(UINT64_MAX);
    dev->tx_sw_csum = false;
    dev->flags = NETDEV_UP | NETDEV_PROMISC;
    dev->kick_at = LLONG_MAX;
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
    reg_path = dev->registered ? dev->reg_path : NULL;
    dev->registered = false;
    ovs_mutex_unlock(&vhost_mutex);
    if (reg_path) {
        vhost_unregister(reg_path, dev->server);
    }

    ovs_mutex_lock(&vhost_mutex);
    vhost_forget_connection(dev);
    ovs_list_remove(&dev->list_node);
    vhost_qos_replace(dev, NULL);
    vhost_policer_replace(dev, NULL);
    free(dev->mtu_error);
    free(dev->qos_error);
    vhost_mp_put(dev->vmp, dev->mp_slots);
    dev->vmp = NULL;
    dev->mp = NULL;
    free(dev->path);
    free(dev->reg_path);
    free_cacheline(dev->rxqs);
    free_cacheline(dev->txqs);
    free(dev->vring_base);
    ovs_mutex_unlock(&vhost_mutex);
}

static int
netdev_vhost_set_config(struct netdev *netdev, const struct smap *args,
                        char **errp)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);
    const char *name = netdev_get_name(netdev);
    const char *retries_s = smap_get(args, "tx-retries-max");
    int retries = VHOST_TX_RETRIES_DEFAULT;
    char *server_path = NULL;
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
    err = path ? vhost_check_path(dev, path, errp) : 0;
    if (!err) {
        atomic_store_relaxed(&dev->tx_retries_max, retries);
    }
    ovs_mutex_unlock(&vhost_mutex);
    if (!err) {
        err = vhost_socket_set_path(dev, path, errp);
    }

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
    /* What dpctl/show prints, as for upstream's DPDK ports. */
    smap_add_format(args, "requested_rx_queues", "%d", dev->req_n_rxq);
    smap_add_format(args, "configured_rx_queues", "%d", netdev->n_rxq);
    smap_add_format(args, "requested_tx_queues", "%d", dev->req_n_txq);
    smap_add_format(args, "configured_tx_queues", "%d", netdev->n_txq);
    smap_add_format(args, "mtu", "%d", dev->mtu);
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

    dev->numa = dev->req_numa;
    dev->mtu = dev->req_mtu;
    dev->max_frame_len = vhost_frame_len(dev->mtu);
    vhost_mp_update(dev);
    if (dev->req_vid >= 0) {
        netdev->ol_flags = vhost_tx_offloads(dev->features);
        dev->tx_sw_csum = vhost_tx_sw_csum(dev->features);
    }
    if (dev->req_vid >= 0 && dev->mp && dev->conn) {
        vhost_map_txqs(dev, dev->req_n_rxq);
        vhost_publish(dev, dev->req_vid);
    } else if (ovsrcu_index_get(&dev->vid) >= 0) {
        vhost_publish(dev, -1);
    }
    netdev_change_seq_changed(netdev);
    ovs_mutex_unlock(&vhost_mutex);

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

/* The per-vring counters that fill struct netdev_stats: the member for our
 * rx vrings, the member for our tx vrings, the counter.  Undersized
 * packets count as up to 64 bytes, and the 1518/1519 boundary stands for
 * OVS's 1522/1523. */
#define VHOST_VRING_PORT_STATS                                              \
    VHOST_VRING_PORT_STAT(multicast, tx_multicast_packets,                  \
                          multicast_packets)                                \
    VHOST_VRING_PORT_STAT(rx_broadcast_packets, tx_broadcast_packets,       \
                          broadcast_packets)                                \
    VHOST_VRING_PORT_STAT(rx_1_to_64_packets, tx_1_to_64_packets,           \
                          undersize_packets)                                \
    VHOST_VRING_PORT_STAT(rx_1_to_64_packets, tx_1_to_64_packets,           \
                          size_64_packets)                                  \
    VHOST_VRING_PORT_STAT(rx_65_to_127_packets, tx_65_to_127_packets,       \
                          size_65_127_packets)                              \
    VHOST_VRING_PORT_STAT(rx_128_to_255_packets, tx_128_to_255_packets,     \
                          size_128_255_packets)                             \
    VHOST_VRING_PORT_STAT(rx_256_to_511_packets, tx_256_to_511_packets,     \
                          size_256_511_packets)                             \
    VHOST_VRING_PORT_STAT(rx_512_to_1023_packets, tx_512_to_1023_packets,   \
                          size_512_1023_packets)                            \
    VHOST_VRING_PORT_STAT(rx_1024_to_1522_packets, tx_1024_to_1522_packets, \
                          size_1024_1518_packets)                           \
    VHOST_VRING_PORT_STAT(rx_1523_to_max_packets, tx_1523_to_max_packets,   \
                          size_1519_max_packets)

/* Returns 'dev''s per-vring counters, those of the connections that ended
 * plus the live ones, as '*n_vringsp' rows, or NULL if there are none.
 * The caller frees them. */
static uint64_t (*
vhost_vring_stats_read(const struct netdev_vhost *dev, int *n_vringsp))
    [VHOST_N_VRING_STATS]
    OVS_REQUIRES(vhost_mutex)
{
    uint64_t (*v)[VHOST_N_VRING_STATS];
    int n = dev->n_vring_base;

    for (int i = 0; dev->conn && i < VHOST_MAX_VRINGS; i++) {
        if (vhost_conn_vring(dev->conn, i)) {
            n = MAX(n, i + 1);
        }
    }
    *n_vringsp = n;
    if (!n) {
        return NULL;
    }

    v = xcalloc(n, sizeof *v);
    if (dev->n_vring_base) {
        memcpy(v, dev->vring_base, dev->n_vring_base * sizeof *v);
    }
    for (int i = 0; dev->conn && i < n; i++) {
        const struct vhost_vring *vr = vhost_conn_vring(dev->conn, i);

        for (int k = 0; vr && k < VHOST_N_VRING_STATS; k++) {
            v[i][k] += vr->q.stats[k];
        }
    }
    return v;
}

static int
netdev_vhost_get_stats(const struct netdev *netdev,
                       struct netdev_stats *stats)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);
    struct vhost_queue_stats rx, tx;
    uint64_t (*v)[VHOST_N_VRING_STATS];
    int n_vrings;

    ovs_mutex_lock(&vhost_mutex);
    vhost_sum_stats(dev, &rx, &tx);
    v = vhost_vring_stats_read(dev, &n_vrings);
    ovs_mutex_unlock(&vhost_mutex);

    stats->rx_packets = rx.packets;
    stats->rx_bytes = rx.bytes;
    stats->rx_dropped = rx.dropped;
    stats->rx_errors = (rx.rx_oversize_drops + rx.rx_bad_desc_drops
                        + rx.rx_budget_drops + rx.rx_bad_offload_drops);
    stats->rx_length_errors = rx.rx_oversize_drops;
    stats->tx_packets = tx.packets;
    stats->tx_bytes = tx.bytes;
    stats->tx_dropped = tx.dropped;
    stats->tx_errors = 0;

#define VHOST_VRING_PORT_STAT(RX, TX, NAME) stats->RX = stats->TX = 0;
    VHOST_VRING_PORT_STATS
#undef VHOST_VRING_PORT_STAT
    for (int vring = 0; vring < n_vrings; vring++) {
#define VHOST_VRING_PORT_STAT(RX, TX, NAME)                     \
        if (vring % 2) {                                        \
            stats->RX += v[vring][VHOST_VS_##NAME];             \
        } else {                                                \
            stats->TX += v[vring][VHOST_VS_##NAME];             \
        }
        VHOST_VRING_PORT_STATS
#undef VHOST_VRING_PORT_STAT
    }
    free(v);
    return 0;
}

static int
netdev_vhost_get_custom_stats(const struct netdev *netdev,
                              struct netdev_custom_stats *custom)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);
    struct vhost_queue_stats rx, tx;
    uint64_t (*v)[VHOST_N_VRING_STATS];
    int n_vrings;
    int i = 0;

    ovs_mutex_lock(&vhost_mutex);
    vhost_sum_stats(dev, &rx, &tx);
    v = vhost_vring_stats_read(dev, &n_vrings);
    ovs_mutex_unlock(&vhost_mutex);

#define VHOST_CUSTOM_STAT(DIR, NAME) + 1
    custom->size = 0 VHOST_CUSTOM_STATS;
#undef VHOST_CUSTOM_STAT
    custom->size += n_vrings * VHOST_N_VRING_STATS;
    custom->counters = xcalloc(custom->size, sizeof *custom->counters);
#define VHOST_CUSTOM_STAT(DIR, NAME)                                \
    ovs_strlcpy(custom->counters[i].name, "ovs_" #NAME,             \
                NETDEV_CUSTOM_STATS_NAME_SIZE);                     \
    custom->counters[i++].value = DIR.NAME;
    VHOST_CUSTOM_STATS
#undef VHOST_CUSTOM_STAT

    /* rx_q0_*, tx_q0_*, rx_q1_*, ...: our rx first in each queue pair. */
    for (int qp = 0; qp < n_vrings / 2; qp++) {
        for (int dir = 0; dir < 2; dir++) {
            int vring = dir ? VHOST_GUEST_RX_VRING(qp)
                            : VHOST_GUEST_TX_VRING(qp);

            for (int k = 0; k < VHOST_N_VRING_STATS; k++) {
                snprintf(custom->counters[i].name,
                         NETDEV_CUSTOM_STATS_NAME_SIZE, "%s_q%d_%s",
                         dir ? "tx" : "rx", qp, vhost_vring_stat_names[k]);
                custom->counters[i++].value = v[vring][k];
            }
        }
    }
    custom->size = i;
    free(v);
    return 0;
}

/* Which datapath moves the packets of 'c' (read without pausing it: it may
 * change right after). */
static void
vhost_put_datapath(const struct vhost_conn *c, struct smap *args)
{
    if (c->fast) {
        smap_add(args, "datapath",
                 c->vdev.packed ? "packed-ring" : "split-ring");
    } else {
        smap_add_format(args, "datapath", "librte_vhost (%s)",
                        c->slow_reason);
    }
}

/* Why a ring of 'c' is not used, if one is not (read without pausing it:
 * it may change right after). */
static void
vhost_put_ring_error(const struct vhost_conn *c, struct smap *args)
{
    for (int i = 0; c && i < VHOST_MAX_VRINGS; i++) {
        const struct vhost_vring *vr = vhost_conn_vring(c, i);
        const char *bad = vr ? vhost_vring_bad(vr) : NULL;

        if (bad) {
            smap_add_format(args, "ring_error", "vring %d: %s", i, bad);
            return;
        }
    }
}

void
vhost_put_status(const struct netdev_vhost *dev, struct smap *args)
    OVS_REQUIRES(vhost_mutex)
{
    int vid = ovsrcu_index_get(&dev->vid);
    /* A refused MTU matters only while mtu_request asks for one. */
    const char *mtu_error = (netdev_mtu_is_user_config(
                                 CONST_CAST(struct netdev *, &dev->up))
                             ? dev->mtu_error : NULL);

    smap_add(args, "mode", dev->server ? "server" : "client");
    smap_add(args, "status", vid >= 0 ? "connected" : "disconnected");
    if (vid < 0 && dev->conn && dev->stopped) {
        /* The vhost-user connection is still open. */
        smap_add(args, "stopped", dev->stopped);
    }
    if (dev->path) {
        smap_add(args, "socket", dev->path);
    } else {
        smap_add(args, "reason", "options:vhost-server-path is not set");
    }
    if (mtu_error || dev->qos_error || dev->conn_error) {
        const char *errors[] = { mtu_error, dev->qos_error, dev->conn_error };
        struct ds s = DS_EMPTY_INITIALIZER;

        for (size_t i = 0; i < ARRAY_SIZE(errors); i++) {
            if (errors[i]) {
                ds_put_format(&s, "%s%s", s.length ? "; " : "", errors[i]);
            }
        }
        smap_add(args, "error", ds_cstr(&s));
        ds_destroy(&s);
    }
    smap_add_format(args, "numa", "%d", dev->numa);
    smap_add_format(args, "n_rxq", "%d", dev->up.n_rxq);
    smap_add_format(args, "n_txq", "%d", dev->up.n_txq);
    if (vid >= 0) {
        smap_add_format(args, "features", "0x%016"PRIx64, dev->features);
        smap_add_format(args, "num_of_vrings", "%u",
                        rte_vhost_get_vring_num(vid));
        vhost_put_datapath(dev->conn, args);
        vhost_put_ring_error(dev->conn, args);
        if (userspace_tso_enabled()) {
            /* What the guest takes from us as it is. */
            smap_add(args, "tx_tso_offload",
                     dev->up.ol_flags & NETDEV_TX_OFFLOAD_TCP_TSO
                     ? "true" : "false");
            smap_add(args, "tx_csum_offload",
                     dev->tx_sw_csum ? "false" : "true");
        }
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
        /* The bridge only logs a failure here: the status column tells
         * the operator too, until a valid MTU or none is requested. */
        VLOG_WARN("%s: unsupported MTU %d (from %d to %d)",
                  netdev_get_name(netdev), mtu, VHOST_MTU_MIN, VHOST_MTU_MAX);
        ovs_mutex_lock(&vhost_mutex);
        free(dev->mtu_error);
        dev->mtu_error = xasprintf("unsupported MTU %d: must be from %d to "
                                   "%d", mtu, VHOST_MTU_MIN, VHOST_MTU_MAX);
        ovs_mutex_unlock(&vhost_mutex);
        netdev_change_seq_changed(netdev);
        return EINVAL;
    }

    ovs_mutex_lock(&vhost_mutex);
    if (dev->mtu_error) {
        free(dev->mtu_error);
        dev->mtu_error = NULL;
        netdev_change_seq_changed(netdev);
    }
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

/* Also serves vhost-client/set-admin-state. */
void
vhost_update_flags(struct netdev_vhost *dev, enum netdev_flags off,
                   enum netdev_flags on, enum netdev_flags *old_flagsp)
    OVS_REQUIRES(vhost_mutex)
{
    *old_flagsp = dev->flags;
    dev->flags |= on;
    dev->flags &= ~off;
    if (dev->flags != *old_flagsp) {
        atomic_store_relaxed(&dev->admin_up, (dev->flags & NETDEV_UP) != 0);
        netdev_change_seq_changed(&dev->up);
    }
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
    vhost_update_flags(dev, off, on, old_flagsp);
    ovs_mutex_unlock(&vhost_mutex);
    return 0;
}

static void
netdev_vhost_run(const struct netdev_class *class OVS_UNUSED)
{
    long long int now;
    struct netdev_vhost *dev;

    vhost_clients_run();
    vhost_stall_run();

    now = time_msec();
    ovs_mutex_lock(&vhost_mutex);
    vhost_mp_run();
    LIST_FOR_EACH (dev, list_node, &vhost_devs) {
        if (dev->reannounce_at && now >= dev->reannounce_at) {
            dev->reannounce_at = 0;
            netdev_change_seq_changed(&dev->up);
        }
        if (dev->conn && atomic_exchange(&dev->conn->datapath_changed,
                                         false)
            && ovsrcu_index_get(&dev->vid) >= 0) {
            const char *reason = dev->conn->slow_reason;

            VLOG_INFO("%s: %s datapath%s%s%s", vhost_name(dev),
                      reason ? "librte_vhost"
                      : dev->conn->vdev.packed ? "packed-ring" : "split-ring",
                      reason ? " (" : "", reason ? reason : "",
                      reason ? ")" : "");
            netdev_change_seq_changed(&dev->up);
        }
    }
    ovs_mutex_unlock(&vhost_mutex);
}

static void
netdev_vhost_wait(const struct netdev_class *class OVS_UNUSED)
{
    struct netdev_vhost *dev;
    bool receiving = false;

    ovs_mutex_lock(&vhost_mutex);
    LIST_FOR_EACH (dev, list_node, &vhost_devs) {
        if (dev->reannounce_at) {
            poll_timer_wait_until(dev->reannounce_at);
        }
        receiving = receiving || ovsrcu_index_get(&dev->vid) >= 0;
    }
    vhost_mp_wait(receiving);
    vhost_clients_wait();
    vhost_stall_wait();
    ovs_mutex_unlock(&vhost_mutex);
}

static int
netdev_vhost_class_init(void)
{
    vhost_unixctl_register();
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
    .rxq_recv = netdev_vhost_rxq_recv,                          \
    .set_policing = netdev_vhost_set_policing,                  \
    .get_qos_types = netdev_vhost_get_qos_types,                \
    .get_qos_capabilities = netdev_vhost_get_qos_capabilities,  \
    .get_qos = netdev_vhost_get_qos,                            \
    .set_qos = netdev_vhost_set_qos,                            \
    .get_queue = netdev_vhost_get_queue,                        \
    .set_queue = netdev_vhost_set_queue,                        \
    .delete_queue = netdev_vhost_delete_queue,                  \
    .get_queue_stats = netdev_vhost_get_queue_stats,            \
    .queue_dump_start = netdev_vhost_queue_dump_start,          \
    .queue_dump_next = netdev_vhost_queue_dump_next,            \
    .queue_dump_done = netdev_vhost_queue_dump_done

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
    if (vhost_postcopy_enabled && memory_locked()) {
        /* Locked memory would fault in all of the guests' memory when it
         * is mapped: the pages that postcopy has not copied yet. */
        VLOG_WARN("vhost-postcopy-support needs ovs-vswitchd without "
                  "--mlockall: postcopy support disabled");
        vhost_postcopy_enabled = false;
    }
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
