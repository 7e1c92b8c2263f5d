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


#ifndef NETDEV_DPDK_VHOST_PRIVATE_H
#define NETDEV_DPDK_VHOST_PRIVATE_H 1

/* What the units of the vhost-user netdev provider share: the port, the
 * connection and the vring, the locks that guard them, and the functions
 * that one unit offers the others.  Nothing outside the provider includes
 * this; the rest of Open vSwitch sees netdev-dpdk-vhost-client.h.
 *
 *   netdev-dpdk-vhost-client.c   the netdev classes: construct, configure,
 *                                reconfigure, status, statistics,
 *                                registration (main thread)
 *   netdev-dpdk-vhost-rxtx.c     receive and send: what the PMD threads
 *                                run for a port
 *   netdev-dpdk-vhost-virtq.[ch] the virtqueue datapath (split and packed
 *                                rings), on plain memory
 *   netdev-dpdk-vhost-conn.c     connections: librte_vhost's callbacks and
 *                                message hooks, pause and publish
 *   netdev-dpdk-vhost-socket.c   sockets: registration, connecting client
 *                                ports, stale server sockets
 *   netdev-dpdk-vhost-pool.c     shared mempools
 *   netdev-dpdk-vhost-qos.c      ingress policing and egress QoS
 *   netdev-dpdk-vhost-unixctl.c  the vhost-client/ commands */

#include <stdbool.h>
#include <stdint.h>

#include <linux/virtio_net.h>

#include <rte_spinlock.h>

#include "netdev-dpdk-vhost-virtq.h"
#include "netdev-provider.h"
#include "openvswitch/list.h"
#include "openvswitch/thread.h"
#include "openvswitch/vlog.h"
#include "ovs-atomic.h"
#include "ovs-rcu.h"
#include "packets.h"
#include "util.h"

struct rte_mempool;
struct rte_vhost_memory;
struct smap;
struct vhost_mp;
struct vhost_policer;
struct vhost_qos;

/* Every unit logs through the one VLOG module, "netdev_dpdk_vhost_client",
 * that netdev-dpdk-vhost-client.c defines. */
extern struct vlog_module *VLM_netdev_dpdk_vhost_client;
#ifndef NETDEV_VHOST_DEFINES_VLOG_MODULE
#define this_module (*VLM_netdev_dpdk_vhost_client)
#endif

#define VHOST_TX_RETRIES_DEFAULT 8
#define VHOST_TX_RETRIES_MAX 32

/* Queue pairs a guest can bring (DPDK's VHOST_MAX_QUEUE_PAIRS). */
#define VHOST_MAX_QUEUE_PAIRS 128
#define VHOST_QP_WORDS DIV_ROUND_UP(VHOST_MAX_QUEUE_PAIRS, 64)
#define VHOST_MAX_VRINGS (2 * VHOST_MAX_QUEUE_PAIRS)

/* Device ids librte_vhost hands out (its MAX_VHOST_DEVICE). */
#define VHOST_MAX_VID 1024

/* Virtqueue numbering: for queue pair 'q', the guest receives on vring
 * 2q (our tx) and transmits on vring 2q + 1 (our rx). */
#define VHOST_GUEST_RX_VRING(Q) ((Q) * 2)
#define VHOST_GUEST_TX_VRING(Q) ((Q) * 2 + 1)

/* What a guest may leave to us of the packets it sends: checksums and
 * segmentation. */
#define VHOST_HOST_OFFLOADS ((1ULL << VIRTIO_NET_F_CSUM)          \
                             | (1ULL << VIRTIO_NET_F_HOST_TSO4)   \
                             | (1ULL << VIRTIO_NET_F_HOST_TSO6)   \
                             | (1ULL << VIRTIO_NET_F_HOST_ECN)    \
                             | (1ULL << VIRTIO_NET_F_HOST_UFO))

#define VHOST_MTU_MIN 68
#define VHOST_MTU_MAX 9702
#define VHOST_MTU_DEFAULT ETH_PAYLOAD_MAX
#define VHOST_FRAME_OVERHEAD (ETH_HEADER_LEN + 4)  /* Header and CRC. */

