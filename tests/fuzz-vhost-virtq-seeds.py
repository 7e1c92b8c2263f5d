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

"""Writes the seed inputs of tests/fuzz-vhost-virtq.c into DIR: one guest
for each case of the hostile frontend (tests/vhost-hostile.py) and of the
datapath's unit test, in the fuzzer's input format (see the fuzzer)."""

import os
import struct
import sys

GPA = 0x1000000                 # The fuzzer's first region.
DESC, AVAIL, USED = 0x0, 0x200, 0x400
BUFS = 0x1000
QLOG2 = 3                       # 8 entries.
QSIZE = 1 << QLOG2
NEXT, WRITE, INDIRECT = 1, 2, 4
HDR = 12
EVENT_IDX, IN_ORDER, MRG_RXBUF, CALLFD, PACKED = 1, 2, 4, 16, 32
OFFLOADS = 64
P_AVAIL, P_USED = 1 << 7, 1 << 15   # Packed descriptor flags.


class Seed:
    def __init__(self, regions=1, features=0, pages=(15, 15, 15),
                 gaps=(0, 0, 0)):
        # A packed ring has as many descriptors as a split one here.
        size = QSIZE - 1 if features & PACKED else QLOG2
        self.b = bytes([regions - 1, size, features]) + bytes(pages)
        self.b += bytes(gaps) + struct.pack("<HHH", DESC, AVAIL, USED)

    def write(self, ofs, data):
        while data:
            chunk, data = data[:255], data[255:]
            self.b += struct.pack("<BHB", 0, ofs, len(chunk)) + chunk
            ofs += len(chunk)
        return self

    def desc(self, i, addr, length, flags=0, nxt=0, table=DESC):
        return self.write(table + 16 * i,
                          struct.pack("<QIHH", addr % 2 ** 64,
                                      length % 2 ** 32, flags, nxt))

    def pdesc(self, i, addr, length, ident, flags=0, wrap=True,
              table=DESC):
        """Packed descriptor 'i', made available with wrap counter 'wrap'
        (not in a table)."""
        if table == DESC:
            flags |= P_AVAIL if wrap else P_USED
        return self.write(table + 16 * i,
                          struct.pack("<QIHH", addr % 2 ** 64,
                                      length % 2 ** 32, ident, flags))

    def make_avail(self, n, broken=False):
        """The guest makes 'n' descriptors available from the switch's
        avail position on (packed)."""
        self.b += struct.pack("<BH", 1, n | (0x8000 if broken else 0))
        return self

    def avail(self, heads, start=0):
        for k, h in enumerate(heads):
            self.write(AVAIL + 4 + 2 * ((start + k) % QSIZE),
                       struct.pack("<H", h))
        return self.set_avail(start + len(heads))

    def set_avail(self, idx):
        self.b += struct.pack("<BH", 1, idx % 65536)
        return self

    def dequeue(self, n=32):
        self.b += struct.pack("<BB", 2, n)
        return self

    def enqueue(self, n=1, length=64):
        self.b += struct.pack("<BBH", 3, n, length)
        return self


def frame(k):
    return bytes(HDR) + bytes((k + i) & 0xfe for i in range(64))


