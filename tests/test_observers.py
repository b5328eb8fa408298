"""A run naming some check modules loads only their observers: the table stays true.

`checks.observe.NEEDED_BY` lists, per check module, the observer plugins its
fixtures come from. Proven against real collections (no network: collection
never talks to a server): in every phase, every fixture a collected check
uses that an observer defines is in its module's entry; and a run naming one
module collects exactly the items a full run collects for it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from checks.observe import NEEDED_BY, OBSERVERS, observers_for
from tests.suite import PYTHON, REPO
from tests.vfio.support import generate

PHASES = ("preflight", "cutover", "acceptance", "decommission")
EXAMPLE = REPO / "fixtures" / "inventory.example.yaml"
EXAMPLE_ENV = {"CUTOVER_ALICE_PASSWORD": "not-a-password"}

DUMP = """
import json, os
from pathlib import Path


def pytest_collection_finish(session):
    found = {}
    for item in session.items:
        entry = found.setdefault(Path(str(item.fspath)).stem, {"ids": [], "observers": []})
        entry["ids"].append(item.nodeid)
        info = getattr(item, "_fixtureinfo", None)
        for defs in info.name2fixturedefs.values() if info else ():
            module = getattr(defs[-1].func, "__module__", "")
            if module.startswith("checks.observe.") and module not in entry["observers"]:
                entry["observers"].append(module)
    with open(os.environ["CUTOVER_TEST_DUMP"], "w") as out:
        json.dump(found, out)
"""


def _collect(
    tmp_path: Path, phase: str, inventory: Path, *args: str
) -> dict[str, dict[str, list[str]]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "observer_dump.py").write_text(DUMP)
    dump = tmp_path / "dump.json"
    command = [
        PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--collect-only",
        f"-c={REPO / 'pytest.ini'}", f"--rootdir={REPO}", "-p", "observer_dump",
        f"--phase={phase}", f"--inventory={inventory}", f"--reports-dir={tmp_path / 'r'}",
        *args,
    ]  # fmt: skip
    env = {"PYTHONPATH": str(tmp_path), "CUTOVER_TEST_DUMP": str(dump), **EXAMPLE_ENV}
    completed = subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert "ERROR" not in completed.stdout and dump.exists(), completed.stdout + completed.stderr
    found: dict[str, dict[str, list[str]]] = json.loads(dump.read_text())
    return found


@pytest.fixture(scope="module")
def host_inventory(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """An inventory with a virtualisation host (the VFIO/VM checks), from a captured host."""
    tmp_path = tmp_path_factory.mktemp("host")
    built = generate.build("audio-on-snd-hda-intel", tmp_path / "host")
    tarball = generate.snapshot(built, tmp_path / "host.tar.gz")
    data = yaml.safe_load(built.inventory.read_text())
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    return inventory, f"--host-snapshot={tarball}"


@pytest.mark.parametrize("phase", PHASES)
def test_every_observer_a_check_uses_is_listed_for_its_module(
    tmp_path: Path, phase: str, host_inventory: tuple[Path, str]
) -> None:
    inventory, snapshot = host_inventory
    found = _collect(tmp_path / "example", phase, EXAMPLE)
    found.update(_collect(tmp_path / "host", phase, inventory, snapshot))
    assert found, "nothing collected"
    for module, entry in found.items():
        missing = set(entry["observers"]) - set(NEEDED_BY[module])
        assert not missing, f"{module} uses fixtures of {sorted(missing)}: add them to NEEDED_BY"


@pytest.mark.parametrize("module", sorted(NEEDED_BY))
def test_a_run_naming_one_module_collects_what_a_full_run_collects_for_it(
    tmp_path: Path, module: str, host_inventory: tuple[Path, str]
) -> None:
    host = module in ("test_vfio", "test_vm")
    inventory, extra = host_inventory if host else (EXAMPLE, "")
    phase = "decommission" if module == "test_decommission" else "preflight"
    args = (extra,) if extra else ()
    full = _collect(tmp_path / "full", phase, inventory, *args)
    alone = _collect(tmp_path / "alone", phase, inventory, *args, f"checks/{module}.py")
    assert full.get(module, {}).get("ids"), f"{module}: nothing collected in {phase}"
    assert alone[module]["ids"] == full[module]["ids"]


def test_observers_for_keeps_the_order_and_falls_back_to_all() -> None:
    assert observers_for(["test_ports"]) == ("checks.observe.services", "checks.observe.mail")
    assert observers_for(["test_dns", "test_ports"]) == (
        "checks.observe.services",
        "checks.observe.dns",
        "checks.observe.mail",
    )
    assert observers_for(None) == OBSERVERS
    assert observers_for(["test_ports", "test_unknown"]) == OBSERVERS
    assert set(NEEDED_BY) == {p.stem for p in (REPO / "checks").glob("test_*.py")}