/* Client ports' connection attempts back off from FIRST to MAX ms apart
 * (see netdev-dpdk-vhost-socket.c). */
#define VHOST_KICK_FIRST_MS 1
#define VHOST_KICK_MAX_MS 8000

/* Our own counters, beyond struct netdev_stats, as custom statistics
 * named "ovs_<NAME>": each is counted by the rx or the tx queues. */
#define VHOST_CUSTOM_STATS                          \
    VHOST_CUSTOM_STAT(tx, tx_retries)               \
    VHOST_CUSTOM_STAT(tx, tx_failure_drops)         \
    VHOST_CUSTOM_STAT(tx, tx_mtu_exceeded_drops)    \
    VHOST_CUSTOM_STAT(tx, tx_qos_drops)             \
    VHOST_CUSTOM_STAT(rx, rx_qos_drops)             \
    VHOST_CUSTOM_STAT(tx, tx_disconnected_drops)    \
    VHOST_CUSTOM_STAT(rx, rx_oversize_drops)        \
    VHOST_CUSTOM_STAT(rx, rx_bad_desc_drops)        \
    VHOST_CUSTOM_STAT(tx, tx_bad_desc_drops)        \
    VHOST_CUSTOM_STAT(rx, rx_budget_drops)          \
    VHOST_CUSTOM_STAT(tx, tx_budget_drops)          \
    VHOST_CUSTOM_STAT(rx, rx_bad_offload_drops)

/* Counters of one queue.  Each is written by the one thread that polls
 * (rx) or sends on (tx) the queue; other threads only read them. */
struct vhost_queue_stats {
    uint64_t packets;
    uint64_t bytes;
    uint64_t dropped;
#define VHOST_CUSTOM_STAT(DIR, NAME) uint64_t NAME;
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
        atomic_int vring_qp;    /* Guest queue pair to enqueue to, or -1. */
        struct vhost_queue_stats stats;
    );
};

/* Ingress policing as an operator set it: kbits and kpkts per second and
 * bursts in kbits and kpkts, as netdev_set_policing() passes them. */
struct vhost_policing_conf {
    uint32_t kbits_rate, kbits_burst, kpkts_rate, kpkts_burst;
};

/* A vring of a connection: the ring itself (for our datapath), the lock
 * that a burst holds, and whether the ring is usable.
 *
 * A connection's rings change only through vhost-user messages.  Before
 * librte_vhost handles a message (pre_msg_handle), the control thread
 * pauses the datapath of the connection: it sets 'paused', then takes and
 * releases each vring's lock, so that a burst that started before is done;
 * then it hands our ring indexes to librte_vhost.  After the message
 * (post_msg_handle) it reads the rings, indexes, memory table and
 * features back and lets the datapath go on.  The PMD threads take a
 * vring's lock around each burst (a receiving thread gives up if it is
 * taken) and do nothing while 'paused' is set.
 *
 * librte_vhost's thread holds every virtqueue's own lock of librte_vhost
 * while it pauses us, and rte_vhost_enqueue_burst() waits for that lock:
 * so a burst on librte_vhost's datapath does not hold ours while it
 * sends.  It counts itself in 'slow_busy' instead (under our lock, so a
 * pause sees it), and a connection that moves to our datapath meanwhile
 * takes the ring indexes from librte_vhost again once 'slow_busy' is back
 * to zero ('resync'). */
struct vhost_vring {
    rte_spinlock_t lock;
    int index;                      /* In the connection. */
    bool ready;                     /* 'q' describes a ring that our
                                     * datapath may use.  Written by the
                                     * control thread while paused. */
    bool resync;                    /* 'q''s indexes may be stale: read
                                     * them again when 'slow_busy' is 0.
                                     * Control thread while paused, else
                                     * 'lock' holder. */
    ATOMIC(const char *) bad;       /* Why the ring that librte_vhost
                                     * reports must not be used (no
                                     * datapath touches it), or NULL.
                                     * Written by the control thread while
                                     * paused. */
    atomic_uint slow_busy;          /* Sends on librte_vhost's datapath
                                     * under way without 'lock'. */
    /* While the hypervisor logs dirty pages of a packed ring: the guest-
     * physical extents that librte_vhost's datapath writes but does not
     * log (see vhost_conn_refresh()), else 0.  Written by the control
     * thread while paused. */
    uint64_t log_desc_gpa, log_desc_len;
    uint64_t log_event_gpa;
    struct vhost_virtq q;           /* Ring fields: control thread while
                                     * paused; the rest: 'lock' holder. */
};

