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
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/virtio_net.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_meter.h>
#include <rte_prefetch.h>
#include <rte_spinlock.h>
#include <rte_vhost.h>

#include "coverage.h"
#include "csum.h"
#include "dirs.h"
#include "dp-packet.h"
#include "fatal-signal.h"
#include "hash.h"
#include "netdev-provider.h"
#include "openvswitch/dynamic-string.h"
#include "openvswitch/hmap.h"
#include "openvswitch/list.h"
#include "openvswitch/vlog.h"
#include "ovs-atomic.h"
#include "ovs-rcu.h"
#include "ovs-thread.h"
#include "packets.h"
#include "openvswitch/poll-loop.h"
#include "smap.h"
#include "simap.h"
#include "sset.h"
#include "timeval.h"
#include "unixctl.h"
#include "userspace-tso.h"
#include "util.h"

VLOG_DEFINE_THIS_MODULE(netdev_dpdk_vhost_client);
static struct vlog_rate_limit rl = VLOG_RATE_LIMIT_INIT(5, 20);

COVERAGE_DEFINE(vhost_client_new_device);
COVERAGE_DEFINE(vhost_client_destroy_device);
COVERAGE_DEFINE(vhost_client_vring_state);
COVERAGE_DEFINE(vhost_client_mempool_create);
COVERAGE_DEFINE(vhost_client_mempool_retire);
COVERAGE_DEFINE(vhost_client_tx_copy);
COVERAGE_DEFINE(vhost_client_tx_contention);
COVERAGE_DEFINE(vhost_client_qos_change);
COVERAGE_DEFINE(vhost_client_tx_sw_csum);
COVERAGE_DEFINE(vhost_client_tx_bad_offload);
COVERAGE_DEFINE(vhost_client_connect_attempt);
COVERAGE_DEFINE(vhost_client_rx_no_mbuf);
COVERAGE_DEFINE(vhost_client_bad_desc);

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
#define VHOST_BUF_ALIGN 1024

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
    VHOST_CUSTOM_STAT(rx, rx_bad_desc_drops)

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

/* QoS.
 *
 * Ingress policing (Interface ingress_policing_*) meters what the guest
 * sends; egress QoS (Port qos, types "egress-policer" and "trtcm-policer")
 * meters what we send to it.  Meters count IP bytes: a packet's length
 * without its Ethernet header.
 *
 * Each is an immutable configuration plus meter state, published to the
 * PMD threads with RCU and replaced whole when the configuration changes.
 * The meters are shared by every thread that polls or sends on the port,
 * under the object's spinlock, taken once per burst. */
struct vhost_srtcm {
    struct rte_meter_srtcm_profile profile;
    struct rte_meter_srtcm meter;
};

struct vhost_policer {
    rte_spinlock_t lock;
    bool by_bytes;                 /* ingress_policing_rate. */
    bool by_pkts;                  /* ingress_policing_kpkts_rate. */
    struct vhost_srtcm bytes;
    struct vhost_srtcm pkts;       /* One token per packet. */
};

/* What an operator set: kbits and kpkts per second and bursts in kbits and
 * kpkts, as netdev_set_policing() passes them. */
struct vhost_policing_conf {
    uint32_t kbits_rate, kbits_burst, kpkts_rate, kpkts_burst;
};

/* Rates in bytes per second, bursts in bytes (QoS and Queue other_config
 * keys cir, cbs, eir, ebs). */
struct vhost_rates {
    uint64_t cir, cbs, eir, ebs;
};

enum vhost_qos_type {
    VHOST_QOS_NONE,
    VHOST_QOS_EGRESS_POLICER,      /* srTCM on cir/cbs, green passes. */
    VHOST_QOS_TRTCM_POLICER,       /* RFC 4115 per queue, then per port. */
};

static const char *const vhost_qos_names[] = {
    [VHOST_QOS_NONE] = "",
    [VHOST_QOS_EGRESS_POLICER] = "egress-policer",
    [VHOST_QOS_TRTCM_POLICER] = "trtcm-policer",
};

struct vhost_trtcm {
    struct rte_meter_trtcm_rfc4115_profile profile;
    struct rte_meter_trtcm_rfc4115 meter;
};

/* A trtcm-policer queue.  Packets choose one by their skb_priority (the
 * OpenFlow set_queue action); those with no such queue use queue 0. */
struct vhost_qos_queue {
    struct hmap_node node;         /* By hash of 'id'. */
    uint32_t id;
    struct vhost_rates rates;
    struct vhost_trtcm trtcm;
    uint64_t tx_packets, tx_bytes, tx_errors;   /* Under the QoS lock. */
    long long int created;
};

struct vhost_qos {
    rte_spinlock_t lock;
    enum vhost_qos_type type;
    struct vhost_rates rates;
    struct vhost_srtcm srtcm;      /* egress-policer. */
    struct vhost_trtcm trtcm;      /* trtcm-policer, port level. */
    struct hmap queues;            /* trtcm-policer: vhost_qos_queue. */
};

/* Per-vring counters, kept by the datapath for each connection and added
 * to the port's totals when the connection ends.  They carry librte_vhost's
 * names (see rte_vhost_vring_stats_get_names()); "guest_notifications"
 * counts the interrupts that our own datapath sent the guest. */
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

static const char *const vhost_vring_stat_names[] = {
#define VHOST_VRING_STAT(NAME) #NAME,
    VHOST_VRING_STATS
#undef VHOST_VRING_STAT
};

/* Our datapath for split virtqueues.
 *
 * librte_vhost negotiates with the guest's hypervisor and maps its memory
 * and rings; for a guest on split virtqueues without offloads, dirty page
 * logging or an IOMMU (what most guests use), the PMD threads then move
 * packets through the rings themselves rather than with
 * rte_vhost_dequeue_burst() and rte_vhost_enqueue_burst(): a burst reads
 * the avail ring once, prefetches every descriptor and then every buffer
 * before it copies, and takes no lock of librte_vhost's.  Packed rings and
 * the rest stay with librte_vhost's functions.
 *
 * A connection's rings change only through vhost-user messages.  Before
 * librte_vhost handles a message (pre_msg_handle), the control thread
 * pauses the datapath of the connection: it sets 'paused', then takes and
 * releases each vring's lock, so that a burst that started before is done;
 * then it hands our ring indexes to librte_vhost.  After the message
 * (post_msg_handle) it reads the rings, indexes, memory table and
 * features back and lets the datapath go on.  The PMD threads take a
 * vring's lock around each burst (a receiving thread gives up if it is
 * taken) and do nothing while 'paused' is set. */
struct vhost_vring {
    rte_spinlock_t lock;
    int index;                      /* In the connection. */

    /* Written by the control thread while paused. */
    bool ready;                     /* The fields below describe a ring. */
    uint16_t size;                  /* A power of 2. */
    uint16_t last_avail;            /* Next avail ring entry to take. */
    uint16_t last_used;             /* Next used ring entry to fill. */
    struct vring_desc *desc;
    struct vring_avail *avail;
    struct vring_used *used;
    int callfd;                     /* Interrupts the guest, or -1. */

    /* Written by the thread that holds 'lock'. */
    uint16_t signalled_used;        /* 'last_used' at the last interrupt. */
    bool signalled_valid;
    uint32_t region;                /* Memory region of the last lookup. */
    uint64_t stats[VHOST_N_VRING_STATS];
};

#define VHOST_MAX_VRINGS (2 * VHOST_MAX_QUEUE_PAIRS)

/* A vhost-user connection: created in new_connection(), freed when it
 * ends.  Its vhost-user callbacks use it from librte_vhost's thread; the
 * PMD threads use it through the port while the port's 'vid' is
 * published. */
struct vhost_conn {
    int vid;
    atomic_bool paused;
    atomic_bool rarp_pending;       /* Announce 'rarp_mac' (live migration). */
    struct eth_addr rarp_mac;

    /* Written by the control thread while paused. */
    bool fast;                      /* Our datapath, not librte_vhost's. */
    bool event_idx;                 /* VIRTIO_RING_F_EVENT_IDX. */
    bool in_order;                  /* VIRTIO_F_IN_ORDER. */
    bool mrg_rxbuf;                 /* VIRTIO_NET_F_MRG_RXBUF. */
    uint16_t hdr_len;               /* Of the virtio-net header. */
    const char *slow_reason;        /* Why not 'fast'. */
    struct rte_vhost_memory *mem;   /* Guest memory, or NULL. */

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
static struct ovs_mutex vhost_mutex = OVS_MUTEX_INITIALIZER;

/* Guards every port's tx queue map, so that vring_state_changed() can
 * change it at once, while DPDK holds the device's virtqueue locks: it is
 * taken after 'vhost_mutex', for a few stores, and held across no call
 * into DPDK.  PMD threads never take it. */
static struct ovs_mutex vhost_txmap_mutex = OVS_MUTEX_INITIALIZER;

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
    long long int reannounce_at OVS_GUARDED_BY(vhost_mutex);

    /* Client ports: connecting (see vhost_client_connect()).  'registered'
     * says that librte_vhost has a socket for 'reg_path' (server ports:
     * always, once registered; client ports: from a connection until the
     * next attempt), 'kick_at' when to try next (LLONG_MAX: when a socket
     * file appears), 'kick_delay' the back-off after that, 'kick_file'
     * the socket file of the last attempt and 'kick_connects' the value of
     * 'connects' when the current connection was made. */
    bool registered OVS_GUARDED_BY(vhost_mutex);
    long long int kick_at OVS_GUARDED_BY(vhost_mutex);
    int kick_delay OVS_GUARDED_BY(vhost_mutex);
    uint64_t kick_file OVS_GUARDED_BY(vhost_mutex);
    uint64_t kick_connects OVS_GUARDED_BY(vhost_mutex);
    struct vhost_policing_conf policing OVS_GUARDED_BY(vhost_mutex);
    char *mtu_error OVS_GUARDED_BY(vhost_mutex);  /* Last refused MTU. */
    char *qos_error OVS_GUARDED_BY(vhost_mutex);  /* Last refused QoS. */

    /* Totals of the per-vring counters of the connections that ended
     * (the current one keeps its own in 'conn'). */
    uint64_t (*vring_base)[VHOST_N_VRING_STATS] OVS_GUARDED_BY(vhost_mutex);
    int n_vring_base OVS_GUARDED_BY(vhost_mutex);   /* Vrings. */
};

struct netdev_rxq_vhost {
    struct netdev_rxq up;
};

static struct ovs_list vhost_devs OVS_GUARDED_BY(vhost_mutex)
    = OVS_LIST_INITIALIZER(&vhost_devs);

/* Port of each librte_vhost connection, for callbacks that must not lock. */
static ATOMIC(struct netdev_vhost *) vid_devs[VHOST_MAX_VID];

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

/* Client ports connect by themselves, from the main thread, and nothing
 * else connects them: librte_vhost's reconnection (a thread that retries
 * every second, and that could connect while we register a socket again)
 * is off.  A client port that is not connected tries:
 *
 *   - when it is configured;
 *   - when a new socket file appears at its path: inotify on the socket's
 *     directory, and a stat() of the path every VHOST_POLL_MS for what
 *     inotify cannot see (a directory created later, or replaced);
 *   - when its connection closes: at once if a guest device was ready on
 *     it, otherwise after the back-off;
 *   - after a failed attempt, VHOST_KICK_FIRST_MS later, then twice as
 *     long each time, up to VHOST_KICK_MAX_MS apart: a server may have
 *     bound its socket without listening on it yet.
 *
 * A port whose socket file does not exist does not try at all.  A server
 * cannot listen on a socket file without creating it anew, so after a few
 * refusals the attempts thin out until one appears. */
