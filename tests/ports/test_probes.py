"""Pure logic of the service probes, and their bounds against deliberately bad peers on loopback."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from cutover.model.endpoints import Endpoint
from cutover.model.inventory import Protocol, Service, TlsMode
from cutover.model.phases import Phase, Side, expectations, serving_ip
from cutover.probes.connect import ProbeError, ProbeTimeout
from cutover.probes.services import Observations, ProbeSettings, observe
from cutover.probes.services.apache import (
    ApacheConfig,
    LegacyDirective,
    access_compat_loaded,
    included_files,
    loaded_modules,
    parse_grep,
)
from cutover.probes.services.http import body_digest, parse_response
from cutover.probes.services.imap import greeting_text
from cutover.probes.services.mysql import parse_handshake
from cutover.probes.services.pop3 import capa_keywords
from cutover.probes.services.smtp import ehlo_keywords
from cutover.probes.tls import TlsFacts, name_covered


def test_ehlo_keywords_split_auth_mechanisms() -> None:
    keywords, mechanisms = ehlo_keywords(
        ["PIPELINING", "SIZE 10240000", "AUTH PLAIN LOGIN", "AUTH=CRAM-MD5", "8BITMIME"]
    )
    assert keywords == {
        "PIPELINING",
        "SIZE",
        "8BITMIME",
        "AUTH PLAIN",
        "AUTH LOGIN",
        "AUTH CRAM-MD5",
    }
    assert mechanisms == {"PLAIN", "LOGIN", "CRAM-MD5"}


def test_capa_ignores_implementation_and_splits_sasl() -> None:
    keywords, mechanisms = capa_keywords(["USER", "sasl plain", "IMPLEMENTATION Dovecot 2.3"])
    assert keywords == {"USER", "SASL PLAIN"}
    assert mechanisms == {"PLAIN"}


def test_imap_greeting_text_and_capabilities() -> None:
    text, caps = greeting_text("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] new.example.test ready.")
    assert text == "new.example.test ready."
    assert caps == ["IMAP4rev1", "AUTH=PLAIN"]
    assert greeting_text("* OK Dovecot ready.") == ("Dovecot ready.", [])


def test_http_parse_chunked_and_length() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    assert parse_response(raw, "p")[3] == b"abcde"
    raw = b"HTTP/1.0 404 Not Found\r\nContent-Length: 2\r\n\r\nhiXX"
    assert parse_response(raw, "p")[:2] == (404, "Not Found")
    assert parse_response(raw, "p")[3] == b"hi"
    with pytest.raises(ProbeError, match="not an HTTP server"):
        parse_response(b"+OK hello\r\n\r\n", "198.51.100.20:80")


def test_body_digest_ignores_volatile_content() -> None:
    assert body_digest(b"at 12:00:01 ok", [r"[0-9:]+"]) == body_digest(b"at  ok")
    assert body_digest(b"a") != body_digest(b"b")


def test_mysql_error_packet_is_reported() -> None:
    payload = b"\xff" + (1130).to_bytes(2, "little") + b"Host '198.51.100.10' is not allowed"
    with pytest.raises(ProbeError, match=r"MySQL error 1130: Host '198\.51\.100\.10'"):
        parse_handshake(payload, "198.51.100.20:3306")
    with pytest.raises(ProbeError, match="not a MySQL server"):
        parse_handshake(b"220 smtp", "198.51.100.20:3306")


@pytest.mark.parametrize(
    ("name", "pattern", "covered"),
    [
        ("mail.example.test", "mail.example.test", True),
        ("MAIL.example.test.", "mail.example.test", True),
        ("mail.example.test", "*.example.test", True),
        ("example.test", "*.example.test", False),
        ("a.mail.example.test", "*.example.test", False),
        ("mail.shop.test", "mail.example.test", False),
    ],
)
def test_name_covered(name: str, pattern: str, covered: bool) -> None:
    assert name_covered(name, pattern) is covered


def _certificate_der(names: list[str], days: int) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_tls_facts_from_certificate() -> None:
    der = _certificate_der(["new.example.test", "*.example.test"], days=10)
    facts = TlsFacts.from_der(
        der,
        verified=False,
        verify_error="self-signed certificate",
        version="TLSv1.3",
        trust="ca.pem",
    )
    assert facts.names == ("new.example.test", "*.example.test")
    assert facts.covers("mail.example.test") and not facts.covers("mail.shop.test")
    assert 9 < facts.days_left() < 10.1
    assert len(facts.fingerprint) == 64 and facts.short_fingerprint.startswith("sha256:")
    assert facts.subject == "CN=new.example.test"


def test_included_files() -> None:
    dump = (
        "Included configuration files:\n  (*) /etc/apache2/apache2.conf\n"
        "    (37) /etc/apache2/sites-enabled/www.example.test.conf\n"
    )
    assert included_files(dump) == [
        "/etc/apache2/apache2.conf",
        "/etc/apache2/sites-enabled/www.example.test.conf",
    ]


# `apachectl -t -D DUMP_INCLUDES -D DUMP_MODULES` on a config that parses (the module
# list) and `grep -nHZiE` over its files (a NUL ends each file name).
DUMP = (
    "Included configuration files:\n  (*) /etc/apache2/apache2.conf\n"
    "    (40) /etc/apache2/sites-enabled/www.shop.test.conf\n"
    "Loaded Modules:\n core_module (static)\n authz_core_module (shared)\n"
)
GREP = (
    "/etc/apache2/apache2.conf\x0017:NameVirtualHost *:80\n"
    "/etc/apache2/sites-enabled/www.shop.test.conf\x009:        Order deny,allow\n"
    "/etc/apache2/sites-enabled/www.shop.test.conf\x0011:        Allow from 198.51.100.0/24\n"
)


def _config(access_compat: bool) -> ApacheConfig:
    legacy = tuple(LegacyDirective(*found) for found in parse_grep(GREP))
    return ApacheConfig(
        "new", True, "Syntax OK", tuple(included_files(DUMP)), legacy, access_compat
    )


def test_apache_22_directives_are_judged_by_mod_access_compat() -> None:
    assert loaded_modules(DUMP) == ["core_module", "authz_core_module"]
    assert not access_compat_loaded(loaded_modules(DUMP), load_lines=0)
    # A config that did not parse lists no module: a LoadModule line then decides.
    assert access_compat_loaded([], load_lines=1) and not access_compat_loaded([], 0)
    without = _config(access_compat=False)
    assert [str(d) for d in without.unsupported] == [
        "/etc/apache2/apache2.conf:17: NameVirtualHost *:80",
        "/etc/apache2/sites-enabled/www.shop.test.conf:9: Order deny,allow",
        "/etc/apache2/sites-enabled/www.shop.test.conf:11: Allow from 198.51.100.0/24",
    ]
    # With the module the access directives are valid 2.4; NameVirtualHost still does nothing.
    assert [d.line for d in _config(access_compat=True).unsupported] == [17]


@pytest.mark.parametrize(
    ("phase", "server", "side"),
    [
        (Phase.PREFLIGHT, Side.OLD, Side.OLD),
        (Phase.PREFLIGHT, Side.NEW, Side.NEW),
        (Phase.CUTOVER, Side.OLD, None),
        (Phase.CUTOVER, Side.NEW, Side.NEW),
        (Phase.ACCEPTANCE, Side.OLD, None),
    ],
)
def test_serving_ip(phase: Phase, server: Side, side: Side | None) -> None:
    assert serving_ip(expectations(phase), server) is side


class Target:
    def __init__(self, id: str) -> None:
        self.id = id


def test_observations_run_concurrently_once_each_and_keep_errors() -> None:
    calls: list[str] = []
    lock = threading.Lock()
    both_started = threading.Barrier(2, timeout=5)

    def probe(target: Target) -> str:
        with lock:
            calls.append(target.id)
        both_started.wait()  # deadlocks (BrokenBarrierError) unless both run at once
        if target.id == "bad":
            raise ProbeError("connection refused by 198.51.100.20:993")
        return target.id.upper()

    observations = Observations([Target("good"), Target("bad")], probe)
    assert observations.get(Target("good")) == "GOOD"
    assert isinstance(observations.outcome(Target("bad")), ProbeError)
    with pytest.raises(ProbeError, match="refused"):
        observations.get(Target("bad"))
    assert sorted(calls) == ["bad", "good"]


# --- deliberately bad peers on loopback ------------------------------------------


@pytest.fixture
def bad_peer() -> Iterator[Callable[[Callable[[socket.socket], None]], int]]:
    """A one-connection TCP server on 127.0.0.1 running `behave(conn)`; yields a starter."""
    servers: list[socket.socket] = []

    def start(behave: Callable[[socket.socket], None]) -> int:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        servers.append(server)

        def serve() -> None:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                behave(conn)

        threading.Thread(target=serve, daemon=True).start()
        return int(server.getsockname()[1])

    yield start
    for server in servers:
        server.close()


def _endpoint(port: int, protocol: Protocol, tls: TlsMode = TlsMode.NONE) -> Endpoint:
    service = Service(name="probe", port=port, protocol=protocol, tls=tls)
    return Endpoint(service, Side.NEW, ipaddress.ip_address("127.0.0.1"))


SHORT = ProbeSettings(connect_timeout=1.0, operation_timeout=0.5)


def test_silent_peer_times_out(bad_peer: Callable[..., int]) -> None:
    port = bad_peer(lambda conn: time.sleep(2))
    with pytest.raises(ProbeTimeout, match=r"timed out after 0.5 s reading the SMTP greeting"):
        observe(_endpoint(port, Protocol.SMTP), SHORT)


def test_trickling_peer_times_out(bad_peer: Callable[..., int]) -> None:
    def trickle(conn: socket.socket) -> None:
        for _ in range(40):
            conn.sendall(b"2")
            time.sleep(0.05)

    port = bad_peer(trickle)
    with pytest.raises(ProbeTimeout, match=r"127.0.0.1:\d+"):
        observe(_endpoint(port, Protocol.IMAP), SHORT)


def test_endless_multiline_reply_is_bounded(bad_peer: Callable[..., int]) -> None:
    port = bad_peer(lambda conn: conn.sendall(b"220-x\r\n" * 1000))
    with pytest.raises(ProbeError, match="more than 200 lines"):
        observe(_endpoint(port, Protocol.SMTP), SHORT)


def test_wrong_protocol_is_named(bad_peer: Callable[..., int]) -> None:
    port = bad_peer(lambda conn: conn.sendall(b"+OK POP3 ready\r\n"))
    with pytest.raises(ProbeError, match="greeted with '\\+OK POP3 ready', not '\\* OK'"):
        observe(_endpoint(port, Protocol.IMAP), SHORT)


def test_tls_port_without_tls_fails_in_time(bad_peer: Callable[..., int]) -> None:
    def plain(conn: socket.socket) -> None:
        conn.sendall(b"* OK plain text\r\n")
        time.sleep(1)

    port = bad_peer(plain)
    with pytest.raises(ProbeError, match="TLS handshake"):
        observe(_endpoint(port, Protocol.IMAP, TlsMode.IMPLICIT), SHORT)


def test_chunked_decoding_is_linear() -> None:
    body = b"1\r\nx\r\n" * 250_000 + b"0\r\n\r\n"
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    assert parse_response(raw, "p")[3] == b"x" * 250_000
    with pytest.raises(ProbeError, match="p sent a truncated chunked body"):
        parse_response(raw[:-5], "p")


def test_many_chunks_from_a_peer_end_within_the_operation_timeout(
    bad_peer: Callable[..., int],
) -> None:
    """250,000 one-byte chunks once held one HTTP check for minutes (quadratic decoding)."""

    def chunks(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        conn.sendall(b"1\r\nx\r\n" * 250_000 + b"0\r\n\r\n")

    port = bad_peer(chunks)
    settings = ProbeSettings(connect_timeout=1.0, operation_timeout=5.0)
    started = time.monotonic()
    try:
        answer = observe(_endpoint(port, Protocol.HTTP), settings)
    except ProbeTimeout as exc:  # a slow machine: the deadline, not a hang, ends it
        assert "127.0.0.1" in str(exc)
    else:
        assert answer.http_status == 200
    # Not a timing assertion on speed: the bound is the exchange's own deadline.
    assert time.monotonic() - started < settings.connect_timeout + settings.operation_timeout + 1