/* A vhost-user connection: created in new_connection(), freed when it
 * ends.  Its vhost-user callbacks use it from librte_vhost's thread; the
 * PMD threads use it through the port while the port's 'vid' is
 * published. */
struct vhost_conn {
    int vid;
    atomic_bool paused;
    atomic_bool rarp_pending;       /* Announce 'rarp_mac' (live migration). */
    struct eth_addr rarp_mac;
    atomic_bool datapath_changed;   /* 'slow_reason' (and so 'fast') changed
                                     * since the main thread last looked. */

    /* Written by the control thread while paused. */
    bool fast;                      /* Our datapath, not librte_vhost's. */
    const char *slow_reason;        /* Why not 'fast'. */
    struct vhost_virtq_dev vdev;    /* Guest memory and features. */

    /* Whether librte_vhost has a memory table (it must, before we may ask
     * for it): from a successful SET_MEM_TABLE to the next one or to a
     * RESET_OWNER. */
    bool has_mem;

    /* Allocated when librte_vhost first reports each vring (never freed
     * before the connection is), read by any thread. */
    ATOMIC(struct vhost_vring *) vrings[VHOST_MAX_VRINGS];
};

/* Guards every port's control state and 'vhost_devs'.  Never held across
 * rte_vhost_driver_*() calls: DPDK calls back into us from them, and its
 * reconnect thread calls new_connection() with its own lock held. */
extern struct ovs_mutex vhost_mutex;

/* Guards every port's tx queue map, so that vring_state_changed() can
 * change it at once, while DPDK holds the device's virtqueue locks: it is
 * taken after 'vhost_mutex', for a few stores, and held across no call
 * into DPDK.  PMD threads never take it. */
extern struct ovs_mutex vhost_txmap_mutex;

/* One port.
 *
 * Three kinds of state:
 *
 *   - Control state, guarded by 'vhost_mutex': configuration, what the
 *     vhost callbacks requested, what was applied.
 *
 *   - Datapath state read by PMD threads without locks: 'vid' (published
 *     with RCU), 'conn', 'mp', 'rxqs', 'txqs', 'max_frame_len',
 *     'tx_sw_csum' and 'up.ol_flags'.  Apart from 'vid' these change only
 *     in netdev_vhost_reconfigure(), when no PMD thread polls or sends on
 *     the port, or before 'vid' is published ('conn' changes only while
 *     'vid' is not published; see struct vhost_conn for what it holds).
 *
 *   - Vring enable bits, written by the vring_state_changed callback with
 *     atomics because DPDK calls it with the device's virtqueue locks
 *     held, where taking 'vhost_mutex' could deadlock with a PMD, and the
 *     tx queue map that follows them ('txqs[*].vring_qp'), which the
 *     callback rewrites under 'vhost_txmap_mutex'.  'txqs' and 'up.n_txq'
 *     change with both mutexes held, so either one keeps them.
 */
struct netdev_vhost {
    struct netdev up;
    bool server;                        /* dpdkvhostuser?  Immutable. */

    /* Datapath. */
    ovsrcu_index vid;                   /* Ready device, or -1. */
    struct vhost_conn *conn;            /* Connection, or NULL. */
    struct rte_mempool *mp;             /* vmp->mp, or NULL. */
    struct rte_mempool *big_mp;         /* With userspace TSO: mbufs for
                                         * 64 kB segments, or NULL. */
    struct vhost_rxq_state *rxqs;       /* up.n_rxq entries. */
    struct vhost_txq_state *txqs;       /* up.n_txq entries. */
    uint32_t max_frame_len;
    bool tx_sw_csum;                    /* Complete checksums for the guest. */
    atomic_bool admin_up;
    atomic_int tx_retries_max;
    OVSRCU_TYPE(struct vhost_policer *) policer;
    OVSRCU_TYPE(struct vhost_qos *) qos;

