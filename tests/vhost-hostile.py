#!/usr/bin/env python3
# Copyright (c) 2026 The ovs-vhost-client authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at:
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""A hostile vhost-user frontend: the part QEMU plays, misbehaving.

It creates a vhost-user socket in server mode (as QEMU does with
"server=on"), waits for the switch's dpdkvhostuserclient port to connect,
negotiates one queue pair of split virtqueues (or, with --packed, packed
ones) over guest memory of its own (memfd regions) and then runs one CASE:
it acts as a guest would, except for what the case breaks.  The switch is expected to loop every packet
that this port sends back to it (an OpenFlow flow "in_port=PORT,
actions=in_port"), so that good packets come back on the receive ring and
can be counted and checked byte for byte.

It prints what it saw, one "key: value" line at a time, for the test to
compare exactly; it exits 1 if the switch broke the protocol (a used entry
that names no buffer we posted, a looped packet that differs from what we
sent, a write outside the receive buffers it was given).
"""

import argparse
import array
import mmap
import os
import select
import socket
import struct
import sys
import threading
import time

# vhost-user requests.
GET_FEATURES = 1
SET_FEATURES = 2
SET_OWNER = 3
SET_MEM_TABLE = 5
SET_VRING_NUM = 8
SET_VRING_ADDR = 9
SET_VRING_BASE = 10
GET_VRING_BASE = 11
SET_VRING_KICK = 12
SET_VRING_CALL = 13
GET_PROTOCOL_FEATURES = 15
SET_PROTOCOL_FEATURES = 16
SET_VRING_ENABLE = 18
SEND_RARP = 19

VERSION = 0x1
REPLY = 0x4
NEED_REPLY = 0x8

F_CSUM = 1 << 0
F_GUEST_CSUM = 1 << 1
F_GUEST_TSO4 = 1 << 7
F_GUEST_TSO6 = 1 << 8
F_HOST_TSO4 = 1 << 11
F_MRG_RXBUF = 1 << 15
F_INDIRECT = 1 << 28
F_EVENT_IDX = 1 << 29
F_PROTOCOL = 1 << 30
F_VERSION_1 = 1 << 32
F_RING_PACKED = 1 << 34
PROTO_REPLY_ACK = 1 << 3

DESC_NEXT = 1
DESC_WRITE = 2
DESC_INDIRECT = 4
P_AVAIL = 1 << 7                # Packed descriptors: the driver's and
P_USED = 1 << 15                # the device's wrap counter bits.

HDR_LEN = 12                    # virtio_net_hdr_mrg_rxbuf (VERSION_1).
QSIZE = 256
RX, TX = 0, 1                   # Guest rx (switch sends) and tx vrings.

# Guest physical layout of region 0 (MEM bytes, at GPA 0): the rings of
# each vring in a 64 kB block, then buffers.  Region 1, if any, follows
# at GPA MEM (adjacent in guest physical memory, not in ours).
MEM = 4 << 20
UADDR = 0x7f0000000000          # "QEMU's" address of GPA 0.
RING_BLOCK = 0x10000
DESC_OFS, AVAIL_OFS, USED_OFS = 0, 0x4000, 0x8000
BUFS = 0x40000
BUF_SIZE = 2048
RX_BUFS = BUFS                  # 256 receive buffers.
TX_BUFS = BUFS + QSIZE * BUF_SIZE
SCRATCH = TX_BUFS + QSIZE * BUF_SIZE     # Indirect tables and the like.

FRAME_LEN = 64


class ProtocolError(Exception):
    pass


def log(msg):
    sys.stderr.write("vhost-hostile: %s\n" % msg)
    sys.stderr.flush()


class Guest:
    """Guest memory, one queue pair, and the vhost-user connection."""

    def __init__(self, path, features, regions=((0, MEM, MEM),),
                 timeout=30):
        self.path = path
        self.timeout = timeout
        self.regions = []           # (gpa, size, memfd, mmap)
        for gpa, size, file_size in regions:
            fd = os.memfd_create("guest-%d" % len(self.regions))
            os.ftruncate(fd, file_size)
            m = mmap.mmap(fd, min(size, file_size))
            self.regions.append((gpa, size, fd, m))
        self.want_features = features
        self.packed = bool(features & F_RING_PACKED)
        # Packed rings: the guest's avail and used positions, their wrap
        # counters, and the descriptors each outstanding buffer id took.
        self.p_avail = [0, 0]
        self.p_avail_wrap = [1, 1]
        self.p_used = [0, 0]
        self.p_used_wrap = [1, 1]
        self.p_chain = [{}, {}]
        self.rx_addr = {}           # Receive buffers not at RX_BUFS.
        self.avail_idx = [0, 0]
        self.next_desc = [0, 0]
        self.used_seen = [0, 0]
        self.kick = [os.eventfd(0, os.EFD_NONBLOCK) for _ in range(2)]
        self.call = [os.eventfd(0, os.EFD_NONBLOCK) for _ in range(2)]
        self.sock = None
        self.listener = None

    # Guest memory.

    def locate(self, gpa, n):
        for base, size, _, m in self.regions:
            if base <= gpa and gpa + n <= base + min(size, len(m)):
                return m, gpa - base
        raise ProtocolError("no guest memory at %#x+%d" % (gpa, n))

    def write(self, gpa, data):
        m, ofs = self.locate(gpa, len(data))
        m[ofs:ofs + len(data)] = data

    def read(self, gpa, n):
        m, ofs = self.locate(gpa, n)
        return bytes(m[ofs:ofs + n])

    def put(self, gpa, fmt, *values):
        self.write(gpa, struct.pack("<" + fmt, *values))

    def get(self, gpa, fmt):
        return struct.unpack("<" + fmt,
                             self.read(gpa, struct.calcsize("<" + fmt)))

    @staticmethod
    def ring(q):
        base = q * RING_BLOCK
        return base + DESC_OFS, base + AVAIL_OFS, base + USED_OFS

    def set_desc(self, q, i, addr, length, flags=0, nxt=0, table=None):
        gpa = (self.ring(q)[0] if table is None else table) + 16 * i
        self.put(gpa, "QIHH", addr & (2 ** 64 - 1), length & 0xffffffff,
                 flags, nxt)

    def make_avail(self, q, heads, idx_jump=0):
        _, avail, _ = self.ring(q)
        for h in heads:
            self.put(avail + 4 + 2 * (self.avail_idx[q] % QSIZE), "H", h)
            self.avail_idx[q] = (self.avail_idx[q] + 1) & 0xffff
        self.avail_idx[q] = (self.avail_idx[q] + idx_jump) & 0xffff
        self.put(avail + 2, "H", self.avail_idx[q])

    def used_idx(self, q):
        return self.get(self.ring(q)[2] + 2, "H")[0]

    # Packed rings.

    def p_post(self, q, descs, ident=None, flags_override=None):
        """Makes the chain 'descs' ((addr, len, flags) each) available on
        packed ring 'q' at the guest's position, its head's flags written
        last; its buffer id is 'ident' or the head's position.  Returns
        the id.  'flags_override' replaces the head's avail bits."""
        desc = self.ring(q)[0]
        head = self.p_avail[q]
        ident = head if ident is None else ident
        slots = []
        for addr, length, flags in descs:
            i = self.p_avail[q]
            bits = P_AVAIL if self.p_avail_wrap[q] else P_USED
            slots.append((i, addr, length, flags | bits))
            self.p_avail[q] += 1
            if self.p_avail[q] == QSIZE:
                self.p_avail[q] = 0
                self.p_avail_wrap[q] ^= 1
        for k, (i, addr, length, flags) in reversed(list(enumerate(slots))):
            if k == 0 and flags_override is not None:
                flags = (flags & ~(P_AVAIL | P_USED)) | flags_override
            self.put(desc + 16 * i, "QIH", addr & (2 ** 64 - 1),
                     length & 0xffffffff, ident)
            self.put(desc + 16 * i + 14, "H", flags)
        self.p_chain[q][ident] = len(descs)
        return ident

    def p_used_elem(self, q):
        """The buffer that the switch handed back at the guest's used
        position of packed ring 'q' (id, len), moving on; or None."""
        desc = self.ring(q)[0] + 16 * self.p_used[q]
        flags = self.get(desc + 14, "H")[0]
        w = self.p_used_wrap[q]
        if bool(flags & P_AVAIL) != w or bool(flags & P_USED) != w:
            return None
        ident, length = self.get(desc + 12, "H")[0], self.get(desc + 8,
                                                                "I")[0]
        if ident not in self.p_chain[q]:
            raise ProtocolError("used id %d names no buffer" % ident)
        self.p_used[q] += self.p_chain[q].pop(ident)
        if self.p_used[q] >= QSIZE:
            self.p_used[q] -= QSIZE
            self.p_used_wrap[q] ^= 1
        return ident, length

    def any_used(self, q):
        """Whether the switch has handed back anything on 'q' ever (split)
        or not yet seen (packed)."""
        if self.packed:
            desc = self.ring(q)[0] + 16 * self.p_used[q]
            flags = self.get(desc + 14, "H")[0]
            w = self.p_used_wrap[q]
            return bool(flags & P_AVAIL) == w and bool(flags & P_USED) == w
        return self.used_idx(q) != 0

    def used_elem(self, q, i):
        return self.get(self.ring(q)[2] + 4 + 8 * (i % QSIZE), "II")

    def wait_used(self, q, count, timeout=10):
        """Waits until the switch has used 'count' more entries of 'q'
        than we have seen; returns them (id, len)."""
        deadline = time.monotonic() + timeout
        if self.packed:
            elems = []
            while len(elems) < count:
                e = self.p_used_elem(q)
                if e is not None:
                    elems.append(e)
                elif time.monotonic() > deadline:
                    return None
                else:
                    time.sleep(0.001)
            return elems
        want = (self.used_seen[q] + count) & 0xffff
        while self.used_idx(q) != want:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.001)
        elems = [self.used_elem(q, (self.used_seen[q] + i) & 0xffff)
                 for i in range(count)]
        self.used_seen[q] = want
        return elems

    def quiet(self, q, seconds=0.3):
        """Returns how many used entries 'q' gained beyond what we saw
        over 'seconds' (none, from a switch that must not touch it)."""
        time.sleep(seconds)
        if self.packed:
            n = 0
            while self.p_used_elem(q) is not None:
                n += 1
            return n
        return (self.used_idx(q) - self.used_seen[q]) & 0xffff

    # The vhost-user connection.

    def listen(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)

    def accept(self):
        self.listener.settimeout(self.timeout)
        self.sock, _ = self.listener.accept()
        self.sock.settimeout(self.timeout)

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None
        if self.listener:
            self.listener.close()
            self.listener = None
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def send(self, req, payload=b"", fds=(), flags=VERSION, size=None):
        hdr = struct.pack("<III", req, flags,
                          len(payload) if size is None else size)
        anc = []
        if fds:
            anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                    array.array("i", fds))]
        self.sock.sendmsg([hdr + payload], anc)

    def recv_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ProtocolError("connection closed")
            data += chunk
        return data

    def reply(self, req):
        req2, flags, size = struct.unpack("<III", self.recv_exact(12))
        payload = self.recv_exact(size)
        if req2 != req or not flags & REPLY:
            raise ProtocolError("reply %d to request %d" % (req2, req))
        return payload

    def call_ack(self, req, payload=b"", fds=()):
        """Sends a request that asks for an acknowledgement (REPLY_ACK):
        returns once the switch has handled it, True if it succeeded."""
        self.send(req, payload, fds, flags=VERSION | NEED_REPLY)
        return struct.unpack("<Q", self.reply(req))[0] == 0

    def mem_table_payload(self, regions=None):
        regions = regions or [(gpa, size) for gpa, size, _, _ in self.regions]
        p = struct.pack("<II", len(regions), 0)
        for gpa, size in regions:
            p += struct.pack("<QQQQ", gpa, size, UADDR + gpa, 0)
        return p

    def negotiate(self, late_features=0):
        self.send(GET_FEATURES)
        offered = struct.unpack("<Q", self.reply(GET_FEATURES))[0]
        self.features = (self.want_features | F_PROTOCOL) & offered
        self.send(GET_PROTOCOL_FEATURES)
        proto = struct.unpack("<Q", self.reply(GET_PROTOCOL_FEATURES))[0]
        if not proto & PROTO_REPLY_ACK:
            raise ProtocolError("the switch does not offer REPLY_ACK")
        self.send(SET_PROTOCOL_FEATURES, struct.pack("<Q", PROTO_REPLY_ACK))
        self.send(SET_OWNER)
        self.call_ack(SET_FEATURES, struct.pack("<Q", self.features))
        ok = self.call_ack(SET_MEM_TABLE, self.mem_table_payload(),
                           [fd for _, _, fd, _ in self.regions])
        if not ok:
            return False
        for q in (RX, TX):
            desc, avail, used = self.ring(q)
            self.call_ack(SET_VRING_NUM, struct.pack("<II", q, QSIZE))
            # Packed: position 0, wrap counter 1 (bit 15), as QEMU says.
            self.call_ack(SET_VRING_BASE, struct.pack(
                "<II", q, 0x8000 if self.packed else 0))
            self.call_ack(SET_VRING_ADDR, struct.pack(
                "<IIQQQQ", q, 0, UADDR + desc, UADDR + used, UADDR + avail,
                0))
            self.call_ack(SET_VRING_KICK, struct.pack("<Q", q),
                          [self.kick[q]])
            self.call_ack(SET_VRING_CALL, struct.pack("<Q", q),
                          [self.call[q]])
        if late_features:
            # Features that change the rings' extent, after librte_vhost
            # mapped them (SET_VRING_KICK) and before the device runs.
            self.features |= late_features & offered
            self.call_ack(SET_FEATURES, struct.pack("<Q", self.features))
        for q in (RX, TX):
            self.call_ack(SET_VRING_ENABLE, struct.pack("<II", q, 1))
        return True

    # Packets.

    @staticmethod
    def frame(seq, length=FRAME_LEN):
        eth = bytes.fromhex("02000000000b" "02000000000a" "88b5")
        body = struct.pack(">I", seq) + bytes((seq + i) & 0xff
                                              for i in range(length - 18))
        return eth + body

    def desc_slot(self, q, n=1):
        """Returns the first of 'n' descriptor slots of 'q' not used
        lately."""
        i = self.next_desc[q]
        if i + n > QSIZE:
            i = 0
        self.next_desc[q] = (i + n) % QSIZE
        return i

    def post_rx(self, n, flags=DESC_WRITE, size=BUF_SIZE):
        """Posts 'n' receive buffers, one descriptor each."""
        heads = []
        for _ in range(n):
            if self.packed:
                i = self.p_avail[RX]
                heads.append(self.p_post(RX, [(RX_BUFS + i * BUF_SIZE, size,
                                               flags)]))
                continue
            i = self.desc_slot(RX)
            self.set_desc(RX, i, RX_BUFS + i * BUF_SIZE, size, flags)
            heads.append(i)
            self.make_avail(RX, [i])
        return heads

    def post_rx_at(self, addr, size):
        """Posts one receive buffer of 'size' bytes at 'addr' (split)."""
        i = self.desc_slot(RX)
        self.set_desc(RX, i, addr, size, DESC_WRITE)
        self.rx_addr[i] = addr
        self.make_avail(RX, [i])
        return i

    def tx_good(self, seqs):
        """Sends well-formed packets 'seqs' (one descriptor each), all
        made available at once."""
        heads = []
        for seq in seqs:
            if self.packed:
                i = self.p_avail[TX]
                data = bytes(HDR_LEN) + self.frame(seq)
                self.write(TX_BUFS + i * BUF_SIZE, data)
                self.p_post(TX, [(TX_BUFS + i * BUF_SIZE, len(data), 0)])
                continue
            i = self.desc_slot(TX)
            data = bytes(HDR_LEN) + self.frame(seq)
            self.write(TX_BUFS + i * BUF_SIZE, data)
            self.set_desc(TX, i, TX_BUFS + i * BUF_SIZE, len(data))
            heads.append(i)
        if not self.packed:
            self.make_avail(TX, heads)

    def rx_frames(self, count, timeout=10):
        """Waits for 'count' packets on the receive ring; returns their
        frames (without the virtio-net header), or None."""
        elems = self.wait_used(RX, count, timeout)
        if elems is None:
            return None
        frames = []
        for i, length in elems:
            if i >= QSIZE or length < HDR_LEN or length > BUF_SIZE:
                raise ProtocolError("used entry %d len %d" % (i, length))
            data = self.read(self.rx_addr.pop(i, RX_BUFS + i * BUF_SIZE),
                             length)
            frames.append(data[HDR_LEN:])
        return frames

    def check_loop(self, seqs, timeout=10):
        """Posts receive buffers for 'seqs', sends them, checks that
        exactly they come back, byte for byte.  Returns how many did."""
        self.post_rx(len(seqs))
        self.tx_good(seqs)
        if self.wait_used(TX, len(seqs), timeout) is None:
            return 0
        frames = self.rx_frames(len(seqs), timeout)
        if frames is None:
            return 0
        for seq, f in zip(seqs, frames):
            if f != self.frame(seq):
                raise ProtocolError("packet %d came back changed" % seq)
        return len(frames)