#define VHOST_KICK_FIRST_MS 1
#define VHOST_KICK_MAX_MS 8000
#define VHOST_POLL_MS 1000

/* The directories watched with inotify, each with its watch descriptor.
 * Used by the main thread only (set_config, run and wait). */
static int vhost_inotify_fd = -1;
static struct simap vhost_watched_dirs
    = SIMAP_INITIALIZER(&vhost_watched_dirs);
static struct sset vhost_unwatchable_dirs
    = SSET_INITIALIZER(&vhost_unwatchable_dirs);
static long long int vhost_next_poll = LLONG_MIN;

/* Global knobs, from Open_vSwitch other_config at registration. */
static char *vhost_sock_dir;
static bool vhost_iommu_enabled;
static bool vhost_postcopy_enabled;

static void vhost_policer_replace(struct netdev_vhost *,
                                  struct vhost_policer *)
    OVS_REQUIRES(vhost_mutex);
static void vhost_qos_replace(struct netdev_vhost *, struct vhost_qos *)
    OVS_REQUIRES(vhost_mutex);

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

static int
vhost_conn_vid(const struct netdev_vhost *dev)
{
    int vid;

    atomic_read_relaxed(&CONST_CAST(struct netdev_vhost *, dev)->conn_vid,
                        &vid);
    return vid;
}

/* After rte_vhost_driver_unregister(), which destroys the connection
 * without telling destroy_connection(). */
static void vhost_conn_end(struct netdev_vhost *, bool keep_stats)
    OVS_REQUIRES(vhost_mutex);

