"""The detection matrix: every lab fault fails exactly its expected checks; healthy is green.

For each phase (in story order) the whole suite runs once on the healthy lab,
then once per fault that matters in that phase, with exactly that fault
applied (`lab fault NAME`, undone afterwards). The set of check IDs with a
failing testcase must equal the table in tests/trust/expected.py: no miss, no
collateral failure. The last test renders docs/detection-matrix.md from
these actual results and the VFIO/VM scenario runs and compares it with the
file (`make matrix` rewrites it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import IN_CI, Lab, lab_cli
from tests.suite import SuiteRun
from tests.trust.expected import (
    ACCEPTANCE,
    CUTOVER,
    DECOMMISSION,
    EXPECTED,
    LEGACY_EXPECTED,
    PREFLIGHT,
    phase_of,
)
from tests.trust.matrix import (
    DOC,
    HEALTHY_ROW,
    IPV6_ROW,
    LEGACY_ROW,
    OBSERVED,
    expected_for,
    explain,
    failing_ids,
    lab_rows,
    render,
    run_whole_suite,
    suite_args,
)
from tests.vfio.support import generate


@pytest.fixture(scope="session")
def matrix_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Session-wide: the story order interleaves modules; cutover and acceptance
    # read the baseline the healthy preflight run recorded here.
    return tmp_path_factory.mktemp("matrix")


def check_row(lab: Lab, phase: str, row: str, directory: Path) -> None:
    directory = directory / f"lab-{lab.generation}"  # a rebuilt lab has its own baseline
    if row == IPV6_ROW:  # its own preflight records its own baseline
        directory = directory / "ipv6-only"
    baseline = directory / "baseline.json"
    keep = phase == PREFLIGHT and row in (HEALTHY_ROW, IPV6_ROW, LEGACY_ROW)
    run_dir = directory / phase / row.replace(":", "-").strip("()").replace(" ", "-")
    run_dir = run_dir.with_name(run_dir.name.replace(",", ""))
    args = suite_args(phase, row)
    if row in (HEALTHY_ROW, IPV6_ROW, LEGACY_ROW):
        run = run_whole_suite(
            lab, phase, run_dir, baseline, *args, keep_baseline=keep, ipv6_only=row == IPV6_ROW
        )
    else:
        with lab.fault(row):
            run = run_whole_suite(lab, phase, run_dir, baseline, *args)
    assert run.cases, run.summary()
    assert not [c for c in run.cases if c.outcome == "error"], explain(frozenset(), run)
    OBSERVED.lab[(phase, row)] = failing_ids(run)
    OBSERVED.lab_totals[(phase, row)] = len({c.check_id for c in run.cases})
    expected = expected_for(phase, row)
    assert failing_ids(run) == expected, f"{phase} / {row}:\n" + explain(expected, run)
    assert run.returncode == (1 if expected else 0), run.summary()
    if row in ONLY_ON_ENDPOINTS:
        only_there(run, *ONLY_ON_ENDPOINTS[row])


# Faults whose every failure must be on one kind of endpoint: (the test-id suffix of
# that endpoint, the address it has in the lab, whether its ports refuse). A
# per-endpoint testcase carries the suffix in its id; a per-account one (AUTH01,
# IMAP) names the address in its message.
ONLY_ON_ENDPOINTS = {
    "forward-v4-only": ("-old-v6", "2001:db8:5100::10", True),
    "v6-old-server-still-serving": ("-old-v6", "2001:db8:5100::10", False),
}


def only_there(run: SuiteRun, suffix: str, address: str, refused: bool) -> None:
    """Every failing testcase is about the endpoint; if `refused`, every PORT01 there failed."""
    elsewhere = [
        f"{case.check_id} {case.name}: {case.message.splitlines()[0][:200]}"
        for case in run.failing()
        if suffix not in case.name and address not in case.message
    ]
    assert not elsewhere, "failed away from the endpoint:\n" + "\n".join(elsewhere)
    if not refused:
        return
    port_checks = [c for c in run.cases if c.check_id == "PORT01" and suffix in c.name]
    assert port_checks, f"no PORT01 testcase on *{suffix} endpoints: {run.summary()}"
    assert all(c.outcome == "failed" for c in port_checks), [
        (c.name, c.outcome) for c in port_checks
    ]


def faults_of(phase: str, table: dict[str, dict[str, frozenset[str]]] = EXPECTED) -> list[str]:
    return [fault for fault in table if phase_of(fault) == phase]


def test_preflight_healthy_is_green(preflight_lab: Lab, matrix_dir: Path) -> None:
    check_row(preflight_lab, PREFLIGHT, HEALTHY_ROW, matrix_dir)


def test_preflight_ipv6_only_inventory_is_green(preflight_lab: Lab, matrix_dir: Path) -> None:
    check_row(preflight_lab, PREFLIGHT, IPV6_ROW, matrix_dir)


@pytest.mark.parametrize("fault", faults_of(PREFLIGHT))
def test_preflight_fault(preflight_lab: Lab, matrix_dir: Path, fault: str) -> None:
    check_row(preflight_lab, PREFLIGHT, fault, matrix_dir)


def test_cutover_healthy_is_green(cutover_lab: Lab, matrix_dir: Path) -> None:
    check_row(cutover_lab, CUTOVER, HEALTHY_ROW, matrix_dir)


def test_cutover_ipv6_only_inventory_is_green(cutover_lab: Lab, matrix_dir: Path) -> None:
    check_row(cutover_lab, CUTOVER, IPV6_ROW, matrix_dir)


@pytest.mark.parametrize("fault", faults_of(CUTOVER))
def test_cutover_fault(cutover_lab: Lab, matrix_dir: Path, fault: str) -> None:
    check_row(cutover_lab, CUTOVER, fault, matrix_dir)


def test_acceptance_healthy_is_green(acceptance_lab: Lab, matrix_dir: Path) -> None:
    check_row(acceptance_lab, ACCEPTANCE, HEALTHY_ROW, matrix_dir)


def test_acceptance_ipv6_only_inventory_is_green(acceptance_lab: Lab, matrix_dir: Path) -> None:
    check_row(acceptance_lab, ACCEPTANCE, IPV6_ROW, matrix_dir)


@pytest.mark.parametrize("fault", faults_of(ACCEPTANCE))
def test_acceptance_fault(acceptance_lab: Lab, matrix_dir: Path, fault: str) -> None:
    check_row(acceptance_lab, ACCEPTANCE, fault, matrix_dir)


# Decommission runs in the acceptance state (DNS switched, the forwards still up): no
# state of its own, so no extra lab time beyond its runs.
def test_decommission_healthy_is_green(acceptance_lab: Lab, matrix_dir: Path) -> None:
    check_row(acceptance_lab, DECOMMISSION, HEALTHY_ROW, matrix_dir)


def test_decommission_ipv6_only_inventory_is_green(acceptance_lab: Lab, matrix_dir: Path) -> None:
    check_row(acceptance_lab, DECOMMISSION, IPV6_ROW, matrix_dir)


@pytest.mark.parametrize("fault", faults_of(DECOMMISSION))
def test_decommission_fault(acceptance_lab: Lab, matrix_dir: Path, fault: str) -> None:
    check_row(acceptance_lab, DECOMMISSION, fault, matrix_dir)


# The legacy profile's section: its own lab (`up --profile legacy`), after the default story.
def test_legacy_preflight_healthy_is_green(legacy_preflight_lab: Lab, matrix_dir: Path) -> None:
    check_row(legacy_preflight_lab, PREFLIGHT, LEGACY_ROW, matrix_dir)


@pytest.mark.parametrize("fault", faults_of(PREFLIGHT, LEGACY_EXPECTED))
def test_legacy_preflight_fault(legacy_preflight_lab: Lab, matrix_dir: Path, fault: str) -> None:
    check_row(legacy_preflight_lab, PREFLIGHT, fault, matrix_dir)


def test_legacy_cutover_healthy_is_green(legacy_cutover_lab: Lab, matrix_dir: Path) -> None:
    check_row(legacy_cutover_lab, CUTOVER, LEGACY_ROW, matrix_dir)


# The legacy faults of later phases get their tests only when the table has some (no
# test without a row: an empty parameter set would be a skip that proves nothing).
if faults_of(CUTOVER, LEGACY_EXPECTED):

    @pytest.mark.parametrize("fault", faults_of(CUTOVER, LEGACY_EXPECTED))
    def test_legacy_cutover_fault(legacy_cutover_lab: Lab, matrix_dir: Path, fault: str) -> None:
        check_row(legacy_cutover_lab, CUTOVER, fault, matrix_dir)


def test_legacy_acceptance_healthy_is_green(legacy_acceptance_lab: Lab, matrix_dir: Path) -> None:
    check_row(legacy_acceptance_lab, ACCEPTANCE, LEGACY_ROW, matrix_dir)


if faults_of(ACCEPTANCE, LEGACY_EXPECTED):

    @pytest.mark.parametrize("fault", faults_of(ACCEPTANCE, LEGACY_EXPECTED))
    def test_legacy_acceptance_fault(
        legacy_acceptance_lab: Lab, matrix_dir: Path, fault: str
    ) -> None:
        check_row(legacy_acceptance_lab, ACCEPTANCE, fault, matrix_dir)


def test_every_lab_fault_is_in_the_matrix(lab: Lab) -> None:
    listed = {
        line.split()[0].split(":")[0]
        for line in lab_cli("fault", "--list").stdout.splitlines()
        if line.strip()
    }
    covered = {fault.split(":")[0] for fault in (*EXPECTED, *LEGACY_EXPECTED)}
    assert listed == covered, (
        f"not in the matrix: {sorted(listed - covered)}; "
        f"not a lab fault: {sorted(covered - listed)}"
    )


@pytest.mark.summary
def test_matrix_doc_is_current(legacy_acceptance_lab: Lab, matrix_dir: Path) -> None:
    missing = [row for row in lab_rows() if row not in OBSERVED.lab]
    if missing:
        message = f"the matrix did not run {missing}: run the whole module"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    descriptions = {
        name: generate.load_scenario(name).get("description", "")
        for name in generate.scenario_names()
    }
    rendered = render(OBSERVED, descriptions)
    (matrix_dir / "detection-matrix.md").write_text(rendered, encoding="utf-8")
    if os.environ.get("CUTOVER_WRITE_MATRIX") == "1":
        DOC.write_text(rendered, encoding="utf-8")
    current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    assert current == rendered, (
        f"{DOC} is not what this run found (rendered: {matrix_dir / 'detection-matrix.md'}); "
        "run `make matrix`"
    )
