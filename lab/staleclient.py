"""A client with a stale view of DNS: it keeps connecting to the OLD IP until stopped.

`python -m lab stale-client --port P [--rate N]` starts one on the client host
(from its second address, STALE_CLIENT_ADDRESS, so the old host can tell it
from the suite); `--stop` stops it. Each is tracked by PID in lab.json
(`stale_clients`: port -> PID), stopped by that PID, and gone with `lab down`
(which stops every process of the lab's namespaces). The fault `stale-client`
starts one for the duration of the fault.

The process itself (`python -m lab.staleclient PORT RATE`, inside the client
namespace only) opens N connections a second to the old IP's PORT, reads what
the server says first (bounded), holds each for 1.5 s (so a once-a-second
sample sees it) and closes it.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import sys
import threading
import time
from typing import Any

from lab.run import LabError, pid_alive, run, spawn
from lab.topology import CLIENT, FORWARDED_PORTS, OLD, REPO, STALE_CLIENT_ADDRESS

HOLD = 1.5
TIMEOUT = 3.0
MAX_RATE = 20.0


def _tracked(data: dict[str, Any]) -> dict[str, int]:
    clients: dict[str, int] = data.setdefault("stale_clients", {})
    return clients


def _check(port: int, rate: float) -> None:
    if port not in FORWARDED_PORTS:
        raise LabError(f"stale-client: not a forwarded port: {port} (one of {FORWARDED_PORTS})")
    if not 0 < rate <= MAX_RATE:
        raise LabError(f"stale-client: --rate must be above 0 and at most {MAX_RATE:g}")


def start(data: dict[str, Any], port: int, rate: float = 1.0) -> int:
    """Start (or keep) the stale client of `port`; return its PID. The caller saves `data`."""
    _check(port, rate)
    clients = _tracked(data)
    pid = clients.get(str(port))
    if pid is not None and pid_alive(pid):
        return pid
    addresses = run(["ip", "-n", CLIENT.netns, "-o", "addr", "show", "dev", "eth0"], timeout=10)
    if f" {STALE_CLIENT_ADDRESS}/" not in addresses.stdout:
        run(
            ["ip", "-n", CLIENT.netns, "addr", "add", f"{STALE_CLIENT_ADDRESS}/24", "dev", "eth0"],
            timeout=10,
        )
        # Like every lab address: unreachable from the root namespace (lab down removes it).
        run(["ip", "route", "replace", "unreachable", f"{STALE_CLIENT_ADDRESS}/32"], timeout=10)
    pid = spawn(
        CLIENT,
        _command(port, rate),
        CLIENT.logs / f"stale-client-{port}.log",
    )
    clients[str(port)] = pid
    return pid


def stop(data: dict[str, Any], port: int | None = None) -> list[int]:
    """Stop the stale client of `port` (all of them: None) by PID; return the PIDs stopped."""
    from lab.daemons import stop as stop_pid

    clients = _tracked(data)
    ports = [str(port)] if port is not None else sorted(clients)
    stopped = []
    for key in ports:
        pid = clients.pop(key, None)
        if pid is not None:
            stop_pid(pid, timeout=5)
            stopped.append(pid)
    return stopped


def _command(port: int, rate: float) -> list[str]:
    return [
        "env",
        f"PYTHONPATH={REPO}",
        sys.executable,
        "-m",
        "lab.staleclient",
        str(port),
        f"{rate:g}",
    ]


def running(data: dict[str, Any]) -> dict[int, int]:
    """Port -> PID of every tracked stale client that is running."""
    return {int(p): pid for p, pid in data.get("stale_clients", {}).items() if pid_alive(pid)}


def _connect_once(port: int) -> None:
    try:
        with socket.create_connection(
            (OLD.address, port), timeout=TIMEOUT, source_address=(STALE_CLIENT_ADDRESS, 0)
        ) as conn:
            conn.settimeout(HOLD)
            # HTTP says nothing first: the connection itself is the point.
            with contextlib.suppress(OSError):
                conn.recv(512)
            time.sleep(HOLD)
    except OSError as exc:
        print(f"stale-client: {OLD.address}:{port}: {exc}", flush=True)


def main(argv: list[str]) -> int:
    port, rate = int(argv[0]), float(argv[1])
    _check(port, rate)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind((STALE_CLIENT_ADDRESS, 0))
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            print(f"stale-client: {STALE_CLIENT_ADDRESS} is not local: refusing", flush=True)
            return 2
        raise
    finally:
        probe.close()
    print(f"stale-client: connecting to {OLD.address}:{port} {rate:g}/s until stopped", flush=True)
    while True:
        threading.Thread(target=_connect_once, args=(port,), daemon=True).start()
        time.sleep(1 / rate)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
