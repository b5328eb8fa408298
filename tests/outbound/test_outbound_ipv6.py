"""Outbound mail from a dual-stack server: SPF for IPv6 senders, ip6.arpa PTRs, MAIL01/02.

No lab needed: `fakedns` answers authoritatively from a dict on 127.0.0.x (the
record data names lab addresses, nothing is sent there). SPF (RFC 7208 5.3,
5.4, 5.6): an IPv6 sender matches ip6: networks (with their prefix length) and
the AAAA records of `a` and `mx` names, never their A records.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import dns.reversename
import pytest

from checks.observe.outbound import sender_ips
from checks.test_outbound import test_reverse_dns_matches_helo as mail02
from cutover.model.inventory import Inventory
from cutover.model.phases import Phase, expectations
from cutover.probes.connect import ProbeError
from cutover.probes.dns.zones import ZoneServers
from cutover.probes.outbound.lookup import AuthoritativeLookup, lookup_for
from cutover.probes.outbound.reverse import ReverseDns, observe_reverse
from cutover.probes.outbound.spf import evaluate_spf
from cutover.probes.services import ServiceAnswer
from tests.outbound.fakedns import FakeAuthority, Records, authorities

OLD4, NEW4 = "198.51.100.10", "198.51.100.20"
OLD6, NEW6 = "2001:db8:5100::10", "2001:db8:5100::20"
ELSEWHERE6 = "2001:db8:5200::1"
ZONES = ["example.test", "in-addr.arpa", "ip6.arpa"]
NEW6_PTR = dns.reversename.from_address(NEW6).to_text(omit_final_dot=True)


def records(spf_text: str) -> Records:
    return {
        ("example.test", "TXT"): [f'"{spf_text}"'],
        ("example.test", "A"): [NEW4],
        ("example.test", "AAAA"): [NEW6],
        ("example.test", "MX"): ["10 mail.example.test."],
        ("mail.example.test", "CNAME"): ["example.test."],
        ("v4only.example.test", "A"): [NEW4],
        ("new.example.test", "A"): [NEW4],
        ("new.example.test", "AAAA"): [NEW6],
        ("20.100.51.198.in-addr.arpa", "PTR"): ["new.example.test."],
        (NEW6_PTR, "PTR"): ["new.example.test."],
    }


def names_for(servers: list[FakeAuthority]) -> AuthoritativeLookup:
    addresses = [f"127.0.0.{i + 1}" for i in range(len(servers))]
    return AuthoritativeLookup({z: addresses for z in ZONES}, timeout=2.0, port=servers[0].port)


def verdict(spf_text: str, sender: str, extra: Records | None = None) -> tuple[str, str | None]:
    data = {**records(spf_text), **(extra or {})}
    with authorities(ZONES, data, data) as servers:
        found = evaluate_spf("example.test", sender, names_for(servers))
    return found.result, found.mechanism


def test_ip6_networks_match_by_prefix_length() -> None:
    spf = f"v=spf1 ip4:{NEW4} ip6:2001:db8:5100::/64 -all"
    assert verdict(spf, NEW6) == ("pass", "ip6:2001:db8:5100::/64")
    assert verdict(spf, ELSEWHERE6) == ("fail", "-all")
    # A /128 matches its one address only.
    assert verdict(f"v=spf1 ip6:{NEW6}/128 -all", NEW6)[0] == "pass"
    assert verdict(f"v=spf1 ip6:{OLD6}/128 -all", NEW6)[0] == "fail"


def test_an_ip4_only_record_fails_the_ipv6_sender() -> None:
    # The spf-missing-ip6 fault's shape: the IPv4 sender passes, the IPv6 one does not.
    spf = f"v=spf1 ip4:{OLD4} ip4:{NEW4} ip6:{OLD6} -all"
    assert verdict(spf, NEW4)[0] == "pass"
    assert verdict(spf, NEW6) == ("fail", "-all")


def test_a_and_mx_match_ipv6_senders_through_aaaa_records() -> None:
    assert verdict("v=spf1 a -all", NEW6) == ("pass", "a")
    assert verdict("v=spf1 mx -all", NEW6) == ("pass", "mx")  # mail CNAME -> apex AAAA
    # A name with only an A record never authorises an IPv6 sender (and vice versa).
    assert verdict("v=spf1 a:v4only.example.test -all", NEW6)[0] == "fail"
    assert verdict("v=spf1 a:v4only.example.test -all", NEW4)[0] == "pass"
    # Dual CIDR: `a//64` widens the AAAA match to the /64.
    assert verdict("v=spf1 a//64 -all", "2001:db8:5100::99")[0] == "pass"
    assert verdict("v=spf1 a -all", "2001:db8:5100::99")[0] == "fail"


def test_ipv6_reverse_dns_is_the_nibble_name_forward_confirmed_by_aaaa() -> None:
    data = records("v=spf1 -all")
    with authorities(ZONES, data) as servers:
        seen = observe_reverse(NEW6, names_for(servers))
    assert seen.pointer == NEW6_PTR
    assert seen.pointer.endswith(".0.0.1.5.8.b.d.0.1.0.0.2.ip6.arpa")
    assert seen.forward == {"new.example.test": (NEW6,)}
    assert seen.confirmed == ("new.example.test",)


def test_ipv6_reverse_dns_of_a_name_without_aaaa_is_not_confirmed() -> None:
    data = records("v=spf1 -all")
    data[(NEW6_PTR, "PTR")] = ["v4only.example.test."]
    with authorities(ZONES, data) as servers:
        seen = observe_reverse(NEW6, names_for(servers))
    assert seen.forward == {"v4only.example.test": ()}
    assert seen.confirmed == ()


def inventory(new: Any) -> Inventory:
    return Inventory.model_validate({"old": {"address": [OLD4, OLD6]}, "new": {"address": new}})


def test_every_address_of_each_host_is_a_sender() -> None:
    dual = inventory([NEW4, NEW6])
    assert sender_ips(dual, expectations(Phase.PREFLIGHT)) == {
        NEW4: "new IP",
        NEW6: "new IP",
        OLD4: "old IP",
        OLD6: "old IP",
    }
    assert sender_ips(dual, expectations(Phase.ACCEPTANCE, old_ip_closed=True)) == {
        NEW4: "new IP",
        NEW6: "new IP",
    }


HELO = ServiceAnswer(
    where="smtp 198.51.100.20:25 (new IP)",
    protocol="smtp",
    greeting="220 new.example.test ESMTP",
    identity="new.example.test",
)


def reverse(ip: str, names: tuple[str, ...], forward: tuple[str, ...]) -> ReverseDns:
    pointer = dns.reversename.from_address(ip).to_text(omit_final_dot=True)
    found = {name: forward for name in names}
    return ReverseDns(ip, pointer, names, "127.0.0.1", found, {}, {n: (n,) for n in names})


def judge(inv: Inventory, seen: dict[str, ReverseDns | ProbeError]) -> dict[str, str]:
    recorded: dict[str, str] = {}
    names = AuthoritativeLookup({}, timeout=1.0)
    mail02(inv, names, HELO, seen, lambda **kw: recorded.update(kw))
    return recorded


def fails(inv: Inventory, seen: dict[str, ReverseDns | ProbeError]) -> str:
    with pytest.raises(pytest.fail.Exception) as failed:
        judge(inv, seen)
    return str(failed.value)


NAME = ("new.example.test",)


def test_mail02_passes_when_every_address_is_confirmed() -> None:
    seen: dict[str, ReverseDns | ProbeError] = {
        NEW4: reverse(NEW4, NAME, (NEW4,)),
        NEW6: reverse(NEW6, NAME, (NEW6,)),
    }
    recorded = judge(inventory([NEW4, NEW6]), seen)
    assert recorded[f"ptr@{NEW6}"] == "new.example.test" and f"ptr@{NEW4}" in recorded


def test_mail02_names_the_ipv6_address_without_ptr() -> None:
    seen: dict[str, ReverseDns | ProbeError] = {
        NEW4: reverse(NEW4, NAME, (NEW4,)),
        NEW6: reverse(NEW6, (), ()),
    }
    message = fails(inventory([NEW4, NEW6]), seen)
    assert f"{NEW6}: {NEW6_PTR} has no PTR record" in message, message
    assert f"reverse DNS of the new IPs {NEW4}, {NEW6} does not match" in message, message
    assert f"{NEW4}:" not in message, message


def test_mail02_wants_the_helo_name_to_resolve_to_each_address() -> None:
    # The PTR is right but the HELO name has no AAAA record of the IPv6 address.
    seen: dict[str, ReverseDns | ProbeError] = {
        NEW4: reverse(NEW4, NAME, (NEW4,)),
        NEW6: reverse(NEW6, NAME, ()),
    }
    message = fails(inventory([NEW4, NEW6]), seen)
    assert (
        f"{NEW6}: PTR name new.example.test resolves to no address (AAAA), not to {NEW6}: "
        "not forward-confirmed"
    ) in message, message
    assert f"{NEW6}: HELO name new.example.test" in message, message


def test_mail02_single_address_keeps_its_messages() -> None:
    seen: dict[str, ReverseDns | ProbeError] = {NEW4: reverse(NEW4, (), ())}
    message = fails(inventory(NEW4), seen)
    assert message.startswith(f"reverse DNS of the new IP {NEW4} does not match"), message
    assert f"\n  {NEW4}:" not in message and "20.100.51.198.in-addr.arpa has no PTR" in message
    assert set(judge(inventory(NEW4), {NEW4: reverse(NEW4, NAME, (NEW4,))})) >= {"ptr"}


def test_the_lookup_routes_both_reverse_trees_to_the_reverse_servers() -> None:
    names = lookup_for(
        ZoneServers({"example.test": ["127.0.0.1"]}),
        mail_domains=[],
        reverse_servers=["127.0.0.5"],
        new_ips=[ipaddress.ip_address(NEW4), ipaddress.ip_address(NEW6)],
        resolver=None,
        timeout=1.0,
    )
    assert names.servers_for(NEW6_PTR) == ("ip6.arpa", ["127.0.0.5"])
    assert names.servers_for("20.100.51.198.in-addr.arpa") == ("in-addr.arpa", ["127.0.0.5"])