def report(key, value):
    print("%s: %s" % (key, value))
    sys.stdout.flush()


# The cases.  Each gets a negotiated guest, breaks something, and reports.

def bad_tx_chains(g):
    """Chains on the transmit ring that break a rule, each between two
    good packets; all are handed back, the good ones loop back."""
    scratch = SCRATCH
    cases = []

    def lone(addr, length, flags=0):
        def f(i):
            g.set_desc(TX, i, addr, length, flags)
        return f

    def chain(descs):
        # descs: (addr, len, flags, next) relative to slot i.
        def f(i):
            for k, (addr, length, flags, nxt) in enumerate(descs):
                g.set_desc(TX, (i + k) % QSIZE, addr, length, flags,
                           (i + nxt) % QSIZE if nxt is not None else 300)
        return f

    def indirect(table, length=None, flags=DESC_INDIRECT):
        def f(i):
            nonlocal scratch
            t = scratch
            scratch += 0x2000
            for k, (addr, ln, fl, nxt) in enumerate(table):
                g.set_desc(TX, k, addr, ln, fl, nxt, table=t)
            g.set_desc(TX, i, t, 16 * len(table) if length is None
                       else length, flags)
        return f

    good = TX_BUFS + 200 * BUF_SIZE
    g.write(good, bytes(HDR_LEN) + g.frame(999))
    glen = HDR_LEN + FRAME_LEN
    cases = [
        ("outside memory", lone(64 << 20, glen)),
        ("addr+len wraps", lone(2 ** 64 - 16, glen)),
        ("huge length", lone(good, 0xffffffff)),
        ("zero length", lone(good, 0)),
        ("shorter than the header", lone(good, 4)),
        ("chain loop", chain([(good, 8, DESC_NEXT, 1),
                              (good + 8, 8, DESC_NEXT, 0)])),
        ("next out of range", chain([(good, glen, DESC_NEXT, None)])),
        ("indirect outside memory",
         lambda i: g.set_desc(TX, i, 64 << 20, 32, DESC_INDIRECT)),
        ("indirect length not a multiple of 16",
         indirect([(good, glen, 0, 0)], length=20)),
        ("indirect nested",
         indirect([(SCRATCH, 16, DESC_INDIRECT, 0)])),
        ("indirect with NEXT",
         indirect([(good, glen, 0, 0)], flags=DESC_INDIRECT | DESC_NEXT)),
        ("indirect loop",
         indirect([(good, 8, DESC_NEXT, 1), (good + 8, 8, DESC_NEXT, 0)])),
        ("indirect larger than the ring",
         indirect([(good, 0, DESC_NEXT, k + 1) for k in range(QSIZE)]
                  + [(good, glen, 0, 0)])),
        ("head out of range", None),
    ]
    seq = 0
    for name, setup in cases:
        # A good packet, the bad chain, a good packet.
        g.post_rx(2)
        g.tx_good([seq])
        i = g.desc_slot(TX, 2)
        if setup is None:
            g.make_avail(TX, [QSIZE + 7])
        else:
            setup(i)
            g.make_avail(TX, [i])
        # Leave the slots a bad chain used alone (chains use up to 2).
        g.tx_good([seq + 1])
        used = g.wait_used(TX, 3)
        frames = g.rx_frames(2)
        ok = (used is not None and frames == [g.frame(seq), g.frame(seq + 1)]
              and used[1][1] == 0)
        report(name, "dropped, 2 good looped" if ok
               else "FAILED used=%r" % (used,))
        seq += 2
    return len(cases)


