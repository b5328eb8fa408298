"""Outbound mail keeps being delivered: SPF, reverse DNS, HELO, DKIM and MX follow the move.

Semantics: docs/semantics.md, "Outbound deliverability". Every name is asked
of the authoritative servers of its zone (all of them must agree), as in the
DNS checks; SPF is evaluated by pyspf, DKIM keys parsed by dkimpy (the
observations are in checks/observe/outbound.py). MX targets and where they
point are DNS05's; MAIL04 only guards preferences.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from checks.declare import check
from checks.observe.outbound import MxSeen, SpfSeen, dkim_key_file, sender_ips
from checks.support import no_problems, observed, parametrize, skip_unless
from checks.targets.outbound import DkimSelector, MailDomain, domain_targets, selector_targets
from cutover.model.inventory import Inventory
from cutover.model.phases import PhaseExpectations
from cutover.probes.connect import ProbeError
from cutover.probes.outbound.dkim import DkimRecord, SigningKey
from cutover.probes.outbound.lookup import AuthoritativeLookup
from cutover.probes.outbound.mx import MxRecord
from cutover.probes.outbound.reverse import ReverseDns
from cutover.probes.services import Observations, ServiceAnswer

Record = Callable[..., None]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "mail_domain" in metafunc.fixturenames:
        parametrize(metafunc, "mail_domain", domain_targets)
    if "dkim_selector" in metafunc.fixturenames:
        parametrize(metafunc, "dkim_selector", selector_targets)


def _names(found: AuthoritativeLookup | ProbeError) -> AuthoritativeLookup:
    __tracebackhide__ = True
    if isinstance(found, ProbeError):
        pytest.fail(f"cannot find the authoritative servers: {found}", pytrace=False)
    return found


# --- MAIL01 ----------------------------------------------------------------------

SPF_CAUSES = {
    "fail": "the record does not list this IP (add ip4:/ip6: for it, or a: for a name of it)",
    "softfail": "the record ends in ~all without listing this IP: receivers junk its mail",
    "neutral": "the record makes no statement about this IP (?all): receivers may junk it",
    "none": "no SPF record at all",
    "permerror": "the record is broken: receivers treat it as no authorisation at all",
    "temperror": "the record could not be read (DNS): receivers defer or junk the mail",
}


@check("MAIL01", phases=("preflight", "acceptance"))
def test_spf_authorises_the_senders(
    mail_domain: MailDomain,
    spf_observations: Observations[MailDomain, SpfSeen],
    inventory: Inventory,
    expect: PhaseExpectations,
    record: Record,
) -> None:
    """MAIL01: the domain has exactly one SPF record and it authorises every new IP (and old's).

    Why: once the new server sends, receivers reject or junk its mail unless the
    domain's SPF record authorises its IP; the old IP must stay authorised while
    the old host still sends or forwards. A dual-stack server sends over IPv6 to
    receivers that have it, so each of its addresses needs authorising (ip6:, or
    `a`/`mx` whose AAAA records hold it: RFC 7208 5.3/5.4). Two records, more than
    10 DNS-causing terms (include, a, mx, ptr, exists, redirect) or more than 2
    lookups that find nothing make the record a permerror: no authorisation at
    all (RFC 7208).
    Inputs: outbound.domains (default: dns.zones); every address of old and new;
    the phase (old's addresses while it answers); every authoritative server of
    each zone.
    Fix: publish one `v=spf1` TXT per domain listing every address of both hosts
    (ip4:, ip6:), on every server; flatten includes to stay within 10 lookups;
    remove the old addresses only once the old host is gone.
    """
    seen = observed(spf_observations, mail_domain, f"SPF of {mail_domain.name}")
    records, verdicts = seen
    record(spf_records=" || ".join(records.records) or "none", asked=records.asked)
    problems = []
    if len(records.records) != 1:
        listing = "; ".join(f"{r!r}" for r in records.records) or "none"
        problems.append(
            f"{len(records.records)} SPF records instead of exactly one ({listing}) on "
            f"{records.asked}" + (": a permerror for every receiver" if records.records else "")
        )
    roles = sender_ips(inventory, expect)
    for ip, verdict in verdicts.items():
        record(**{f"spf@{ip}": verdict.summary})
        if verdict.result != "pass":
            cause = SPF_CAUSES.get(verdict.result, "")
            problems.append(
                f"mail from {ip} ({roles[ip]}): {verdict.summary} — expected pass; {cause}"
            )
    no_problems(
        problems,
        f"{mail_domain.name}: SPF does not authorise every sending IP "
        f"({', '.join(f'{ip} {role}' for ip, role in roles.items())}; "
        f"record {' || '.join(records.records) or 'none'})",
    )


# --- MAIL02 ----------------------------------------------------------------------


@check("MAIL02", phases=("preflight", "acceptance"))
def test_reverse_dns_matches_helo(
    inventory: Inventory,
    outbound_names: AuthoritativeLookup | ProbeError,
    helo_answer: ServiceAnswer | ProbeError | None,
    new_ip_reverse: dict[str, ReverseDns | ProbeError] | None,
    record: Record,
) -> None:
    """MAIL02: each new IP's PTR name resolves back to it and is the new Postfix's HELO name.

    Why: receivers reject or junk mail from an IP without forward-confirmed
    reverse DNS, and many compare the PTR name with the HELO name (Postfix
    `myhostname`, what its SMTP greeting shows). A dual-stack server sends over
    IPv6 to every receiver that has it: each of its addresses needs both.
    Inputs: every address of new (its PTR: in-addr.arpa for IPv4, the ip6.arpa
    nibble name for IPv6; the PTR name must resolve back to it: A for IPv4, AAAA
    for IPv6); the SMTP service (port 25 first) on the new host's first address;
    outbound.reverse_nameservers (or dns.resolver) for the PTR; dns.zones for the
    forward lookup.
    Fix: have whoever runs the reverse zones (usually the hosting provider) set each
    new IP's PTR to the HELO name, give that name an A record of each new IPv4
    address and an AAAA record of each new IPv6 address, or set Postfix
    `myhostname` to the PTR name.
    """
    ips = [str(a) for a in inventory.new.addresses]
    first = ips[0]
    skip_unless(helo_answer is not None, "inventory lists no SMTP service")
    if isinstance(helo_answer, ProbeError):
        pytest.fail(f"SMTP on the new IP {first}: no answer: {helo_answer}", pytrace=False)
    assert helo_answer is not None
    helo = (helo_answer.identity or "").rstrip(".").lower()
    record(helo=helo or "none", greeting=helo_answer.greeting)
    _names(outbound_names)
    assert new_ip_reverse is not None
    several = len(ips) > 1
    problems = []
    for ip in ips:
        reverse = new_ip_reverse[ip]
        if isinstance(reverse, ProbeError):
            if not several:
                pytest.fail(
                    f"reverse DNS of the new IP {ip}: {reverse}{_resolver_note(inventory)}",
                    pytrace=False,
                )
            problems.append(f"{ip}: reverse DNS: {reverse}{_resolver_note(inventory)}")
            continue
        suffix = f"@{ip}" if several else ""
        record(
            **{
                f"ptr{suffix}": ",".join(reverse.names) or "none",
                f"ptr_asked{suffix}": reverse.asked,
            }
        )
        found = _reverse_problems(ip, reverse, helo, helo_answer)
        problems += [f"{ip}: {p}" for p in found] if several else found
    if not helo:
        problems.append(f"the SMTP greeting names no host: {helo_answer.greeting!r}")
    which = f"IPs {', '.join(ips)}" if several else f"IP {first}"
    no_problems(
        problems,
        f"reverse DNS of the new {which} does not match its HELO name {helo or '(none)'}",
    )


def _reverse_problems(
    ip: str, reverse: ReverseDns, helo: str, helo_answer: ServiceAnswer
) -> list[str]:
    """What keeps one address's reverse DNS from confirming the HELO name."""
    problems = []
    if not reverse.names:
        problems.append(f"{reverse.pointer} has no PTR record (asked {reverse.asked})")
    for name in reverse.names:
        if name in reverse.forward_errors:
            problems.append(f"PTR name {name}: {reverse.forward_errors[name]}")
        elif ip not in reverse.forward[name]:
            found = ", ".join(reverse.forward[name]) or "no address"
            chain = reverse.forward_chains.get(name, (name,))
            via = f" (via {' -> '.join(chain)})" if len(chain) > 1 else ""
            family = "AAAA" if ":" in ip else "A"
            confirm = "" if family == "A" else f" ({family})"
            problems.append(
                f"PTR name {name} resolves to {found}{via}{confirm}, not to {ip}: "
                "not forward-confirmed"
            )
    if helo and reverse.names and helo not in reverse.confirmed:
        problems.append(
            f"HELO name {helo} (SMTP greeting {helo_answer.greeting!r} on {helo_answer.where}) "
            f"is not a forward-confirmed PTR name of {ip} "
            f"(PTR: {', '.join(reverse.names)})"
        )
    return problems


def _resolver_note(inventory: Inventory) -> str:
    """Which resolver the run used, so a refused PTR lookup is not a riddle."""
    if inventory.dns.resolver is not None:
        return f" (resolver used: dns.resolver {inventory.dns.resolver})"
    if inventory.outbound.reverse_nameservers:
        return ""
    return (
        " (no resolver is used for the PTR without outbound.reverse_nameservers or "
        "dns.resolver; NS discovery for zones without nameservers used the system resolver, "
        "/etc/resolv.conf: set dns.resolver to use one resolver for both)"
    )


# --- MAIL03 ----------------------------------------------------------------------


def _fingerprint(rsa: tuple[int, int]) -> str:
    modulus, exponent = rsa
    digest = hashlib.sha256(modulus.to_bytes((modulus.bit_length() + 7) // 8, "big"))
    return f"modulus sha256:{digest.hexdigest()[:16]}, e={exponent}"


@check("MAIL03", phases=("preflight", "acceptance"))
def test_dkim_key_published_and_matching(
    dkim_selector: DkimSelector,
    inventory: Inventory,
    outbound_names: AuthoritativeLookup | ProbeError,
    dkim_records: Observations[DkimSelector, DkimRecord],
    signing_keys: Observations[str, SigningKey],
    record: Record,
) -> None:
    """MAIL03: each DKIM selector's key record parses, and it is the new server's signing key.

    Why: mail signed with a key whose public half is not the one published at
    SELECTOR._domainkey.DOMAIN fails DKIM at every receiver (and with it DMARC);
    a record that does not parse fails all signatures.
    Inputs: outbound.dkim_selectors, outbound.domains; outbound.dkim_key_file on
    the new host, read over new.ssh with `openssl pkey -pubout` (only the public
    half leaves the host; compared where new.ssh and the key file are given).
    Fix: copy the signing key from the old server (the published one) to the new
    one, or publish the new key's public half (`v=DKIM1; k=rsa; p=...`) on every
    authoritative server before the new server signs with it.
    """
    _names(outbound_names)
    try:
        published = dkim_records.get(dkim_selector)
    except ProbeError as exc:
        pytest.fail(f"{dkim_selector.id}: {exc}", pytrace=False)
    record(dkim_asked=published.asked, dkim_key_type=published.key_type or "none")
    problems = []
    if published.error is not None:
        problems.append(f"key record does not parse (dkimpy): {published.error}")
    if len(published.texts) > 1:
        problems.append(f"{len(published.texts)} TXT records instead of one: {published.texts}")
    key_file = dkim_key_file(inventory, dkim_selector)
    if published.error is None and key_file is not None and inventory.new.ssh:
        where = f"{key_file} on the new host ({inventory.new.ssh})"
        outcome = signing_keys.outcome(key_file)
        if isinstance(outcome, ProbeError):
            problems.append(f"cannot read the signing key: {outcome}")
        elif published.rsa is None or outcome.rsa is None:
            problems.append(
                f"cannot compare a {published.key_type} published key with {where} "
                f"({'RSA' if outcome.rsa else 'not RSA'}): only RSA keys are compared"
            )
        else:
            record(published_key=_fingerprint(published.rsa), signing_key=_fingerprint(outcome.rsa))
            if outcome.rsa != published.rsa:
                problems.append(
                    f"published key ({published.bits}-bit RSA, {_fingerprint(published.rsa)}) "
                    f"is not the public half of {where} ({_fingerprint(outcome.rsa)}): "
                    "the new server signs with another key than the one in DNS"
                )
    elif key_file is None or not inventory.new.ssh:
        record(signing_key="not compared (give outbound.dkim_key_file and new.ssh)")
    no_problems(problems, f"{dkim_selector.id}: DKIM key (asked {published.asked})")


# --- MAIL04 ----------------------------------------------------------------------


def record_text(mx: tuple[MxRecord, ...]) -> str:
    return ", ".join(map(str, mx)) or "none"


@check("MAIL04", phases=("preflight", "cutover", "acceptance"))
def test_mx_preferences_unchanged(
    mail_domain: MailDomain,
    inventory: Inventory,
    expect: PhaseExpectations,
    outbound_names: AuthoritativeLookup | ProbeError,
    mx_observations: dict[str, MxSeen],
    record: Record,
) -> None:
    """MAIL04: the domain's MX exchanges and preferences are those preflight recorded.

    Why: a changed preference sends mail to the backup MX (or away from the new
    server) without anyone noticing; where each target points is DNS05's check,
    this one guards the set of (preference, exchange) pairs.
    Inputs: outbound.domains (default: dns.zones); every authoritative server;
    the baseline (preflight records it).
    Fix: restore the preferences on every server, or re-run preflight if the
    change is intended.
    """
    _names(outbound_names)
    seen = mx_observations[mail_domain.name]
    if isinstance(seen.now, ProbeError):
        pytest.fail(f"{mail_domain.name} MX: {seen.now}", pytrace=False)
    mx = seen.now
    record(mx=record_text(mx))
    if expect.records_baseline:
        return  # recorded by the observation (checks/observe/outbound.py)
    before = seen.before
    if before is None:
        pytest.skip(
            f"{mail_domain.name}: no MX recorded (run preflight before the cutover to record it)"
        )
    before_by = {r.exchange: r.preference for r in before}
    now_by = {r.exchange: r.preference for r in mx}
    problems = [
        f"{e}: preference {before_by[e]} -> {now_by[e]}"
        for e in sorted(before_by.keys() & now_by.keys())
        if before_by[e] != now_by[e]
    ]
    problems += [
        f"{e} (preference {before_by[e]}) removed" for e in sorted(before_by.keys() - now_by.keys())
    ]
    problems += [f"{e} (preference {now_by[e]}) added" for e in sorted(now_by.keys() - before_by)]
    then = ", ".join(map(str, before)) or "none"
    no_problems(
        problems,
        f"{mail_domain.name}: MX changed since preflight (then: {then}; now: {record_text(mx)})",
    )
