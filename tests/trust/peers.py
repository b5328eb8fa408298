"""Deliberately hostile (and a few well-behaved) test-only servers, on loopback only.

Each `Peer` is a small threaded TCP (or UDP+TCP for DNS) server bound to one
127.0.0.x address. The well-behaved ones give the suite something to pass
against, so a self-test can show that one misbehaving peer changes the
verdicts of its own endpoint and nothing else.

Never bound to anything but 127.0.0.0/8: `Peer` refuses other addresses.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import socket
import socketserver
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

Handler = Callable[[socket.socket, "Peer"], None]


def _loopback_only(host: str) -> None:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"test peers bind to loopback only, not {host}")


class Peer:
    """A threaded TCP server on (host, port) running `handler` per connection."""

    def __init__(self, host: str, port: int, handler: Handler, name: str) -> None:
        _loopback_only(host)
        self.host, self.port, self.name = host, port, name
        self.handler = handler
        self.stop = threading.Event()
        self.sent = 0  # bytes this peer managed to send, over all connections
        peer = self

        class _Handle(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with contextlib.suppress(OSError):
                    handler(self.request, peer)

        class _Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = _Server((host, port), _Handle)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def send(self, sock: socket.socket, data: bytes) -> None:
        sock.sendall(data)
        self.sent += len(data)

    def __enter__(self) -> Peer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def _wait_closed(sock: socket.socket, peer: Peer, limit: float = 60) -> None:
    """Hold the connection open until the client closes it (or the peer stops)."""
    sock.settimeout(0.5)
    end = time.monotonic() + limit
    while not peer.stop.is_set() and time.monotonic() < end:
        try:
            if not sock.recv(4096):
                return
        except TimeoutError:
            continue


def _lines(sock: socket.socket, peer: Peer) -> Iterator[str]:
    sock.settimeout(0.5)
    buffer = b""
    while not peer.stop.is_set():
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            raw, buffer = buffer.split(b"\n", 1)
            yield raw.rstrip(b"\r").decode("ascii", "replace")


# --- SMTP ---------------------------------------------------------------------


def smtp_good(hostname: str) -> Handler:
    """A minimal, well-behaved SMTP server (no STARTTLS, no AUTH)."""

    def handle(sock: socket.socket, peer: Peer) -> None:
        peer.send(sock, f"220 {hostname} ESMTP trust-peer\r\n".encode())
        for line in _lines(sock, peer):
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                peer.send(sock, f"250-{hostname}\r\n250-8BITMIME\r\n250 SIZE 10240000\r\n".encode())
            elif verb == "QUIT":
                peer.send(sock, b"221 bye\r\n")
                return
            else:
                peer.send(sock, b"502 not here\r\n")

    return handle


def garbage(sock: socket.socket, peer: Peer) -> None:
    """Binary noise instead of a greeting, then silence."""
    peer.send(sock, b"\x00\xff\xfe GARBAGE \x1b[31m\xc3\x28 not-a-protocol\r\n")
    _wait_closed(sock, peer)


def endless_lines(sock: socket.socket, peer: Peer) -> None:
    """A multi-line greeting that never ends (`220-...` forever)."""
    line = b"220-trust-peer says more and more and more\r\n" * 64
    while not peer.stop.is_set():
        peer.send(sock, line)


def endless_line(sock: socket.socket, peer: Peer) -> None:
    """One greeting line that never ends (no newline, ever)."""
    chunk = b"220 " + b"A" * 65536
    while not peer.stop.is_set():
        peer.send(sock, chunk)
        chunk = b"A" * 65536


def trickle(text: str, interval: float = 1.0) -> Handler:
    """A well-formed greeting, one byte per `interval` seconds."""

    def handle(sock: socket.socket, peer: Peer) -> None:
        for byte in text.encode():
            if peer.stop.wait(interval):
                return
            peer.send(sock, bytes([byte]))
        _wait_closed(sock, peer)

    return handle


def plaintext(hostname: str) -> Handler:
    """What a TLS port must never do: greet in clear text."""

    def handle(sock: socket.socket, peer: Peer) -> None:
        peer.send(sock, f"220 {hostname} ESMTP plaintext on a TLS port\r\n".encode())
        _wait_closed(sock, peer)

    return handle


def silent(sock: socket.socket, peer: Peer) -> None:
    """Accepts and never says a word."""
    _wait_closed(sock, peer)


# --- MySQL --------------------------------------------------------------------

_CAPS = 0x0001 | 0x0200 | 0x8000 | 0x80000  # LONG_PASSWORD, PROTOCOL_41, SECURE_CONN, PLUGIN_AUTH


def mysql_handshake(version: str = "10.11.6-MariaDB-trust-peer") -> bytes:
    """A protocol-10 initial handshake packet (sequence 0), no TLS offered."""
    payload = (
        b"\x0a"
        + version.encode()
        + b"\x00"
        + struct.pack("<I", 7)
        + b"12345678\x00"
        + struct.pack("<H", _CAPS & 0xFFFF)
        + b"\x21"
        + struct.pack("<H", 2)
        + struct.pack("<H", _CAPS >> 16)
        + b"\x15"
        + bytes(10)
        + b"9abcdefghijk\x00"
        + b"mysql_native_password\x00"
    )
    return struct.pack("<I", len(payload))[:3] + b"\x00" + payload


def mysql_refusing(sock: socket.socket, peer: Peer) -> None:
    """A well-formed server that refuses every login (ERR 1045)."""
    peer.send(sock, mysql_handshake())
    sock.settimeout(5)
    with contextlib.suppress(OSError):
        sock.recv(65536)
    message = b"Access denied for this trust peer"
    payload = b"\xff" + struct.pack("<H", 1045) + b"#28000" + message
    peer.send(sock, struct.pack("<I", len(payload))[:3] + b"\x02" + payload)
    _wait_closed(sock, peer)


def mysql_close_after_handshake(sock: socket.socket, peer: Peer) -> None:
    """Sends its handshake, then hangs up as soon as the client answers it."""
    peer.send(sock, mysql_handshake())
    sock.settimeout(5)
    with contextlib.suppress(OSError):
        sock.recv(65536)


# --- DNS ----------------------------------------------------------------------


@dataclass(frozen=True)
class Zone:
    """A tiny authoritative zone: apex A and MX, mail A, www CNAME, NS, SOA."""

    name: str
    address: str
    nameservers: tuple[str, ...]
    ttl: int = 300
    serial: int = 2024010101

    def records(self) -> list[dns.rrset.RRset]:
        z, ttl = self.name, self.ttl
        rrsets = [
            dns.rrset.from_text(
                f"{z}.",
                ttl,
                "IN",
                "SOA",
                f"ns1.{z}. hostmaster.{z}. {self.serial} 3600 600 86400 300",
            ),
            dns.rrset.from_text(
                f"{z}.", ttl, "IN", "NS", *[f"ns{i + 1}.{z}." for i in range(len(self.nameservers))]
            ),
            dns.rrset.from_text(f"{z}.", ttl, "IN", "A", self.address),
            dns.rrset.from_text(f"{z}.", ttl, "IN", "MX", f"10 mail.{z}."),
            dns.rrset.from_text(f"mail.{z}.", ttl, "IN", "A", self.address),
            dns.rrset.from_text(f"www.{z}.", ttl, "IN", "CNAME", f"{z}."),
        ]
        for i, ns in enumerate(self.nameservers):
            rrsets.append(dns.rrset.from_text(f"ns{i + 1}.{z}.", ttl, "IN", "A", ns))
        return rrsets

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        if not question.name.is_subdomain(dns.name.from_text(self.name)):
            response.set_rcode(dns.rcode.REFUSED)
            response.flags &= ~dns.flags.AA
            return response
        known = [r for r in self.records() if r.name == question.name]
        if not known:
            response.set_rcode(dns.rcode.NXDOMAIN)
        matching = [
            r for r in known if r.rdtype == question.rdtype or r.rdtype == dns.rdatatype.CNAME
        ]
        if matching:
            response.answer.extend(matching)
        else:
            soa = self.records()[0]
            response.authority.append(soa)
        return response


DNS_MODES = ("good", "servfail", "refused", "truncated", "silent")


class DnsPeer:
    """An authoritative server for `zone` on host:53 (UDP and TCP), misbehaving per `mode`.

    good: answers; servfail/refused: that rcode to everything; truncated: UDP
    answers carry only the TC bit (TCP answers properly, as a real server
    would); silent: no UDP answer at all, nothing listening on TCP.
    """

    def __init__(self, host: str, zone: Zone, mode: str = "good", port: int = 53) -> None:
        _loopback_only(host)
        if mode not in DNS_MODES:
            raise ValueError(f"unknown DNS mode {mode!r}")
        self.host, self.port, self.zone, self.mode = host, port, zone, mode
        self.stop = threading.Event()
        self.udp_queries = 0
        self.tcp_queries = 0
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.udp.bind((host, port))
        self.udp.settimeout(0.2)
        self.tcp: socket.socket | None = None
        if mode != "silent":
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.tcp.bind((host, port))
            self.tcp.listen(16)
            self.tcp.settimeout(0.2)
        self.threads = [threading.Thread(target=self._serve_udp, daemon=True)]
        if self.tcp is not None:
            self.threads.append(threading.Thread(target=self._serve_tcp, daemon=True))

    def _response(self, query: dns.message.Message, over_tcp: bool) -> dns.message.Message | None:
        if self.mode == "silent":
            return None
        if self.mode in ("servfail", "refused"):
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.SERVFAIL if self.mode == "servfail" else dns.rcode.REFUSED)
            return response
        if self.mode == "truncated" and not over_tcp:
            response = dns.message.make_response(query)
            response.flags |= dns.flags.TC | dns.flags.AA
            return response
        return self.zone.answer(query)

    def _serve_udp(self) -> None:
        while not self.stop.is_set():
            try:
                wire, client = self.udp.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            self.udp_queries += 1
            try:
                query = dns.message.from_wire(wire)
            except Exception:
                continue
            response = self._response(query, over_tcp=False)
            if response is not None:
                with contextlib.suppress(OSError):
                    self.udp.sendto(response.to_wire(), client)

    def _serve_tcp(self) -> None:
        assert self.tcp is not None
        while not self.stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._tcp_conn, args=(conn,), daemon=True).start()

    def _tcp_conn(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        with conn, contextlib.suppress(OSError, ValueError, struct.error):
            while not self.stop.is_set():
                head = conn.recv(2)
                if len(head) < 2:
                    return
                (size,) = struct.unpack("!H", head)
                wire = b""
                while len(wire) < size:
                    chunk = conn.recv(size - len(wire))
                    if not chunk:
                        return
                    wire += chunk
                self.tcp_queries += 1
                response = self._response(dns.message.from_wire(wire), over_tcp=True)
                if response is None:
                    return
                out = response.to_wire()
                conn.sendall(struct.pack("!H", len(out)) + out)

    def __enter__(self) -> DnsPeer:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=2)
        self.udp.close()
        if self.tcp is not None:
            self.tcp.close()


def tls_wrap(handler: Handler, context: ssl.SSLContext) -> Handler:
    """`handler` behind implicit TLS (a well-behaved TLS port)."""

    def handle(sock: socket.socket, peer: Peer) -> None:
        sock.settimeout(5)
        with context.wrap_socket(sock, server_side=True) as tls:
            handler(tls, peer)

    return handle


def self_signed(directory: Path, name: str, bits: int = 2048) -> tuple[Path, Path]:
    """A self-signed certificate (also its own CA) for `name` with an RSA key of `bits`:
    (cert, key)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            f"rsa:{bits}",
            "-nodes",
            "-days",
            "30",
            "-subj",
            f"/CN={name}",
            "-addext",
            f"subjectAltName=DNS:{name}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def mysql_short_handshake(sock: socket.socket, peer: Peer) -> None:
    """A handshake cut right after the capability flags: enough for a version, not for a login."""
    payload = b"\x0a" + b"10.11.6-MariaDB-short\x00" + struct.pack("<I", 7) + b"12345678\x00"
    payload += struct.pack("<H", _CAPS & 0xFFFF)
    peer.send(sock, struct.pack("<I", len(payload))[:3] + b"\x00" + payload)
    _wait_closed(sock, peer)


