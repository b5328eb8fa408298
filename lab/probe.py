"""Protocol-level port sweep, run INSIDE the client namespace only.

`python -m lab.probe` refuses to send anything unless the client's lab
address exists on this network namespace (it exists nowhere else).
Each line says which server answered: greeting, EHLO name or X-Served-By.
"""

from __future__ import annotations

import errno
import socket
import ssl
import sys

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
    raw = socket.create_connection(
        (address, port), timeout=TIMEOUT, source_address=(CLIENT.address, 0)
    )
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
            packet = conn.recv(256)
            if len(packet) < 6 or packet[4] != 10:
                return f"unexpected MySQL handshake {packet[:16]!r}"
            version = packet[5:].split(b"\0", 1)[0].decode()
            return f"MySQL handshake v10 {version}"
        return _read_line(conn)
    finally:
        conn.close()


def main() -> int:
    require_client_namespace()
    context = ssl.create_default_context(cafile=str(STATE / "ca.pem"))
    failures = 0
    for host in (OLD, NEW):
        for port in FORWARDED_PORTS:
            try:
                result = "ok   " + answer(host.address, port, context)
            except (OSError, ssl.SSLError) as exc:
                failures += 1
                result = f"FAIL {exc}"
            print(f"{host.address:>15}:{port:<5} {PORT_NAMES[port]:<11} {result}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