def packed_bad_tx_chains(g):
    """Chains on a packed transmit ring that break a rule, each between two
    good packets; all are handed back, the good ones loop back."""
    scratch = SCRATCH
    good = TX_BUFS + 200 * BUF_SIZE
    g.write(good, bytes(HDR_LEN) + g.frame(999))
    glen = HDR_LEN + FRAME_LEN

    def table(entries):
        nonlocal scratch
        t = scratch
        scratch += 0x2000
        for k, (addr, length, flags) in enumerate(entries):
            g.put(t + 16 * k, "QIHH", addr & (2 ** 64 - 1), length, 0, flags)
        return t

    cases = [
        ("outside memory", [(64 << 20, glen, 0)]),
        ("addr+len wraps", [(2 ** 64 - 16, glen, 0)]),
        ("huge length", [(good, 0xffffffff, 0)]),
        ("zero length", [(good, 0, 0)]),
        ("shorter than the header", [(good, 4, 0)]),
        # 64 descriptors taken and handed back as one chain; the 65th
        # then heads a chain of its own (zero length here).
        ("chain longer than 64", [[(good, 1, DESC_NEXT)] * 64,
                                  [(good, 0, 0)]]),
        ("indirect outside memory", [(64 << 20, 32, DESC_INDIRECT)]),
        ("indirect length not a multiple of 16",
         lambda: [(table([(good, glen, 0)]), 20, DESC_INDIRECT)]),
        ("indirect nested",
         lambda: [(table([(SCRATCH, 16, DESC_INDIRECT)]), 16,
                   DESC_INDIRECT)]),
        ("indirect with NEXT",
         lambda: [(table([(good, glen, 0)]), 16,
                   DESC_INDIRECT | DESC_NEXT), (good, glen, 0)]),
        ("indirect larger than the ring",
         lambda: [(table([(good, 0, 0)] * QSIZE + [(good, glen, 0)]),
                   16 * (QSIZE + 1), DESC_INDIRECT)]),
    ]
    seq = 0
    for name, descs in cases:
        if callable(descs):
            descs = descs()
        chains = descs if isinstance(descs[0], list) else [descs]
        g.post_rx(2)
        g.tx_good([seq])
        for chain in chains:
            g.p_post(TX, chain)
        g.tx_good([seq + 1])
        used = g.wait_used(TX, 2 + len(chains))
        frames = g.rx_frames(2)
        ok = (used is not None and frames == [g.frame(seq), g.frame(seq + 1)]
              and all(length == 0 for _, length in used[1:-1]))
        report(name, "dropped, 2 good looped" if ok
               else "FAILED used=%r" % (used,))
        seq += 2

    # A chain whose last descriptor says "next" into one the guest has not
    # made available: handed back, and the next packet is taken from
    # there on.
    g.post_rx(1)
    g.p_post(TX, [(good, glen, DESC_NEXT)])
    used = g.wait_used(TX, 1)
    g.tx_good([seq])
    g.wait_used(TX, 1)
    frames = g.rx_frames(1)
    report("next into a descriptor not made available",
           "dropped, 1 good looped" if used and used[0][1] == 0
           and frames == [g.frame(seq)] else "FAILED used=%r" % (used,))
    seq += 1

    # The avail and used bits equal (both clear, in this lap): not
    # available, so nothing is taken (the queue waits) until the guest
    # makes it available for real.
    g.post_rx(1)
    i = g.p_avail[TX]
    bits = P_AVAIL if g.p_avail_wrap[TX] else P_USED
    g.write(TX_BUFS + i * BUF_SIZE, bytes(HDR_LEN) + g.frame(seq))
    g.p_post(TX, [(TX_BUFS + i * BUF_SIZE, glen, 0)],
             flags_override=0 if g.p_avail_wrap[TX] else P_AVAIL | P_USED)
    waited = g.quiet(TX)
    g.put(g.ring(TX)[0] + 16 * i + 14, "H", bits)
    g.wait_used(TX, 1)
    frames = g.rx_frames(1)
    report("avail and used bits equal", "waited, then looped" if not waited
           and frames == [g.frame(seq)] else "FAILED %d %r" % (waited,
                                                              frames))