    /* Vring enable state of the current connection. */
    atomic_uint64_t rx_enabled[VHOST_QP_WORDS];
    atomic_uint64_t tx_enabled[VHOST_QP_WORDS];
    atomic_uint64_t tx_off[VHOST_QP_WORDS];     /* Reported disabled. */

    /* The guest queue pairs that the tx queue map ('txqs[*].vring_qp')
     * spreads our tx queues over, 0 before a device is first published.
     * The map itself changes with 'vhost_txmap_mutex' held (and 'txqs'
     * and 'up.n_txq' too); PMD threads read it with atomics. */
    int tx_map_n_qp OVS_GUARDED_BY(vhost_txmap_mutex);

    /* Control. */
    struct ovs_list list_node OVS_GUARDED_BY(vhost_mutex);
    char *path OVS_GUARDED_BY(vhost_mutex);      /* Configured. */
    char *reg_path OVS_GUARDED_BY(vhost_mutex);  /* Registered. */
    atomic_int conn_vid;          /* Connection, or -1; set under mutex. */
    int req_vid OVS_GUARDED_BY(vhost_mutex);     /* Ready device, or -1. */
    int req_n_rxq OVS_GUARDED_BY(vhost_mutex);
    int req_n_txq OVS_GUARDED_BY(vhost_mutex);
    int req_numa OVS_GUARDED_BY(vhost_mutex);
    int req_mtu OVS_GUARDED_BY(vhost_mutex);
    struct vhost_mp *vmp OVS_GUARDED_BY(vhost_mutex);
    int mp_slots OVS_GUARDED_BY(vhost_mutex);    /* Held in 'vmp'. */
    int numa OVS_GUARDED_BY(vhost_mutex);        /* Of 'mp'. */
    int mtu OVS_GUARDED_BY(vhost_mutex);
    uint64_t features OVS_GUARDED_BY(vhost_mutex);       /* Negotiated. */
    uint64_t offered OVS_GUARDED_BY(vhost_mutex);        /* By our socket. */
    uint64_t offered_proto OVS_GUARDED_BY(vhost_mutex);  /* Same, protocol. */
    struct eth_addr hwaddr OVS_GUARDED_BY(vhost_mutex);
    enum netdev_flags flags OVS_GUARDED_BY(vhost_mutex);
    struct vhost_queue_stats base_rx OVS_GUARDED_BY(vhost_mutex);
    struct vhost_queue_stats base_tx OVS_GUARDED_BY(vhost_mutex);
    uint64_t connects OVS_GUARDED_BY(vhost_mutex);
    /* Why the guest last stopped the device of the current connection, or
     * NULL (a static string; reset when the device starts again). */
    const char *stopped OVS_GUARDED_BY(vhost_mutex);
    long long int reannounce_at OVS_GUARDED_BY(vhost_mutex);

    /* Client ports: connecting (see vhost_client_connect()).  'registered'
     * says that librte_vhost has a socket for 'reg_path' (server ports:
     * always, once registered; client ports: from a connection until the
     * next attempt), 'kick_at' when to try next (LLONG_MAX: when a socket
     * file appears), 'kick_delay' the back-off after that, 'kick_file'
     * the socket file of the last attempt (or the one that appeared, for
     * the next) and 'kick_connects' the value of 'connects' when the
     * current connection was made. */
    bool registered OVS_GUARDED_BY(vhost_mutex);
    long long int kick_at OVS_GUARDED_BY(vhost_mutex);
    int kick_delay OVS_GUARDED_BY(vhost_mutex);
    uint64_t kick_file OVS_GUARDED_BY(vhost_mutex);
    uint64_t kick_connects OVS_GUARDED_BY(vhost_mutex);
    struct vhost_policing_conf policing OVS_GUARDED_BY(vhost_mutex);
    char *mtu_error OVS_GUARDED_BY(vhost_mutex);  /* Last refused MTU. */
    char *qos_error OVS_GUARDED_BY(vhost_mutex);  /* Last refused QoS. */
    /* Why the last vhost-user connection was refused (a static string), or
     * NULL once one is accepted. */
    const char *conn_error OVS_GUARDED_BY(vhost_mutex);