# --- IMAP ---------------------------------------------------------------------


@dataclass
class Imap4rev1Mail:
    """The mail an `imap4rev1_only` peer serves, and every command it had to refuse."""

    user: str
    password: str
    # name -> (UIDVALIDITY, UIDNEXT, [(UID, flags, Message-ID)])
    mailboxes: dict[str, tuple[int, int, list[tuple[int, str, str]]]]
    refused: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    # Listed before and after login, as Dovecot 1.1 did.
    capability: str = (
        "IMAP4rev1 SASL-IR SORT THREAD=REFERENCES MULTIAPPEND UNSELECT LITERAL+ IDLE "
        "CHILDREN NAMESPACE LOGIN-REFERRALS AUTH=PLAIN"
    )


# What a client of Dovecot 1.x may not send: these extensions did not exist there.
_NOT_IMAP4REV1 = ("CONDSTORE", "QRESYNC", "HIGHESTMODSEQ", "CHANGEDSINCE", "MODSEQ", "RETURN")


def _uid_range(text: str, uids: list[int]) -> list[int]:
    """The UIDs of `uids` in an IMAP sequence set (`1:3,5`, `4:*`)."""
    wanted: set[int] = set()
    top = max(uids, default=0)
    for part in text.split(","):
        first, _, last = part.partition(":")
        low = top if first == "*" else int(first)
        high = low if not last else top if last == "*" else int(last)
        wanted |= {uid for uid in uids if min(low, high) <= uid <= max(low, high)}
    return sorted(wanted)


