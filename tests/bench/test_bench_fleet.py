"""The fleet benchmark's raw script reads a fleet as the suite does (no lab, no timing)."""

from __future__ import annotations

from pathlib import Path

import yaml

from bench import raw


def test_raw_fleet_gives_each_pair_its_sections_over_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "fleet",
                "services": [{"name": "http", "port": 80, "protocol": "http"}],
                "http": {"vhosts": [{"host": "www.example.test"}]},
                "pairs": [
                    {
                        "name": "a",
                        "old": {"address": ["198.51.100.10", "2001:db8::10"]},
                        "new": {"address": "198.51.100.20"},
                    },
                    {
                        "name": "b",
                        "old": {"address": "198.51.100.30"},
                        "new": {"address": "198.51.100.40"},
                        "http": {"vhosts": []},
                    },
                ],
            }
        )
    )
    first, second = raw.pair_inventories(path)
    # Every address of a dual-stack side, as the suite probes them.
    assert first.ips == ["198.51.100.10", "2001:db8::10", "198.51.100.20"]
    assert first.data["http"]["vhosts"] == [{"host": "www.example.test"}]
    assert second.ips == ["198.51.100.30", "198.51.100.40"]
    assert second.data["http"] == {"vhosts": []}  # a pair's section replaces the default whole
    assert first.data["services"] == second.data["services"]
