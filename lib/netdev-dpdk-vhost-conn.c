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


/* Connections: what librte_vhost tells us of a guest, and when the
 * datapath may use its rings.
 *
 * librte_vhost's vhost-events thread enters through the device callbacks
 * (new_connection(), new_device(), vring_state_changed(),
 * destroy_device(), destroy_connection()) and the message hooks
 * (vhost_pre_msg(), vhost_post_msg(), which pause a connection's datapath
 * around each vhost-user message: see struct vhost_vring).  They record
 * what changed and either publish the device to the PMD threads at once
 * or request a reconfiguration, which the main thread applies
 * (netdev_vhost_reconfigure()) with vhost_publish() and vhost_map_txqs().
 * The main thread also forgets a connection whose socket it unregistered.
 * A device id is published with RCU, and withdrawn a grace period before
 * librte_vhost tears the device down. */

#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/virtio_net.h>

#include <rte_lcore.h>
#include <rte_spinlock.h>
#include <rte_version.h>
#include <rte_vhost.h>

#include "connectivity.h"
#include "coverage.h"
#include "netdev-dpdk-vhost-private.h"
#include "openvswitch/vlog.h"
#include "ovs-rcu.h"
#include "timeval.h"
#include "userspace-tso.h"

COVERAGE_DEFINE(vhost_client_new_device);
COVERAGE_DEFINE(vhost_client_destroy_device);
COVERAGE_DEFINE(vhost_client_vring_state);
COVERAGE_DEFINE(vhost_client_msg_refused);

static struct vlog_rate_limit rl = VLOG_RATE_LIMIT_INIT(5, 20);

atomic_count vhost_msg_count = ATOMIC_COUNT_INIT(0);

/* Port of each librte_vhost connection, for callbacks that must not lock. */
static ATOMIC(struct netdev_vhost *) vid_devs[VHOST_MAX_VID];

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

/* After rte_vhost_driver_unregister(), which destroys the connection
 * without telling destroy_connection(). */
static void vhost_conn_end(struct netdev_vhost *, bool keep_stats)
    OVS_REQUIRES(vhost_mutex);

void
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
void
vhost_publish(struct netdev_vhost *dev, int vid)
    OVS_REQUIRES(vhost_mutex)
{
    ovsrcu_index_set(&dev->vid, vid);
    netdev_change_seq_changed(&dev->up);
    dev->reannounce_at = time_msec() + 1000;
}

/* Connections (see struct vhost_conn). */

/* 'slow_reason' of a connection before its features are known. */
static const char vhost_not_negotiated[] = "not negotiated yet";

/* Virtio features that our datapath leaves to librte_vhost: dirty page
 * logging (live migration) and an IOMMU. */
static const char *
vhost_slow_reason(uint64_t features)
{
    if (features & (1ULL << VHOST_F_LOG_ALL)) {
        return "dirty page logging";
    } else if (features & (1ULL << VIRTIO_F_IOMMU_PLATFORM)) {
        return "IOMMU";
    }
    return NULL;
}

static struct vhost_conn *
vhost_conn_create(int vid)
{
    struct vhost_conn *c = xzalloc_cacheline(sizeof *c);

    c->vid = vid;
    atomic_init(&c->paused, false);
    atomic_init(&c->rarp_pending, false);
    atomic_init(&c->datapath_changed, false);
    c->slow_reason = vhost_not_negotiated;
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
        free(CONST_CAST(struct rte_vhost_memory *, c->vdev.mem));
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
            if (c->fast && vr->ready && !vr->resync) {
                uint16_t avail, used;

                vhost_virtq_get_base(&vr->q, &avail, &used);
                rte_vhost_set_vring_base(c->vid, i, avail, used);
            }
        }
    }
}

/* Returns NULL if the rings of 'r', which librte_vhost reports for a
 * connection with guest memory 'dev->mem' and 'features', lie in guest
 * memory, or why not.  librte_vhost checks them only when it translates
 * their addresses, for the size and features of that moment (and reports
 * a ring whose check failed all the same): a later SET_VRING_NUM or
 * SET_FEATURES may stretch them past the memory they lie in. */
static const char *
vhost_ring_check(const struct vhost_virtq_dev *dev, uint64_t features,
                 const struct rte_vhost_vring *r)
{
    struct vhost_virtq q = {
        .packed = features & (1ULL << VIRTIO_F_RING_PACKED),
        .size = r->size,
        .desc = r->desc,
        .avail = r->avail,
        .used = r->used,
    };

    return vhost_virtq_check(dev, &q);
}

