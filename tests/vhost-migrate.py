#!/usr/bin/env python3
"""Live migration helpers for the test suite and the benchmark.

  vhost-migrate.py qmp SOCK COMMAND [ARGUMENTS-JSON]
      Runs one QMP command on QEMU's QMP socket SOCK and prints what it
      returned, as JSON; exits 1 and prints QEMU's error otherwise.

  vhost-migrate.py migrate --src SOCK --dst SOCK --uri URI [options]
      Migrates the VM of QMP socket --src to the QEMU of --dst, which was
      started with "-incoming defer": capabilities, "migrate-incoming" on
      the destination, parameters and "migrate" on the source, then polls
      "query-migrate" until it completes and the destination runs.  Prints
      one line of key=value: status, total_ms, downtime_ms, setup_ms,
      passes (dirty-sync-count), transferred_mb, postcopy_requests,
      postcopy, switchover_at (CLOCK_MONOTONIC when it first saw the
      migration in postcopy or completed).
      --bandwidth MBPS (default 32) and --downtime-limit MS (default 50)
      make a small guest need several passes; --postcopy switches to
      postcopy early in the first pass (postcopy=yes once QEMU reported
      "postcopy-active").  Exits 3 if QEMU refuses a
      capability (its error on stderr), 1 if the migration fails.

  vhost-migrate.py traffic --guest ADDR [options]
      Run in the switch's namespace: until the file --stop exists, pings
      ADDR every --ping-interval seconds (default 0.001) with ICMP echo
      requests, and sends it a verified UDP stream (--rate datagrams per
      second, default 1000, of --size payload bytes, default 1000, to
      --port, default 5002, numbered from --first-seq) that
      tests/guest/stream-rx.c checks.  Then sends the stream's end marker,
      which makes the guest print its STREAM-REPORT, and prints:
          stream_sent=N ping_sent=N ping_received=N ping_longest_gap_ms=G
      G is the longest time between two consecutive echo replies.  Each
      gap over 5 ms goes to the file --gaps as "START END FIRST LAST": its
      CLOCK_MONOTONIC times and the stream's datagrams sent in it.  While it
      runs, the file --progress holds "ping_received=N".
"""

import argparse
import json
import os
import select
import socket
import struct
import sys
import time


class QmpError(Exception):
    pass


