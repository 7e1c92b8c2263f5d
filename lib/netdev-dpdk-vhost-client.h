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

#ifndef NETDEV_DPDK_VHOST_CLIENT_H
#define NETDEV_DPDK_VHOST_CLIENT_H 1

/* vhost-user netdev provider.
 *
 * Owns the port types "dpdkvhostuserclient" (Open vSwitch is the vhost-user
 * client and connects to the socket that the guest's hypervisor created in
 * server mode, options:vhost-server-path, reconnecting after either side
 * restarts) and "dpdkvhostuser" (Open vSwitch listens on a socket named
 * after the port).  librte_vhost speaks vhost-user and maps the guest's
 * memory; packets move between PMD threads and split virtqueues through
 * this module's own burst copy, and through librte_vhost's burst enqueue
 * and dequeue for packed virtqueues, offloads, live migration and IOMMU. */

struct smap;

/* Registers the netdev classes of this module.  Called once, from the main
 * thread, after DPDK's EAL is initialised; 'ovs_other_config' is the
 * Open_vSwitch table's other_config column (global vhost knobs). */
void netdev_dpdk_vhost_client_register(const struct smap *ovs_other_config);

#endif /* netdev-dpdk-vhost-client.h */