/* Returns the guest-physical address of the 'len' bytes at 'vva' in the
 * memory of 'mem', or 0 if they are not within one region. */
static uint64_t
vhost_vva_to_gpa(const struct rte_vhost_memory *mem, uint64_t vva,
                 uint64_t len)
{
    for (uint32_t i = 0; mem && i < mem->nregions; i++) {
        const struct rte_vhost_mem_region *r = &mem->regions[i];

        if (vva >= r->host_user_addr && len <= r->size
            && vva - r->host_user_addr <= r->size - len) {
            return r->guest_phys_addr + (vva - r->host_user_addr);
        }
    }
    return 0;
}

/* Sets what our datapath must mark dirty itself on 'vr', a packed ring
 * 'r', while the hypervisor logs dirty pages.
 *
 * librte_vhost logs its writes to a packed ring's descriptors (the used
 * flags, ids and lengths it writes back) at the ring's "log address" plus
 * their offset, and QEMU gives as log address the ring's device area (the
 * used ring's address for a split ring): the pages of the descriptors are
 * never marked, and QEMU does not mark them when it stops the device
 * either.  What the device wrote to them after their last copy is lost at
 * the destination, whose guest driver then completes buffers twice or
 * never (list corruption in the guest's kernel).  So after each of
 * librte_vhost's bursts on such a ring, the PMD thread marks the whole
 * descriptor ring and the device's event area (a page or a few). */