    /* Totals of the per-vring counters of the connections that ended
     * (the current one keeps its own in 'conn'). */
    uint64_t (*vring_base)[VHOST_N_VRING_STATS] OVS_GUARDED_BY(vhost_mutex);
    int n_vring_base OVS_GUARDED_BY(vhost_mutex);   /* Vrings. */
};

/* Every port, in the order they were created. */
extern struct ovs_list vhost_devs OVS_GUARDED_BY(vhost_mutex);

/* Global knobs, from Open_vSwitch other_config at registration. */
extern char *vhost_sock_dir;
extern bool vhost_iommu_enabled;
extern bool vhost_postcopy_enabled;

static inline struct netdev_vhost *
netdev_vhost_cast(const struct netdev *netdev)
{
    return CONTAINER_OF(netdev, struct netdev_vhost, up);
}

static inline const char *
vhost_name(const struct netdev_vhost *dev)
{
    return netdev_get_name(&dev->up);
}

static inline uint32_t
vhost_frame_len(int mtu)
{
    return mtu + VHOST_FRAME_OVERHEAD;
}

/* Bit helpers for the vring enable maps. */
static inline bool
qp_bit_get(atomic_uint64_t *map, int qp)
{
    uint64_t word;

    atomic_read_relaxed(&map[qp / 64], &word);
    return (word >> (qp % 64)) & 1;
}

/* Returns true if the bit changed. */
static inline bool
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

static inline void
qp_map_clear(atomic_uint64_t *map)
{
    for (int i = 0; i < VHOST_QP_WORDS; i++) {
        atomic_store_relaxed(&map[i], 0);
    }
}

/* The librte_vhost connection of 'dev', or -1. */
static inline int
vhost_conn_vid(const struct netdev_vhost *dev)
{
    int vid;

    atomic_read_relaxed(&CONST_CAST(struct netdev_vhost *, dev)->conn_vid,
                        &vid);
    return vid;
}

static inline struct vhost_vring *
vhost_conn_vring(const struct vhost_conn *c, int i)
{
    struct vhost_vring *vr;

    atomic_read_explicit(&CONST_CAST(struct vhost_conn *, c)->vrings[i], &vr,
                         memory_order_acquire);
    return vr;
}

static inline bool
vhost_conn_paused(const struct vhost_conn *c)
{
    bool paused;

    atomic_read_explicit(&CONST_CAST(struct vhost_conn *, c)->paused,
                         &paused, memory_order_acquire);
    return paused;
}

/* Why the rings of 'vr' must not be used, or NULL. */
static inline const char *
vhost_vring_bad(const struct vhost_vring *vr)
{
    const char *bad;

    atomic_read_relaxed(&CONST_CAST(struct vhost_vring *, vr)->bad, &bad);
    return bad;
}

/* netdev-dpdk-vhost-client.c. */
void vhost_sum_stats(const struct netdev_vhost *, struct vhost_queue_stats *rx,
                     struct vhost_queue_stats *tx)
    OVS_REQUIRES(vhost_mutex);
void vhost_put_status(const struct netdev_vhost *, struct smap *)
    OVS_REQUIRES(vhost_mutex);
void vhost_update_flags(struct netdev_vhost *, enum netdev_flags off,
                        enum netdev_flags on, enum netdev_flags *old_flagsp)
    OVS_REQUIRES(vhost_mutex);

/* netdev-dpdk-vhost-conn.c. */
extern const struct rte_vhost_device_ops vhost_device_ops;

/* vhost-user messages and connections that librte_vhost's thread took so
 * far: it made progress if this moved. */
extern atomic_count vhost_msg_count;
void vhost_publish(struct netdev_vhost *, int vid) OVS_REQUIRES(vhost_mutex);
void vhost_forget_connection(struct netdev_vhost *)
    OVS_REQUIRES(vhost_mutex);
void vhost_map_txqs(struct netdev_vhost *, int n_qp)
    OVS_REQUIRES(vhost_mutex) OVS_EXCLUDED(vhost_txmap_mutex);
uint64_t vhost_tx_offloads(uint64_t features);
bool vhost_tx_sw_csum(uint64_t features);

