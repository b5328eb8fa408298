"""Count a server's TCP connections from its own side: `python -m tests.budget.sampler`.

Run inside a lab host's namespace (`ip netns exec cutover-old ...`): it asks
the kernel for that namespace's open TCP sockets (sock_diag over netlink, as
`ss` does; the kernel filters ESTABLISHED and SYN_RECV, so a dump takes well
under a millisecond) in a tight loop until SIGTERM, and counts the
connections to the given local addresses and ports that were open together
(a connection counts when two successive dumps of its family show it: see
`main`; short ones may be missed, none is counted twice or out of its time).
A connection the client closed is CLOSE_WAIT or gone by then, so what is
counted is what the server carries at that moment. It prints one JSON
object: the most open at once, every distinct connection seen, the samples.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import signal
import socket
import struct
import sys
import time

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
# ESTABLISHED (1) and SYN_RECV (3): open to the server, whoever has not closed yet.
OPEN_STATES = (1 << 1) | (1 << 3)
HEADER = struct.Struct("=IHHII")
REQUEST = struct.Struct("=BBBBI")  # family, protocol, ext, pad, states; then a zero sockid
SOCKID = struct.Struct(">HH16s16sI8s")
DIAG_MSG = struct.Struct("=BBBB")


def _dump(channel: socket.socket, family: int) -> list[tuple[str, int, str, int]]:
    """One sock_diag dump of `family`'s open TCP sockets (the kernel filters the states)."""
    body = REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, OPEN_STATES) + bytes(SOCKID.size)
    channel.send(HEADER.pack(HEADER.size + len(body), SOCK_DIAG_BY_FAMILY,
                             NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body)  # fmt: skip
    found = []
    while True:
        data = channel.recv(1 << 20)
        offset = 0
        while offset < len(data):
            length, kind, _, _, _ = HEADER.unpack_from(data, offset)
            if kind == NLMSG_DONE:
                return found
            if kind == NLMSG_ERROR:
                raise OSError("sock_diag dump failed")
            start = offset + HEADER.size
            message_family = DIAG_MSG.unpack_from(data, start)[0]
            sport, dport, src, dst, _, _ = SOCKID.unpack_from(data, start + DIAG_MSG.size)
            size = 4 if message_family == socket.AF_INET else 16
            found.append(
                (
                    str(ipaddress.ip_address(src[:size])),
                    sport,
                    str(ipaddress.ip_address(dst[:size])),
                    dport,
                )
            )
            offset += (length + 3) & ~3


def open_connections(
    channel: socket.socket, family: int, addresses: set[str], ports: set[int]
) -> set[tuple[str, int, str, int]]:
    found = set()
    for local, lport, remote, rport in _dump(channel, family):
        mapped = ipaddress.ip_address(remote)
        if isinstance(mapped, ipaddress.IPv6Address) and mapped.ipv4_mapped:
            remote = str(mapped.ipv4_mapped)
        if local in addresses and lport in ports and remote not in addresses:
            found.add((local, lport, remote, rport))
    return found


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", action="append", required=True)
    parser.add_argument("--port", action="append", type=int, required=True)
    args = parser.parse_args()
    addresses = {str(ipaddress.ip_address(a)) for a in args.address}
    ports = set(args.port)
    stop = False

    def finish(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, finish)
    print("sampling", flush=True)  # the caller starts the suite after this line
    most, samples, seen = 0, 0, set()
    peak: list[list[object]] = []
    channel = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    families = (socket.AF_INET, socket.AF_INET6)
    last = {family: open_connections(channel, family, addresses, ports) for family in families}
    while not stop:
        # Dumps go v4, v6, v4, v6, ...: a connection counts when it is in two
        # successive dumps of its family, so it was open all along between them,
        # and every connection counted was open at one same instant (between the
        # last round's v6 dump and this round's v4 one). One closed during a dump of
        # the other family and another opened after it are never counted together.
        now: set[tuple[str, int, str, int]] = set()
        for family in families:
            current = open_connections(channel, family, addresses, ports)
            now |= last[family] & current
            seen |= current
            last[family] = current
        samples += 1
        if len(now) > most:
            most, peak = len(now), sorted([list(c) for c in now])
        time.sleep(0.0001)
    json.dump({"most": most, "peak": peak, "distinct": len(seen), "samples": samples}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