static void
vhost_vring_set_log(struct vhost_vring *vr, const struct vhost_conn *c,
                    uint64_t features, const struct rte_vhost_vring *r)
{
    vr->log_desc_gpa = vr->log_desc_len = vr->log_event_gpa = 0;
    if (vr->ready && features & (1ULL << VIRTIO_F_RING_PACKED)
        && features & (1ULL << VHOST_F_LOG_ALL)) {
        uint64_t len = (uint64_t) r->size * sizeof *r->desc_packed;

        vr->log_desc_gpa = vhost_vva_to_gpa(c->vdev.mem,
                                            (uintptr_t) r->desc_packed, len);
        vr->log_event_gpa = vhost_vva_to_gpa(c->vdev.mem,
                                             (uintptr_t) r->device_event,
                                             sizeof *r->device_event);
        if (vr->log_desc_gpa) {
            vr->log_desc_len = len;
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
    c->vdev.packed = features & (1ULL << VIRTIO_F_RING_PACKED);
    c->vdev.host_offloads = features & (1ULL << VIRTIO_NET_F_CSUM);
    c->vdev.guest_offloads = features & (1ULL << VIRTIO_NET_F_GUEST_CSUM);
    c->vdev.event_idx = features & (1ULL << VIRTIO_RING_F_EVENT_IDX);
    c->vdev.in_order = features & (1ULL << VIRTIO_F_IN_ORDER);
    c->vdev.mrg_rxbuf = features & (1ULL << VIRTIO_NET_F_MRG_RXBUF);
    c->vdev.hdr_len = (features & ((1ULL << VIRTIO_NET_F_MRG_RXBUF)
                              | (1ULL << VIRTIO_F_VERSION_1))
                  ? sizeof(struct virtio_net_hdr_mrg_rxbuf)
                  : sizeof(struct virtio_net_hdr));
    c->slow_reason = vhost_slow_reason(features);
    c->fast = !c->slow_reason;

    free(CONST_CAST(struct rte_vhost_memory *, c->vdev.mem));
    c->vdev.mem = NULL;
    if (c->has_mem && !rte_vhost_get_mem_table(c->vid, &mem)) {
        if (mem->nregions) {
            c->vdev.mem = mem;
        } else {
            free(mem);
        }
    }

    n_vrings = MIN(rte_vhost_get_vring_num(c->vid), VHOST_MAX_VRINGS);
    for (int i = 0; i < VHOST_MAX_VRINGS; i++) {
        struct vhost_vring *vr = vhost_conn_vring(c, i);
        const char *bad = NULL, *was_bad;
        struct rte_vhost_vring r;
        unsigned int slow_busy;
        uint16_t avail, used;
        bool have_ring;

        if (!vr && i < n_vrings) {
            vr = xzalloc_cacheline(sizeof *vr);
            rte_spinlock_init(&vr->lock);
            vr->index = i;
            atomic_init(&vr->bad, NULL);
            atomic_init(&vr->slow_busy, 0);
            atomic_store_explicit(&c->vrings[i], vr, memory_order_release);
        }
        if (!vr) {
            continue;
        }
        have_ring = (i < n_vrings && c->vdev.mem
                     && !rte_vhost_get_vhost_vring(c->vid, i, &r)
                     && r.desc && r.avail && r.used);
        if (have_ring) {
            bad = vhost_ring_check(&c->vdev, features, &r);
        }
        was_bad = vhost_vring_bad(vr);
        atomic_store_relaxed(&vr->bad, bad);
        if (bad && bad != was_bad) {
            char ifname[PATH_MAX];

            if (!rte_vhost_get_ifname(c->vid, ifname, sizeof ifname)) {
                VLOG_WARN_RL(&rl, "%s: vring %d: %s (size %"PRIu16"); it is "
                             "not used until the guest sets it anew",
                             ifname, i, bad, r.size);
            }
        }
        atomic_read_relaxed(&vr->slow_busy, &slow_busy);
        vr->q.packed = c->vdev.packed;
        vr->ready = (have_ring && !bad
                     && !rte_vhost_get_vring_base(c->vid, i, &avail, &used));
        /* Sends on librte_vhost's datapath that started before the pause
         * may still move librte_vhost's indexes once the message is
         * handled. */
        vr->resync = vr->ready && c->fast && slow_busy;
        if (vr->ready) {
            vhost_virtq_set_base(&vr->q, avail, used);
            vr->q.desc = r.desc;
            vr->q.avail = r.avail;
            vr->q.used = r.used;
            vr->q.size = r.size;
            vr->q.callfd = r.callfd;
        }
        vhost_vring_set_log(vr, c, features, &r);
        vhost_virtq_rearm(&vr->q);
    }
}

/* vhost-user message codes that we look at (the vhost-user protocol's). */
#define VHOST_USER_RESET_OWNER 4
#define VHOST_USER_SET_MEM_TABLE 5
#define VHOST_USER_SET_LOG_BASE 6
#define VHOST_USER_SEND_RARP 19
#define VHOST_USER_IOTLB_MSG 22

/* A message as the hooks see it: DPDK 22.11's struct vhu_msg_context
 * (lib/vhost/vhost_user.h, not installed): the message (a 12-byte header:
 * request, flags, payload size; then a 632-byte payload), then the file
 * descriptors that came with it. */
#if RTE_VERSION < RTE_VERSION_NUM(22, 11, 0, 0) \
    || RTE_VERSION >= RTE_VERSION_NUM(22, 12, 0, 0)
#error "check struct vhu_msg_context in this DPDK's lib/vhost/vhost_user.h"
#endif
#define VHOST_MSG_SIZE_OFS 8
#define VHOST_MSG_PAYLOAD_OFS 12
#define VHOST_MSG_FDS_OFS (VHOST_MSG_PAYLOAD_OFS + 632)
#define VHOST_MSG_N_FDS_OFS (VHOST_MSG_FDS_OFS + 8 * sizeof(int))
#define VHOST_MSG_MAX_FDS 8

static uint32_t
vhost_msg_u32(const uint8_t *msg, size_t ofs)
{
    uint32_t v;

    memcpy(&v, msg + ofs, sizeof v);
    return v;
}

static uint64_t
vhost_msg_u64(const uint8_t *msg, size_t ofs)
{
    uint64_t v;

    memcpy(&v, msg + ofs, sizeof v);
    return v;
}

/* Returns true if the file 'fd' has 'size' bytes from 'offset' on, or is
 * not a regular file (a device, whose size fstat() does not tell). */
static bool
vhost_fd_covers(int fd, uint64_t offset, uint64_t size)
{
    struct stat st;

    if (fstat(fd, &st)) {
        return false;
    }
    return (!S_ISREG(st.st_mode)
            || (offset <= UINT64_MAX - size
                && offset + size <= (uint64_t) st.st_size));
}

/* Checks that each file of a SET_MEM_TABLE or SET_LOG_BASE message 'msg'
 * holds what the message says librte_vhost may map of it: librte_vhost
 * maps the declared size unchecked, and touching a page past the end of
 * a file kills the process (SIGBUS).  Returns NULL if so, otherwise a
 * phrase that says what is wrong, in 'buf'. */
static const char *
vhost_msg_check_files(const uint8_t *msg, uint32_t request,
                      char *buf, size_t size)
{
    uint32_t n_fds = vhost_msg_u32(msg, VHOST_MSG_N_FDS_OFS);
    uint32_t payload = vhost_msg_u32(msg, VHOST_MSG_SIZE_OFS);
    const uint8_t *p = msg + VHOST_MSG_PAYLOAD_OFS;
    int fds[VHOST_MSG_MAX_FDS];

    if (n_fds > VHOST_MSG_MAX_FDS) {
        return NULL;            /* librte_vhost refuses it. */
    }
    memcpy(fds, msg + VHOST_MSG_FDS_OFS, n_fds * sizeof fds[0]);
    if (request == VHOST_USER_SET_LOG_BASE) {
        uint64_t log_size = vhost_msg_u64(p, 0);
        uint64_t log_ofs = vhost_msg_u64(p, 8);

        if (payload >= 16 && n_fds == 1
            && !vhost_fd_covers(fds[0], log_ofs, log_size)) {
            snprintf(buf, size, "dirty page log (%"PRIu64" bytes at "
                     "offset %"PRIu64") is larger than its file", log_size,
                     log_ofs);
            return buf;
        }
    } else {
        uint32_t n_regions = vhost_msg_u32(p, 0);

        if (payload < 8 + 32 * MIN(n_regions, VHOST_MSG_MAX_FDS)) {
            return NULL;        /* librte_vhost refuses it. */
        }
        for (uint32_t i = 0; i < n_regions && i < n_fds; i++) {
            const uint8_t *r = p + 8 + 32 * i;
            uint64_t r_size = vhost_msg_u64(r, 8);
            uint64_t r_ofs = vhost_msg_u64(r, 24);

            if (!vhost_fd_covers(fds[i], r_ofs, r_size)) {
                snprintf(buf, size, "memory region %"PRIu32" (%"PRIu64
                         " bytes at offset %"PRIu64") is larger than its "
                         "file", i, r_size, r_ofs);
                return buf;
            }
        }
    }
    return NULL;
}

/* Refuses message 'msg' for 'why': closes the files that came with it
 * (librte_vhost leaves that to a hook that refuses) and logs it. */
static enum rte_vhost_msg_result
vhost_msg_refuse(int vid, uint8_t *msg, const char *why)
{
    static struct vlog_rate_limit refuse_rl = VLOG_RATE_LIMIT_INIT(5, 20);
    uint32_t n_fds = vhost_msg_u32(msg, VHOST_MSG_N_FDS_OFS);
    char ifname[PATH_MAX];

    COVERAGE_INC(vhost_client_msg_refused);
    for (uint32_t i = 0; i < MIN(n_fds, VHOST_MSG_MAX_FDS); i++) {
        int fd;

        memcpy(&fd, msg + VHOST_MSG_FDS_OFS + i * sizeof fd, sizeof fd);
        if (fd >= 0) {
            close(fd);
            fd = -1;
            memcpy(msg + VHOST_MSG_FDS_OFS + i * sizeof fd, &fd, sizeof fd);
        }
    }
    if (!rte_vhost_get_ifname(vid, ifname, sizeof ifname)) {
        VLOG_WARN_RL(&refuse_rl, "%s: refused vhost-user %s: %s", ifname,
                     (vhost_msg_u32(msg, 0) == VHOST_USER_SET_MEM_TABLE
                      ? "SET_MEM_TABLE" : "SET_LOG_BASE"), why);
    }
    return RTE_VHOST_MSG_RESULT_ERR;
}

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
    uint8_t *msg = msg_;
    struct vhost_conn *c = vid_conn_get(vid);
    uint32_t request = vhost_msg_u32(msg, 0);

    atomic_count_inc(&vhost_msg_count);
    if (!c || request == VHOST_USER_IOTLB_MSG) {
        /* An IOMMU's translations: librte_vhost's datapath only. */
        return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
    }
    if (request == VHOST_USER_SET_MEM_TABLE
        || request == VHOST_USER_SET_LOG_BASE) {
        char buf[128];
        const char *why = vhost_msg_check_files(msg, request,
                                                buf, sizeof buf);

        if (why) {
            /* librte_vhost keeps what it had: no pause, nothing changes
             * (a hook that refuses is not called after the message). */
            return vhost_msg_refuse(vid, msg, why);
        }
    }
    vhost_conn_pause(c);
    if (request == VHOST_USER_SEND_RARP) {
        /* The guest's MAC address, in the 64-bit payload. */
        if (vhost_msg_u32(msg, VHOST_MSG_SIZE_OFS) >= sizeof c->rarp_mac) {
            memcpy(&c->rarp_mac, msg + VHOST_MSG_PAYLOAD_OFS,
                   sizeof c->rarp_mac);
            atomic_store(&c->rarp_pending, true);
        }
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
        const char *was = c->slow_reason;

        if (request == VHOST_USER_SET_MEM_TABLE) {
            /* It succeeded: we are not called otherwise. */
            c->has_mem = true;
        }
        vhost_conn_refresh(c);
        atomic_store_explicit(&c->paused, false, memory_order_release);
        if (c->slow_reason != was && was != vhost_not_negotiated) {
            /* Dirty page logging (a live migration) starts or ends: the
             * main thread tells the database (netdev_vhost_run()).  Not
             * here: librte_vhost holds its vring locks around this hook. */
            atomic_store(&c->datapath_changed, true);
            seq_change(connectivity_seq_get());
        }
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
            dev->vring_base[i][k] += vr->q.stats[k];
        }
    }
    dev->conn = NULL;
    dev->stopped = NULL;
    vhost_conn_destroy(c);
}

