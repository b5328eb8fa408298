"""Every scenario, end to end: generated host -> capture tarball -> the suite -> JUnit XML.

Healthy hosts pass; each broken variant fails exactly its own check, with a
message naming the device, vCPU or CPU at fault.
"""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.suite import run_suite
from tests.trust.matrix import OBSERVED
from tests.vfio.support import ALL_IDS, CHECK_FILES, generate, require_tool

SCENARIOS = generate.scenario_names()


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_fails_exactly_its_check(name: str, tmp_path: Path) -> None:
    built = generate.build(name, tmp_path / "host")
    tarball = generate.snapshot(built, tmp_path / "host.tar.gz")
    run = run_suite(
        "preflight",
        built.inventory,
        tmp_path / "reports",
        *CHECK_FILES,
        f"--host-snapshot={tarball}",
    )
    assert {c.check_id for c in run.cases} == ALL_IDS, run.summary()
    assert not [c for c in run.cases if c.outcome == "error"], run.summary()
    OBSERVED.scenarios[name] = frozenset(run.failing_ids())  # for docs/detection-matrix.md
    expected = built.expected_failures
    assert run.failing_ids() == set(expected), run.summary()
    for check_id, needles in expected.items():
        messages = "\n".join(c.message for c in run.failing() if c.check_id == check_id)
        for needle in needles:
            assert needle in messages, f"{check_id} message lacks {needle!r}:\n{messages}"
    assert run.returncode == (1 if expected else 0), run.summary()


@pytest.mark.parametrize("name", SCENARIOS)
def test_domain_xml_validates_and_is_served(name: str, tmp_path: Path) -> None:
    """The domain XML passes libvirt's schema, and libvirt's test driver serves it."""
    validate = require_tool("virt-xml-validate", "libvirt-clients")
    virsh = require_tool("virsh", "libvirt-clients")
    built = generate.build(name, tmp_path / "host")
    assert built.domain_xml is not None
    checked = subprocess.run(
        [validate, str(built.domain_xml), "domain"], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    domain = built.scenario["domain"]
    state = subprocess.run(
        [virsh, "-c", built.uri, "domstate", domain["name"]], capture_output=True, text=True
    )
    assert state.stdout.strip() == domain["state"], state.stderr
    dumped = subprocess.run(
        [virsh, "-c", built.uri, "dumpxml", domain["name"]], capture_output=True, text=True
    )
    pins = {
        int(p.get("vcpu", "")): p.get("cpuset")
        for p in ET.fromstring(dumped.stdout).iter("vcpupin")
    }
    assert pins == {int(k): str(v) for k, v in (domain.get("vcpupin") or {}).items()}


def test_every_check_has_a_broken_scenario() -> None:
    broken = set()
    for name in SCENARIOS:
        broken |= set(generate.load_scenario(name).get("expect", {}).get("failures") or {})
    assert broken == ALL_IDS
