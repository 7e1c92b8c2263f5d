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


/* QoS of vhost-user ports: ingress policing (Interface ingress_policing_*)
 * and egress QoS (Port qos, types "egress-policer" and "trtcm-policer",
 * with Queue rows for the latter).
 *
 * The configuration functions run on the main thread with 'vhost_mutex'
 * held; vhost_policer_run() and vhost_qos_run() run on the PMD threads
 * (and the main thread for its own sends), once per burst, under the
 * object's spinlock. */

#include <config.h>

#include <errno.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_meter.h>
#include <rte_spinlock.h>

#include "coverage.h"
#include "dp-packet.h"
#include "hash.h"
#include "netdev-dpdk-vhost-private.h"
#include "openvswitch/hmap.h"
#include "openvswitch/vlog.h"
#include "ovs-rcu.h"
#include "smap.h"
#include "sset.h"
#include "timeval.h"

COVERAGE_DEFINE(vhost_client_qos_change);

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
int
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
int
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

void
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

void
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

int
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

int
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

int
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

int
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
 * refused, for the Interface's status. */
static void
vhost_set_qos_error(struct netdev_vhost *dev, char *error)
    OVS_REQUIRES(vhost_mutex)
{
    free(dev->qos_error);
    dev->qos_error = error;
}

int
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
            /* The previous configuration stays.  The log line starts as
             * upstream's, which tools (and upstream's tests) look for. */
            const char *why = (type == VHOST_QOS_EGRESS_POLICER
                               ? "cir and cbs must be positive"
                               : "cir with cbs, or eir with ebs, must be "
                                 "positive");
            char *error = xasprintf("QoS type %s refused: %s", type_name,
                                    why);

            if (!nullable_string_is_equal(error, dev->qos_error)) {
                VLOG_WARN("Failed to set QoS type %s on port %s: %s (%s)",
                          type_name, vhost_name(dev), ovs_strerror(EINVAL),
                          why);
            }
            vhost_set_qos_error(dev, error);
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

int
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

int
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

int
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

int
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

int
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

int
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

int
netdev_vhost_queue_dump_done(const struct netdev *netdev OVS_UNUSED,
                             void *state)
{
    struct vhost_queue_dump *d = state;

    free(d->ids);
    free(d->rates);
    free(d);
    return 0;
}