def ip4_tcp_frame(seq, payload_len, proto=6):
    """An Ethernet, IPv4 (checksum right) and TCP (or, if 'proto' is 17,
    8-byte UDP) frame: our MACs, a payload from 'seq'."""
    l4_len = 20 if proto == 6 else 8
    total = 20 + l4_len + payload_len
    ip = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, total, seq & 0xffff,
                               0, 64, proto, 0, bytes([10, 0, 0, 1]),
                               bytes([10, 0, 0, 2])))
    s = sum(struct.unpack(">10H", bytes(ip)))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    ip[10:12] = struct.pack(">H", ~s & 0xffff)
    if proto == 6:
        l4 = struct.pack(">HHIIBBHHH", 1000, 2000, seq, 0, 5 << 4, 0x18,
                         65535, 0x1234, 0)
    else:
        l4 = struct.pack(">HHHH", 1000, 2000, 8 + payload_len, 0x1234)
    body = bytes((seq + k) & 0xff for k in range(payload_len))
    eth = bytes.fromhex("02000000000b" "02000000000a" "0800")
    return eth + bytes(ip) + l4 + body


def offload_headers(g):
    """Virtio-net headers that ask the switch for checksums and
    segmentation (the port has userspace TSO on and the guest negotiated
    offloads both ways): a partial checksum and a 3000-byte TCP segment
    loop back whole, with headers that say so; headers that ask for what
    their packet does not fit are dropped, each between two good
    packets."""
    def hdr(flags=0, gso=0, hdr_len=0, gso_size=0, start=0, offset=0):
        return struct.pack("<BBHHHHH", flags, gso, hdr_len, gso_size, start,
                           offset, 0)

    def send(h, frame):
        i = g.desc_slot(TX)
        data = h + frame
        g.write(TX_BUFS + i * BUF_SIZE, data)
        g.set_desc(TX, i, TX_BUFS + i * BUF_SIZE, len(data))
        g.make_avail(TX, [i])

    def recv(size=BUF_SIZE):
        """Waits for one packet on the receive ring: (header, frame)."""
        elems = g.wait_used(RX, 1)
        if not elems:
            return None, None
        i, length = elems[0]
        data = g.read(g.rx_addr.pop(i, RX_BUFS + i * BUF_SIZE), length)
        return struct.unpack("<BBHHHH", data[:10]), data[HDR_LEN:]

    # A partial TCP checksum: asked, and asked again of the guest.
    f = ip4_tcp_frame(1, 100)
    g.post_rx(1)
    send(hdr(1, 0, 0, 0, 34, 16), f)
    g.wait_used(TX, 1)
    h, back = recv()
    report("partial checksum", "looped, header %r" % (h,)
           if back == f else "FAILED %r" % (h,))

    # A 3000-byte TCP segment: one packet through the switch, into one
    # 4 kB receive buffer, with the port's segment size.
    f = ip4_tcp_frame(2, 3000 - 54)
    g.post_rx_at(SCRATCH + 0x10000, 4096)
    i = g.desc_slot(TX, 2)
    data = hdr(1, 1, 54, 1448, 34, 16) + f
    g.write(SCRATCH + 0x20000, data)
    g.set_desc(TX, i, SCRATCH + 0x20000, 2000, DESC_NEXT, (i + 1) % QSIZE)
    g.set_desc(TX, (i + 1) % QSIZE, SCRATCH + 0x20000 + 2000,
               len(data) - 2000)
    g.make_avail(TX, [i])
    g.wait_used(TX, 1)
    h, back = recv()
    report("3000-byte TCP segment", "looped, header %r" % (h,)
           if back == f else "FAILED %r %d" % (h, len(back or b"")))

    bad = [
        ("checksum past the end", hdr(1, 0, 0, 0, 120, 16),
         ip4_tcp_frame(3, 10)),
        ("segmentation of UDP", hdr(1, 1, 42, 1000, 34, 6),
         ip4_tcp_frame(4, 100, proto=17)),
        ("segment size 0", hdr(1, 1, 54, 0, 34, 16), ip4_tcp_frame(5, 100)),
        ("TCPv6 segmentation of IPv4", hdr(1, 4, 54, 1000, 34, 16),
         ip4_tcp_frame(6, 100)),
    ]
    seq = 10
    for name, h, f in bad:
        g.post_rx(2)
        g.tx_good([seq])
        send(h, f)
        g.tx_good([seq + 1])
        used = g.wait_used(TX, 3)
        frames = g.rx_frames(2)
        report(name, "dropped, 2 good looped"
               if used and frames == [g.frame(seq), g.frame(seq + 1)]
               else "FAILED used=%r" % (used,))
        seq += 2


