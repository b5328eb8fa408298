"""The outbound probes against a loopback authority: SPF limits, agreement, PTR, DKIM, MX.

No lab needed: `fakedns` answers authoritatively from a dict on 127.0.0.x.
Record data names lab addresses (198.51.100.0/24) but nothing is sent there.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import dns.flags
import pytest
import spf
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cutover.model.inventory import DnsZone
from cutover.probes.connect import ProbeError
from cutover.probes.dns.zones import ZoneServers
from cutover.probes.outbound import lookup
from cutover.probes.outbound.dkim import observe_dkim_record
from cutover.probes.outbound.lookup import AuthoritativeLookup
from cutover.probes.outbound.mx import MxRecord, observe_mx, parse_mx
from cutover.probes.outbound.reverse import observe_reverse
from cutover.probes.outbound.spf import evaluate_spf, observe_spf_records
from tests.outbound.fakedns import FakeAuthority, Records, authorities

OLD, NEW, OTHER = "198.51.100.10", "198.51.100.20", "198.51.100.99"
ZONES = ["example.test", "in-addr.arpa"]


def txt(text: str) -> str:
    """TXT data in presentation form, split into strings of at most 250 characters."""
    return " ".join(f'"{text[i : i + 250]}"' for i in range(0, len(text), 250))


def base_records(spf_text: str = f"v=spf1 ip4:{OLD} ip4:{NEW} -all") -> Records:
    return {
        ("example.test", "TXT"): [txt(spf_text), '"google-site-verification=abc"'],
        ("example.test", "A"): [NEW],
        ("example.test", "MX"): ["10 mail.example.test.", "20 backup.example.test."],
        ("mail.example.test", "CNAME"): ["example.test."],
        ("backup.example.test", "A"): [OTHER],
        ("new.example.test", "A"): [NEW],
        ("ns1.example.test", "A"): ["198.51.100.53"],
        ("_spf.example.test", "TXT"): [f'"v=spf1 ip4:{OLD} -all"'],
        ("20.100.51.198.in-addr.arpa", "PTR"): ["new.example.test."],
    }


def names_for(servers: list[FakeAuthority], timeout: float = 2.0) -> AuthoritativeLookup:
    addresses = [f"127.0.0.{i + 1}" for i in range(len(servers))]
    return AuthoritativeLookup({z: addresses for z in ZONES}, timeout=timeout, port=servers[0].port)


@pytest.fixture
def healthy() -> Iterator[list[FakeAuthority]]:
    with authorities(ZONES, base_records(), base_records()) as servers:
        yield servers


def test_spf_pass_for_listed_ips_fail_for_others(healthy: list[FakeAuthority]) -> None:
    names = names_for(healthy)
    assert observe_spf_records("example.test", names).records == (
        f"v=spf1 ip4:{OLD} ip4:{NEW} -all",
    )
    assert evaluate_spf("example.test", NEW, names).result == "pass"
    assert evaluate_spf("example.test", OLD, names).result == "pass"
    other = evaluate_spf("example.test", OTHER, names)
    assert (other.result, other.mechanism) == ("fail", "-all"), other
    # Both servers were asked, directly, with RD off.
    for server in healthy:
        assert ("example.test", "TXT", 0) in [(n, t, f & dns.flags.RD) for n, t, f in server.asked]


def test_spf_mechanisms_resolve_through_the_authorities() -> None:
    records = base_records("v=spf1 mx include:_spf.example.test -all")
    with authorities(ZONES, records, records) as servers:
        names = names_for(servers)
        by_mx = evaluate_spf("example.test", NEW, names)
        by_include = evaluate_spf("example.test", OLD, names)
    assert (by_mx.result, by_mx.mechanism) == ("pass", "mx"), by_mx
    assert "mail.example.test A" in by_mx.asked, by_mx.asked
    assert (by_include.result, by_include.mechanism) == ("pass", "include:_spf.example.test")
    assert by_include.lookups == 2, by_include


def test_spf_more_than_ten_lookups_is_a_permerror() -> None:
    terms = " ".join(["a:ns1.example.test"] * 11)
    records = base_records(f"v=spf1 {terms} ip4:{OLD} ip4:{NEW} -all")
    with authorities(ZONES, records) as servers:
        verdict = evaluate_spf("example.test", NEW, names_for(servers))
    assert verdict.result == "permerror", verdict
    assert "Too many DNS lookups" in verdict.explanation
    assert verdict.lookups == 11


def test_spf_more_than_two_void_lookups_is_a_permerror() -> None:
    records = base_records("v=spf1 a:nx1.example.test a:nx2.example.test a:nx3.example.test -all")
    with authorities(ZONES, records) as servers:
        verdict = evaluate_spf("example.test", NEW, names_for(servers))
    assert verdict.result == "permerror", verdict
    assert "Void lookup limit of 2 exceeded" in verdict.explanation
    assert verdict.void_lookups == 3


def test_two_spf_records_are_seen_and_are_a_permerror() -> None:
    records = base_records()
    records[("example.test", "TXT")].append(f'"v=spf1 ip4:{NEW} -all"')
    with authorities(ZONES, records) as servers:
        names = names_for(servers)
        found = observe_spf_records("example.test", names)
        verdict = evaluate_spf("example.test", NEW, names)
    assert len(found.records) == 2, found
    assert verdict.result == "permerror" and "Two or more" in verdict.explanation


def test_servers_that_disagree_give_no_verdict() -> None:
    stale = base_records(f"v=spf1 ip4:{OLD} -all")
    with authorities(ZONES, base_records(), stale) as servers:
        verdict = evaluate_spf("example.test", NEW, names_for(servers))
    assert verdict.result == "temperror", verdict
    assert "disagree on example.test TXT" in verdict.explanation
    assert "127.0.0.1" in verdict.explanation and "127.0.0.2" in verdict.explanation


def test_a_name_outside_every_known_zone_is_never_asked() -> None:
    records = base_records("v=spf1 include:_spf.provider.example -all")
    with authorities(ZONES, records) as servers:
        verdict = evaluate_spf("example.test", NEW, names_for(servers))
        asked = [n for n, _, _ in servers[0].asked]
    assert verdict.result == "temperror", verdict
    assert "outside every zone" in verdict.explanation
    assert "_spf.provider.example" not in asked


def test_evaluations_in_threads_keep_their_own_dns() -> None:
    before = spf.DNSLookup
    moved = base_records(f"v=spf1 ip4:{OTHER} -all")
    with (
        authorities(ZONES, base_records()) as first,
        authorities(ZONES, moved) as second,
    ):
        jobs = [names_for(first), names_for(second)] * 10
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda n: evaluate_spf("example.test", NEW, n).result, jobs))
    assert results == ["pass", "fail"] * 10
    assert spf.DNSLookup is before


def test_reverse_dns_forward_confirmed(healthy: list[FakeAuthority]) -> None:
    seen = observe_reverse(NEW, names_for(healthy))
    assert seen.pointer == "20.100.51.198.in-addr.arpa"
    assert seen.names == ("new.example.test",)
    assert seen.confirmed == ("new.example.test",)


def test_reverse_dns_not_confirmed_when_the_name_points_elsewhere() -> None:
    records = base_records()
    records[("20.100.51.198.in-addr.arpa", "PTR")] = ["backup.example.test."]
    with authorities(ZONES, records) as servers:
        seen = observe_reverse(NEW, names_for(servers))
    assert seen.names == ("backup.example.test",)
    assert seen.forward == {"backup.example.test": (OTHER,)}
    assert seen.confirmed == ()


def _dkim_public(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def test_dkim_record_parsed_by_dkimpy() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    text = f"v=DKIM1; k=rsa; p={_dkim_public(key)}"
    records = base_records()
    records[("mail._domainkey.example.test", "TXT")] = [txt(text)]
    records[("broken._domainkey.example.test", "TXT")] = ['"v=DKIM1; k=rsa; p=AAAA"']
    with authorities(ZONES, records) as servers:
        names = names_for(servers)
        good = observe_dkim_record("example.test", "mail", names)
        broken = observe_dkim_record("example.test", "broken", names)
        missing = observe_dkim_record("example.test", "nope", names)
    numbers = key.public_key().public_numbers()
    assert good.error is None and good.key_type == "rsa" and good.bits == 2048
    assert good.rsa == (numbers.n, numbers.e)
    assert broken.error is not None and "KeyFormatError" in broken.error
    assert missing.error == "no TXT record (NXDOMAIN)"


def test_mx_preferences(healthy: list[FakeAuthority]) -> None:
    assert observe_mx("example.test", names_for(healthy)) == (
        MxRecord(10, "mail.example.test"),
        MxRecord(20, "backup.example.test"),
    )
    assert parse_mx([[20, "backup.example.test"], [10, "mail.example.test"]]) == (
        MxRecord(10, "mail.example.test"),
        MxRecord(20, "backup.example.test"),
    )


def test_silent_server_is_a_probe_error() -> None:
    names = AuthoritativeLookup({"example.test": ["127.0.0.9"]}, timeout=0.5, port=9)
    with pytest.raises(ProbeError, match=r"127\.0\.0\.9"):
        names.lookup("example.test", "TXT")


def test_lookup_reuses_the_zones_servers_and_discovers_only_other_domains(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """NS discovery runs once per pair: the DNS observations' result serves the lookup too."""
    discovered: list[list[str]] = []

    def discover(zones: list[DnsZone], **_: object) -> ZoneServers:
        discovered.append([z.name for z in zones])
        return ZoneServers({"other.test": ["127.0.0.9"]}, {"other.test": "NS ns.other.test"})

    monkeypatch.setattr(lookup, "discover_servers", discover)
    zones = ZoneServers({"example.test": ["127.0.0.1"]})
    names = lookup.lookup_for(
        zones,
        mail_domains=["example.test", "sub.example.test", "other.test"],
        reverse_servers=["127.0.0.5"],
        new_ips=[ipaddress.ip_address(NEW)],
        resolver=None,
        timeout=1.0,
    )
    assert discovered == [["other.test"]]
    assert names.servers_for("www.example.test") == ("example.test", ["127.0.0.1"])
    assert names.servers_for("mail.other.test") == ("other.test", ["127.0.0.9"])
    assert names.servers_for("20.100.51.198.in-addr.arpa") == ("in-addr.arpa", ["127.0.0.5"])


