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


/* Sockets: registering a port's vhost-user socket with librte_vhost,
 * connecting client ports (and reconnecting them, by themselves), and
 * making way for server sockets that a crash left behind.
 *
 * Entered by the main thread only (set_config, destruct, run and wait),
 * never with 'vhost_mutex' held across a call into librte_vhost: DPDK
 * calls back into netdev-dpdk-vhost-conn.c from rte_vhost_driver_start()
 * and rte_vhost_driver_unregister(). */

#include <config.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/virtio_net.h>

#include <rte_vhost.h>

#include "coverage.h"
#include "fatal-signal.h"
#include "hash.h"
#include "netdev-dpdk-vhost-private.h"
#include "openvswitch/poll-loop.h"
#include "openvswitch/vlog.h"
#include "ovs-rcu.h"
#include "simap.h"
#include "sset.h"
#include "timeval.h"
#include "userspace-tso.h"

COVERAGE_DEFINE(vhost_client_connect_attempt);
COVERAGE_DEFINE(vhost_client_msg_stall);

/* Client ports connect by themselves, from the main thread, and nothing
 * else connects them: librte_vhost's reconnection (a thread that retries
 * every second, and that could connect while we register a socket again)
 * is off.  A client port that is not connected tries:
 *
 *   - when it is configured;
 *   - VHOST_APPEAR_MS after a new socket file appears at its path:
 *     inotify on the socket's directory.  Every VHOST_POLL_MS, a port
 *     whose directory is not watched (yet: it was created later, or
 *     replaced, or inotify refused it) tries to watch it and looks at its
 *     path with stat(); ports in watched directories cost nothing then,
 *     so a thousand waiting ports keep the main thread idle.  A server
 *     binds its socket (which creates the
 *     file) and listens on it right after: connecting in between is
 *     refused, and librte_vhost warns "failed to connect" about a server
 *     that was only starting;
 *   - when its connection closes: at once if a guest device was ready on
 *     it, otherwise after the back-off;
 *   - after a failed attempt, VHOST_KICK_FIRST_MS later, then twice as
 *     long each time, up to VHOST_KICK_MAX_MS apart: a server may have
 *     bound its socket without listening on it yet.
 *
 * A port whose socket file does not exist does not try at all.  A server
 * cannot listen on a socket file without creating it anew, so after a few
 * refusals the attempts thin out until one appears. */
#define VHOST_POLL_MS 1000
#define VHOST_APPEAR_MS 10

/* The directories watched with inotify, each with its watch descriptor.
 * Used by the main thread only (set_config, run and wait). */
static int vhost_inotify_fd = -1;
static struct simap vhost_watched_dirs
    = SIMAP_INITIALIZER(&vhost_watched_dirs);
static struct sset vhost_unwatchable_dirs
    = SSET_INITIALIZER(&vhost_unwatchable_dirs);
static long long int vhost_next_poll = LLONG_MIN;

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
    err = rte_vhost_driver_callback_register(path, &vhost_device_ops);
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

void
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
 * Without the watch, the port still connects, within VHOST_POLL_MS.
 * Returns true if the directory was watched already, so that inotify
 * reported whatever appeared in it: the caller must look at 'path' itself
 * otherwise (after this call, so that nothing falls in between). */
static bool
vhost_watch_dir(const char *path)
{
    char *dir = dir_name(path);
    bool watched = simap_contains(&vhost_watched_dirs, dir);
    int wd;

    if (watched) {
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
    wd = inotify_add_watch(vhost_inotify_fd, dir,
                           IN_CREATE | IN_MOVED_TO | IN_MOVE_SELF);
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
    return watched;
}

/* Reads what inotify has to say.  Returns true if a socket may have
 * appeared.  Forgets directories that went away (IN_IGNORED) and stops
 * watching one that moved (IN_MOVE_SELF: its path may name another one
 * now): they are watched again at the next poll. */
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

            if (ev->mask & IN_MOVE_SELF) {
                /* IN_IGNORED follows. */
                inotify_rm_watch(vhost_inotify_fd, ev->wd);
            } else if (ev->mask & IN_IGNORED) {
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
            vhost_client_back_off(dev);
        }
        VLOG(level, "%s: could not connect to vhost-user socket %s; %s",
             vhost_name(dev), path,
             file ? "trying again" : "connecting when it appears");
        /* What librte_vhost's own reconnection says, which upstream's
         * switch uses (and tools look for). */
        VLOG(level, "VHOST_CONFIG: (%s) reconnecting...", path);
        err = 0;
    }
    ovs_mutex_unlock(&vhost_mutex);
    free(path);
    return err;
}

/* Has client port 'dev' try again after its back-off, which doubles, up to
 * VHOST_KICK_MAX_MS, until a connection is made. */