def imap4rev1_only(mail: Imap4rev1Mail) -> Handler:
    """A Dovecot 1.x-era IMAP server: IMAP4rev1 and nothing newer, read-only.

    It greets as Dovecot 1.x did (`* OK Dovecot ready.`, no capability code),
    advertises no CONDSTORE, ENABLE, SPECIAL-USE, LIST-STATUS or QRESYNC, and
    answers BAD (logged in `mail.refused`) to every command it does not know
    and to any use of those extensions (ENABLE, STATUS HIGHESTMODSEQ, a
    CONDSTORE parameter, LIST ... RETURN).
    """

    def handle(sock: socket.socket, peer: Peer) -> None:
        peer.send(sock, b"* OK Dovecot ready.\r\n")
        selected: str | None = None
        lines = _lines(sock, peer)
        for line in lines:
            tag, _, rest = line.partition(" ")
            words = rest.split()
            command = " ".join(words[:2]).upper() if words[:1] == ["UID"] else rest.split(" ")[0]
            command = command.upper()
            mail.commands.append(command)

            def reply(*untagged: bytes | str, status: str = "OK done", tag: str = tag) -> None:
                out = b"".join(
                    u if isinstance(u, bytes) else (u + "\r\n").encode() for u in untagged
                )
                peer.send(sock, out + f"{tag} {status}\r\n".encode())

            if any(word in rest.upper() for word in _NOT_IMAP4REV1) or command not in (
                "CAPABILITY",
                "LOGIN",
                "AUTHENTICATE",
                "LIST",
                "LSUB",
                "EXAMINE",
                "UID SEARCH",
                "UID FETCH",
                "NOOP",
                "LOGOUT",
            ):
                mail.refused.append(line if command != "LOGIN" else "LOGIN ***")
                reply(status="BAD Error in IMAP command: unknown command or extension")
            elif command == "CAPABILITY":
                reply(f"* CAPABILITY {mail.capability}")
            elif command == "LOGIN":
                given = [w.strip('"') for w in words[1:3]]
                ok = given == [mail.user, mail.password]
                reply(status="OK Logged in." if ok else "NO [AUTHENTICATIONFAILED] failed.")
            elif command == "AUTHENTICATE":
                peer.send(sock, b"+ \r\n")
                answer = next(lines, "")
                try:
                    _, user, password = base64.b64decode(answer).decode().split("\0")
                except ValueError:
                    user = password = ""
                ok = (user, password) == (mail.user, mail.password)
                reply(status="OK Logged in." if ok else "NO [AUTHENTICATIONFAILED] failed.")
            elif command in ("LIST", "LSUB"):
                names = sorted(mail.mailboxes)
                children = {n: any(o.startswith(n + "/") for o in names) for n in names}
                reply(
                    *(
                        f'* {command} (\\Has{"" if children[n] else "No"}Children) "/" "{n}"'
                        for n in names
                    )
                )
            elif command == "EXAMINE":
                selected = words[1].strip('"')
                if selected not in mail.mailboxes:
                    reply(status="NO Mailbox doesn't exist")
                    selected = None
                    continue
                validity, uidnext, messages = mail.mailboxes[selected]
                reply(
                    "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
                    f"* {len(messages)} EXISTS",
                    "* 0 RECENT",
                    f"* OK [UIDVALIDITY {validity}] UIDs valid",
                    f"* OK [UIDNEXT {uidnext}] Predicted next UID",
                    status="OK [READ-ONLY] Select completed.",
                )
            elif command in ("UID SEARCH", "UID FETCH") and selected is None:
                reply(status="BAD No mailbox selected")
            elif command == "UID SEARCH":
                uids = [m[0] for m in mail.mailboxes[selected][2]]
                found = _uid_range(words[3], uids) if words[2:3] == ["UID"] else uids
                reply("* SEARCH" + "".join(f" {uid}" for uid in found))
            elif command == "UID FETCH":
                messages = mail.mailboxes[selected][2]
                wanted = set(_uid_range(words[2], [m[0] for m in messages]))
                out = []
                for seq, (uid, flags, ident) in enumerate(messages, start=1):
                    if uid in wanted:
                        header = f"Message-ID: <{ident}>\r\n\r\n".encode()
                        out.append(
                            f"* {seq} FETCH (UID {uid} RFC822.SIZE {100 + uid} FLAGS ({flags}) "
                            f"BODY[HEADER.FIELDS (MESSAGE-ID)] {{{len(header)}}}\r\n".encode()
                            + header
                            + b")\r\n"
                        )
                reply(*out)
            elif command == "NOOP":
                reply()
            else:  # LOGOUT
                reply("* BYE Logging out")
                return

    return handle


def imap_rejecting(sock: socket.socket, peer: Peer) -> None:
    """An IMAP server that rejects every login as Dovecot does a wrong password."""
    peer.send(sock, b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] trust-peer ready.\r\n")
    for line in _lines(sock, peer):
        tag, _, rest = line.partition(" ")
        command = rest.split(" ", 1)[0].upper()
        if command == "CAPABILITY":
            peer.send(sock, f"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK done\r\n".encode())
        elif command in ("LOGIN", "AUTHENTICATE"):
            peer.send(sock, f"{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n".encode())
        elif command == "LOGOUT":
            peer.send(sock, f"* BYE\r\n{tag} OK bye\r\n".encode())
            return
        else:
            peer.send(sock, f"{tag} BAD unknown command\r\n".encode())
