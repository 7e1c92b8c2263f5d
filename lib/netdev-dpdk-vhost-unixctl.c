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


/* The vhost-client/ unixctl commands (documented in
 * netdev-dpdk-vhost-client.man): show, set-admin-state and
 * get-mempool-info.  Registered once, from the class's init; answered on
 * the main thread, with 'vhost_mutex' held while they read the ports. */

#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <rte_mempool.h>

#include "netdev-dpdk-vhost-private.h"
#include "openvswitch/dynamic-string.h"
#include "ovs-thread.h"
#include "smap.h"
#include "unixctl.h"

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
                          (vr->ready ? "ready"
                           : vhost_vring_bad(vr) ? vhost_vring_bad(vr)
                           : "not ready"),
                          vr->q.last_avail, vr->q.last_used,
                          vr->q.stats[VHOST_VS_good_packets],
                          vr->q.stats[VHOST_VS_guest_notifications]);
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

void
vhost_unixctl_register(void)
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
}
