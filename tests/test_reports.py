"""What a run leaves behind: schema-valid JUnit XML with properties, an HTML report,
the terminal verdict, and the same verdicts under pytest-xdist.

Runs need no lab: the VFIO/VM checks read a captured host fixture, and the
service checks are pointed at loopback addresses where nothing listens (so
they fail fast, which is exactly what a report must show well).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import xmlschema
import yaml

from tests.suite import REPO, SuiteRun, run_suite
from tests.vfio.support import generate

SCHEMA = xmlschema.XMLSchema(str(REPO / "tests" / "schemas" / "junit.xsd"))
# Nothing listens on these loopback addresses: connections are refused at once.
UNUSED_OLD, UNUSED_NEW = "127.0.0.2", "127.0.0.3"


def _inventory(tmp_path: Path, scenario: str) -> tuple[Path, Path]:
    built = generate.build(scenario, tmp_path / "host")
    tarball = generate.snapshot(built, tmp_path / "host.tar.gz")
    data = yaml.safe_load(built.inventory.read_text())
    data["name"] = "reports-test"
    data["old"] = {"address": UNUSED_OLD}
    data["new"] = {"address": UNUSED_NEW}
    data["services"] = [
        {"name": "imaps", "port": 993, "protocol": "imap", "tls": "implicit"},
        {"name": "smtp", "port": 25, "protocol": "smtp", "tls": "starttls"},
    ]
    data["timeouts"] = {"connect": 2, "operation": 2}
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    return inventory, tarball


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[SuiteRun, Path]:
    tmp_path = tmp_path_factory.mktemp("reports")
    inventory, tarball = _inventory(tmp_path, "audio-on-snd-hda-intel")
    reports = tmp_path / "reports"
    run = run_suite("preflight", inventory, reports, f"--host-snapshot={tarball}")
    return run, reports


def test_junit_xml_is_schema_valid(broken_run: tuple[SuiteRun, Path]) -> None:
    run, reports = broken_run
    junit = reports / "preflight.xml"
    SCHEMA.validate(str(junit))  # raises with the offending element
    assert run.cases, run.summary()


def test_every_testcase_carries_check_id_phase_and_migration(
    broken_run: tuple[SuiteRun, Path],
) -> None:
    run, _ = broken_run
    for case in run.cases:
        assert case.properties.get("phase") == "preflight", case
        assert case.properties.get("migration") == "reports-test", case
        assert case.check_id, case


def test_service_testcases_name_side_address_and_port(broken_run: tuple[SuiteRun, Path]) -> None:
    run, _ = broken_run
    service_cases = [c for c in run.cases if c.check_id.startswith("PORT")]
    assert service_cases, run.summary()
    for case in service_cases:
        side = case.properties["side"]
        assert case.properties["address"] == {"old": UNUSED_OLD, "new": UNUSED_NEW}[side]
        assert case.properties["port"] in ("993", "25")
        assert case.name.endswith(f"-{case.properties['port']}-{side}]"), case.name


def test_failures_carry_evidence_and_the_run_says_so(broken_run: tuple[SuiteRun, Path]) -> None:
    run, _ = broken_run
    assert run.returncode == 1
    refused = [c for c in run.failing() if c.check_id == "PORT01"]
    assert refused and all(UNUSED_OLD in c.message or UNUSED_NEW in c.message for c in refused)
    vfio = [c for c in run.failing() if c.check_id == "VFIO05"]
    assert vfio and "snd_hda_intel" in vfio[0].message


def test_html_report_and_terminal_matrix(broken_run: tuple[SuiteRun, Path]) -> None:
    run, reports = broken_run
    html = (reports / "preflight.html").read_text(encoding="utf-8")
    assert "VFIO05" in html or "test_device_bound" in html
    assert "cutover preflight: services x IPs" in run.stdout
    assert "imaps-993" in run.stdout and "FAIL" in run.stdout
    assert "vfio    FAIL" in run.stdout and "[VFIO05]" in run.stdout


def test_parallel_run_gives_the_same_verdicts(
    broken_run: tuple[SuiteRun, Path], tmp_path: Path
) -> None:
    serial, _ = broken_run
    inventory, tarball = _inventory(tmp_path, "audio-on-snd-hda-intel")
    parallel = run_suite(
        "preflight", inventory, tmp_path / "reports", f"--host-snapshot={tarball}", "-n", "2"
    )
    verdicts = {(c.classname, c.name, c.outcome) for c in serial.cases}
    assert {(c.classname, c.name, c.outcome) for c in parallel.cases} == verdicts
    assert "cutover preflight: services x IPs" in parallel.stdout