def straddle(g):
    """A buffer that straddles the two memory regions (adjacent in guest
    physical memory, not in ours) is a good packet."""
    data = bytes(HDR_LEN) + g.frame(7)
    gpa = MEM - 20
    g.write(gpa, data[:20])
    g.write(MEM, data[20:])
    g.post_rx(1)
    i = g.desc_slot(TX)
    g.set_desc(TX, i, gpa, len(data))
    g.make_avail(TX, [i])
    used = g.wait_used(TX, 1)
    frames = g.rx_frames(1)
    report("straddling buffer", "looped" if frames == [g.frame(7)]
           else "FAILED %r %r" % (used, frames))


def avail_jump(g):
    """An avail index more than a ring ahead stops the queue (nothing is
    read or written) until the guest sets the ring anew."""
    report("good before", g.check_loop([1, 2]))
    g.make_avail(TX, [], idx_jump=QSIZE + 5)
    report("used entries after the jump", g.quiet(TX))


def rx_readonly(g):
    """Receive buffers that the guest did not make writable are handed
    back unwritten; writable ones after them are filled."""
    marker = b"\xa5" * 64
    heads = g.post_rx(3, flags=0)
    for h in heads:
        g.write(RX_BUFS + h * BUF_SIZE, marker)
    g.tx_good([1, 2, 3])
    g.wait_used(TX, 3)
    elems = g.wait_used(RX, 3)
    untouched = all(g.read(RX_BUFS + h * BUF_SIZE, 64) == marker
                    for h in heads)
    report("read-only receive buffers",
           "handed back unwritten" if elems is not None and untouched
           and all(length == 0 for _, length in elems)
           else "FAILED %r" % (elems,))
    report("good after", g.check_loop([4, 5]))


