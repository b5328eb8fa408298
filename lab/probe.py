"""Protocol-level port sweep, run INSIDE the client namespace only.

`python -m lab.probe` refuses to send anything unless the client's lab
address exists on this network namespace (it exists nowhere else).
Each line says which server answered: greeting, EHLO name or X-Served-By.
"""

from __future__ import annotations

import errno
import json
import socket
import ssl
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

from lab.topology import CLIENT, FORWARDED_PORTS, NEW, OLD, PORT_NAMES, STATE, check_lab_address

TIMEOUT = 3.0
IMPLICIT_TLS = {993, 995, 465}


class NotInClient(Exception):
    pass


def require_client_namespace() -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind((CLIENT.address, 0))
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            raise NotInClient(
                f"not inside cutover-client ({CLIENT.address} is not local): refusing to probe"
            ) from None
        raise
    finally:
        probe.close()


def _read_line(conn: socket.socket | ssl.SSLSocket) -> str:
    data = b""
    while not data.endswith(b"\n") and len(data) < 4096:
        chunk = conn.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace").strip()


def answer(address: str, port: int, context: ssl.SSLContext) -> str:
    """What the server on address:port says first (its identity where it gives one)."""
    check_lab_address(address)
    source = CLIENT.address6 if ":" in address else CLIENT.address
    raw = socket.create_connection((address, port), timeout=TIMEOUT, source_address=(source, 0))
    conn: socket.socket | ssl.SSLSocket = raw
    try:
        if port in IMPLICIT_TLS:
            conn = context.wrap_socket(raw, server_hostname="mail.example.test")
        if port == 80:
            conn.sendall(b"HEAD / HTTP/1.0\r\nHost: www.example.test\r\n\r\n")
            status = _read_line(conn)
            served = ""
            while line := _read_line(conn):
                if line.lower().startswith("x-served-by:"):
                    served = line.split(":", 1)[1].strip()
            return f"{status} served-by={served}"
        if port == 3306:
            return _handshake(conn.recv(256))
        return _read_line(conn)
    finally:
        conn.close()


def _handshake(packet: bytes) -> str:
    if len(packet) < 6 or packet[4] != 10:
        return f"unexpected MySQL handshake {packet[:16]!r}"
    version = packet[5:].split(b"\0", 1)[0].decode()
    return f"MySQL handshake v10 {version}"


def socket_answer(path: str) -> str:
    """The MySQL greeting through a unix socket (a local file: no network traffic)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(TIMEOUT)
    try:
        conn.connect(path)
        packet = conn.recv(256)
    finally:
        conn.close()
    if not packet:
        raise ConnectionResetError(f"{path} accepted and closed without a MySQL greeting")
    return _handshake(packet)


def sweep() -> dict[str, str]:
    """Every forwarded port on both servers, both families, at once: "ok ANSWER" or
    "FAIL why" per address:port (an IPv6 address unbracketed: split at the last colon).

    Concurrent, so a silent host costs one timeout, not one per port.
    """
    context = ssl.create_default_context(cafile=str(STATE / "ca.pem"))
    # Like a client that still speaks to the legacy profile's old host (TLS 1.0, a
    # 1024-bit key): today's servers still negotiate TLS 1.3 with it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    targets = [
        (address, port)
        for host in (OLD, NEW)
        for address in (host.address, host.address6)
        for port in FORWARDED_PORTS
    ]

    def one(target: tuple[str, int]) -> str:
        try:
            return "ok   " + answer(*target, context)
        except (OSError, ssl.SSLError) as exc:
            return f"FAIL {exc or type(exc).__name__}"

    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        results = list(pool.map(one, targets))
    return {
        f"{address}:{port}": result
        for (address, port), result in zip(targets, results, strict=True)
    }


def main() -> int:
    if sys.argv[1:2] == ["--socket"]:
        try:
            print(json.dumps({"socket": "ok   " + socket_answer(sys.argv[2])}))
        except OSError as exc:
            print(json.dumps({"socket": f"FAIL {exc or type(exc).__name__}"}))
        return 0
    require_client_namespace()
    results = sweep()
    if sys.argv[1:2] == ["--json"]:
        print(json.dumps(results))
        return 0
    failures = 0
    for key, result in results.items():
        address, port = key.rsplit(":", 1)
        failures += result.startswith("FAIL")
        print(f"{address:>17}:{port:<5} {PORT_NAMES[int(port)]:<11} {result}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
