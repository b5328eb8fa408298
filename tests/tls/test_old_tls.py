"""An old server that speaks only TLS 1.0 (AES256-SHA, a 1024-bit RSA key), on loopback.

Proves, without the lab: the suite's context toward the old side
(`tls.legacy_old`) completes the handshake and says which weak version and
cipher it got; toward the new side (today's defaults) the same server is
refused; the version probe TLS05 uses finds exactly TLS 1.0 there and
TLS 1.2/1.3 on a modern server; and TLS05's judgement.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from cutover.compare.tls import dropped_versions
from cutover.model.endpoints import Endpoint
from cutover.model.inventory import Protocol, Service, TlsMode
from cutover.model.phases import Side
from cutover.model.settings import ProbeSettings, Trust
from cutover.probes.connect import ProbeError
from cutover.probes.services import accepted_versions, observe
from tests.trust import peers

NAME = "mail.tls.test"
HOST = "127.0.0.1"


def _server_context(cert: Path, key: Path, *, old: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if old:  # as the playbook's CentOS 5 server: TLS 1.0, CBC/SHA-1, 1024-bit RSA
        with pytest.warns(DeprecationWarning):
            context.minimum_version = ssl.TLSVersion.TLSv1
        with pytest.warns(DeprecationWarning):
            context.maximum_version = ssl.TLSVersion.TLSv1
        context.set_ciphers("AES256-SHA:@SECLEVEL=0")  # before the 1024-bit key loads
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    old, new = tmp_path_factory.mktemp("old"), tmp_path_factory.mktemp("new")
    return {"old": peers.self_signed(old, NAME, bits=1024), "new": peers.self_signed(new, NAME)}


def _serve(cert: Path, key: Path, *, old: bool) -> Iterator[tuple[int, Path]]:
    handler = peers.tls_wrap(peers.smtp_good(NAME), _server_context(cert, key, old=old))
    with peers.Peer(HOST, 0, handler, "old" if old else "new") as peer:
        yield peer.server.server_address[1], cert


@pytest.fixture
def old_server(certs: dict[str, tuple[Path, Path]]) -> Iterator[tuple[int, Path]]:
    yield from _serve(*certs["old"], old=True)


@pytest.fixture
def new_server(certs: dict[str, tuple[Path, Path]]) -> Iterator[tuple[int, Path]]:
    yield from _serve(*certs["new"], old=False)


def endpoint(port: int, side: Side) -> Endpoint:
    service = Service(name="smtps", port=port, protocol=Protocol.SMTP, tls=TlsMode.IMPLICIT)
    return Endpoint(service, side, ipaddress.ip_address(HOST))


def settings(ca_file: Path, *, legacy_old: bool = True) -> ProbeSettings:
    return ProbeSettings(
        connect_timeout=5,
        operation_timeout=10,
        trust=Trust(ca_file),
        server_names={"smtps": NAME},
        legacy_old=legacy_old,
    )


def test_toward_old_the_suite_speaks_tls10_and_says_so(old_server: tuple[int, Path]) -> None:
    port, ca = old_server
    answer = observe(endpoint(port, Side.OLD), settings(ca))
    assert answer.tls is not None
    assert (answer.tls.version, answer.tls.cipher) == ("TLSv1", "AES256-SHA")
    assert answer.tls.verified, answer.tls.verify_error
    assert answer.greeting.startswith("220 ")


@pytest.mark.parametrize("legacy_old", [True, False], ids=["legacy_old", "not-legacy_old"])
def test_toward_new_today_s_defaults_reject_it(
    old_server: tuple[int, Path], legacy_old: bool
) -> None:
    """The same server as the new side (or with tls.legacy_old off) is judged by today's
    defaults: its 1024-bit key does not verify (TLS01 fails), whatever the version."""
    port, ca = old_server
    side = Side.NEW if legacy_old else Side.OLD
    answer = observe(endpoint(port, side), settings(ca, legacy_old=legacy_old))
    assert answer.tls is not None
    assert not answer.tls.verified
    assert answer.tls.verify_error == "EE certificate key too weak"


def test_a_modern_old_server_still_negotiates_its_best(new_server: tuple[int, Path]) -> None:
    port, ca = new_server
    answer = observe(endpoint(port, Side.OLD), settings(ca))
    assert answer.tls is not None and answer.tls.version == "TLSv1.3"


def test_the_version_probe_finds_tls10_only_on_the_old_server(
    old_server: tuple[int, Path], new_server: tuple[int, Path]
) -> None:
    old_port, old_ca = old_server
    new_port, new_ca = new_server
    assert accepted_versions(endpoint(old_port, Side.OLD), settings(old_ca)) == ("TLSv1",)
    # Whatever the side: a pinned probe is neither lowered nor today's default.
    assert accepted_versions(endpoint(old_port, Side.NEW), settings(old_ca)) == ("TLSv1",)
    assert accepted_versions(endpoint(new_port, Side.NEW), settings(new_ca)) == (
        "TLSv1.2",
        "TLSv1.3",
    )


def test_the_version_probe_raises_when_nothing_answers(tmp_path: Path) -> None:
    with peers.Peer(HOST, 0, peers.silent, "closed") as peer:
        port = peer.server.server_address[1]
    with pytest.raises(ProbeError, match=r"refused|timed out"):
        accepted_versions(endpoint(port, Side.NEW), settings(tmp_path / "none.pem"))


@pytest.mark.parametrize(
    ("old", "new", "acknowledged", "lost", "recorded"),
    [
        (("TLSv1",), ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"), (), (), ()),
        (("TLSv1",), ("TLSv1.2", "TLSv1.3"), (), ("TLSv1",), ()),
        (("TLSv1",), ("TLSv1.2", "TLSv1.3"), ("TLSv1", "TLSv1.1"), (), ("TLSv1",)),
        (("TLSv1", "TLSv1.1", "TLSv1.2"), ("TLSv1.2",), ("TLSv1",), ("TLSv1.1",), ("TLSv1",)),
        (("TLSv1.2", "TLSv1.3"), ("TLSv1.3",), (), ("TLSv1.2",), ()),
        (("TLSv1.2",), ("TLSv1.2", "TLSv1.3"), (), (), ()),  # new may add versions
        ((), ("TLSv1.3",), (), (), ()),
    ],
)
def test_tls05_judgement(
    old: tuple[str, ...],
    new: tuple[str, ...],
    acknowledged: tuple[str, ...],
    lost: tuple[str, ...],
    recorded: tuple[str, ...],
) -> None:
    verdict = dropped_versions(old, new, acknowledged)
    assert (verdict.lost, verdict.acknowledged) == (lost, recorded)
