"""Dual stack in the model: a host's address may be a list; one endpoint per address.

A single-address inventory keeps its ids and properties exactly; a side with
several addresses tags each endpoint with its family (`imaps-993-old-v6`).
"""

from __future__ import annotations

from pathlib import Path

from checks.targets.services import endpoint_targets
from cutover.model.inventory import load_inventory
from cutover.model.phases import expectations

DUAL = """\
old: {address: [203.0.113.10, "2001:db8::10"]}
new: {address: [203.0.113.20, "2001:db8::20"]}
services:
  - {name: imaps, port: 993, protocol: imap, tls: implicit}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return path


def test_a_dual_stack_side_has_one_endpoint_per_address_tagged_by_family(tmp_path: Path) -> None:
    inventory = load_inventory(_write(tmp_path, DUAL))
    targets = endpoint_targets(inventory, expectations("preflight"))
    assert [t.id for t in targets] == [
        "imaps-993-old-v4",
        "imaps-993-old-v6",
        "imaps-993-new-v4",
        "imaps-993-new-v6",
    ]
    v6 = dict(targets[1].junit_properties())
    assert v6["family"] == "v6" and v6["address"] == "2001:db8::10"
    assert str(inventory.old.address) == "203.0.113.10"  # the first listed: for messages


def test_a_single_address_inventory_keeps_its_ids_and_properties(tmp_path: Path) -> None:
    text = DUAL.replace('[203.0.113.10, "2001:db8::10"]', "203.0.113.10").replace(
        '[203.0.113.20, "2001:db8::20"]', "203.0.113.20"
    )
    targets = endpoint_targets(load_inventory(_write(tmp_path, text)), expectations("preflight"))
    assert [t.id for t in targets] == ["imaps-993-old", "imaps-993-new"]
    assert "family" not in dict(targets[0].junit_properties())


def test_an_ipv6_only_inventory_has_plain_ids(tmp_path: Path) -> None:
    text = DUAL.replace('[203.0.113.10, "2001:db8::10"]', '"2001:db8::10"').replace(
        '[203.0.113.20, "2001:db8::20"]', '"2001:db8::20"'
    )
    targets = endpoint_targets(load_inventory(_write(tmp_path, text)), expectations("cutover"))
    assert [(t.id, t.where) for t in targets] == [
        ("imaps-993-old", "imaps [2001:db8::10]:993 (old IP)"),
        ("imaps-993-new", "imaps [2001:db8::20]:993 (new IP)"),
    ]