/* librte_vhost watches each vhost-user connection, each listening socket
 * of a server port and its own wake-up pipe in one set of this many file
 * descriptors (MAX_FDS in its fd_man.h).  A connection that does not fit
 * is closed as soon as it is made: 1,023 connections at most, fewer with
 * server ports. */
#define VHOST_FDSET_SIZE 1024

/* Returns true if librte_vhost has no room to watch one more connection. */
static bool
vhost_fdset_full(void)
    OVS_REQUIRES(vhost_mutex)
{
    struct netdev_vhost *dev;
    int n = 1;                  /* librte_vhost's wake-up pipe. */

    LIST_FOR_EACH (dev, list_node, &vhost_devs) {
        n += (dev->conn != NULL) + (dev->server && dev->registered);
    }
    return n >= VHOST_FDSET_SIZE;
}

/* vhost callbacks.  They record what changed and, where the datapath must
 * follow, request a reconfiguration. */

static int
new_connection(int vid)
    OVS_EXCLUDED(vhost_mutex)
{
    char path[PATH_MAX];
    struct netdev_vhost *dev;

    atomic_count_inc(&vhost_msg_count);
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
        VLOG_WARN_RL(&rl, "%s: refusing a second vhost-user connection on %s",
                  vhost_name(dev), path);
        dev = NULL;
    } else if (dev && vhost_fdset_full()) {
        /* Refused here rather than closed by librte_vhost: the port says
         * why, and a client port tries again after its back-off, as
         * connections elsewhere may end meanwhile. */
        dev->conn_error = "librte_vhost serves at most 1023 vhost-user "
                          "connections and server sockets in one process";
        VLOG_WARN_RL(&rl, "%s: refusing the vhost-user connection on %s: %s",
                     vhost_name(dev), path, dev->conn_error);
        if (!dev->server) {
            vhost_client_back_off(dev);
        }
        netdev_change_seq_changed(&dev->up);
        dev = NULL;
    } else if (dev) {
        dev->conn_error = NULL;
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
    dev->stopped = NULL;
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
              !dev->conn->fast ? "librte_vhost datapath"
              : dev->conn->vdev.packed ? "packed-ring datapath"
              : "split-ring datapath");
    ovs_mutex_unlock(&vhost_mutex);

    return 0;
}