def rewrite(g):
    """Descriptors rewritten while the switch reads them: a thread flips
    transmit descriptors between good and broken values; every packet is
    either looped intact or dropped."""
    n = 2000
    stop = threading.Event()
    desc_base = g.ring(TX)[0]

    def flipper():
        bad = [(64 << 20, 64), (2 ** 64 - 8, 64), (0, 0xffffffff)]
        k = 0
        while not stop.is_set():
            addr, length = bad[k % len(bad)]
            g.put(desc_base + 16 * (k % QSIZE), "QI", addr, length)
            k += 7

    def drain():
        got = 0
        while g.used_seen[RX] != g.used_idx(RX):
            i, length = g.used_elem(RX, g.used_seen[RX])
            g.used_seen[RX] = (g.used_seen[RX] + 1) & 0xffff
            f = g.read(RX_BUFS + i * BUF_SIZE, length)[HDR_LEN:]
            seq = struct.unpack(">I", f[14:18])[0]
            if f != g.frame(seq):
                raise ProtocolError("a looped packet was changed")
            got += 1
        return got

    sent = looped = 0
    t = threading.Thread(target=flipper)
    t.start()
    try:
        while sent < n:
            burst = min(32, n - sent)
            outstanding = (g.avail_idx[RX] - g.used_idx(RX)) & 0xffff
            g.post_rx(max(0, 64 - outstanding))
            g.tx_good(range(sent, sent + burst))
            if g.wait_used(TX, burst) is None:
                raise ProtocolError("transmit ring stalled")
            sent += burst
            looped += drain()
    finally:
        stop.set()
        t.join()
    time.sleep(0.3)
    looped += drain()
    report("rewritten descriptors", "%d sent, none corrupted" % sent)
    print("looped=%d" % looped, file=sys.stderr)
    # The receive buffers still posted take the next packets.
    outstanding = (g.avail_idx[RX] - g.used_idx(RX)) & 0xffff
    g.tx_good([n + 1, n + 2])
    g.wait_used(TX, 2)
    frames = g.rx_frames(2)
    report("good after", "2" if frames == [g.frame(n + 1), g.frame(n + 2)]
           else "FAILED (%d posted) %r" % (outstanding, frames))