void
vhost_client_back_off(struct netdev_vhost *dev)
    OVS_REQUIRES(vhost_mutex)
{
    dev->kick_at = time_msec() + dev->kick_delay;
    dev->kick_delay = MIN(dev->kick_delay * 2, VHOST_KICK_MAX_MS);
}

/* Connects the client ports that are due: those whose socket file
 * appeared (or was replaced) and those whose back-off expired. */
void
vhost_clients_run(void)
    OVS_EXCLUDED(vhost_mutex)
{
    struct netdev_vhost **due = NULL;
    size_t n_due = 0, allocated = 0;
    struct netdev_vhost *dev;
    bool appeared, poll;
    long long int now;

    appeared = vhost_inotify_drain();
    now = time_msec();
    poll = now >= vhost_next_poll;
    if (poll) {
        vhost_next_poll = now + VHOST_POLL_MS;
    }

    ovs_mutex_lock(&vhost_mutex);
    LIST_FOR_EACH (dev, list_node, &vhost_devs) {
        if (dev->server || !dev->reg_path || vhost_conn_vid(dev) >= 0) {
            continue;
        }
        bool look = appeared;

        if (poll && !vhost_watch_dir(dev->reg_path)) {
            look = true;
        }
        if (look) {
            uint64_t file = vhost_socket_file_id(dev->reg_path);

            if (file && file != dev->kick_file) {
                VLOG_INFO("%s: socket %s appeared: connecting",
                          vhost_name(dev), dev->reg_path);
                dev->kick_file = file;
                dev->kick_delay = VHOST_KICK_FIRST_MS;
                dev->kick_at = now + VHOST_APPEAR_MS;
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
void
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
int
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

/* Makes 'dev' use the socket at 'path' (NULL: none), which
 * vhost_check_path() accepted: when it differs from the one registered,
 * leaves that one (the old connection's per-vring counters go with it)
 * and registers the new one; a client port connects at once if it can.
 * Returns 0, or a positive errno after reporting through 'errp'. */
int
vhost_socket_set_path(struct netdev_vhost *dev, const char *path,
                      char **errp)
    OVS_EXCLUDED(vhost_mutex)
{
    const char *name = vhost_name(dev);
    const char *mode = dev->server ? "server" : "client";
    uint64_t offered, offered_proto;
    bool old_registered;
    char *old_reg;
    int err;

    ovs_mutex_lock(&vhost_mutex);
    if (nullable_string_is_equal(path, dev->reg_path)) {
        ovs_mutex_unlock(&vhost_mutex);
        return 0;
    }
    free(dev->path);
    dev->path = nullable_xstrdup(path);
    old_reg = dev->reg_path;
    old_registered = dev->registered;
    dev->reg_path = NULL;
    dev->registered = false;
    ovs_mutex_unlock(&vhost_mutex);

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
        netdev_change_seq_changed(&dev->up);
        return 0;
    }

    if (dev->server) {
        err = vhost_clear_stale_socket(name, path, errp);
        if (err) {
            return err;
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
        /* Upstream's line, which tools (and upstream's tests) look for. */
        if (dev->server) {
            VLOG_INFO("Socket %s created for vhost-user port %s", path, name);
        } else {
            VLOG_INFO("vHost User device '%s' created in 'client' mode, "
                      "using client socket '%s'", name, path);
        }
    }
    ovs_mutex_unlock(&vhost_mutex);
    netdev_change_seq_changed(&dev->up);
    return err;
}

/* Stalled frontends.
 *
 * librte_vhost reads and answers the messages of every connection in one
 * thread ("vhost-events"), on blocking sockets: a frontend that sends a
 * message's header and never its payload, or never reads our replies,
 * stops that thread, and with it every other port's negotiation.  The
 * main thread looks at what that thread does, every VHOST_STALL_CHECK_MS:
 * if it has been in one read or write on one socket of a port of ours for
 * VHOST_STALL_MS, while it took no message, the frontend stalled it; we
 * shut that connection down (its read or write then fails, and
 * librte_vhost closes it as after any broken message), and log it.  A
 * frontend that sends whole messages (as QEMU does) never waits there. */
#define VHOST_STALL_MS 1000
#define VHOST_STALL_CHECK_MS 250
#define VHOST_TASK_DIR "/proc/self/task"

static pid_t vhost_events_tid;  /* librte_vhost's thread, once found. */
static long long int vhost_stall_next = LLONG_MIN;
static struct {
    long int nr;                /* System call, or -1. */
    int fd;
    unsigned int msgs;          /* 'vhost_msg_count' then. */
    long long int since;
} vhost_stall = { .nr = -1 };

/* Returns the thread id of librte_vhost's thread, or 0. */
static pid_t
vhost_find_events_thread(void)
{
    struct dirent *de;
    pid_t tid = 0;
    DIR *dir;

    dir = opendir(VHOST_TASK_DIR);

    while (dir && !tid && (de = readdir(dir)) != NULL) {
        char path[64], comm[32] = "";
        int id = atoi(de->d_name);
        FILE *f;

        if (id <= 0) {
            continue;
        }
        snprintf(path, sizeof path, "/proc/self/task/%d/comm", id);
        f = fopen(path, "r");
        if (f) {
            if (fgets(comm, sizeof comm, f)
                && !strncmp(comm, "vhost-events", 12)) {
                tid = id;
            }
            fclose(f);
        }
    }
    if (dir) {
        closedir(dir);
    }
    return tid;
}

/* Reads the system call that thread 'tid' waits in and its first
 * argument.  Returns false if it is not in one (or has gone). */
static bool
vhost_thread_syscall(pid_t tid, long int *nr, unsigned long int *arg0)
{
    char path[64], buf[128];
    bool ok = false;
    FILE *f;

    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int) tid);
    f = fopen(path, "r");
    if (f) {
        ok = (fgets(buf, sizeof buf, f)
              && sscanf(buf, "%ld %lx", nr, arg0) == 2 && *nr >= 0);
        fclose(f);
    }
    return ok;
}

/* Returns the port whose vhost-user socket 'fd' is connected through
 * (client ports: its peer's name; server ports: its own), or NULL. */
static struct netdev_vhost *
vhost_fd_port(int fd)
    OVS_REQUIRES(vhost_mutex)
{
    struct sockaddr_un names[2];
    struct netdev_vhost *dev;

    for (int i = 0; i < 2; i++) {
        socklen_t len = sizeof names[i];

        memset(&names[i], 0, sizeof names[i]);
        if ((i ? getsockname(fd, (struct sockaddr *) &names[i], &len)
             : getpeername(fd, (struct sockaddr *) &names[i], &len))
            || names[i].sun_family != AF_UNIX) {
            names[i].sun_path[0] = '\0';
        }
    }
    LIST_FOR_EACH (dev, list_node, &vhost_devs) {
        if (dev->reg_path
            && !strncmp(dev->reg_path,
                        names[dev->server ? 1 : 0].sun_path,
                        sizeof names[0].sun_path)) {
            return dev;
        }
    }
    return NULL;
}

/* Looks at librte_vhost's thread; shuts down the connection that a
 * frontend stalled it on (see above). */
void
vhost_stall_run(void)
    OVS_EXCLUDED(vhost_mutex)
{
    long long int now = time_msec();
    unsigned long int arg0;
    unsigned int msgs;
    long int nr;
    bool io;

    if (now < vhost_stall_next) {
        return;
    }
    vhost_stall_next = now + VHOST_STALL_CHECK_MS;
    if (!vhost_events_tid) {
        vhost_events_tid = vhost_find_events_thread();
        if (!vhost_events_tid) {
            return;
        }
    }

    msgs = atomic_count_get(&vhost_msg_count);
    io = (vhost_thread_syscall(vhost_events_tid, &nr, &arg0)
          && (nr == SYS_read || nr == SYS_recvmsg || nr == SYS_recvfrom
              || nr == SYS_write || nr == SYS_sendmsg || nr == SYS_sendto)
          && arg0 <= INT_MAX);
    if (!io || nr != vhost_stall.nr || (int) arg0 != vhost_stall.fd
        || msgs != vhost_stall.msgs) {
        vhost_stall.nr = io ? nr : -1;
        vhost_stall.fd = io ? (int) arg0 : -1;
        vhost_stall.msgs = msgs;
        vhost_stall.since = now;
    } else if (now - vhost_stall.since >= VHOST_STALL_MS) {
        struct netdev_vhost *dev;

        ovs_mutex_lock(&vhost_mutex);
        dev = vhost_fd_port(vhost_stall.fd);
        if (dev) {
            COVERAGE_INC(vhost_client_msg_stall);
            VLOG_WARN("%s: vhost-user frontend on %s stalled librte_vhost "
                      "in the middle of a message for %lld ms (every "
                      "port's negotiation waits for it): connection shut "
                      "down", vhost_name(dev), dev->reg_path,
                      now - vhost_stall.since);
            shutdown(vhost_stall.fd, SHUT_RDWR);
        }
        ovs_mutex_unlock(&vhost_mutex);
        vhost_stall.nr = -1;
    }
}

/* Makes the main thread wake up for vhost_stall_run() while any port has
 * a connection. */
void
vhost_stall_wait(void)
    OVS_REQUIRES(vhost_mutex)
{
    struct netdev_vhost *dev;

    LIST_FOR_EACH (dev, list_node, &vhost_devs) {
        if (vhost_conn_vid(dev) >= 0) {
            poll_timer_wait_until(vhost_stall_next);
            return;
        }
    }
}
