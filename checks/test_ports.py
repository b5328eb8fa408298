"""Every port answers on both IPs at the protocol level, from the expected server.

Observations come from the session's `services` (each service on each IP is
observed once, all concurrently); these checks only judge them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from checks.declare import check
from checks.observe.services import Services, client_views, first_answer, reference_endpoint
from checks.record import Records
from checks.support import expectations_for, observed, parametrize, skip_unless
from checks.targets.services import EndpointTarget, ParityTarget, endpoint_targets, parity_targets
from cutover.model.inventory import Account, Inventory, Protocol, Service, TlsMode
from cutover.model.phases import PhaseExpectations, Side, serving_ip
from cutover.probes.connect import ProbeError
from cutover.probes.services import imap

if TYPE_CHECKING:
    from cutover.model.endpoints import Endpoint
    from cutover.probes.mail.flow import MailFlow

Record = Callable[..., None]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    config = metafunc.config
    if "endpoint" in metafunc.fixturenames:
        parametrize(
            metafunc, "endpoint", lambda inv: endpoint_targets(inv, expectations_for(config, inv))
        )
    if "mail_service" in metafunc.fixturenames:
        parametrize(
            metafunc,
            "mail_service",
            lambda inv: parity_targets(inv, expectations_for(config, inv), mail=True),
        )


@check("PORT01", phases=("preflight", "cutover", "acceptance"))
def test_port_answers(endpoint: EndpointTarget, services: Services, record: Record) -> None:
    """PORT01: the service answers at the protocol level on this IP, through TLS where it uses TLS.

    Why: a TCP connect proves nothing — socat accepts connections even when its
    backend is dead. Clients need the greeting (SMTP 220 + EHLO, IMAP OK +
    CAPABILITY, POP3 +OK + CAPA, an HTTP response, a MySQL handshake), the
    TLS handshake on 993/995/465, and a working STARTTLS upgrade on
    143/110/25/587 when the inventory says the port uses it.
    Inputs: services (port, protocol, tls); every address of old and new (one
    test per address, `-v4`/`-v6` in the id of a dual-stack host); timeouts.
    Fix: start the service (or the socat forward for this port on the old host);
    enable STARTTLS where clients expect it (Postfix smtpd_tls_security_level,
    Dovecot ssl = yes).
    """
    answer = observed(services, endpoint, endpoint.where)
    record(greeting=answer.greeting, identity=answer.who)
    problems = []
    if endpoint.service.tls is TlsMode.STARTTLS:
        if not answer.starttls_offered:
            offered = " ".join(sorted(answer.capabilities_plain or ())) or "nothing"
            problems.append(f"STARTTLS is not offered (the server offers: {offered})")
        elif answer.starttls_error:
            problems.append(f"the STARTTLS upgrade failed: {answer.starttls_error}")
    if answer.http_status is not None and answer.http_status >= 500:
        problems.append(f"HTTP status {answer.greeting} (the server or its backend is broken)")
    if problems:
        pytest.fail(
            f"{endpoint.where} answered {answer.greeting!r} but " + "; ".join(problems),
            pytrace=False,
        )


def _reference(
    service: Service,
    server: Side,
    inventory: Inventory,
    expect: PhaseExpectations,
    services: Services,
    service_records: Records,
) -> tuple[str, str] | None:
    """How `server` identifies itself here: live when it can be seen, else as preflight saw it."""
    side = serving_ip(expect, server)
    found = first_answer(services, inventory, service, side) if side is not None else None
    if found is not None:
        endpoint, answer = found
        return answer.who, f"observed now on {endpoint.where}"
    recorded = service_records.get("identity", f"{service.label}-{server.value}")
    return (str(recorded), "recorded in preflight") if recorded is not None else None


@check("PORT02", phases=("preflight", "cutover", "acceptance"))
def test_served_by_expected_server(
    endpoint: EndpointTarget,
    services: Services,
    inventory: Inventory,
    expect: PhaseExpectations,
    service_records: Records,
    record: Record,
) -> None:
    """PORT02: each IP is answered by the server the phase expects (after cutover: the new one).

    Why: through a socat forward the TCP peer is always the old IP, so only the
    protocol says who answered. A forward to the wrong backend (the old
    server, another port) looks healthy to a port check and loses mail.
    Identity is the server naming itself (SMTP greeting host, Dovecot
    login_greeting, the HTTP identity header or body digest, MySQL @@hostname)
    plus the TLS certificate's fingerprint; preflight records both servers'
    identities in the baseline, later phases compare with it.
    Inputs: services on every address of old and new; http.identity_header;
    mysql.admin; each server's identity (live on its first address that
    answers, the baseline later).
    Fix: point the forward for this port at the new IP and the same port; give
    each server something that tells it apart (Postfix myhostname, Dovecot
    login_greeting, an HTTP header naming the host, its own certificate).
    """
    answer = observed(services, endpoint, endpoint.where)
    record(identity=answer.who)
    expected = expect.served_by[endpoint.side]
    assert expected is not None  # endpoints() leaves out IPs that may be closed
    other = Side.OLD if expected is Side.NEW else Side.NEW
    known = {
        server: _reference(endpoint.service, server, inventory, expect, services, service_records)
        for server in (expected, other)
    }
    mine, theirs = known[expected], known[other]
    note = f" ({answer.identity_note})" if answer.identity_note else ""
    if mine is not None and answer.who != mine[0]:
        cause = (
            f" — that is the {other.value} server ({theirs[1]}): "
            "the forward goes to the wrong backend"
            if theirs is not None and answer.who == theirs[0]
            else ""
        )
        pytest.fail(
            f"{endpoint.where} should be served by the {expected.value} server, identified by "
            f"{mine[0]} ({mine[1]}), but the answer identifies {answer.who}{note}{cause}",
            pytrace=False,
        )
    if theirs is not None and answer.who == theirs[0]:
        pytest.fail(
            f"{endpoint.where} should be served by the {expected.value} server but answers as "
            f"the {other.value} server: {answer.who} ({theirs[1]}){note}. Either the "
            f"{endpoint.side.value} IP reaches the {other.value} server, or nothing in this "
            "protocol tells the two servers apart (give each its own greeting, identity "
            "header or certificate)",
            pytrace=False,
        )


@check("CAP01", phases=("preflight", "cutover", "acceptance"))
def test_capabilities_kept(
    mail_service: ParityTarget,
    services: Services,
    inventory: Inventory,
    expect: PhaseExpectations,
    service_records: Records,
    record: Record,
) -> None:
    """CAP01: every endpoint where the new server must answer offers what the old server did.

    Why: clients configured against the old server must not need changes: an
    AUTH mechanism or IMAP extension dropped on the new server shows up as
    failed logins or broken clients. Compared as clients see them: after TLS
    on TLS ports, and before STARTTLS as well. Extras are fine. IMAP servers
    may list the extensions of the logged-in state (SORT, IDLE, NAMESPACE ...)
    only after login, where clients ask again (Dovecot 2.x does; 1.x listed
    them before login too): CAP01 does not log in, so before login it
    compares what clients use then (STARTTLS, AUTH=, LOGINDISABLED, SASL-IR,
    ID, LITERAL+) and records the others old listed and new does not in the
    JUnit property `listed_before_login_on_old_only`. Judged on every
    endpoint the phase expects the new server on (each new address; in cutover
    and acceptance the old addresses too, through their forwards), so a
    forward to the wrong port of the same protocol (587 to 25) shows here.
    Inputs: IMAP CAPABILITY, POP3 CAPA, SMTP EHLO keywords and AUTH mechanisms
    from the old server (live on its first address in preflight, the baseline
    later) and from each new-server endpoint (every address of new, and of old
    once it forwards).
    Fix: enable the missing mechanism or extension on the new server (Dovecot
    auth_mechanisms / imap_capability, Postfix smtpd_sasl_* and smtpd options);
    point the old host's forward for this port at the same port on the new IP.
    """
    service = mail_service.service
    new = mail_service.endpoint
    views = client_views(observed(services, new, new.where), service)
    record(capabilities="; ".join(f"{k}: {' '.join(v)}" for k, v in views.items()))

    old_side = serving_ip(expect, Side.OLD)
    reference: dict[str, list[str]] | None
    if old_side is not None:
        old = reference_endpoint(services, inventory, service, old_side)
        reference = client_views(observed(services, old, old.where), service)
        source = f"the old server on {old.where}"
    else:
        reference = service_records.get("capabilities", service.label)
        source = "the old server as recorded in preflight"
        if reference is None:
            pytest.skip(
                f"{service.label}: no record of the old server's capabilities "
                "(run preflight before the cutover to record them)"
            )
    gaps, later = [], []
    for view, wanted in reference.items():
        lacking = sorted(set(wanted) - set(views.get(view, ())))
        if service.protocol is Protocol.IMAP:  # extensions used after login: listed then
            later += [f"{view}: {c}" for c in lacking if not imap.before_login(c)]
            lacking = [c for c in lacking if imap.before_login(c)]
        if lacking:
            gaps.append(f"{view}: {' '.join(lacking)}")
    if later:
        record(listed_before_login_on_old_only="; ".join(later))
    if gaps:
        pytest.fail(
            f"{new.where} lacks capabilities that {source} offered — " + "; ".join(gaps),
            pytrace=False,
        )


@check("PORT03", phases=("cutover",))
def test_mail_relayed_to_new_server(
    inventory: Inventory,
    pytestconfig: pytest.Config,
    mail_flows: Callable[[Service, Account, float], list[tuple[Endpoint, MailFlow | ProbeError]]],
    record: Record,
) -> None:
    """PORT03: mail delivered to the old IP's port 25 lands in the INBOX on the new server.

    Why: during cutover other MTAs still deliver to the old IP (cached DNS,
    MX not yet switched), over IPv6 too where the old host has an IPv6
    address; the forward (or a Postfix relay) must carry that mail to the
    new server's mailboxes, or it is bounced, queued on a dead server, or
    delivered to a mailbox nobody reads any more.
    Opt-in with `--probe-mail`: the one check that writes. It sends one small
    message (envelope sender <>, Subject "cutover mail-flow probe ... safe to
    delete") to mail.probe_account through port 25 of each old address, and
    finds each by Message-ID in that account's INBOX on the new IP, over a
    read-only IMAP session, within timeouts.mail_delivery. The messages stay
    there.
    Inputs: mail.probe_account (one of mail.accounts, best a test account),
    old.address (each address of a dual-stack host), the SMTP service on
    port 25 and an IMAP service; timeouts.mail_delivery.
    Fix: forward port 25 on the old host to the new IP (socat; on every
    address, IPv6 included) or relay with Postfix (relayhost/transport_maps
    to the new IP); on the new server, find the queue ID from the message in
    its mail log (postqueue -p, deferred deliveries, LMTP errors).
    """
    if not pytestconfig.getoption("probe_mail"):
        pytest.skip("opt-in: --probe-mail sends one test message through the old IP's port 25")
    from checks.targets.mail import place, relay_service

    service = relay_service(inventory)
    skip_unless(service is not None, "the inventory lists no SMTP service on port 25")
    assert service is not None
    user = inventory.mail.probe_account
    skip_unless(user is not None, "the inventory names no mail.probe_account")
    account = next(a for a in inventory.mail.accounts if a.user == user)
    deadline = inventory.timeouts.mail_delivery
    problems = []
    for index, (relay, flow) in enumerate(mail_flows(service, account, deadline)):
        # The old host's first address: the properties as they always were; each further
        # address (dual stack) records its own set, named after it (`probe_sent_to_old-v6`).
        suffix = f"_{place(relay)}" if index else ""
        if isinstance(flow, ProbeError):
            problems.append(f"mail flow to {user}: {flow}")
            continue
        record(
            **{
                f"probe_message_id{suffix}": flow.message_id,
                f"probe_sent_to{suffix}": flow.sent_to,
                f"probe_greeting{suffix}": flow.greeting,
                f"probe_queued{suffix}": flow.queued,
                f"probe_delivered_uid{suffix}": str(flow.delivered_uid or ""),
                f"probe_seconds{suffix}": f"{flow.waited:.2f}",
                f"probe_received{suffix}": " | ".join(flow.received),
            }
        )
        if flow.delivered_uid is None:
            problems.append(
                f"mail flow to {user}: {flow.sent_to} (greeting {flow.greeting!r}) accepted the "
                f"probe message ({flow.queued}), but it is not in the INBOX on {flow.searched} "
                f"after {flow.waited:.0f} s (Message-ID {flow.message_id}); look up that queue "
                "ID in the mail log of the server that accepted it"
            )
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