def mem_shrink(g):
    """SET_MEM_TABLE shrinks guest memory under traffic: rings and buffers
    that lie past the end are no longer used."""
    report("good before", g.check_loop([1, 2]))
    # The rings and the receive buffers stay; the transmit buffers now lie
    # outside guest memory.
    ok = g.call_ack(SET_MEM_TABLE, g.mem_table_payload([(0, TX_BUFS)]),
                    [g.regions[0][2]])
    report("smaller memory table accepted", ok)
    g.post_rx(3)
    g.tx_good([3, 4, 5])
    used = g.wait_used(TX, 3)
    report("packets in buffers past the end",
           "dropped" if used and all(u[1] == 0 for u in used)
           and g.quiet(RX) == 0 else "FAILED %r" % (used,))
    # Buffers below the new end still work.
    data = bytes(HDR_LEN) + g.frame(6)
    i = g.desc_slot(TX)
    g.write(RX_BUFS + 255 * BUF_SIZE, data)
    g.set_desc(TX, i, RX_BUFS + 255 * BUF_SIZE, len(data))
    g.make_avail(TX, [i])
    g.wait_used(TX, 1)
    frames = g.rx_frames(1)
    report("good after", "1" if frames == [g.frame(6)]
           else "FAILED %r" % (frames,))


def ring_num(g):
    """SET_VRING_NUM 32768 after the rings were mapped: the used ring would
    run past guest memory; the vring is no longer used."""
    report("good before", g.check_loop([1, 2]))
    report("SET_VRING_NUM 32768 acknowledged",
           g.call_ack(SET_VRING_NUM, struct.pack("<II", TX, 32768)))
    g.tx_good([3])
    report("used entries after", g.quiet(TX))


def event_idx(g):
    """EVENT_IDX switched on after librte_vhost mapped the rings, with
    vring 1's used ring at the very end of a memory region: its event
    field lies past it (negotiate() did it)."""
    report("event_idx negotiated", bool(g.features & F_EVENT_IDX))
    g.post_rx(1)
    g.tx_good([3])
    report("used entries", g.quiet(TX))


def zero_chains(g):
    """Mergeable receive buffers made of indirect tables of ring-size
    zero-length descriptors: every send walks the step budget and no
    further; the guest loses its own packets."""
    table = SCRATCH
    # Room for the header, then nothing: each buffer takes 12 bytes.
    g.set_desc(RX, 0, RX_BUFS, HDR_LEN, DESC_WRITE | DESC_NEXT, 1,
               table=table)
    for k in range(1, QSIZE):
        g.set_desc(RX, k, RX_BUFS, 0, DESC_WRITE | DESC_NEXT, k + 1,
                   table=table)
    g.set_desc(RX, QSIZE - 1, RX_BUFS, 0, DESC_WRITE, 0, table=table)
    heads = []
    for _ in range(QSIZE):
        i = g.desc_slot(RX)
        g.set_desc(RX, i, table, 16 * QSIZE, DESC_INDIRECT)
        heads.append(i)
        g.make_avail(RX, [i])
    t0 = time.monotonic()
    g.tx_good(range(32))
    sent = g.wait_used(TX, 32)
    report("packets sent into zero-length buffers",
           "%d taken from the transmit ring" % len(sent or []))
    time.sleep(0.3)
    print("took %.3f s, %d receive buffers used"
          % (time.monotonic() - t0, (g.used_idx(RX) - g.used_seen[RX])
             & 0xffff), file=sys.stderr)