static void
destroy_device(int vid)
    OVS_EXCLUDED(vhost_mutex)
{
    struct netdev_vhost *dev;
    bool was_published = false;
    char path[PATH_MAX];

    COVERAGE_INC(vhost_client_destroy_device);
    if (rte_vhost_get_ifname(vid, path, sizeof path)) {
        path[0] = '\0';
    }

    ovs_mutex_lock(&vhost_mutex);
    dev = vid_dev_get(vid);
    if (dev) {
        uint64_t features = 0;

        /* A hypervisor that logged our writes to guest memory until it
         * stopped the device is the source of a live migration that has
         * just completed: the guest now runs elsewhere. */
        rte_vhost_get_negotiated_features(vid, &features);
        dev->stopped = (features & (1ULL << VHOST_F_LOG_ALL)
                        ? "the guest migrated away (live migration)"
                        : "the guest stopped the device");
        was_published = ovsrcu_index_get(&dev->vid) >= 0;
        dev->req_vid = -1;
        vhost_publish(dev, -1);
        VLOG_INFO("%s: vhost-user device stopped (vid %d): %s",
                  vhost_name(dev), vid, dev->stopped);
        /* Upstream's line, which tools (and upstream's tests) look for. */
        VLOG_INFO("vHost Device '%s' has been removed", path);
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
            vhost_client_back_off(dev);
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

const struct rte_vhost_device_ops vhost_device_ops = {
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
void
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
uint64_t
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

bool
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