static void
vhost_forget_connection(struct netdev_vhost *dev)
    OVS_REQUIRES(vhost_mutex)
{
    int vid = vhost_conn_vid(dev);

    if (vid >= 0 && vid_dev_get(vid) == dev) {
        vid_dev_set(vid, NULL);
    }
    atomic_store_relaxed(&dev->conn_vid, -1);
    /* The counters of a connection to a socket that the port left go with
     * it. */
    vhost_conn_end(dev, false);
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

/* Creates a mempool of 'n_mbufs' mbufs that are dp_packets able to hold
 * a frame of 'mtu' bytes of payload, on NUMA node 'numa'. */
static struct rte_mempool *
vhost_mp_create(int numa, int mtu, uint32_t n_mbufs)
{
    static atomic_count mp_serial = ATOMIC_COUNT_INIT(0);
    char name[RTE_MEMPOOL_NAMESIZE];
    uint32_t data_room, priv, elt;
    struct rte_mempool *mp;

    data_room = ROUND_UP(vhost_frame_len(mtu) + 2 * VLAN_HEADER_LEN,
                         VHOST_BUF_ALIGN) + RTE_PKTMBUF_HEADROOM;
    /* The private area holds the rest of struct dp_packet; pad it so that
     * every element stays cache-line aligned. */
    priv = sizeof(struct dp_packet) - sizeof(struct rte_mbuf);
    elt = sizeof(struct dp_packet) + data_room;
    priv += ROUND_UP(elt, RTE_CACHE_LINE_SIZE) - elt;

    snprintf(name, sizeof name, "vhc%u_n%d_m%d",
             atomic_count_inc(&mp_serial), numa, mtu);
    mp = rte_pktmbuf_pool_create(name, n_mbufs, VHOST_MP_CACHE, priv,
                                 data_room, numa);
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
static void
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
static void
vhost_mp_update(struct netdev_vhost *dev)
    OVS_REQUIRES(vhost_mutex)
{
    int slots = vhost_mp_port_slots(dev->up.n_rxq);
    struct vhost_mp *old = dev->vmp;

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

/* Connections (see struct vhost_conn). */

/* Virtio features that our datapath leaves to librte_vhost: packed rings,
 * dirty page logging (live migration), an IOMMU, and the offloads that a
 * guest may ask of us in the virtio-net header (VHOST_HOST_OFFLOADS). */
static const char *
vhost_slow_reason(uint64_t features)
{
    if (features & (1ULL << VIRTIO_F_RING_PACKED)) {
        return "packed virtqueues";
    } else if (features & (1ULL << VHOST_F_LOG_ALL)) {
        return "dirty page logging";
    } else if (features & (1ULL << VIRTIO_F_IOMMU_PLATFORM)) {
        return "IOMMU";
    } else if (userspace_tso_enabled() || features & VHOST_HOST_OFFLOADS) {
        return "offloads";
    }
    return NULL;
}

static struct vhost_vring *
vhost_conn_vring(const struct vhost_conn *c, int i)
{
    struct vhost_vring *vr;

    atomic_read_explicit(&CONST_CAST(struct vhost_conn *, c)->vrings[i], &vr,
                         memory_order_acquire);
    return vr;
}

static struct vhost_conn *
vhost_conn_create(int vid)
{
    struct vhost_conn *c = xzalloc_cacheline(sizeof *c);

    c->vid = vid;
    atomic_init(&c->paused, false);
    atomic_init(&c->rarp_pending, false);
    c->slow_reason = "not negotiated yet";
    for (int i = 0; i < VHOST_MAX_VRINGS; i++) {
        atomic_init(&c->vrings[i], NULL);
    }
    return c;
}

static void
vhost_conn_destroy(struct vhost_conn *c)
{
    if (c) {
        for (int i = 0; i < VHOST_MAX_VRINGS; i++) {
            free_cacheline(vhost_conn_vring(c, i));
        }
        free(c->mem);
        free_cacheline(c);
    }
}

/* Stops the datapath of 'c' (see struct vhost_conn) and hands the ring
 * indexes that it advanced to librte_vhost. */
static void
vhost_conn_pause(struct vhost_conn *c)
{
    atomic_store(&c->paused, true);
    for (int i = 0; i < VHOST_MAX_VRINGS; i++) {
        struct vhost_vring *vr = vhost_conn_vring(c, i);

        if (vr) {
            /* Wait for a burst that started before 'paused' was set. */
            rte_spinlock_lock(&vr->lock);
            rte_spinlock_unlock(&vr->lock);
            if (c->fast && vr->ready) {
                rte_vhost_set_vring_base(c->vid, i, vr->last_avail,
                                         vr->last_used);
            }
        }
    }
}

/* Reads what librte_vhost knows of 'c''s rings, memory and features.
 * The datapath of 'c' is paused, or not published. */
static void
vhost_conn_refresh(struct vhost_conn *c)
{
    struct rte_vhost_memory *mem = NULL;
    uint64_t features = 0;
    int n_vrings;

    rte_vhost_get_negotiated_features(c->vid, &features);
    c->event_idx = features & (1ULL << VIRTIO_RING_F_EVENT_IDX);
    c->in_order = features & (1ULL << VIRTIO_F_IN_ORDER);
    c->mrg_rxbuf = features & (1ULL << VIRTIO_NET_F_MRG_RXBUF);
    c->hdr_len = (features & ((1ULL << VIRTIO_NET_F_MRG_RXBUF)
                              | (1ULL << VIRTIO_F_VERSION_1))
                  ? sizeof(struct virtio_net_hdr_mrg_rxbuf)
                  : sizeof(struct virtio_net_hdr));
    c->slow_reason = vhost_slow_reason(features);
    c->fast = !c->slow_reason;

    free(c->mem);
    c->mem = NULL;
    if (c->has_mem && !rte_vhost_get_mem_table(c->vid, &mem)) {
        if (mem->nregions) {
            c->mem = mem;
        } else {
            free(mem);
        }
    }

    n_vrings = MIN(rte_vhost_get_vring_num(c->vid), VHOST_MAX_VRINGS);
    for (int i = 0; i < VHOST_MAX_VRINGS; i++) {
        struct vhost_vring *vr = vhost_conn_vring(c, i);
        struct rte_vhost_vring r;

        if (!vr && i < n_vrings) {
            vr = xzalloc_cacheline(sizeof *vr);
            rte_spinlock_init(&vr->lock);
            vr->index = i;
            atomic_store_explicit(&c->vrings[i], vr, memory_order_release);
        }
        if (!vr) {
            continue;
        }
        vr->ready = (i < n_vrings && c->mem
                     && !rte_vhost_get_vhost_vring(c->vid, i, &r)
                     && r.desc && r.avail && r.used
                     && r.size && !(r.size & (r.size - 1))
                     && !rte_vhost_get_vring_base(c->vid, i, &vr->last_avail,
                                                  &vr->last_used));
        if (vr->ready) {
            vr->desc = r.desc;
            vr->avail = r.avail;
            vr->used = r.used;
            vr->size = r.size;
            vr->callfd = r.callfd;
        }
        vr->signalled_valid = false;
        vr->region = 0;
    }
}

/* vhost-user message codes that we look at (the vhost-user protocol's). */
#define VHOST_USER_RESET_OWNER 4
#define VHOST_USER_SET_MEM_TABLE 5
#define VHOST_USER_SEND_RARP 19
#define VHOST_USER_IOTLB_MSG 22

static struct vhost_conn *
vid_conn_get(int vid)
{
    struct netdev_vhost *dev = vid_dev_get(vid);
    struct vhost_conn *c = dev ? dev->conn : NULL;

    return c && c->vid == vid ? c : NULL;
}

static enum rte_vhost_msg_result
vhost_pre_msg(int vid, void *msg_)
{
    /* A message starts with its 32-bit request code; SEND_RARP carries the
     * guest's MAC address in its 64-bit payload, after a 12-byte header. */
    const uint8_t *msg = msg_;
    struct vhost_conn *c = vid_conn_get(vid);
    uint32_t request;

    memcpy(&request, msg, sizeof request);
    if (!c || request == VHOST_USER_IOTLB_MSG) {
        /* An IOMMU's translations: librte_vhost's datapath only. */
        return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
    }
    vhost_conn_pause(c);
    if (request == VHOST_USER_SEND_RARP) {
        memcpy(&c->rarp_mac, msg + 12, sizeof c->rarp_mac);
        atomic_store(&c->rarp_pending, true);
    } else if (request == VHOST_USER_SET_MEM_TABLE
               || request == VHOST_USER_RESET_OWNER) {
        /* librte_vhost frees its memory table, and may fail to make the
         * next. */
        c->has_mem = false;
    }
    return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
}

static enum rte_vhost_msg_result
vhost_post_msg(int vid, void *msg)
{
    struct vhost_conn *c = vid_conn_get(vid);
    uint32_t request;

    memcpy(&request, msg, sizeof request);
    if (c && request != VHOST_USER_IOTLB_MSG) {
        if (request == VHOST_USER_SET_MEM_TABLE) {
            /* It succeeded: we are not called otherwise. */
            c->has_mem = true;
        }
        vhost_conn_refresh(c);
        atomic_store_explicit(&c->paused, false, memory_order_release);
    }
    return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
}

static const struct rte_vhost_user_extern_ops vhost_extern_ops = {
    .pre_msg_handle = vhost_pre_msg,
    .post_msg_handle = vhost_post_msg,
};

/* Ends 'dev''s connection: adds its per-vring counters to the port's
 * totals if 'keep_stats', and frees it.  No PMD thread may use it: 'vid'
 * was never published for it, or was withdrawn a grace period ago. */
static void
vhost_conn_end(struct netdev_vhost *dev, bool keep_stats)
    OVS_REQUIRES(vhost_mutex)
{
    struct vhost_conn *c = dev->conn;

    if (!c) {
        return;
    }
    for (int i = 0; keep_stats && i < VHOST_MAX_VRINGS; i++) {
        struct vhost_vring *vr = vhost_conn_vring(c, i);

        if (!vr) {
            continue;
        }
        if (i >= dev->n_vring_base) {
            dev->vring_base = xrealloc(dev->vring_base,
                                       (i + 1) * sizeof *dev->vring_base);
            memset(&dev->vring_base[dev->n_vring_base], 0,
                   (i + 1 - dev->n_vring_base) * sizeof *dev->vring_base);
            dev->n_vring_base = i + 1;
        }
        for (int k = 0; k < VHOST_N_VRING_STATS; k++) {
            dev->vring_base[i][k] += vr->stats[k];
        }
    }
    dev->conn = NULL;
    vhost_conn_destroy(c);
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
    if (dev && rte_vhost_extern_callback_register(vid, &vhost_extern_ops,
                                                  NULL)) {
        VLOG_ERR("%s: could not watch vhost-user messages", path);
        dev = NULL;
    }
    if (dev && vhost_conn_vid(dev) >= 0) {
        /* A second frontend on a server socket. */
        VLOG_WARN("%s: refusing a second vhost-user connection on %s",
                  vhost_name(dev), path);
        dev = NULL;
    } else if (dev) {
        vhost_conn_end(dev, false);
        dev->conn = vhost_conn_create(vid);
        atomic_store_relaxed(&dev->conn_vid, vid);
        dev->kick_connects = dev->connects;
        qp_map_clear(dev->rx_enabled);
        qp_map_clear(dev->tx_enabled);
        qp_map_clear(dev->tx_off);
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
    if (dev && dev->conn) {
        /* Its datapath is not published yet. */
        vhost_conn_refresh(dev->conn);
    }
    if (!dev || !dev->conn) {
        ovs_mutex_unlock(&vhost_mutex);
        VLOG_WARN_RL(&rl, "vhost device %d: no port for it", vid);
        return -1;
    }
    dev->req_vid = vid;
    dev->req_n_rxq = n_qp;
    dev->req_numa = numa;
    dev->features = features;
    dev->connects++;
    if (!dev->vmp && dev->req_n_rxq == dev->up.n_rxq
        && dev->req_numa == dev->numa && dev->req_mtu == dev->mtu) {
        /* The port's first guest: take a mempool now rather than in a
         * reconfiguration, which would reload the PMD threads (one reload
         * per port when a switch starts with many).  The datapath does
         * not use 'mp' before 'vid' is published. */
        vhost_mp_update(dev);
    }
    if (!vhost_try_publish(dev)) {
        netdev_request_reconfigure(&dev->up);
    }
    VLOG_INFO("%s: vhost-user device ready (vid %d, %d queue pairs, "
              "NUMA node %d, %s)", vhost_name(dev), vid, n_qp, numa,
              dev->conn->fast ? "split-ring datapath"
              : "librte_vhost datapath");
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
    struct netdev_vhost *dev = vid_dev_get(vid);

    if (!dev) {
        return;
    }

    ovs_mutex_lock(&vhost_mutex);
    vid_dev_set(vid, NULL);
    /* destroy_device() withdrew 'vid' from the PMD threads, if it was
     * published. */
    vhost_conn_end(dev, true);
    atomic_store_relaxed(&dev->conn_vid, -1);
    dev->req_vid = -1;
    qp_map_clear(dev->rx_enabled);
    qp_map_clear(dev->tx_enabled);
    qp_map_clear(dev->tx_off);
    /* Back to one queue until the next guest says otherwise. */
    if (dev->req_n_rxq != 1) {
        dev->req_n_rxq = 1;
        netdev_request_reconfigure(&dev->up);
    }
    if (!dev->server && dev->reg_path) {
        /* Connect again: at once after a guest device was ready on this
         * connection; after the back-off if the server closed it before
         * that (it may do so again).  The main thread does it. */
        if (dev->connects != dev->kick_connects) {
            dev->kick_delay = VHOST_KICK_FIRST_MS;
            dev->kick_at = time_msec();
        } else {
            dev->kick_at = time_msec() + dev->kick_delay;
            dev->kick_delay = MIN(dev->kick_delay * 2, VHOST_KICK_MAX_MS);
        }
        netdev_change_seq_changed(&dev->up);
    }
    VLOG_INFO("%s: vhost-user connection closed%s", vhost_name(dev),
              !dev->reg_path ? ""
              : dev->server ? "; waiting for a new one"
              : "; reconnecting");
    ovs_mutex_unlock(&vhost_mutex);
}

static void vhost_remap_txqs(struct netdev_vhost *)
    OVS_REQUIRES(vhost_txmap_mutex);

/* Called with the device's virtqueue locks held: atomics and the tx queue
 * map's mutex only. */
static int
vring_state_changed(int vid, uint16_t vring, int enable)
    OVS_EXCLUDED(vhost_mutex, vhost_txmap_mutex)
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
        /* Guest rx vring: our tx queues follow it at once, with no
         * reconfiguration (which would reload every PMD thread and
         * reassign every port's rx queues).  librte_vhost calls this
         * after the message, with the datapath running again: a burst
         * that read the old map just before may still go to a vring the
         * guest turned off (librte_vhost's own datapath checks under its
         * lock). */
        bool off_changed = qp_bit_set(dev->tx_off, qp, !enable);

        if (qp_bit_set(dev->tx_enabled, qp, enable) || off_changed) {
            ovs_mutex_lock(&vhost_txmap_mutex);
            if (dev->tx_map_n_qp) {
                vhost_remap_txqs(dev);
            }
            ovs_mutex_unlock(&vhost_txmap_mutex);
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

/* Maps each of our tx queues onto a queue pair, among the first
 * 'tx_map_n_qp', that the guest enabled, so that a guest with fewer
 * queues than we have senders still receives everything. */
static void
vhost_remap_txqs(struct netdev_vhost *dev)
    OVS_REQUIRES(vhost_txmap_mutex)
{
    int enabled[VHOST_MAX_QUEUE_PAIRS];
    int n_enabled = 0;

    for (int qp = 0; qp < dev->tx_map_n_qp; qp++) {
        if (qp_bit_get(dev->tx_enabled, qp)) {
            enabled[n_enabled++] = qp;
        }
    }
    if (!n_enabled && !qp_bit_get(dev->tx_off, 0)) {
        /* A guest that reports no vring states uses queue pair 0. */
        n_enabled = 1;
        enabled[0] = 0;
    }
    for (int i = 0; i < dev->up.n_txq; i++) {
        atomic_store_relaxed(&dev->txqs[i].vring_qp,
                             n_enabled ? enabled[i % n_enabled] : -1);
    }
}

/* Makes the tx queue map for a device with 'n_qp' queue pairs, which is
 * about to be published. */
static void
vhost_map_txqs(struct netdev_vhost *dev, int n_qp)
    OVS_REQUIRES(vhost_mutex) OVS_EXCLUDED(vhost_txmap_mutex)
{
    ovs_mutex_lock(&vhost_txmap_mutex);
    dev->tx_map_n_qp = n_qp;
    vhost_remap_txqs(dev);
    ovs_mutex_unlock(&vhost_txmap_mutex);
}

/* The tx offloads that the datapath may leave to us for a guest that
 * negotiated 'features': those the guest takes, and checksums, which we
 * complete for a guest that does not (vhost_tx_sw_csum()). */
static uint64_t
vhost_tx_offloads(uint64_t features)
{
    const uint64_t tso = ((1ULL << VIRTIO_NET_F_GUEST_CSUM)
                          | (1ULL << VIRTIO_NET_F_GUEST_TSO4)
                          | (1ULL << VIRTIO_NET_F_GUEST_TSO6));
    uint64_t ol;

    if (!userspace_tso_enabled()) {
        return 0;
    }
    ol = (NETDEV_TX_OFFLOAD_IPV4_CKSUM | NETDEV_TX_OFFLOAD_TCP_CKSUM
          | NETDEV_TX_OFFLOAD_UDP_CKSUM);
    if ((features & tso) == tso) {
        ol |= NETDEV_TX_OFFLOAD_TCP_TSO;
    }
    return ol;
}

static bool
vhost_tx_sw_csum(uint64_t features)
{
    return (userspace_tso_enabled()
            && !(features & (1ULL << VIRTIO_NET_F_GUEST_CSUM)));
}

static bool
vhost_try_publish(struct netdev_vhost *dev)
    OVS_REQUIRES(vhost_mutex)
{
    if (dev->req_vid < 0
        || !dev->conn
        || !dev->mp
        || dev->req_n_rxq != dev->up.n_rxq
        || dev->req_numa != dev->numa
        || dev->req_mtu != dev->mtu
        || vhost_tx_offloads(dev->features) != dev->up.ol_flags
        || vhost_tx_sw_csum(dev->features) != dev->tx_sw_csum
        || netdev_is_reconf_required(&dev->up)) {
        return false;
    }
    vhost_map_txqs(dev, dev->req_n_rxq);
    vhost_publish(dev, dev->req_vid);
    return true;
}

/* Socket registration.  Called without 'vhost_mutex': DPDK may call back
 * (new_connection() when a client connects).
 *
 * Registers and starts the socket at 'path' and stores the features it
 * offers in '*offered' and '*offered_proto'.  Returns 0 if it started (a
 * client port: it connected), otherwise ECONNREFUSED for a client that
 * could not connect (the offered features are stored) or EPROTO if
 * librte_vhost refused the socket.  Nothing stays registered on failure. */
static int
vhost_register(const char *path, bool server, uint64_t *offered,
               uint64_t *offered_proto)
    OVS_EXCLUDED(vhost_mutex)
{
    /* We count per-vring statistics ourselves, whichever datapath moves
     * the packets. */
    uint64_t flags = RTE_VHOST_USER_LINEARBUF_SUPPORT;
    uint64_t unsupported;
    const char *step;
    int err;

    if (!server) {
        /* We reconnect by ourselves. */
        flags |= RTE_VHOST_USER_CLIENT | RTE_VHOST_USER_NO_RECONNECT;
    }
    if (vhost_iommu_enabled) {
        flags |= RTE_VHOST_USER_IOMMU_SUPPORT;
    }
    if (vhost_postcopy_enabled) {
        flags |= RTE_VHOST_USER_POSTCOPY_SUPPORT;
    }
    if (userspace_tso_enabled()) {
        /* Segments larger than an mbuf go to external buffers. */
        flags |= RTE_VHOST_USER_EXTBUF_SUPPORT;
        /* We cannot take UDP fragmentation offload, nor ECN with TSO. */
        unsupported = ((1ULL << VIRTIO_NET_F_HOST_UFO)
                       | (1ULL << VIRTIO_NET_F_HOST_ECN));
    } else {
        /* No checksum offload, nor any of the offloads that need it: the
         * guest sends complete packets. */
        unsupported = VHOST_HOST_OFFLOADS;
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
    step = "set features of";
    err = rte_vhost_driver_disable_features(path, unsupported);
    if (err) {
        goto out_unregister;
    }
    step = "get features of";
    if (rte_vhost_driver_get_features(path, offered)
        || rte_vhost_driver_get_protocol_features(path, offered_proto)) {
        err = -1;
        goto out_unregister;
    }
    step = "start";
    err = rte_vhost_driver_start(path);
    if (err && !server) {
        /* It could not connect, and has logged why.  No connection: no
         * callback can run, so no need to be quiescent. */
        rte_vhost_driver_unregister(path);
        return ECONNREFUSED;
    } else if (err) {
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
#define VHOST_CUSTOM_STAT(DIR, NAME) dst->NAME += src->NAME;
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

/* Connecting client ports (see VHOST_KICK_FIRST_MS). */

/* Returns an identifier of the socket file at 'path', or 0 if there is
 * none.  A socket bound again at the same path has another one. */
static uint64_t
vhost_socket_file_id(const char *path)
{
    struct stat st;

    if (stat(path, &st) || !S_ISSOCK(st.st_mode)) {
        return 0;
    }
    return hash_words64((uint64_t[]) { st.st_dev, st.st_ino,
                                       st.st_ctim.tv_sec,
                                       st.st_ctim.tv_nsec }, 4, 0) | 1;
}

/* Watches the directory of client socket 'path' for sockets that appear.
 * Without the watch, the port still connects, within VHOST_POLL_MS. */
static void
vhost_watch_dir(const char *path)
{
    char *dir = dir_name(path);
    int wd;

    if (simap_contains(&vhost_watched_dirs, dir)) {
        goto out;
    }
    if (vhost_inotify_fd < 0) {
        vhost_inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (vhost_inotify_fd < 0) {
            static struct vlog_rate_limit once = VLOG_RATE_LIMIT_INIT(1, 1);

            VLOG_WARN_RL(&once, "inotify: %s; client ports find their "
                         "server's socket within %d ms", ovs_strerror(errno),
                         VHOST_POLL_MS);
            goto out;
        }
    }
    wd = inotify_add_watch(vhost_inotify_fd, dir, IN_CREATE | IN_MOVED_TO);
    if (wd < 0) {
        /* Tried again on every poll; said once. */
        if (sset_add(&vhost_unwatchable_dirs, dir)) {
            VLOG_INFO("cannot watch %s for vhost-user sockets (%s); ports "
                      "with sockets there find them within %d ms", dir,
                      ovs_strerror(errno), VHOST_POLL_MS);
        }
    } else {
        sset_find_and_delete(&vhost_unwatchable_dirs, dir);
        simap_put(&vhost_watched_dirs, dir, wd);
    }
out:
    free(dir);
}

/* Reads what inotify has to say.  Returns true if a socket may have
 * appeared.  Forgets directories that went away (IN_IGNORED): they are
 * watched again when they come back. */
static bool
vhost_inotify_drain(void)
{
    char buf[4096] OVS_ALIGNED_VAR(8);
    bool appeared = false;
    ssize_t n;

    if (vhost_inotify_fd < 0) {
        return false;
    }
    while ((n = read(vhost_inotify_fd, buf, sizeof buf)) > 0) {
        char *p = buf;

        while (p < buf + n) {
            const struct inotify_event *ev = (const void *) p;

            if (ev->mask & IN_IGNORED) {
                struct simap_node *node, *next;

                SIMAP_FOR_EACH_SAFE (node, next, &vhost_watched_dirs) {
                    if (node->data == ev->wd) {
                        simap_delete(&vhost_watched_dirs, node);
                    }
                }
            } else {
                appeared = true;
            }
            p += sizeof *ev + ev->len;
        }
    }
    return appeared;
}

/* Tries to connect client port 'dev' to its server's socket now.  Only the
 * main thread calls this, and nothing else connects client ports, so no
 * connection can come up meanwhile.  With 'always', tries even if there
 * is no socket file (librte_vhost then logs that it cannot connect).
 * Returns 0, or EPROTO if librte_vhost refused the socket. */
static int
vhost_client_connect(struct netdev_vhost *dev, bool always)
    OVS_EXCLUDED(vhost_mutex)
{
    uint64_t offered, offered_proto, file;
    bool was_registered;
    char *path;
    int err;

    ovs_mutex_lock(&vhost_mutex);
    if (!dev->reg_path || vhost_conn_vid(dev) >= 0) {
        ovs_mutex_unlock(&vhost_mutex);
        return 0;
    }
    path = xstrdup(dev->reg_path);
    file = dev->kick_file = vhost_socket_file_id(path);
    was_registered = dev->registered;
    dev->registered = false;
    dev->kick_at = LLONG_MAX;
    ovs_mutex_unlock(&vhost_mutex);

    if (was_registered) {
        /* librte_vhost keeps the socket of a closed connection. */
        vhost_unregister(path, false);
    }
    if (!file && !always) {
        /* Nobody to connect to: wait until a socket appears. */
        free(path);
        return 0;
    }

    COVERAGE_INC(vhost_client_connect_attempt);
    err = vhost_register(path, false, &offered, &offered_proto);

    ovs_mutex_lock(&vhost_mutex);
    if (err != EPROTO) {
        dev->offered = offered;
        dev->offered_proto = offered_proto;
    }
    if (!err) {
        /* destroy_connection() may already have asked for the next
         * attempt: leave 'kick_at' alone. */
        dev->registered = true;
    } else if (err == ECONNREFUSED) {
        /* Said once for a series of refusals. */
        enum vlog_level level = (!file
                                 || dev->kick_delay == VHOST_KICK_FIRST_MS
                                 ? VLL_INFO : VLL_DBG);

        if (file) {
            dev->kick_at = time_msec() + dev->kick_delay;
            dev->kick_delay = MIN(dev->kick_delay * 2, VHOST_KICK_MAX_MS);
        }
        VLOG(level, "%s: could not connect to vhost-user socket %s; %s",
             vhost_name(dev), path,
             file ? "trying again" : "connecting when it appears");
        err = 0;
    }
    ovs_mutex_unlock(&vhost_mutex);
    free(path);
    return err;
}

/* Connects the client ports that are due: those whose socket file
 * appeared (or was replaced) and those whose back-off expired. */
static void
vhost_clients_run(void)
    OVS_EXCLUDED(vhost_mutex)
{
    struct netdev_vhost **due = NULL;
    size_t n_due = 0, allocated = 0;
    struct netdev_vhost *dev;
    bool look, poll;
    long long int now;

    look = vhost_inotify_drain();
    now = time_msec();
    poll = now >= vhost_next_poll;
    look = look || poll;
    if (poll) {
        vhost_next_poll = now + VHOST_POLL_MS;
    }

    ovs_mutex_lock(&vhost_mutex);
    LIST_FOR_EACH (dev, list_node, &vhost_devs) {
        if (dev->server || !dev->reg_path || vhost_conn_vid(dev) >= 0) {
            continue;
        }
        if (look) {
            uint64_t file = vhost_socket_file_id(dev->reg_path);

            if (file && file != dev->kick_file) {
                VLOG_INFO("%s: socket %s appeared: connecting",
                          vhost_name(dev), dev->reg_path);
                dev->kick_delay = VHOST_KICK_FIRST_MS;
                dev->kick_at = now;
            }
            if (poll) {
                vhost_watch_dir(dev->reg_path);
            }
        }
        if (now >= dev->kick_at) {
            if (n_due >= allocated) {
                due = x2nrealloc(due, &allocated, sizeof *due);
            }
            due[n_due++] = dev;
        }
    }
    ovs_mutex_unlock(&vhost_mutex);

    /* Ports are destroyed only by this (the main) thread: 'due' stays
     * valid. */
    for (size_t i = 0; i < n_due; i++) {
        vhost_client_connect(due[i], false);
    }
    free(due);
}

/* Makes the main thread wake up for vhost_clients_run(). */
static void
vhost_clients_wait(void)
    OVS_REQUIRES(vhost_mutex)
{
    struct netdev_vhost *dev;
    bool waiting = false;

    LIST_FOR_EACH (dev, list_node, &vhost_devs) {
        if (!dev->server && dev->reg_path && vhost_conn_vid(dev) < 0) {
            waiting = true;
            if (dev->kick_at != LLONG_MAX) {
                poll_timer_wait_until(dev->kick_at);
            }
        }
    }
    if (waiting) {
        poll_timer_wait_until(vhost_next_poll);
    }
    if (vhost_inotify_fd >= 0) {
        poll_fd_wait(vhost_inotify_fd, POLLIN);
    }
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
    uint64_t offered, offered_proto;
    char *server_path = NULL;
    bool old_registered;
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
    old_registered = dev->registered;
    dev->reg_path = NULL;
    dev->registered = false;
    ovs_mutex_unlock(&vhost_mutex);

    /* The path changed: leave the old socket, then join the new one.  The
     * old connection's per-vring counters go with it. */
    if (old_reg) {
        if (old_registered) {
            vhost_unregister(old_reg, dev->server);
        }
        ovs_mutex_lock(&vhost_mutex);
        vhost_forget_connection(dev);
        ovs_mutex_unlock(&vhost_mutex);
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
    dev->kick_delay = VHOST_KICK_FIRST_MS;
    dev->kick_file = 0;
    ovs_mutex_unlock(&vhost_mutex);

    if (dev->server) {
        err = vhost_register(path, true, &offered, &offered_proto);
    } else {
        /* Watch first: a socket created after our attempt is seen. */
        vhost_watch_dir(path);
        err = vhost_client_connect(dev, true);
    }

    ovs_mutex_lock(&vhost_mutex);
    if (dev->server) {
        dev->registered = !err;
        dev->offered = err ? 0 : offered;
        dev->offered_proto = err ? 0 : offered_proto;
    }
    if (err) {
        free(dev->reg_path);
        dev->reg_path = NULL;
        dev->kick_at = LLONG_MAX;
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

/* QoS: meters. */

static bool
vhost_srtcm_init(struct vhost_srtcm *m, uint64_t rate, uint64_t burst)
{
    struct rte_meter_srtcm_params params = {
        .cir = rate,
        .cbs = burst,
        .ebs = 0,
    };

    return (!rte_meter_srtcm_profile_config(&m->profile, &params)
            && !rte_meter_srtcm_config(&m->meter, &m->profile));
}

static bool
vhost_trtcm_init(struct vhost_trtcm *m, const struct vhost_rates *r)
{
    struct rte_meter_trtcm_rfc4115_params params = {
        .cir = r->cir,
        .eir = r->eir,
        .cbs = r->cbs,
        .ebs = r->ebs,
    };

    return (!rte_meter_trtcm_rfc4115_profile_config(&m->profile, &params)
            && !rte_meter_trtcm_rfc4115_config(&m->meter, &m->profile));
}

/* What a meter charges for 'm': its IP bytes. */
static uint32_t
vhost_meter_len(const struct rte_mbuf *m)
{
    return m->pkt_len > ETH_HEADER_LEN ? m->pkt_len - ETH_HEADER_LEN : 0;
}

/* Ingress policing: keeps the packets among 'pkts[0..n-1]' that conform,
 * frees the others, and returns how many it kept. */
static int
vhost_policer_run(struct vhost_policer *p, struct rte_mbuf **pkts, int n)
{
    uint64_t now = rte_rdtsc();
    int kept = 0;

    rte_spinlock_lock(&p->lock);
    for (int i = 0; i < n; i++) {
        struct rte_mbuf *m = pkts[i];
        bool pass = true;

        if (p->by_bytes) {
            pass = rte_meter_srtcm_color_blind_check(
                       &p->bytes.meter, &p->bytes.profile, now,
                       vhost_meter_len(m)) == RTE_COLOR_GREEN;
        }
        if (pass && p->by_pkts) {
            pass = rte_meter_srtcm_color_blind_check(
                       &p->pkts.meter, &p->pkts.profile, now, 1)
                   == RTE_COLOR_GREEN;
        }
        if (pass) {
            pkts[kept++] = m;
        } else {
            rte_pktmbuf_free(m);
        }
    }
    rte_spinlock_unlock(&p->lock);
    return kept;
}

static struct vhost_qos_queue *
vhost_qos_queue_find(const struct vhost_qos *qos, uint32_t id)
{
    struct vhost_qos_queue *q;

    HMAP_FOR_EACH_WITH_HASH (q, node, hash_int(id, 0), &qos->queues) {
        if (q->id == id) {
            return q;
        }
    }
    return NULL;
}

/* Egress QoS: keeps the packets among 'pkts[0..n-1]' that the policer
 * lets through, frees the others and subtracts their lengths from
 * '*bytes'; returns how many it kept. */
static int
vhost_qos_run(struct vhost_qos *qos, struct rte_mbuf **pkts, int n,
              uint64_t *bytes)
{
    uint64_t now = rte_rdtsc();
    int kept = 0;

    rte_spinlock_lock(&qos->lock);
    for (int i = 0; i < n; i++) {
        struct rte_mbuf *m = pkts[i];
        uint32_t len = vhost_meter_len(m);
        bool pass;

        if (qos->type == VHOST_QOS_EGRESS_POLICER) {
            pass = rte_meter_srtcm_color_blind_check(
                       &qos->srtcm.meter, &qos->srtcm.profile, now, len)
                   == RTE_COLOR_GREEN;
        } else {
            const struct dp_packet *pkt
                = CONTAINER_OF(m, struct dp_packet, mbuf);
            struct vhost_qos_queue *q
                = vhost_qos_queue_find(qos, pkt->md.skb_priority);
            enum rte_color color = RTE_COLOR_GREEN;

            if (!q) {
                q = vhost_qos_queue_find(qos, 0);
            }
            if (q) {
                color = rte_meter_trtcm_rfc4115_color_blind_check(
                            &q->trtcm.meter, &q->trtcm.profile, now, len);
            }
            color = rte_meter_trtcm_rfc4115_color_aware_check(
                        &qos->trtcm.meter, &qos->trtcm.profile, now, len,
                        color);
            pass = color != RTE_COLOR_RED;
            if (q) {
                if (pass) {
                    q->tx_packets++;
                    q->tx_bytes += m->pkt_len;
                } else {
                    q->tx_errors++;
                }
            }
        }
        if (pass) {
            pkts[kept++] = m;
        } else {
            *bytes -= m->pkt_len;
            rte_pktmbuf_free(m);
        }
    }
    rte_spinlock_unlock(&qos->lock);
    return kept;
}

/* QoS: configuration. */

static void
vhost_policer_replace(struct netdev_vhost *dev, struct vhost_policer *new)
    OVS_REQUIRES(vhost_mutex)
{
    struct vhost_policer *old = ovsrcu_get_protected(struct vhost_policer *,
                                                     &dev->policer);

    ovsrcu_set(&dev->policer, new);
    if (old) {
        ovsrcu_postpone(free_cacheline, old);
    }
}

static void
vhost_qos_free(struct vhost_qos *qos)
{
    struct vhost_qos_queue *q;

    HMAP_FOR_EACH_POP (q, node, &qos->queues) {
        free(q);
    }
    hmap_destroy(&qos->queues);
    free_cacheline(qos);
}

static void
vhost_qos_replace(struct netdev_vhost *dev, struct vhost_qos *new)
    OVS_REQUIRES(vhost_mutex)
{
    struct vhost_qos *old = ovsrcu_get_protected(struct vhost_qos *,
                                                 &dev->qos);

    ovsrcu_set(&dev->qos, new);
    if (old) {
        ovsrcu_postpone(vhost_qos_free, old);
    }
}

static int
netdev_vhost_set_policing(struct netdev *netdev, uint32_t kbits_rate,
                          uint32_t kbits_burst, uint32_t kpkts_rate,
                          uint32_t kpkts_burst)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);
    struct vhost_policing_conf conf = {
        .kbits_rate = kbits_rate,
        .kbits_burst = kbits_rate ? kbits_burst : 0,
        .kpkts_rate = kpkts_rate,
        .kpkts_burst = kpkts_rate ? kpkts_burst : 0,
    };
    struct vhost_policer *p = NULL;
    int err = 0;

    ovs_mutex_lock(&vhost_mutex);
    if (!memcmp(&conf, &dev->policing, sizeof conf)) {
        goto out;
    }
    if (kbits_rate || kpkts_rate) {
        p = xzalloc_cacheline(sizeof *p);
        rte_spinlock_init(&p->lock);
        /* A burst of 0 means the defaults: 8000 kbit and 16 kpkts. */
        if (kbits_rate) {
            uint64_t burst = kbits_burst ? kbits_burst : 8000;

            p->by_bytes = vhost_srtcm_init(&p->bytes,
                                           (uint64_t) kbits_rate * 1000 / 8,
                                           burst * 1000 / 8);
        }
        if (kpkts_rate) {
            uint64_t burst = kpkts_burst ? kpkts_burst : 16;

            p->by_pkts = vhost_srtcm_init(&p->pkts,
                                          (uint64_t) kpkts_rate * 1000,
                                          burst * 1000);
        }
        if (p->by_bytes != !!kbits_rate || p->by_pkts != !!kpkts_rate) {
            VLOG_WARN("%s: could not set up the ingress policer",
                      netdev_get_name(netdev));
            free_cacheline(p);
            err = EINVAL;
            goto out;
        }
    }
    vhost_policer_replace(dev, p);
    dev->policing = conf;
    VLOG_INFO("%s: ingress policing %s", netdev_get_name(netdev),
              p ? "set" : "off");
out:
    ovs_mutex_unlock(&vhost_mutex);
    return err;
}

static int
netdev_vhost_get_qos_types(const struct netdev *netdev OVS_UNUSED,
                           struct sset *types)
{
    sset_add(types, vhost_qos_names[VHOST_QOS_EGRESS_POLICER]);
    sset_add(types, vhost_qos_names[VHOST_QOS_TRTCM_POLICER]);
    return 0;
}

/* Returns the enum vhost_qos_type named 'name', or -1. */
static int
vhost_qos_type_from_name(const char *name)
{
    for (int i = 0; i < ARRAY_SIZE(vhost_qos_names); i++) {
        if (!strcmp(name, vhost_qos_names[i])) {
            return i;
        }
    }
    return -1;
}

static int
netdev_vhost_get_qos_capabilities(const struct netdev *netdev OVS_UNUSED,
                                  const char *type,
                                  struct netdev_qos_capabilities *caps)
{
    switch (vhost_qos_type_from_name(type)) {
    case VHOST_QOS_EGRESS_POLICER:
        caps->n_queues = 0;
        return 0;
    case VHOST_QOS_TRTCM_POLICER:
        caps->n_queues = UINT32_MAX;
        return 0;
    default:
        return EOPNOTSUPP;
    }
}

static void
vhost_rates_to_smap(const struct vhost_rates *r, bool excess,
                    struct smap *details)
{
    smap_add_format(details, "cir", "%"PRIu64, r->cir);
    smap_add_format(details, "cbs", "%"PRIu64, r->cbs);
    if (excess) {
        smap_add_format(details, "eir", "%"PRIu64, r->eir);
        smap_add_format(details, "ebs", "%"PRIu64, r->ebs);
    }
}

static void
vhost_rates_from_smap(const struct smap *details, bool excess,
                      struct vhost_rates *r)
{
    r->cir = smap_get_ullong(details, "cir", 0);
    r->cbs = smap_get_ullong(details, "cbs", 0);
    r->eir = excess ? smap_get_ullong(details, "eir", 0) : 0;
    r->ebs = excess ? smap_get_ullong(details, "ebs", 0) : 0;
}

static int
netdev_vhost_get_qos(const struct netdev *netdev, const char **typep,
                     struct smap *details)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);
    struct vhost_qos *qos;

    ovs_mutex_lock(&vhost_mutex);
    qos = ovsrcu_get_protected(struct vhost_qos *, &dev->qos);
    if (qos) {
        *typep = vhost_qos_names[qos->type];
        vhost_rates_to_smap(&qos->rates,
                            qos->type == VHOST_QOS_TRTCM_POLICER, details);
    } else {
        *typep = "";
    }
    ovs_mutex_unlock(&vhost_mutex);
    return 0;
}

/* Returns a new QoS object of 'type' with port-level 'rates' and, if
 * 'queues_from' is not null, copies of its queues, counters included; or
 * NULL if the rates are not valid for 'type'. */
static struct vhost_qos *
vhost_qos_create(enum vhost_qos_type type, const struct vhost_rates *rates,
                 struct vhost_qos *queues_from)
{
    struct vhost_qos *qos = xzalloc_cacheline(sizeof *qos);
    bool ok;

    rte_spinlock_init(&qos->lock);
    qos->type = type;
    qos->rates = *rates;
    hmap_init(&qos->queues);
    ok = (type == VHOST_QOS_EGRESS_POLICER
          ? vhost_srtcm_init(&qos->srtcm, rates->cir, rates->cbs)
          : vhost_trtcm_init(&qos->trtcm, rates));
    if (!ok) {
        vhost_qos_free(qos);
        return NULL;
    }

    if (queues_from) {
        const struct vhost_qos_queue *old;

        rte_spinlock_lock(&queues_from->lock);
        HMAP_FOR_EACH (old, node, &queues_from->queues) {
            struct vhost_qos_queue *q = xmemdup(old, sizeof *old);

            vhost_trtcm_init(&q->trtcm, &q->rates);
            hmap_insert(&qos->queues, &q->node, hash_int(q->id, 0));
        }
        rte_spinlock_unlock(&queues_from->lock);
    }
    return qos;
}

/* Records (or, with a null 'error', clears) why the QoS configuration was
 * refused; logs it when it is news. */
static void
vhost_set_qos_error(struct netdev_vhost *dev, char *error)
    OVS_REQUIRES(vhost_mutex)
{
    if (error && !nullable_string_is_equal(error, dev->qos_error)) {
        VLOG_WARN("%s: %s", vhost_name(dev), error);
    }
    free(dev->qos_error);
    dev->qos_error = error;
}

static int
netdev_vhost_set_qos(struct netdev *netdev, const char *type_name,
                     const struct smap *details)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);
    int type = vhost_qos_type_from_name(type_name);
    struct vhost_qos *old, *new = NULL;
    struct vhost_rates rates;
    int err = 0;

    if (type < 0) {
        return EOPNOTSUPP;
    }
    vhost_rates_from_smap(details, type == VHOST_QOS_TRTCM_POLICER, &rates);

    ovs_mutex_lock(&vhost_mutex);
    old = ovsrcu_get_protected(struct vhost_qos *, &dev->qos);
    if (old
        ? old->type == type && !memcmp(&old->rates, &rates, sizeof rates)
        : type == VHOST_QOS_NONE) {
        vhost_set_qos_error(dev, NULL);
        goto out;
    }
    if (type != VHOST_QOS_NONE) {
        new = vhost_qos_create(type, &rates,
                               old && old->type == type ? old : NULL);
        if (!new) {
            /* The previous configuration stays. */
            vhost_set_qos_error(dev, xasprintf(
                "QoS type %s refused: %s", type_name,
                type == VHOST_QOS_EGRESS_POLICER
                ? "cir and cbs must be positive"
                : "cir with cbs, or eir with ebs, must be positive"));
            err = EINVAL;
            goto out;
        }
    }
    COVERAGE_INC(vhost_client_qos_change);
    vhost_qos_replace(dev, new);
    vhost_set_qos_error(dev, NULL);
    VLOG_INFO("%s: QoS %s", vhost_name(dev), type ? type_name : "off");
out:
    ovs_mutex_unlock(&vhost_mutex);
    return err;
}

static int
netdev_vhost_get_queue(const struct netdev *netdev, unsigned int queue_id,
                       struct smap *details)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);
    const struct vhost_qos_queue *q = NULL;
    struct vhost_qos *qos;

    ovs_mutex_lock(&vhost_mutex);
    qos = ovsrcu_get_protected(struct vhost_qos *, &dev->qos);
    if (qos) {
        q = vhost_qos_queue_find(qos, queue_id);
        if (q) {
            vhost_rates_to_smap(&q->rates, true, details);
        }
    }
    ovs_mutex_unlock(&vhost_mutex);
    return q ? 0 : ENOENT;
}

static int
netdev_vhost_set_queue(struct netdev *netdev, unsigned int queue_id,
                       const struct smap *details)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);
    struct vhost_qos_queue *q, *old_q;
    struct vhost_qos *qos, *new;
    struct vhost_rates rates;
    struct vhost_trtcm check;
    int err = 0;

    ovs_mutex_lock(&vhost_mutex);
    qos = ovsrcu_get_protected(struct vhost_qos *, &dev->qos);
    if (!qos || qos->type != VHOST_QOS_TRTCM_POLICER) {
        err = EOPNOTSUPP;
        goto out;
    }

    /* The default queue, unless configured, polices like the port. */
    if (queue_id == 0 && smap_is_empty(details)) {
        rates = qos->rates;
    } else {
        vhost_rates_from_smap(details, true, &rates);
    }
    old_q = vhost_qos_queue_find(qos, queue_id);
    if (old_q && !memcmp(&old_q->rates, &rates, sizeof rates)) {
        goto out;
    }
    if (!vhost_trtcm_init(&check, &rates)) {
        vhost_set_qos_error(dev, xasprintf(
            "trtcm-policer queue %u refused: cir with cbs, or eir with ebs, "
            "must be positive", queue_id));
        err = EINVAL;
        goto out;
    }

    new = vhost_qos_create(qos->type, &qos->rates, qos);
    q = vhost_qos_queue_find(new, queue_id);
    if (!q) {
        q = xzalloc(sizeof *q);
        q->id = queue_id;
        q->created = time_msec();
        hmap_insert(&new->queues, &q->node, hash_int(queue_id, 0));
    }
    q->rates = rates;
    q->trtcm = check;
    vhost_qos_replace(dev, new);
    vhost_set_qos_error(dev, NULL);
out:
    ovs_mutex_unlock(&vhost_mutex);
    return err;
}

static int
netdev_vhost_delete_queue(struct netdev *netdev, unsigned int queue_id)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);
    struct vhost_qos *qos, *new;
    struct vhost_qos_queue *q;
    int err = 0;

    ovs_mutex_lock(&vhost_mutex);
    qos = ovsrcu_get_protected(struct vhost_qos *, &dev->qos);
    if (!qos || qos->type != VHOST_QOS_TRTCM_POLICER) {
        err = EOPNOTSUPP;
    } else if (vhost_qos_queue_find(qos, queue_id)) {
        new = vhost_qos_create(qos->type, &qos->rates, qos);
        q = vhost_qos_queue_find(new, queue_id);
        hmap_remove(&new->queues, &q->node);
        free(q);
        vhost_qos_replace(dev, new);
    }
    ovs_mutex_unlock(&vhost_mutex);
    return err;
}

