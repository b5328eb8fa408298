"""DECOM02-DECOM04 on the lab: green on the healthy old host, red with each fault's evidence.

The decommission phase runs in the acceptance state (DNS switched, the old
host still forwarding), the old host's ports watched for 3 s (the matrix's
inventory variant). The detection matrix proves that each fault fails
exactly its check; these tests read the evidence in the messages. The last
test walks the story's last step: `lab stale-client` tracked and stopped by
PID, then `lab decommission`, after which the old IP answers nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import health
from lab import state as lab_state
from lab.topology import OLD, STALE_CLIENT_ADDRESS
from tests.conftest import Lab, lab_cli
from tests.suite import SuiteRun
from tests.trust.matrix import matrix_inventory

OLD_HOST_CHECKS = ("DECOM02", "DECOM03", "DECOM04")


def run_old_host_checks(lab: Lab, tmp_path: Path) -> SuiteRun:
    inventory = matrix_inventory(lab, tmp_path / "inventory")
    return lab.suite(
        "decommission",
        "-k",
        " or ".join(OLD_HOST_CHECKS),
        f"--baseline={tmp_path / 'baseline.json'}",
        inventory=inventory,
    )


def test_old_host_checks_are_green_when_nothing_uses_old(
    acceptance_lab: Lab, tmp_path: Path
) -> None:
    run = run_old_host_checks(acceptance_lab, tmp_path)
    assert {c.check_id for c in run.cases} == set(OLD_HOST_CHECKS), run.summary()
    assert not run.failing() and run.returncode == 0, run.summary()
    (stranded,) = [c for c in run.cases if c.check_id == "DECOM03"]
    assert stranded.properties["cutover_at"].endswith("UTC"), stranded.properties
    assert "socat" in stranded.properties["cutover_by"], stranded.properties


@pytest.mark.parametrize(
    ("fault", "check_id", "evidence"),
    [
        ("stale-client:25", "DECOM02", f"port 25: {STALE_CLIENT_ADDRESS} ("),
        ("mail-stranded-on-old", "DECOM03", "message <stranded-"),
        ("old-queue-not-empty", "DECOM03", "from <stranded-queue@old.example.test>"),
        ("tunnel-socket-in-use", "DECOM04", "mariadb via the MySQL socket"),
    ],
)
def test_each_fault_names_its_evidence(
    acceptance_lab: Lab, tmp_path: Path, fault: str, check_id: str, evidence: str
) -> None:
    with acceptance_lab.fault(fault):
        run = run_old_host_checks(acceptance_lab, tmp_path)
    assert {c.check_id for c in run.failing()} == {check_id}, run.summary()
    (case,) = run.failing()
    assert case.message.startswith(check_id), case.message
    assert evidence in case.message, case.message
    if check_id == "DECOM02":
        assert "an MTA retrying to a cached MX" in case.message, case.message


def test_stale_client_verb_then_decommission(acceptance_lab: Lab) -> None:
    started = lab_cli("stale-client", "--port", "143", "--rate", "2").stdout
    assert "stale-client: pid" in started, started
    tracked = lab_state.load()["stale_clients"]
    assert set(tracked) == {"143"}, tracked
    stopped = lab_cli("stale-client", "--stop").stdout
    assert str(tracked["143"]) in stopped, stopped
    assert lab_state.load()["stale_clients"] == {}


def test_decommission_silences_the_old_ip(decommissioned_lab: Lab) -> None:
    data = lab_state.load()
    assert data["story"]["decommissioned"] and data["cutover"] == {}, data["story"]
    conditions = {c.name: c for c in health.conditions(data)}
    silent = conditions[f"decommissioned: old IP {OLD.address} silent"]
    assert silent.ok, silent.line()