def truncated(g):
    """A header that announces a payload that never comes."""
    g.send(SET_VRING_NUM, b"", size=8)
    report("stalling", "header sent, payload held back")
    # The switch must shut this connection down by itself.
    g.sock.settimeout(10)
    t0 = time.monotonic()
    try:
        closed = g.sock.recv(1) == b""
    except (socket.timeout, ConnectionResetError):
        closed = False
    report("stalled connection shut down by the switch", closed)
    print("after %.1f s" % (time.monotonic() - t0), file=sys.stderr)


def oversize(g):
    """A header that announces a payload larger than any message."""
    g.send(SET_VRING_NUM, bytes(4096), size=4096)
    g.sock.settimeout(10)
    try:
        closed = g.sock.recv(1) == b""
    except (socket.timeout, ConnectionResetError):
        closed = True
    report("oversize message: connection closed", closed)


def rarp_short(g):
    """SEND_RARP with a 2-byte payload: ignored."""
    g.send(SEND_RARP, b"\x02\x00")
    report("good after", g.check_loop([1, 2]))


def messages(g, count=300):
    """Messages that make librte_vhost take every virtqueue's lock
    (SET_FEATURES, SET_VRING_ENABLE, SET_VRING_CALL), each acknowledged,
    while the switch sends to us as fast as it can: neither side may wait
    for the other for good."""
    g.post_rx(QSIZE - 1)
    acked = 0
    for k in range(count):
        if k % 3 == 0:
            ok = g.call_ack(SET_FEATURES, struct.pack("<Q", g.features))
        elif k % 3 == 1:
            ok = g.call_ack(SET_VRING_ENABLE, struct.pack("<II", RX, 1))
        else:
            ok = g.call_ack(SET_VRING_CALL, struct.pack("<Q", RX),
                            [g.call[RX]])
        acked += ok
    report("messages acknowledged", acked)
    # The switch may not have reached our receive ring while the messages
    # went on (a slow build): give it 10 s more.
    deadline = time.monotonic() + 10
    while not g.any_used(RX) and time.monotonic() < deadline:
        time.sleep(0.01)
    report("receive buffers filled", "yes" if g.any_used(RX) else "none")


CASES = {
    "bad-tx-chains": bad_tx_chains,
    "packed-bad-tx-chains": packed_bad_tx_chains,
    "straddle": straddle,
    "offload-headers": offload_headers,
    "avail-jump": avail_jump,
    "rx-readonly": rx_readonly,
    "rewrite": rewrite,
    "mem-shrink": mem_shrink,
    "ring-num": ring_num,
    "event-idx": event_idx,
    "zero-chains": zero_chains,
    "truncated": truncated,
    "oversize": oversize,
    "rarp-short": rarp_short,
    "messages": messages,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("socket", help="vhost-user socket to create")
    ap.add_argument("case", choices=sorted(CASES) + ["big-file", "connects",
                                                     "good"])
    ap.add_argument("--count", type=int, default=200,
                    help="connections for 'connects'")
    ap.add_argument("--packed", action="store_true",
                    help="negotiate packed virtqueues (cases good, "
                    "packed-bad-tx-chains, rx-readonly, messages)")
    ap.add_argument("--hold", metavar="FILE",
                    help="after the case, keep the connection until FILE "
                    "exists")
    args = ap.parse_args()

    features = F_VERSION_1 | F_INDIRECT
    late_features = 0
    regions = ((0, MEM, MEM),)
    rings_end = 2 * RING_BLOCK
    if args.packed or args.case.startswith("packed-"):
        features |= F_RING_PACKED
    if args.case == "zero-chains":
        features |= F_MRG_RXBUF
    elif args.case == "offload-headers":
        features |= (F_CSUM | F_HOST_TSO4 | F_GUEST_CSUM | F_GUEST_TSO4
                     | F_GUEST_TSO6)
    elif args.case == "straddle":
        regions = ((0, MEM, MEM), (MEM, MEM, MEM))
    elif args.case == "event-idx":
        # The rings in a region of their own, which ends exactly where
        # vring 1's used ring does (without its event field).
        late_features = F_EVENT_IDX
        rings_end = RING_BLOCK + USED_OFS + 4 + 8 * QSIZE
    elif args.case == "big-file":
        # 8 MB declared on a 4 MB file.
        regions = ((0, 2 * MEM, MEM),)
    if args.case in ("event-idx", "ring-num"):
        # Rings in one region, buffers in another.
        regions = ((0, rings_end, rings_end),
                   (BUFS, MEM - BUFS, MEM - BUFS))

    if args.case == "connects":
        # A server port: connect and hang up, 'count' times.
        ok = 0
        for _ in range(args.count):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(args.socket)
                ok += 1
            except OSError:
                pass
            s.close()
        report("connects", ok)
        return 0

    g = Guest(args.socket, features, regions)
    g.listen()
    g.accept()
    try:
        if args.case == "big-file":
            report("memory table larger than its file accepted",
                   g.negotiate())
            return 0
        if not g.negotiate(late_features):
            report("negotiation", "memory table refused")
            return 1
        if args.case == "good":
            report("looped", g.check_loop(list(range(64))))
        else:
            CASES[args.case](g)
        deadline = time.monotonic() + 60
        while (args.hold and not os.path.exists(args.hold)
               and time.monotonic() < deadline):
            time.sleep(0.05)
    except ProtocolError as e:
        report("protocol error", e)
        return 1
    finally:
        g.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