class Qmp:
    def __init__(self, path, timeout=30):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self._read()                    # The greeting.
        self.execute("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise QmpError("QEMU closed its QMP socket")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, command, arguments=None):
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply or "QMP" in reply:
                continue
            if "error" in reply:
                raise QmpError("%s: %s" % (command, reply["error"]["desc"]))
            return reply.get("return")


def cmd_qmp(args):
    arguments = json.loads(args.arguments) if args.arguments else None
    try:
        print(json.dumps(Qmp(args.sock).execute(args.command, arguments)))
    except QmpError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


def cmd_migrate(args):
    src = Qmp(args.src)
    dst = Qmp(args.dst)
    if args.postcopy:
        caps = [{"capability": "postcopy-ram", "state": True}]
        try:
            dst.execute("migrate-set-capabilities", {"capabilities": caps})
            src.execute("migrate-set-capabilities", {"capabilities": caps})
        except QmpError as e:
            print("refused: %s" % e, file=sys.stderr)
            return 3
    dst.execute("migrate-incoming", {"uri": args.uri})
    src.execute("migrate-set-parameters",
                {"downtime-limit": args.downtime_limit,
                 "max-bandwidth": int(args.bandwidth * 1024 * 1024)})
    src.execute("migrate", {"uri": args.uri})

    deadline = time.monotonic() + args.timeout
    switched = in_postcopy = False
    switchover_at = 0.0
    info = {}
    while time.monotonic() < deadline:
        info = src.execute("query-migrate")
        status = info.get("status")
        if status in ("postcopy-active", "completed") and not switchover_at:
            # The source has stopped the guest (for its last pass, or to
            # let it run at the destination in postcopy).
            switchover_at = time.monotonic()
        if status == "postcopy-active":
            in_postcopy = True
        if status in ("completed", "failed", "cancelled"):
            break
        if (args.postcopy and not switched and status == "active"
                and info.get("ram", {}).get("transferred", 0) > 8 << 20):
            # Early in the first pass: most of the guest's memory then
            # reaches the destination after it runs, on demand.
            src.execute("migrate-start-postcopy")
            switched = True
        time.sleep(0.02)
    status = info.get("status")
    if status != "completed":
        print("migration %s: %s" % (status, info.get("error-desc", "")),
              file=sys.stderr)
        return 1
    # The destination runs once it has loaded everything (at once for
    # precopy, at the end of postcopy).
    while time.monotonic() < deadline:
        if dst.execute("query-status").get("status") == "running":
            break
        time.sleep(0.02)
    else:
        print("destination not running", file=sys.stderr)
        return 1
    ram = info.get("ram", {})
    print("status=%s total_ms=%d downtime_ms=%d setup_ms=%d passes=%d "
          "transferred_mb=%.1f postcopy_requests=%d postcopy=%s "
          "switchover_at=%.3f"
          % (status, info.get("total-time", -1), info.get("downtime", -1),
             info.get("setup-time", -1), ram.get("dirty-sync-count", 0),
             ram.get("transferred", 0) / 1048576.0,
             ram.get("postcopy-requests", 0),
             "yes" if in_postcopy else "no", switchover_at))
    return 0


def icmp_checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff


POOL_SIZE = 65536
MAX_PAYLOAD = 1400


def make_pool():
    """The bytes payloads are cut from: xorshift32 from seed 1, as
    tests/guest/stream-rx.c makes them."""
    s = 1
    out = bytearray(POOL_SIZE + MAX_PAYLOAD)
    for i in range(len(out)):
        s ^= (s << 13) & 0xffffffff
        s ^= s >> 17
        s ^= (s << 5) & 0xffffffff
        out[i] = s & 0xff
    return bytes(out)


def payload(pool, seq, size):
    """The payload of datagram 'seq': 'size' bytes of the pool from an
    offset that the sequence number determines."""
    off = ((seq * 2654435761) & 0xffffffff) % POOL_SIZE
    return pool[off:off + size]


def fnv1a(data):
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xffffffff
    return h


def cmd_traffic(args):
    icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    ident = os.getpid() & 0xffff
    dest = (args.guest, 0)
    stream_dest = (args.guest, args.port)

    pool = make_pool()
    size = min(args.size, MAX_PAYLOAD)
    seq = args.first_seq
    ping_seq = 0
    ping_sent = ping_received = 0
    last_reply = None
    last_reply_seq = seq
    gaps = []
    now = time.monotonic()
    next_ping = now
    stream_interval = 1.0 / args.rate if args.rate else None
    next_stream = now
    next_progress = now
    check_stop = now

    def send_datagram(kind, a, b, payload=b""):
        hdr = struct.pack("!4sIIII", b"VMST", kind, a, b, fnv1a(payload))
        try:
            udp.sendto(hdr + payload, stream_dest)
        except OSError:
            pass

    while True:
        now = time.monotonic()
        if now >= check_stop:
            if os.path.exists(args.stop):
                break
            check_stop = now + 0.05
        if now >= next_ping:
            ping_seq = (ping_seq + 1) & 0xffff
            body = struct.pack("!d", now)
            hdr = struct.pack("!BBHHH", 8, 0, 0, ident, ping_seq)
            pkt = struct.pack("!BBHHH", 8, 0,
                              icmp_checksum(hdr + body), ident, ping_seq)
            try:
                icmp.sendto(pkt + body, dest)
            except OSError:
                pass
            ping_sent += 1
            next_ping += args.ping_interval
            if next_ping < now:
                next_ping = now + args.ping_interval
        if stream_interval and now >= next_stream:
            send_datagram(0, seq, size, payload(pool, seq, size))
            seq += 1
            next_stream += stream_interval
            if next_stream < now:
                next_stream = now + stream_interval
        if now >= next_progress:
            with open(args.progress + ".tmp", "w") as f:
                f.write("ping_received=%d\n" % ping_received)
            os.rename(args.progress + ".tmp", args.progress)
            next_progress = now + 0.2
        wake = min(next_ping, next_stream if stream_interval else next_ping)
        timeout = max(0.0, wake - time.monotonic())
        r, _, _ = select.select([icmp], [], [], timeout)
        while r:
            try:
                data = icmp.recv(2048, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            ihl = (data[0] & 0x0f) * 4
            if len(data) < ihl + 8:
                continue
            itype, _, _, rid, _ = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if itype != 0 or rid != ident:
                continue
            t = time.monotonic()
            ping_received += 1
            if last_reply is not None and t - last_reply > 0.005:
                gaps.append((last_reply, t, last_reply_seq, seq))
            last_reply = t
            last_reply_seq = seq

    stream_sent = seq - args.first_seq
    # The end marker, a few times (it may be lost like anything else); the
    # guest prints a report for each.
    for _ in range(3):
        send_datagram(1, seq, args.first_seq)
        time.sleep(0.1)
    with open(args.gaps, "w") as f:
        for g in gaps:
            f.write("%.4f %.4f %d %d\n" % g)
    longest = max([g[1] - g[0] for g in gaps] + [0])
    print("stream_sent=%d ping_sent=%d ping_received=%d "
          "ping_longest_gap_ms=%.1f"
          % (stream_sent, ping_sent, ping_received, longest * 1000))
    return 0


def parse_kv(path):
    out = {}
    for word in open(path).read().split():
        if "=" in word:
            k, v = word.split("=", 1)
            out[k] = v
    return out


def downtime_gap(gaps_path, switchover_at):
    """The gap in the ping replies that the switchover made: the one under
    way when "migrate" first saw the migration in postcopy or completed
    (the guest had stopped at the source; the destination answers only
    after that).  Gaps less than 10 ms apart count as one (a reply or two
    may cross the switchover).  Returns (start, end, first, last) or
    None."""
    merged = []
    for line in open(gaps_path):
        start, end, first, last = line.split()
        g = (float(start), float(end), int(first), int(last))
        if merged and g[0] - merged[-1][1] < 0.010:
            merged[-1] = (merged[-1][0], g[1], merged[-1][2], g[3])
        else:
            merged.append(g)
    best = None
    for g in merged:
        if g[0] <= switchover_at and g[1] >= switchover_at - 0.05:
            if best is None or g[1] - g[0] > best[1] - best[0]:
                best = g
    return best


def cmd_check_stream(args):
    rep = parse_kv(args.report)
    tr = parse_kv(args.traffic)
    sent = int(tr["stream_sent"])
    received, lost = int(rep["received"]), int(rep["lost"])
    accounted = int(rep["sent"]) == sent and received + lost == sent
    lo = hi = None
    if args.migration:
        mig = parse_kv(args.migration)
        gap = downtime_gap(args.gaps, float(mig["switchover_at"]))
        if gap:
            lo, hi = gap[2] - args.slack, gap[3] + args.slack
            print("downtime gap: %.1f ms, datagrams %d-%d"
                  % ((gap[1] - gap[0]) * 1000, gap[2], gap[3]),
                  file=sys.stderr)
            if args.downtime_out:
                with open(args.downtime_out, "w") as f:
                    f.write("%d\n" % round((gap[1] - gap[0]) * 1000))
    ranges = [] if rep["lost_ranges"] == "none" else \
        [tuple(int(x) for x in r.split("-"))
         for r in rep["lost_ranges"].split(",")]
    if sum(b - a + 1 for a, b in ranges) != lost:
        outside = lost
    elif lo is None:
        outside = lost
    else:
        outside = sum(max(0, min(b, lo - 1) - a + 1)
                      + max(0, b - max(a, hi + 1) + 1) for a, b in ranges)
    print("outside the downtime: %d lost, %d dropped by the switch for a "
          "full ring" % (outside, args.ring_full), file=sys.stderr)
    print("bad=%s dup=%s udp_csum_errors=%s accounted=%s unexplained=%d"
          % (rep["bad"], rep["dup"], rep["udp_csum_errors"],
             "yes" if accounted else "no", max(0, outside - args.ring_full)))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)

    q = sub.add_parser("qmp")
    q.add_argument("sock")
    q.add_argument("command")
    q.add_argument("arguments", nargs="?")

    m = sub.add_parser("migrate")
    m.add_argument("--src", required=True)
    m.add_argument("--dst", required=True)
    m.add_argument("--uri", required=True)
    m.add_argument("--bandwidth", type=float, default=32)
    m.add_argument("--downtime-limit", type=int, default=50)
    m.add_argument("--postcopy", action="store_true")
    m.add_argument("--timeout", type=float, default=120)

    t = sub.add_parser("traffic")
    t.add_argument("--guest", required=True)
    t.add_argument("--port", type=int, default=5002)
    t.add_argument("--rate", type=float, default=1000)
    t.add_argument("--size", type=int, default=1000)
    t.add_argument("--first-seq", type=int, default=0)
    t.add_argument("--ping-interval", type=float, default=0.001)
    t.add_argument("--stop", required=True)
    t.add_argument("--progress", required=True)
    t.add_argument("--gaps", required=True)

    c = sub.add_parser("check-stream")
    c.add_argument("report")
    c.add_argument("traffic")
    c.add_argument("--slack", type=int, default=20)
    c.add_argument("--ring-full", type=int, default=0)
    c.add_argument("--migration")
    c.add_argument("--gaps")
    c.add_argument("--downtime-out")

    args = p.parse_args()
    return {"qmp": cmd_qmp, "migrate": cmd_migrate, "traffic": cmd_traffic,
            "check-stream": cmd_check_stream}[args.what](args)


if __name__ == "__main__":
    sys.exit(main())
