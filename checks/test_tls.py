"""Certificates: the chain verifies, every client-facing name is covered, expiry is far enough;
and the new server accepts every TLS version the old one did.

The certificate is the one seen by the session's protocol observation (after
the implicit TLS handshake or the STARTTLS upgrade), so these checks cost no
extra connection. Where that handshake was with the old server on TLS 1.0 or
1.1, the certificate checks record it as a finding (`tls_old_protocol`,
`tls_old_cipher`). TLS05 asks each TLS port once per TLS version.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from checks.declare import check
from checks.observe.services import Services, reference_endpoint
from checks.observe.tls import TlsVersions, old_versions
from checks.record import Records
from checks.support import expectations_for, observed, parametrize
from checks.targets.services import EndpointTarget, ParityTarget, endpoint_targets, parity_targets
from cutover.compare.tls import dropped_versions
from cutover.model.endpoints import Endpoint
from cutover.model.inventory import Inventory
from cutover.model.phases import PhaseExpectations, Side, serving_ip
from cutover.probes.connect import ProbeError
from cutover.probes.tls import WEAK_VERSIONS, TlsFacts, name_covered

Record = Callable[..., None]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    config = metafunc.config
    if "tls_endpoint" in metafunc.fixturenames:
        parametrize(
            metafunc,
            "tls_endpoint",
            lambda inv: endpoint_targets(inv, expectations_for(config, inv), tls_only=True),
        )
    if "tls_service" in metafunc.fixturenames:
        parametrize(
            metafunc,
            "tls_service",
            lambda inv: parity_targets(inv, expectations_for(config, inv), tls=True),
        )


def certificate(services: Services, endpoint: Endpoint) -> TlsFacts:
    """The certificate this endpoint showed, or the check fails saying why there is none."""
    __tracebackhide__ = True
    answer = observed(services, endpoint, endpoint.where)
    if answer.tls is None:
        reason = answer.starttls_error or (
            "STARTTLS is not offered" if answer.starttls_offered is False else "no TLS handshake"
        )
        pytest.fail(f"{endpoint.where}: no certificate to check: {reason}", pytrace=False)
    return answer.tls


def old_protocol_finding(
    endpoint: Endpoint, facts: TlsFacts, expect: PhaseExpectations, record: Record
) -> None:
    """A handshake with the old server on TLS 1.0/1.1: a finding in the report, not a failure."""
    if expect.served_by[endpoint.side] is Side.OLD and facts.version in WEAK_VERSIONS:
        record(tls_old_protocol=facts.version, tls_old_cipher=facts.cipher)


@check("TLS01", phases=("preflight", "cutover", "acceptance"))
def test_chain_verifies(
    tls_endpoint: EndpointTarget, services: Services, expect: PhaseExpectations, record: Record
) -> None:
    """TLS01: the certificate chain verifies against the inventory's CA bundle or the system store.

    Why: clients refuse (or warn about) a certificate they cannot verify: a
    missing intermediate, a self-signed or expired certificate breaks every
    client at once.
    Inputs: tls.ca_file (default: the system store); the certificate each TLS
    port presents on every address.
    Fix: install a certificate issued by a trusted CA, with its intermediates
    after it in the file (Postfix smtpd_tls_cert_file, Dovecot ssl_cert).
    """
    facts = certificate(services, tls_endpoint)
    record(fingerprint=facts.fingerprint, subject=facts.subject, tls_version=facts.version)
    old_protocol_finding(tls_endpoint, facts, expect, record)
    if not facts.verified:
        pytest.fail(
            f"{tls_endpoint.where}: the certificate ({facts.subject}, "
            f"sha256 {facts.fingerprint[:16]}) does not verify against {facts.trust}: "
            f"{facts.verify_error}",
            pytrace=False,
        )


@check("TLS02", phases=("preflight", "cutover", "acceptance"))
def test_certificate_names(
    tls_endpoint: EndpointTarget,
    services: Services,
    inventory: Inventory,
    expect: PhaseExpectations,
    record: Record,
) -> None:
    """TLS02: the certificate covers every client-facing name of the service.

    Why: clients connect by name (mail.example.com), not by IP: a name missing
    from the subjectAltNames is a certificate warning for every client that uses it.
    Inputs: the service's `hostnames` (default: the inventory's `hostnames`);
    the certificate each TLS port presents on every address.
    Fix: reissue the certificate with every name in the subjectAltName.
    """
    facts = certificate(services, tls_endpoint)
    wanted = inventory.service_hostnames(tls_endpoint.service)
    record(names=" ".join(facts.names))
    old_protocol_finding(tls_endpoint, facts, expect, record)
    if not wanted:
        pytest.skip("inventory lists no client-facing hostnames for this service")
    missing = [name for name in wanted if not facts.covers(name)]
    if missing:
        pytest.fail(
            f"{tls_endpoint.where}: the certificate ({facts.subject}) does not cover "
            f"{', '.join(missing)}; it covers {', '.join(facts.names) or 'no DNS names'}",
            pytrace=False,
        )


@check("TLS03", phases=("preflight", "cutover", "acceptance"))
def test_certificate_not_expiring(
    tls_endpoint: EndpointTarget,
    services: Services,
    inventory: Inventory,
    expect: PhaseExpectations,
    record: Record,
) -> None:
    """TLS03: the certificate stays valid for longer than the expiry margin.

    Why: a certificate that expires during or just after the migration breaks
    every client at once, typically on a weekend.
    Inputs: tls.expiry_margin_days (default 20, as check_ssl_cert warns); the
    certificate each TLS port presents on every address.
    Fix: renew the certificate before the cutover.
    """
    facts = certificate(services, tls_endpoint)
    margin = inventory.tls.expiry_margin_days
    days = facts.days_left()
    record(not_after=facts.not_after.isoformat(), days_left=f"{days:.1f}")
    old_protocol_finding(tls_endpoint, facts, expect, record)
    if days < margin:
        state = "expired" if days < 0 else "expires"
        pytest.fail(
            f"{tls_endpoint.where}: the certificate ({facts.subject}) {state} on "
            f"{facts.not_after:%Y-%m-%d %H:%M} UTC ({days:.1f} days from now; "
            f"the margin is {margin} days)",
            pytrace=False,
        )


@check("TLS04", phases=("preflight", "cutover", "acceptance"))
def test_new_certificate_covers_old_names(
    tls_service: ParityTarget,
    services: Services,
    inventory: Inventory,
    expect: PhaseExpectations,
    service_records: Records,
    record: Record,
) -> None:
    """TLS04: the new server's certificate covers every name the old server's certificate did.

    Why: clients may use any name the old certificate was valid for (an
    old mail.otherdomain alias, a wildcard), not only those in the inventory.
    The old host's own name (old.hostname) is left out: it keeps pointing at
    the old host. Judged on every endpoint the phase expects the new server
    on (each new address; in cutover and acceptance the old addresses too).
    Inputs: the old server's certificate (live on its first address in
    preflight, the baseline later) and the certificate of each new-server
    endpoint, per TLS service.
    Fix: reissue the new certificate with the missing names.
    """
    service = tls_service.service
    new = tls_service.endpoint
    new_facts = certificate(services, new)
    old_side = serving_ip(expect, Side.OLD)
    if old_side is not None:
        old = reference_endpoint(services, inventory, service, old_side)
        old_names = list(certificate(services, old).names)
        source = f"the old server's certificate on {old.where}"
    else:
        recorded = service_records.get("certificate_names", service.label)
        if recorded is None:
            pytest.skip(
                f"{service.label}: no record of the old server's certificate "
                "(run preflight before the cutover to record it)"
            )
        old_names = list(recorded)
        source = "the old server's certificate as recorded in preflight"
    own = (inventory.old.hostname or "").lower()
    wanted = [name for name in old_names if name.lower() != own]
    record(old_names=" ".join(old_names), new_names=" ".join(new_facts.names))
    missing = [name for name in wanted if not any(name_covered(name, p) for p in new_facts.names)]
    if missing:
        pytest.fail(
            f"{new.where}: the new certificate ({new_facts.subject}) does not cover "
            f"{', '.join(missing)}, which {source} covered; it covers "
            f"{', '.join(new_facts.names) or 'no DNS names'}",
            pytrace=False,
        )


def _versions(tls_versions: TlsVersions, endpoint: Endpoint) -> tuple[str, ...]:
    __tracebackhide__ = True
    try:
        return tls_versions.get(endpoint)
    except ProbeError as exc:
        pytest.fail(
            f"{endpoint.where}: cannot tell which TLS versions it accepts: {exc}", pytrace=False
        )


@check("TLS05", phases=("preflight", "cutover", "acceptance"))
def test_new_accepts_old_tls_versions(
    tls_service: ParityTarget,
    services: Services,
    tls_versions: TlsVersions,
    inventory: Inventory,
    expect: PhaseExpectations,
    tls_version_records: Records,
    record: Record,
) -> None:
    """TLS05: the new server accepts every TLS version the old server accepted on that port.

    Why: a client that speaks only TLS 1.0 or 1.1 (an old phone, an old
    Outlook) loses its mail without a word when the new server requires TLS
    1.2 on a port where the old one spoke TLS 1.0. Each version is tried
    alone (every cipher allowed, so a weak old server answers). Judged on every
    endpoint the phase expects the new server on, where its handshake works at
    all (TLS01 fails where it does not). A drop the inventory acknowledges is
    recorded in the report, not failed.
    Inputs: the versions the old server accepted (live on its first address in
    preflight, the baseline later) and those of each new-server endpoint, per
    TLS service; tls.accept_dropped (default: none).
    Fix: lower the new server's minimum on that port (Dovecot ssl_min_protocol,
    Postfix smtpd_tls_protocols and smtpd_tls_mandatory_protocols) and allow the
    ciphers those clients speak, or list the versions in tls.accept_dropped when
    giving those clients up is decided.
    """
    service = tls_service.service
    new = tls_service.endpoint
    answer = services.outcome(new)
    if isinstance(answer, ProbeError) or answer.tls is None:
        pytest.skip(f"{new.where}: no TLS handshake at all (TLS01 judges it)")
    new_versions = _versions(tls_versions, new)
    old_side = serving_ip(expect, Side.OLD)
    if old_side is not None:
        try:
            where, old = old_versions(tls_versions, inventory, service, old_side)
        except ProbeError as exc:
            pytest.skip(f"{service.label}: the old server's TLS versions are unknown: {exc}")
        source = f"the old server on {where.where}"
    else:
        recorded = tls_version_records.get("tls_versions", service.label)
        if recorded is None:
            pytest.skip(
                f"{service.label}: no record of the old server's TLS versions "
                "(run preflight before the cutover to record it)"
            )
        old = tuple(recorded)
        source = "the old server (as recorded in preflight)"
    dropped = dropped_versions(old, new_versions, inventory.tls.accept_dropped)
    record(old_tls_versions=" ".join(old), new_tls_versions=" ".join(new_versions))
    if dropped.acknowledged:
        record(tls_accept_dropped=" ".join(dropped.acknowledged))
    if dropped.lost:
        pytest.fail(
            f"{new.where}: refuses {', '.join(dropped.lost)}, which {source} accepted on "
            f"port {service.port}: clients that speak only {' or '.join(dropped.lost)} will "
            f"lose this service; it accepts {', '.join(new_versions) or 'no version'} "
            "(or acknowledge the drop in tls.accept_dropped)",
            pytrace=False,
        )