static int
netdev_vhost_get_queue_stats(const struct netdev *netdev,
                             unsigned int queue_id,
                             struct netdev_queue_stats *stats)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);
    struct vhost_qos_queue *q = NULL;
    struct vhost_qos *qos;

    ovs_mutex_lock(&vhost_mutex);
    qos = ovsrcu_get_protected(struct vhost_qos *, &dev->qos);
    if (qos) {
        q = vhost_qos_queue_find(qos, queue_id);
        if (q) {
            rte_spinlock_lock(&qos->lock);
            stats->tx_packets = q->tx_packets;
            stats->tx_bytes = q->tx_bytes;
            stats->tx_errors = q->tx_errors;
            rte_spinlock_unlock(&qos->lock);
            stats->created = q->created;
        }
    }
    ovs_mutex_unlock(&vhost_mutex);
    return q ? 0 : ENOENT;
}

/* A snapshot of the queues, taken when the dump starts. */
struct vhost_queue_dump {
    size_t n, i;
    uint32_t *ids;
    struct vhost_rates *rates;
};

static int
netdev_vhost_queue_dump_start(const struct netdev *netdev, void **statep)
{
    struct netdev_vhost *dev = netdev_vhost_cast(netdev);
    struct vhost_queue_dump *d = xzalloc(sizeof *d);
    const struct vhost_qos_queue *q;
    struct vhost_qos *qos;

    ovs_mutex_lock(&vhost_mutex);
    qos = ovsrcu_get_protected(struct vhost_qos *, &dev->qos);
    if (qos) {
        size_t n = hmap_count(&qos->queues);

        d->ids = xmalloc(n * sizeof *d->ids);
        d->rates = xmalloc(n * sizeof *d->rates);
        HMAP_FOR_EACH (q, node, &qos->queues) {
            d->ids[d->n] = q->id;
            d->rates[d->n++] = q->rates;
        }
    }
    ovs_mutex_unlock(&vhost_mutex);
    *statep = d;
    return 0;
}

