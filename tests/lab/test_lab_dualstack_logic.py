"""The dual-stack lab's addresses, zones and inventories, checked without a lab."""

from __future__ import annotations

import pytest

from lab import inventory
from lab.topology import HOSTS, NEW, OLD, SUBNET6, check_lab_address, reverse_name6
from lab.zones import reverse_records6, zone_records


@pytest.mark.parametrize("address", ["198.51.100.10", "2001:db8:5100::10", "2001:db8:5100::ffff"])
def test_lab_addresses_are_accepted(address: str) -> None:
    assert check_lab_address(address) == address


@pytest.mark.parametrize(
    "address",
    ["192.0.2.10", "2001:db8:5101::10", "2001:db8::10", "::1", "127.0.0.1", "fe80::1", "old"],
)
def test_anything_else_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match=r"not a lab address|not an IP address"):
        check_lab_address(address)


def test_each_host_ends_alike_in_both_families() -> None:
    for host in HOSTS.values():
        assert host.address6.startswith(str(SUBNET6.network_address))
        assert host.address6.rsplit(":", 1)[1] == host.address.rsplit(".", 1)[1]
        check_lab_address(host.address6)


def test_every_a_record_has_its_aaaa() -> None:
    records = zone_records("example.test", OLD.address, 3600, 1, None, OLD.address6)
    a = {r.name for r in records if r.type == "A"}
    aaaa = {r.name: r.content for r in records if r.type == "AAAA"}
    assert a == set(aaaa)
    assert aaaa["example.test"] == OLD.address6
    assert aaaa[NEW.fqdn] == NEW.address6
    (spf,) = [r.content for r in records if "v=spf1" in r.content]
    assert f"ip6:{OLD.address6}" in spf and f"ip6:{NEW.address6}" in spf


def test_ip6_arpa_names_old_and_new() -> None:
    ptrs = {r.name: r.content for r in reverse_records6(3600, 1) if r.type == "PTR"}
    assert ptrs == {reverse_name6(OLD.address6): OLD.fqdn, reverse_name6(NEW.address6): NEW.fqdn}
    assert all(name.endswith(".0.0.1.5.8.b.d.0.1.0.0.2.ip6.arpa") for name in ptrs)


@pytest.mark.parametrize(
    ("family", "old", "ssh"),
    [
        ("dual", [OLD.address, OLD.address6], f"ssh://root@{OLD.address}"),
        ("ipv4", OLD.address, f"ssh://root@{OLD.address}"),
        ("ipv6", OLD.address6, f"ssh://root@[{OLD.address6}]"),
    ],
)
def test_inventory_per_family(family: str, old: object, ssh: str) -> None:
    data = inventory.build(["alice@example.test"], ["example.test"], [], family)
    assert data["old"]["address"] == old
    assert data["old"]["ssh"] == ssh
    nameservers = data["dns"]["zones"][0]["nameservers"]
    assert all((":" in ns) == (family == "ipv6") for ns in nameservers)
