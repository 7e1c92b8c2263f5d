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

"""vhost-tcp-echo.py ADDR PORT BYTES

Connects to the TCP echo server at ADDR:PORT, sends BYTES pseudo-random
bytes (while reading), closes its sending side and reads until the server
closes.  Prints "echoed BYTES bytes" and exits 0 if exactly the bytes sent
came back; otherwise says what differs and exits 1."""

import random
import socket
import sys
import threading


def main():
    if len(sys.argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    addr, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    data = random.Random(n).randbytes(n)

    sock = socket.create_connection((addr, port), timeout=60)

    def send():
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send)
    sender.start()
    got = bytearray()
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    sender.join()
    sock.close()

    if bytes(got) != data:
        first = next((i for i, (a, b) in enumerate(zip(got, data)) if a != b),
                     min(len(got), n))
        print("sent %d bytes, got %d back, first difference at %d"
              % (n, len(got), first))
        return 1
    print("echoed %d bytes" % n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