static int
netdev_vhost_queue_dump_next(const struct netdev *netdev OVS_UNUSED,
                             void *state, unsigned int *queue_id,
                             struct smap *details)
{
    struct vhost_queue_dump *d = state;

    if (d->i >= d->n) {
        return EOF;
    }
    *queue_id = d->ids[d->i];
    vhost_rates_to_smap(&d->rates[d->i++], true, details);
    return 0;
}

static int
netdev_vhost_queue_dump_done(const struct netdev *netdev OVS_UNUSED,
                             void *state)
{
    struct vhost_queue_dump *d = state;

    free(d->ids);
    free(d->rates);
    free(d);
    return 0;
}

/* Datapath. */

/* Our split-virtqueue datapath (see struct vhost_conn).
 *
 * The guest is not trusted: every index it writes is bounded before use,
 * descriptor chains are followed at most as many steps as the table has
 * entries, each descriptor is read once, and every address must lie in
 * guest memory.  A chain that breaks a rule is handed back to the guest
 * unused and its packet dropped (and counted), rather than stalling the
 * queue. */

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
                     "stopped", ifname, avail, vr->size, vr->last_avail);
    }
}

/* A descriptor chain of vring 'vring' broke the rules: its packet is
 * dropped. */
static void
vhost_bad_desc(const struct vhost_conn *c, int vring)
{
    static struct vlog_rate_limit bad_rl = VLOG_RATE_LIMIT_INIT(1, 5);
    char ifname[PATH_MAX];

    COVERAGE_INC(vhost_client_bad_desc);
    if (!VLOG_DROP_WARN(&bad_rl)
        && !rte_vhost_get_ifname(c->vid, ifname, sizeof ifname)) {
        VLOG_WARN("%s: vring %d: dropped a packet whose descriptors are "
                  "out of bounds, loop, or lie outside guest memory",
                  ifname, vring);
    }
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
    struct virtio_net_hdr_mrg_rxbuf *h = (void *) p;
    uint64_t head;
    uint16_t tail;

    BUILD_ASSERT_DECL(sizeof h->hdr == sizeof head + sizeof tail);
    memcpy(&head, &h->hdr, sizeof head);
    memcpy(&tail, (char *) &h->hdr + sizeof head, sizeof tail);
    if (head || tail) {
        memset(&h->hdr, 0, sizeof h->hdr);
    }
    if (hdr_len == sizeof *h && h->num_buffers != num_buffers) {
        h->num_buffers = num_buffers;
    }
}

