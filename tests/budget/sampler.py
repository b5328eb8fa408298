"""Count a server's TCP connections from its own side: `python -m tests.budget.sampler`.

Run inside a lab host's namespace (`ip netns exec cutover-old ...`): it reads
the kernel's socket tables (/proc/net/tcp and tcp6, which show that
namespace only) in a tight loop until SIGTERM, and counts the connections to
the given local addresses and ports that the kernel holds as open
(ESTABLISHED, or SYN_RECV: accepted by the kernel, not yet by the daemon).
A connection the client closed is CLOSE_WAIT or gone by then, so what is
counted is what the server carries at that moment. It prints one JSON
object: the most open at once, every distinct connection seen, the samples.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import signal
import sys
import time
from pathlib import Path

OPEN_STATES = {"01", "03"}  # ESTABLISHED, SYN_RECV


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    address = ipaddress.IPv6Address(words)
    return str(address.ipv4_mapped or address)


def _endpoint(text: str) -> tuple[str, int]:
    address, port = text.split(":")
    return _address(address), int(port, 16)


def open_connections(addresses: set[str], ports: set[int]) -> set[tuple[str, int, str, int]]:
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] not in OPEN_STATES:
                continue
            local, remote = _endpoint(fields[1]), _endpoint(fields[2])
            if local[0] in addresses and local[1] in ports and remote[0] not in addresses:
                found.add((*local, *remote))
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
    while not stop:
        now = open_connections(addresses, ports)
        samples += 1
        seen |= now
        if len(now) > most:
            most, peak = len(now), sorted([list(c) for c in now])
        time.sleep(0.0002)
    json.dump({"most": most, "peak": peak, "distinct": len(seen), "samples": samples}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