/* netdev-dpdk-vhost-socket.c. */
int vhost_check_path(const struct netdev_vhost *, const char *path,
                     char **errp)
    OVS_REQUIRES(vhost_mutex);
int vhost_socket_set_path(struct netdev_vhost *, const char *path,
                          char **errp)
    OVS_EXCLUDED(vhost_mutex);
void vhost_unregister(const char *path, bool server)
    OVS_EXCLUDED(vhost_mutex);
void vhost_client_back_off(struct netdev_vhost *) OVS_REQUIRES(vhost_mutex);
void vhost_clients_run(void) OVS_EXCLUDED(vhost_mutex);
void vhost_clients_wait(void) OVS_REQUIRES(vhost_mutex);
void vhost_stall_run(void) OVS_EXCLUDED(vhost_mutex);
void vhost_stall_wait(void) OVS_REQUIRES(vhost_mutex);

/* netdev-dpdk-vhost-pool.c. */
void vhost_mp_update(struct netdev_vhost *) OVS_REQUIRES(vhost_mutex);
struct rte_mempool *vhost_big_mp_get(int numa) OVS_REQUIRES(vhost_mutex);
void vhost_mp_put(struct vhost_mp *, int slots) OVS_REQUIRES(vhost_mutex);
void vhost_mp_run(void) OVS_REQUIRES(vhost_mutex);
void vhost_mp_wait(bool receiving) OVS_REQUIRES(vhost_mutex);

/* netdev-dpdk-vhost-qos.c: the class's QoS functions, and the meters that
 * the datapath runs. */
int netdev_vhost_set_policing(struct netdev *, uint32_t kbits_rate,
                              uint32_t kbits_burst, uint32_t kpkts_rate,
                              uint32_t kpkts_burst);
int netdev_vhost_get_qos_types(const struct netdev *, struct sset *types);
int netdev_vhost_get_qos_capabilities(const struct netdev *,
                                      const char *type,
                                      struct netdev_qos_capabilities *);
int netdev_vhost_get_qos(const struct netdev *, const char **typep,
                         struct smap *details);
int netdev_vhost_set_qos(struct netdev *, const char *type,
                         const struct smap *details);
int netdev_vhost_get_queue(const struct netdev *, unsigned int queue_id,
                           struct smap *details);
int netdev_vhost_set_queue(struct netdev *, unsigned int queue_id,
                           const struct smap *details);
int netdev_vhost_delete_queue(struct netdev *, unsigned int queue_id);
int netdev_vhost_get_queue_stats(const struct netdev *, unsigned int queue_id,
                                 struct netdev_queue_stats *);
int netdev_vhost_queue_dump_start(const struct netdev *, void **statep);
int netdev_vhost_queue_dump_next(const struct netdev *, void *state,
                                 unsigned int *queue_id,
                                 struct smap *details);
int netdev_vhost_queue_dump_done(const struct netdev *, void *state);
void vhost_policer_replace(struct netdev_vhost *, struct vhost_policer *)
    OVS_REQUIRES(vhost_mutex);
void vhost_qos_replace(struct netdev_vhost *, struct vhost_qos *)
    OVS_REQUIRES(vhost_mutex);
int vhost_policer_run(struct vhost_policer *, struct rte_mbuf **pkts, int n);
int vhost_qos_run(struct vhost_qos *, struct rte_mbuf **pkts, int n,
                  uint64_t *bytes);

/* netdev-dpdk-vhost-rxtx.c: the class's datapath functions. */
struct netdev_rxq *netdev_vhost_rxq_alloc(void);
int netdev_vhost_rxq_construct(struct netdev_rxq *);
void netdev_vhost_rxq_destruct(struct netdev_rxq *);
void netdev_vhost_rxq_dealloc(struct netdev_rxq *);
bool netdev_vhost_rxq_enabled(struct netdev_rxq *);
int netdev_vhost_rxq_recv(struct netdev_rxq *, struct dp_packet_batch *,
                          int *qfill);
int netdev_vhost_send(struct netdev *, int qid, struct dp_packet_batch *,
                      bool concurrent_txq);

/* netdev-dpdk-vhost-unixctl.c. */
void vhost_unixctl_register(void);

#endif /* netdev-dpdk-vhost-private.h */