def seeds():
    buf = GPA + BUFS
    glen = HDR + 64
    s = {}
    s["good-dequeue"] = (Seed(features=CALLFD).write(BUFS, frame(1))
                         .desc(0, buf, glen).avail([0]).dequeue())
    s["good-enqueue"] = (Seed(features=CALLFD).desc(0, buf, 2048, WRITE)
                         .avail([0]).enqueue())
    s["event-idx-in-order"] = (Seed(features=EVENT_IDX | IN_ORDER | CALLFD)
                               .write(BUFS, frame(5))
                               .desc(0, buf, glen).desc(1, buf, glen)
                               .avail([0, 1]).dequeue()
                               .write(AVAIL + 4 + 2 * QSIZE,
                                      struct.pack("<H", 1))
                               .desc(2, buf, 2048, WRITE).avail([2], 2)
                               .enqueue())
    s["mergeable-enqueue"] = (Seed(features=MRG_RXBUF)
                              .desc(0, buf, 40, WRITE)
                              .desc(1, buf + 0x100, 40, WRITE)
                              .avail([0, 1]).enqueue(1, 64))
    bad = {
        "outside-memory": [(0, 64 << 20, glen, 0, 0)],
        "addr-len-wraps": [(0, 2 ** 64 - 16, glen, 0, 0)],
        "huge-length": [(0, buf, 2 ** 32 - 1, 0, 0)],
        "zero-length": [(0, buf, 0, 0, 0)],
        "chain-loop": [(0, buf, 8, NEXT, 1), (1, buf + 8, 8, NEXT, 0)],
        "next-out-of-range": [(0, buf, glen, NEXT, 300)],
        "indirect-outside-memory": [(0, 64 << 20, 32, INDIRECT, 0)],
        "indirect-length-not-multiple": [(0, GPA + 0x2000, 20, INDIRECT, 0)],
        "indirect-with-next": [(0, GPA + 0x2000, 16, INDIRECT | NEXT, 1)],
    }
    for name, descs in bad.items():
        seed = Seed().write(BUFS, frame(2))
        for i, addr, length, flags, nxt in descs:
            seed.desc(i, addr, length, flags, nxt)
        s[name] = seed.avail([0]).dequeue()
    table = 0x2000
    s["indirect-nested"] = (Seed().desc(0, GPA + table, 16, INDIRECT)
                            .desc(0, GPA + table, 16, INDIRECT, table=table)
                            .avail([0]).dequeue())
    s["indirect-loop"] = (Seed().desc(0, GPA + table, 32, INDIRECT)
                          .desc(0, buf, 8, NEXT, 1, table=table)
                          .desc(1, buf, 8, NEXT, 0, table=table)
                          .avail([0]).dequeue())
    big = Seed().desc(0, GPA + table, 16 * (QSIZE + 1), INDIRECT)
    for k in range(QSIZE + 1):
        big.desc(k, buf, 0 if k < QSIZE else glen, NEXT if k < QSIZE else 0,
                 k + 1, table=table)
    s["indirect-larger-than-ring"] = big.avail([0]).dequeue()
    s["head-out-of-range"] = Seed().avail([QSIZE + 3]).dequeue()
    s["avail-jump"] = Seed().set_avail(QSIZE + 5).dequeue().enqueue()
    s["rx-readonly"] = Seed().desc(0, buf, 2048, 0).avail([0]).enqueue()
    s["straddle"] = (Seed(regions=2, pages=(3, 3, 0))
                     .write(0x4000 - 20, frame(3)[:20])
                     .write(0x4000, frame(3)[20:])
                     .desc(0, GPA + 0x4000 - 20, glen).avail([0]).dequeue())
    # Zero-length receive buffers in ring-size indirect tables.
    z = Seed(features=MRG_RXBUF).desc(0, buf, HDR, WRITE | NEXT, 1,
                                      table=table)
    for k in range(1, QSIZE):
        z.desc(k, buf, 0, WRITE | (NEXT if k < QSIZE - 1 else 0), k + 1,
               table=table)
    for i in range(QSIZE):
        z.desc(i, GPA + table, 16 * QSIZE, INDIRECT)
    s["zero-chains-budget"] = z.avail(range(QSIZE)).enqueue(32, 64)
    # A descriptor rewritten between two bursts.
    s["rewrite-between-bursts"] = (Seed().write(BUFS, frame(4))
                                   .desc(0, buf, glen).avail([0]).dequeue()
                                   .desc(0, 64 << 20, glen).avail([0], 1)
                                   .dequeue()
                                   .desc(0, buf, glen).avail([0], 2)
                                   .dequeue())
    # Packed rings: the same guests, and what only a packed ring can say
    # wrong.
    pk = PACKED | CALLFD
    s["packed-good-dequeue"] = (Seed(features=pk).write(BUFS, frame(1))
                                .pdesc(0, buf, glen, 0)
                                .pdesc(1, buf, HDR, 1, NEXT)
                                .pdesc(2, buf + HDR, 64, 2).dequeue())
    s["packed-good-enqueue"] = (Seed(features=pk | MRG_RXBUF | EVENT_IDX)
                                .pdesc(0, buf, 40, 0, WRITE)
                                .pdesc(1, buf + 0x100, 2048, 1, WRITE)
                                .write(AVAIL, struct.pack("<HH", 1, 2))
                                .enqueue(2, 64))
    s["packed-indirect"] = (Seed(features=PACKED).write(BUFS, frame(2))
                            .pdesc(0, GPA + table, 32, 0, INDIRECT)
                            .pdesc(0, buf, HDR, 0, table=table)
                            .pdesc(1, buf + HDR, 64, 0, table=table)
                            .dequeue())
    s["packed-chain-into-unavailable"] = (Seed(features=PACKED)
                                          .pdesc(0, buf, glen, 5, NEXT)
                                          .dequeue())
    long_chain = Seed(features=PACKED)
    for i in range(QSIZE):
        long_chain.pdesc(i, buf, 8, i, NEXT)
    s["packed-chain-longer-than-ring"] = long_chain.dequeue().enqueue(4)
    s["packed-both-flags"] = (Seed(features=PACKED)
                              .pdesc(0, buf, glen, 0).make_avail(4, True)
                              .dequeue().make_avail(8).dequeue()
                              .make_avail(8).enqueue(8))
    s["packed-rewrite-between-bursts"] = (Seed(features=PACKED)
                                          .write(BUFS, frame(4))
                                          .pdesc(0, buf, glen, 0)
                                          .dequeue()
                                          .pdesc(1, 64 << 20, glen, 1)
                                          .dequeue()
                                          .pdesc(2, buf, glen, 2, NEXT)
                                          .pdesc(3, buf, glen, 3,
                                                 INDIRECT)
                                          .dequeue())
    # Offloads: virtio-net headers that ask for checksums and segmentation
    # of TCP over IPv4, fitting and not.
    def tcp_frame(length, gso=0, gso_size=0, csum_start=34, csum_off=16,
                  flags=1):
        hdr = struct.pack("<BBHHHH", flags, gso, 54, gso_size, csum_start,
                          csum_off) + bytes(2)
        eth = bytes(12) + b"\x08\x00"
        ip = b"\x45" + bytes(8) + b"\x06" + bytes(10)
        tcp = bytes(12) + b"\x50" + bytes(7)
        body = bytes((k & 0xff) for k in range(length - 54))
        return hdr + eth + ip + tcp + body

    ol = OFFLOADS | CALLFD
    s["offload-csum"] = (Seed(features=ol).write(BUFS, tcp_frame(100))
                         .desc(0, buf, HDR + 100).avail([0]).dequeue())
    big_frame = tcp_frame(3000, gso=1, gso_size=1448)
    s["offload-tso-big"] = (Seed(features=ol).write(BUFS, big_frame)
                            .desc(0, buf, 1500, NEXT, 1)
                            .desc(1, buf + 1500, len(big_frame) - 1500)
                            .avail([0]).dequeue())
    s["offload-csum-past-end"] = (Seed(features=ol)
                                  .write(BUFS, tcp_frame(100, csum_start=90))
                                  .desc(0, buf, HDR + 100).avail([0])
                                  .dequeue())
    s["offload-gso-not-tcp"] = (Seed(features=ol)
                                .write(BUFS, tcp_frame(100, gso=3,
                                                       gso_size=100))
                                .desc(0, buf, HDR + 100).avail([0])
                                .dequeue())
    s["offload-enqueue"] = (Seed(features=ol | MRG_RXBUF)
                            .desc(0, buf, 2048, WRITE)
                            .desc(1, buf + 0x800, 2048, WRITE)
                            .avail([0, 1]).enqueue(2, 0x3000 | 1500))
    # Rings that vhost_virtq_check() refuses: the used ring runs past the
    # end of the region.
    ring = Seed(pages=(0, 0, 0))
    ring.b = ring.b[:9] + struct.pack("<HHH", 0, 0x200, 0xff0)
    s["used-ring-past-memory"] = ring.dequeue()
    return s


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, seed in seeds().items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(seed.b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