/* Counts a packet of 'len' bytes to or from Ethernet address 'dst'. */
static inline void
vhost_vring_count(uint64_t *stats, uint32_t len, const uint8_t *dst)
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
        static const uint8_t bcast[ETH_ADDR_LEN] = {
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff
        };

        stats[memcmp(dst, bcast, sizeof bcast)
              ? VHOST_VS_multicast_packets
              : VHOST_VS_broadcast_packets]++;
    }
}

/* Counts the packets that librte_vhost's datapath moved. */
static void
vhost_vring_count_mbufs(struct vhost_vring *vr, struct rte_mbuf **pkts,
                        int n)
{
    vr->stats[VHOST_VS_good_packets] += n;
    for (int i = 0; i < n; i++) {
        vhost_vring_count(vr->stats, pkts[i]->pkt_len,
                          rte_pktmbuf_mtod(pkts[i], const uint8_t *));
    }
}

/* Publishes what the datapath put in the used ring of 'vr' and interrupts
 * the guest if it asked for it. */
static void
vhost_vring_publish(const struct vhost_conn *c, struct vhost_vring *vr)
{
    uint16_t new = vr->last_used;
    bool need;

    __atomic_store_n(&vr->used->idx, new, __ATOMIC_RELEASE);

    /* The guest must see the new index before we look at whether it wants
     * to hear of it (it looks at the index after it says so). */
    rte_atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (c->event_idx) {
        uint16_t event = __atomic_load_n(&vr->avail->ring[vr->size],
                                         __ATOMIC_RELAXED);
        uint16_t old = vr->signalled_used;

        need = (!vr->signalled_valid
                || (uint16_t) (new - event - 1) < (uint16_t) (new - old));
    } else {
        need = !(__atomic_load_n(&vr->avail->flags, __ATOMIC_RELAXED)
                 & VRING_AVAIL_F_NO_INTERRUPT);
    }
    vr->signalled_used = new;
    vr->signalled_valid = true;
    if (need && vr->callfd >= 0) {
        eventfd_write(vr->callfd, 1);
        vr->stats[VHOST_VS_guest_notifications]++;
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

/* Reads the descriptor chain at 'head' of 'vr' into 'ch'.  Returns false
 * if it breaks the rules. */
static bool
vhost_chain_get(const struct vhost_conn *c, struct vhost_vring *vr,
                uint16_t head, struct vhost_chain *ch)
{
    const struct vring_desc *descs = vr->desc;
    uint32_t n_descs = vr->size;
    uint32_t idx = head;
    struct vring_desc d;

    ch->head = head;
    ch->n_vecs = 0;
    ch->len = 0;
    if (head >= vr->size) {
        return false;
    }
    d = descs[head];
    if (d.flags & VRING_DESC_F_INDIRECT) {
        if (!d.len || d.len % sizeof d || d.len / sizeof d > UINT16_MAX) {
            return false;
        }
        descs = vhost_gpa_map_all(c->mem, &vr->region, d.addr, d.len);
        if (!descs) {
            return false;
        }
        n_descs = d.len / sizeof d;
        idx = 0;
    }
    for (uint32_t steps = 0; ; steps++) {
        uint64_t addr;
        uint32_t len;

        if (idx >= n_descs || steps >= n_descs) {
            return false;
        }
        d = descs[idx];
        if (d.flags & VRING_DESC_F_INDIRECT) {
            return false;
        }
        addr = d.addr;
        len = d.len;
        while (len) {
            uint64_t chunk = len;
            char *p = vhost_gpa_map(c->mem, &vr->region, addr, &chunk);

            if (!p || ch->n_vecs >= VHOST_CHAIN_VECS
                || ch->len + chunk > UINT32_MAX) {
                return false;
            }
            ch->vecs[ch->n_vecs].p = p;
            ch->vecs[ch->n_vecs].len = chunk;
            ch->n_vecs++;
            ch->len += chunk;
            addr += chunk;
            len -= chunk;
        }
        if (!(d.flags & VRING_DESC_F_NEXT)) {
            return true;
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

/* Copies the packet in the chain at 'head' (without its virtio-net
 * header) into 'm'.  Returns 0, EINVAL if the chain breaks the rules, or
 * EMSGSIZE if the packet does not fit in 'm'. */
static int
vhost_dequeue_chain(const struct vhost_conn *c, struct vhost_vring *vr,
                    uint16_t head, struct rte_mbuf *m)
{
    struct vhost_chain ch;
    uint32_t len;

    if (!vhost_chain_get(c, vr, head, &ch) || ch.len < c->hdr_len) {
        return EINVAL;
    }
    len = ch.len - c->hdr_len;
    if (len > rte_pktmbuf_tailroom(m)) {
        return EMSGSIZE;
    }
    vhost_chain_copy(&ch, c->hdr_len, rte_pktmbuf_mtod(m, void *), len,
                     false);
    m->data_len = m->pkt_len = len;
    return 0;
}

/* Takes up to 'n' packets that the guest sent on 'vr', into mbufs from
 * 'mp'.  Returns how many.  Chains that break the rules and packets too
 * long for an mbuf are dropped and counted in 'qs'. */
static uint16_t
vhost_split_dequeue(const struct vhost_conn *c, struct vhost_vring *vr,
                    struct rte_mempool *mp, struct rte_mbuf **pkts,
                    uint16_t n, struct vhost_queue_stats *qs)
{
    uint16_t mask = vr->size - 1;
    uint16_t last = vr->last_avail;
    uint16_t avail = __atomic_load_n(&vr->avail->idx, __ATOMIC_ACQUIRE);
    uint16_t hdr_len = c->hdr_len;
    uint16_t heads[NETDEV_MAX_BURST];
    const char *srcs[NETDEV_MAX_BURST];
    uint32_t lens[NETDEV_MAX_BURST];
    uint16_t got = 0;

    if (OVS_UNLIKELY((uint16_t) (avail - last) > vr->size)) {
        vhost_bad_avail_idx(c, vr, avail);
        return 0;
    }
    n = MIN(n, (uint16_t) (avail - last));
    if (!n) {
        return 0;
    }
    if (OVS_UNLIKELY(rte_pktmbuf_alloc_bulk(mp, pkts, n))) {
        COVERAGE_INC(vhost_client_rx_no_mbuf);
        return 0;
    }

    /* Every descriptor, then every buffer, on its way into the cache
     * before the first copy. */
    for (int i = 0; i < n; i++) {
        heads[i] = vr->avail->ring[(uint16_t) (last + i) & mask];
        rte_prefetch0(&vr->desc[heads[i] & mask]);
    }
    for (int i = 0; i < n; i++) {
        struct vring_desc d;

        srcs[i] = NULL;
        if (OVS_UNLIKELY(heads[i] > mask)) {
            continue;
        }
        d = vr->desc[heads[i]];
        if (OVS_LIKELY(!(d.flags & (VRING_DESC_F_NEXT
                                    | VRING_DESC_F_INDIRECT))
                       && d.len >= hdr_len)) {
            srcs[i] = vhost_gpa_map_all(c->mem, &vr->region, d.addr, d.len);
            if (srcs[i]) {
                srcs[i] += hdr_len;
                lens[i] = d.len - hdr_len;
                vhost_prefetch(srcs[i], lens[i], false);
            }
        }
    }

    for (int i = 0; i < n; i++) {
        struct rte_mbuf *m = pkts[got];
        struct vring_used_elem *u;
        int error;

        if (OVS_LIKELY(srcs[i] && lens[i] <= rte_pktmbuf_tailroom(m))) {
            memcpy(rte_pktmbuf_mtod(m, void *), srcs[i], lens[i]);
            m->data_len = m->pkt_len = lens[i];
            error = 0;
        } else {
            error = vhost_dequeue_chain(c, vr, heads[i], m);
        }
        if (!c->in_order || i == n - 1) {
            /* With VIRTIO_F_IN_ORDER, the last entry of a batch stands for
             * the batch. */
            u = &vr->used->ring[(uint16_t) (vr->last_used + i) & mask];
            u->id = heads[i];
            u->len = 0;
        }
        if (OVS_LIKELY(!error)) {
            vhost_vring_count(vr->stats, m->pkt_len,
                              rte_pktmbuf_mtod(m, const uint8_t *));
            got++;
        } else if (error == EMSGSIZE) {
            qs->rx_oversize_drops++;
        } else {
            qs->rx_bad_desc_drops++;
            vhost_bad_desc(c, vr->index);
        }
    }
    vr->last_avail = last + n;
    vr->last_used += n;
    vr->stats[VHOST_VS_good_packets] += got;
    if (got < n) {
        rte_pktmbuf_free_bulk(&pkts[got], n - got);
    }
    vhost_vring_publish(c, vr);
    return got;
}

/* Puts 'm' into receive buffers of 'vr' in the general way: chains of
 * descriptors, buffers that span memory regions, and with mergeable
 * receive buffers, several buffers.  'avail' is the guest's avail index.
 * Returns 0 if it was sent, EAGAIN if the guest has no room for it now,
 * EMSGSIZE if it never will (its buffers are too small), EINVAL if a
 * buffer breaks the rules (then given back, empty). */
static int
vhost_enqueue_slow(const struct vhost_conn *c, struct vhost_vring *vr,
                   uint16_t avail, struct rte_mbuf *m)
{
    struct virtio_net_hdr_mrg_rxbuf hdr;
    uint16_t mask = vr->size - 1;
    uint32_t total = m->pkt_len + c->hdr_len;
    uint32_t done = 0;
    struct vhost_chain first, more;
    uint16_t taken = 0;

    if (m->nb_segs != 1) {
        return EMSGSIZE;
    }
    while (done < total) {
        struct vhost_chain *ch = taken ? &more : &first;
        struct vring_used_elem *u;
        uint32_t ofs = 0, chunk;
        uint16_t head;

        if ((uint16_t) (avail - vr->last_avail) <= taken) {
            return EAGAIN;
        }
        head = vr->avail->ring[(uint16_t) (vr->last_avail + taken) & mask];
        if (!vhost_chain_get(c, vr, head, ch)
            || (!taken && ch->len < c->hdr_len)) {
            /* Give the chain back, empty, with those taken before. */
            u = &vr->used->ring[(uint16_t) (vr->last_used + taken) & mask];
            u->id = head;
            u->len = 0;
            for (int i = 0; i < taken; i++) {
                vr->used->ring[(uint16_t) (vr->last_used + i) & mask].len = 0;
            }
            vr->last_avail += taken + 1;
            vr->last_used += taken + 1;
            return EINVAL;
        }
        if (!taken) {
            if (!c->mrg_rxbuf && ch->len < total) {
                return EMSGSIZE;
            }
            ofs = done = c->hdr_len;
        }
        chunk = MIN(ch->len - ofs, total - done);
        vhost_chain_copy(ch, ofs,
                         rte_pktmbuf_mtod_offset(m, char *,
                                                 done - c->hdr_len),
                         chunk, true);
        done += chunk;
        u = &vr->used->ring[(uint16_t) (vr->last_used + taken) & mask];
        u->id = head;
        u->len = ofs + chunk;
        taken++;
    }
    if (first.vecs[0].len >= c->hdr_len) {
        vhost_put_hdr(first.vecs[0].p, c->hdr_len, taken);
    } else {
        memset(&hdr, 0, sizeof hdr);
        hdr.num_buffers = taken;
        vhost_chain_copy(&first, 0, &hdr, c->hdr_len, true);
    }
    vr->last_avail += taken;
    vr->last_used += taken;
    return 0;
}

/* Gives the guest copies of up to 'n' packets on 'vr'.  Returns how many
 * of 'pkts' it went through: the guest's ring may fill up before.  Those
 * it could not deliver at all are counted in '*dropped' and
 * '*dropped_bytes'. */
static uint16_t
vhost_split_enqueue(const struct vhost_conn *c, struct vhost_vring *vr,
                    struct rte_mbuf **pkts, uint16_t n, uint64_t *dropped,
                    uint64_t *dropped_bytes)
{
    uint16_t mask = vr->size - 1;
    uint16_t avail = __atomic_load_n(&vr->avail->idx, __ATOMIC_ACQUIRE);
    uint16_t first = vr->last_avail;
    uint16_t first_used = vr->last_used;
    uint16_t n_free = avail - first;
    uint16_t hdr_len = c->hdr_len;
    uint16_t heads[NETDEV_MAX_BURST];
    char *dsts[NETDEV_MAX_BURST];
    uint32_t caps[NETDEV_MAX_BURST];
    uint16_t n_pre, done = 0;
    uint64_t sent = 0;

    if (OVS_UNLIKELY(n_free > vr->size)) {
        vhost_bad_avail_idx(c, vr, avail);
        return 0;
    } else if (!n_free) {
        return 0;
    }

    /* Guess one buffer a packet: every descriptor, then every buffer, on
     * its way into the cache before the first copy. */
    n_pre = MIN(n, n_free);
    for (int i = 0; i < n_pre; i++) {
        heads[i] = vr->avail->ring[(uint16_t) (first + i) & mask];
        rte_prefetch0(&vr->desc[heads[i] & mask]);
    }
    for (int i = 0; i < n_pre; i++) {
        struct vring_desc d;

        dsts[i] = NULL;
        if (OVS_UNLIKELY(heads[i] > mask)) {
            continue;
        }
        d = vr->desc[heads[i]];
        if (OVS_LIKELY(!(d.flags & (VRING_DESC_F_NEXT
                                    | VRING_DESC_F_INDIRECT)))) {
            dsts[i] = vhost_gpa_map_all(c->mem, &vr->region, d.addr, d.len);
            caps[i] = d.len;
            if (dsts[i] && caps[i] > hdr_len) {
                /* The header's line is read first: see vhost_put_hdr(). */
                rte_prefetch0(dsts[i]);
                vhost_prefetch(dsts[i] + hdr_len,
                               MIN(caps[i] - hdr_len, pkts[i]->pkt_len),
                               true);
            }
        }
    }

    for (; done < n; done++) {
        struct rte_mbuf *m = pkts[done];
        uint16_t k = vr->last_avail - first;
        uint32_t total = m->pkt_len + hdr_len;

        if (OVS_LIKELY(k < n_pre && dsts[k] && caps[k] >= total
                       && m->nb_segs == 1)) {
            struct vring_used_elem *u;

            vhost_put_hdr(dsts[k], hdr_len, 1);
            memcpy(dsts[k] + hdr_len, rte_pktmbuf_mtod(m, void *),
                   m->pkt_len);
            u = &vr->used->ring[vr->last_used++ & mask];
            u->id = heads[k];
            u->len = total;
            vr->last_avail++;
        } else {
            int error = vhost_enqueue_slow(c, vr, avail, m);

            if (error == EAGAIN) {
                break;
            } else if (error) {
                if (error == EINVAL) {
                    vhost_bad_desc(c, vr->index);
                }
                *dropped += 1;
                *dropped_bytes += m->pkt_len;
                continue;
            }
        }
        vhost_vring_count(vr->stats, m->pkt_len,
                          rte_pktmbuf_mtod(m, const uint8_t *));
        sent++;
    }
    vr->stats[VHOST_VS_good_packets] += sent;
    if (vr->last_used != first_used) {
        vhost_vring_publish(c, vr);
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

static inline bool
vhost_conn_paused(const struct vhost_conn *c)
{
    bool paused;

    atomic_read_explicit(&CONST_CAST(struct vhost_conn *, c)->paused,
                         &paused, memory_order_acquire);
    return paused;
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
static int
netdev_vhost_rxq_recv(struct netdev_rxq *rxq, struct dp_packet_batch *batch,
                      int *qfill)
{
    struct netdev_vhost *dev = netdev_vhost_cast(rxq->netdev);
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

            n = first + vhost_split_dequeue(c, vr, dev->mp, pkts + first,
                                            NETDEV_MAX_BURST - first, stats);
            if (qfill && n == NETDEV_MAX_BURST) {
                fill = (uint16_t) (__atomic_load_n(&vr->avail->idx,
                                                   __ATOMIC_RELAXED)
                                   - vr->last_avail);
            }
        }
    } else {
        n = rte_vhost_dequeue_burst(vid, vring, dev->mp, pkts,
                                    NETDEV_MAX_BURST);
        vhost_vring_count_mbufs(vr, pkts, n);
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
            m->ol_flags |= RTE_MBUF_F_TX_IP_CKSUM;
        }
    }
    return true;
}

/* Copies 'pkt', which is not an mbuf, into mbufs from 'mp', chained if it
 * does not fit in one (TCP segments of up to 64 kB), with its offload
 * requests. */
static struct rte_mbuf *
vhost_copy_to_mbuf(struct rte_mempool *mp, const struct dp_packet *pkt)
{
    const char *data = dp_packet_data(pkt);
    uint32_t len = dp_packet_size(pkt);
    struct rte_mbuf *head = NULL, *tail = NULL;
    uint32_t done = 0;

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
static int
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
    uint64_t bad_drops = 0, bad_bytes = 0;
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
            m = vhost_copy_to_mbuf(dev->mp, packet);
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
        while (!vhost_conn_paused(c) && sent < n_pkts) {
            uint16_t n;

            if (OVS_LIKELY(c->fast)) {
                n = (vr->ready
                     ? vhost_split_enqueue(c, vr, &pkts[sent], n_pkts - sent,
                                           &bad_drops, &bad_bytes)
                     : 0);
            } else {
                n = rte_vhost_enqueue_burst(vid, VHOST_GUEST_RX_VRING(vring),
                                            &pkts[sent], n_pkts - sent);
                vhost_vring_count_mbufs(vr, &pkts[sent], n);
            }
            sent += n;
            if (!n || sent == n_pkts || retries >= max_retries) {
                break;
            }
            retries++;
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
    sent -= bad_drops;
    bytes -= bad_bytes;
    fail_drops += bad_drops;

    txq->stats.packets += sent;
    txq->stats.bytes += bytes;
    if (OVS_UNLIKELY(sent < n_pkts || mtu_drops || fail_drops || retries
                     || qos_drops)) {
        int unsent = n_pkts - bad_drops - sent;

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
            v[i][k] += vr->stats[k];
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
    stats->rx_errors = rx.rx_oversize_drops + rx.rx_bad_desc_drops;
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
        smap_add(args, "datapath", "split-ring");
    } else {
        smap_add_format(args, "datapath", "librte_vhost (%s)",
                        c->slow_reason);
    }
}

static void
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
    if (dev->path) {
        smap_add(args, "socket", dev->path);
    } else {
        smap_add(args, "reason", "options:vhost-server-path is not set");
    }
    if (mtu_error || dev->qos_error) {
        smap_add_format(args, "error", "%s%s%s",
                        mtu_error ? mtu_error : "",
                        mtu_error && dev->qos_error ? "; " : "",
                        dev->qos_error ? dev->qos_error : "");
    }
    smap_add_format(args, "numa", "%d", dev->numa);
    smap_add_format(args, "n_rxq", "%d", dev->up.n_rxq);
    smap_add_format(args, "n_txq", "%d", dev->up.n_txq);
    if (vid >= 0) {
        smap_add_format(args, "features", "0x%016"PRIx64, dev->features);
        smap_add_format(args, "num_of_vrings", "%u",
                        rte_vhost_get_vring_num(vid));
        vhost_put_datapath(dev->conn, args);
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
static void
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

    now = time_msec();
    ovs_mutex_lock(&vhost_mutex);
    vhost_mp_sweep();
    vhost_mp_check();
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
    bool receiving = false;

    ovs_mutex_lock(&vhost_mutex);
    LIST_FOR_EACH (dev, list_node, &vhost_devs) {
        if (dev->reannounce_at) {
            poll_timer_wait_until(dev->reannounce_at);
        }
        receiving = receiving || ovsrcu_index_get(&dev->vid) >= 0;
    }
    if (receiving || !ovs_list_is_empty(&mp_garbage)) {
        /* Only ports with a guest take mbufs from a pool: without one,
         * the main thread need not wake up to look at the pools, unless
         * a retired one waits for its mbufs to come back. */
        poll_timer_wait_until(vhost_mp_next_check);
    }
    vhost_clients_wait();
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
                  vhost_conn_vid(dev), dev->connects);
    for (int i = 0; dev->conn && i < VHOST_MAX_VRINGS; i++) {
        const struct vhost_vring *vr = vhost_conn_vring(dev->conn, i);

        /* A snapshot, taken while the PMD threads run. */
        if (vr) {
            ds_put_format(reply, "  vring %d (%s %d): %s, avail %"PRIu16
                          ", used %"PRIu16", %"PRIu64" packets, %"PRIu64
                          " guest notifications\n", i,
                          i % 2 ? "rx from guest queue" : "tx to guest queue",
                          i / 2,
                          vr->ready ? "ready" : "not ready",
                          vr->last_avail, vr->last_used,
                          vr->stats[VHOST_VS_good_packets],
                          vr->stats[VHOST_VS_guest_notifications]);
        }
    }
    ds_put_format(reply, "  mtu: %d\n", dev->mtu);
    ds_put_format(reply, "  offered features: 0x%016"PRIx64", protocol "
                  "features: 0x%016"PRIx64"\n", dev->offered,
                  dev->offered_proto);
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
        int qp;

        atomic_read_relaxed(&dev->txqs[i].vring_qp, &qp);
        ds_put_format(reply, "  txq %d: queue pair %d\n", i, qp);
    }
    vhost_sum_stats(dev, &rx, &tx);
    ds_put_format(reply, "  rx: %"PRIu64" packets, %"PRIu64" bytes, "
                  "%"PRIu64" dropped\n", rx.packets, rx.bytes, rx.dropped);
    ds_put_format(reply, "  tx: %"PRIu64" packets, %"PRIu64" bytes, "
                  "%"PRIu64" dropped\n", tx.packets, tx.bytes, tx.dropped);
#define VHOST_CUSTOM_STAT(DIR, NAME) \
    ds_put_format(reply, "  %s: %"PRIu64"\n", #NAME, DIR.NAME);
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

/* vhost-client/set-admin-state [PORT] up|down: what
 * netdev-dpdk/set-admin-state does for upstream's ports. */
static void
vhost_unixctl_set_admin_state(struct unixctl_conn *conn, int argc,
                              const char *argv[], void *aux OVS_UNUSED)
{
    const char *state = argv[argc - 1];
    enum netdev_flags old_flags;
    struct netdev_vhost *dev;
    bool up, found = false;

    if (!strcasecmp(state, "up")) {
        up = true;
    } else if (!strcasecmp(state, "down")) {
        up = false;
    } else {
        unixctl_command_reply_error(conn, "Invalid Admin State");
        return;
    }

    ovs_mutex_lock(&vhost_mutex);
    LIST_FOR_EACH (dev, list_node, &vhost_devs) {
        if (argc > 2 && strcmp(argv[1], vhost_name(dev))) {
            continue;
        }
        found = true;
        vhost_update_flags(dev, up ? 0 : NETDEV_UP, up ? NETDEV_UP : 0,
                           &old_flags);
    }
    ovs_mutex_unlock(&vhost_mutex);

    if (argc > 2 && !found) {
        unixctl_command_reply_error(conn, "Not a vhost-user port or no such "
                                    "port");
    } else {
        unixctl_command_reply(conn, "OK");
    }
}

/* vhost-client/get-mempool-info [PORT]: rte_mempool_dump() of the port's
 * mempool, or of every port's. */
static void
vhost_unixctl_get_mempool_info(struct unixctl_conn *conn, int argc,
                               const char *argv[], void *aux OVS_UNUSED)
{
    struct netdev_vhost *dev;
    bool found = false;
    size_t size = 0;
    char *buf = NULL;
    FILE *stream;

    stream = open_memstream(&buf, &size);
    if (!stream) {
        unixctl_command_reply_error(conn, ovs_strerror(errno));
        return;
    }

    ovs_mutex_lock(&vhost_mutex);
    LIST_FOR_EACH (dev, list_node, &vhost_devs) {
        if (argc > 1 && strcmp(argv[1], vhost_name(dev))) {
            continue;
        }
        found = true;
        fprintf(stream, "%s:\n", vhost_name(dev));
        if (dev->mp) {
            rte_mempool_dump(stream, dev->mp);
        } else {
            fprintf(stream, "  no mempool: no guest has connected yet\n");
        }
    }
    ovs_mutex_unlock(&vhost_mutex);
    fclose(stream);

    if (argc > 1 && !found) {
        unixctl_command_reply_error(conn, "Not a vhost-user port or no such "
                                    "port");
    } else {
        unixctl_command_reply(conn, buf);
    }
    free(buf);
}

static int
netdev_vhost_class_init(void)
{
    static struct ovsthread_once once = OVSTHREAD_ONCE_INITIALIZER;

    if (ovsthread_once_start(&once)) {
        unixctl_command_register("vhost-client/show", "[port]", 0, 1,
                                 vhost_unixctl_show, NULL);
        unixctl_command_register("vhost-client/set-admin-state",
                                 "[port] up|down", 1, 2,
                                 vhost_unixctl_set_admin_state, NULL);
        unixctl_command_register("vhost-client/get-mempool-info", "[port]",
                                 0, 1, vhost_unixctl_get_mempool_info, NULL);
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