def test_lookup_names_every_zone_whose_servers_are_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def discover(zones: list[DnsZone], **_: object) -> ZoneServers:
        return ZoneServers(
            errors={z.name: f"cannot find the nameservers of {z.name}" for z in zones}
        )

    monkeypatch.setattr(lookup, "discover_servers", discover)
    zones = ZoneServers(errors={"example.test": "cannot find the nameservers of example.test"})
    with pytest.raises(ProbeError) as raised:
        lookup.lookup_for(
            zones,
            mail_domains=["example.test", "other.test"],
            reverse_servers=[],
            new_ips=[ipaddress.ip_address(NEW)],
            resolver=None,
            timeout=1.0,
        )
    assert str(raised.value) == (
        "cannot find the nameservers of example.test; cannot find the nameservers of other.test"
    )


def test_prefetch_asks_each_name_once_and_answers_as_lookup_does() -> None:
    stale = base_records(f"v=spf1 ip4:{OLD} -all")
    with authorities(ZONES, base_records(), stale) as servers:
        names = names_for(servers)
        names.prefetch(
            [("example.test", "MX"), ("Example.Test.", "mx"), ("example.test", "TXT"),
             ("elsewhere.invalid", "MX")]  # outside every zone: left to lookup
        )  # fmt: skip
        asked_first = sorted(servers[0].asked)
        mx = observe_mx("example.test", names)
        with pytest.raises(ProbeError, match=r"disagree on example\.test TXT"):
            names.lookup("example.test", "TXT")
        assert sorted(servers[0].asked) == asked_first, "lookup asked again after prefetch"
    assert [(n, t) for n, t, _ in asked_first] == [("example.test", "MX"), ("example.test", "TXT")]
    assert [str(r) for r in mx] == ["10 mail.example.test", "20 backup.example.test"]
    assert all(len(s.asked) == 2 for s in servers), "each server asked each name once"
