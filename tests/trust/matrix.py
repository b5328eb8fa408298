"""The detection matrix: run the whole suite per lab fault, and render what it found.

`tests/trust/test_detection_matrix.py` walks the story once: for each phase
it runs the whole suite on the healthy lab, then once per fault of that phase
(tests/trust/expected.py), and records the set of failing check IDs here.
The last test renders docs/detection-matrix.md from those actual results plus
the VFIO/VM fixture scenarios (tests/vfio) and compares it with the file;
`make matrix` (CUTOVER_WRITE_MATRIX=1) rewrites the file from a fresh run.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import Lab
from tests.suite import REPO, SuiteRun
from tests.trust.expected import (
    EXPECTED,
    HEALTHY,
    LEGACY_EXPECTED,
    LEGACY_PHASES,
    PHASES,
    REASONS,
    SUITE_ARGS,
    expected_faults,
    phase_of,
)

DOC = REPO / "docs" / "detection-matrix.md"
HEALTHY_ROW = "(healthy lab)"
# The healthy lab again, through an inventory that lists only the IPv6 addresses
# (the lab's `inventory-ipv6.yaml`): an IPv6-only migration must be green too.
IPV6_ROW = "(healthy lab, IPv6-only inventory)"
# The healthy lab of profile legacy (old as a CentOS 5-era server).
LEGACY_ROW = "(healthy legacy lab)"
HEALTHY_ROWS = (HEALTHY_ROW, IPV6_ROW, LEGACY_ROW)
ACKNOWLEDGEMENT = "lab: TTLs lowered by `lab lower-ttl`; no resolver in the lab caches them"
SWITCH_ACKNOWLEDGEMENT = "lab: no resolver in the lab caches the old records"
# The decommission phase watches the old host's ports this long (default 60 s).
OBSERVE_SECONDS = 3
CLIENT_V4 = "198.51.100.100"  # the lab's client, where the suite runs


@dataclass
class Observed:
    """Actual results of one pytest session, filled in as the matrix tests run."""

    # (phase, fault spec or HEALTHY_ROW) -> failing check IDs, and how many checks ran
    lab: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    lab_totals: dict[tuple[str, str], int] = field(default_factory=dict)
    # VFIO/VM scenario -> failing check IDs
    scenarios: dict[str, frozenset[str]] = field(default_factory=dict)


OBSERVED = Observed()


def matrix_inventory(lab: Lab, directory: Path, *, ipv6_only: bool = False) -> Path:
    """The lab's inventory, TTL lowering and DNS-switch wait acknowledged (DNS03's and
    DECOM01's waits are a separate matter: tests/dns, tests/decom).

    The mail-flow probe waits 5 s for delivery (the lab delivers in well under 1 s).
    The decommission phase: the DNS switch wait acknowledged (DECOM01 is proven
    both ways in tests/decom), the old host's ports watched for 3 s.
    """

    def change(data: dict[str, Any]) -> None:
        data["dns"]["lowering_acknowledged"] = ACKNOWLEDGEMENT
        data["dns"]["switch_acknowledged"] = SWITCH_ACKNOWLEDGEMENT
        data["timeouts"]["mail_delivery"] = 5
        data["decommission"] = {"observe_seconds": OBSERVE_SECONDS}
        if ipv6_only:
            # The earlier rows' IPv4 connections of the suite to the old host linger in
            # TIME-WAIT there for a minute; an IPv6-only inventory cannot know this
            # machine's IPv4 address, so it names it, as an operator would name a
            # monitoring host.
            data["decommission"]["ignore_clients"] = [CLIENT_V4]

    source = "inventory-ipv6.yaml" if ipv6_only else None
    return lab.inventory_variant(directory, change, source=source)


def run_whole_suite(
    lab: Lab,
    phase: str,
    directory: Path,
    baseline: Path,
    *args: str,
    keep_baseline: bool = False,
    ipv6_only: bool = False,
) -> SuiteRun:
    """Every check of `phase` against the lab, from the client namespace.

    Later phases read the baseline the healthy preflight recorded; each run
    works on a copy, so a faulted run never leaks into the next one (unless
    `keep_baseline`: the healthy preflight run records it).
    """
    directory.mkdir(parents=True, exist_ok=True)
    own = baseline if keep_baseline else directory / baseline.name
    if not keep_baseline:
        # The baseline and its side files (baseline.imap/ holds the UID maps).
        for path in baseline.parent.glob(baseline.name.split(".")[0] + ".*"):
            if path.is_dir():
                shutil.copytree(path, directory / path.name)
            elif not path.name.endswith(".lock"):
                shutil.copyfile(path, directory / path.name)
    return lab.suite(
        phase,
        f"--baseline={own}",
        *args,
        inventory=matrix_inventory(lab, directory / "inventory", ipv6_only=ipv6_only),
    )


def failing_ids(run: SuiteRun) -> frozenset[str]:
    return frozenset(run.failing_ids())


def explain(expected: frozenset[str], run: SuiteRun) -> str:
    """What differs, with the failing testcases' first lines as evidence."""
    actual = failing_ids(run)
    lines = []
    if expected - actual:
        lines.append(f"missed (should fail, passed): {sorted(expected - actual)}")
    if actual - expected:
        lines.append(f"collateral (should pass, failed): {sorted(actual - expected)}")
    for case in run.failing():
        lines.append(f"  {case.check_id} {case.name}: {case.message.splitlines()[0][:240]}")
    if not run.cases:
        lines.append(run.summary())
    return "\n".join(lines)


def lab_rows() -> list[tuple[str, str]]:
    """(phase, row) in story order: healthy first, then the faults of that phase."""
    rows = []
    for phase in PHASES:
        rows += [(phase, HEALTHY_ROW), (phase, IPV6_ROW)]
        rows += [(phase, fault) for fault in EXPECTED if phase_of(fault) == phase]
    return rows + legacy_rows()


def legacy_rows() -> list[tuple[str, str]]:
    """(phase, row) of the legacy profile's section, in story order."""
    rows = []
    for phase in LEGACY_PHASES:
        rows.append((phase, LEGACY_ROW))
        rows += [(phase, fault) for fault in LEGACY_EXPECTED if phase_of(fault) == phase]
    return rows


def suite_args(phase: str, row: str) -> tuple[str, ...]:
    return SUITE_ARGS.get(f"{phase} healthy" if row in HEALTHY_ROWS else row, ())


def expected_for(phase: str, row: str) -> frozenset[str]:
    return HEALTHY[phase] if row in HEALTHY_ROWS else expected_faults(row)[phase]


def _rows(observed: Observed, rows: list[tuple[str, str]]) -> list[str]:
    lines = []
    for phase, row in rows:
        key = (phase, row)
        failing = _ids(observed.lab[key]) if key in observed.lab else "(not run)"
        total = observed.lab_totals.get(key, 0)
        reason = REASONS.get(row, "")
        label = row if row in HEALTHY_ROWS else f"`{row}`"
        if suite_args(phase, row):
            label += " `--probe-mail`"
        lines.append(f"| {phase} | {label} | {total} | {failing} | {reason} |")
    return lines


def _ids(ids: frozenset[str]) -> str:
    return ", ".join(sorted(ids)) if ids else "none (all green)"


def render(observed: Observed, scenario_expectations: dict[str, Any]) -> str:
    """docs/detection-matrix.md from the actual results."""
    out = [
        "# Detection matrix",
        "",
        "<!-- Generated by `make matrix` from an actual run; "
        "tests/trust/test_detection_matrix.py keeps it current. -->",
        "",
        "What the whole suite reports for each lab fault (`python -m lab fault --list`),",
        "in the phase where the fault matters, and for the healthy lab in every phase.",
        "Each row is a real run: the lab with exactly that fault, the whole suite",
        "(`python -m cutover run PHASE`) from the client namespace, and the set of",
        "check IDs with at least one failing testcase. The self-test asserts that",
        "set equals the expected set in `tests/trust/expected.py`: no miss, no",
        "collateral failure. Check IDs are explained in [checks.md](checks.md).",
        "What hostile server data (names, Message-IDs, SPF text, DNS rows,",
        "snapshots, endless chunked bodies) leads to is in [hostile-input.md](hostile-input.md).",
        "",
        "## Lab faults",
        "",
        "`--probe-mail` marks the rows run with the opt-in mail-flow probe (PORT03).",
        "",
        "| phase | fault | checks run | failing checks | why more than one |",
        "|---|---|---|---|---|",
    ]
    legacy = legacy_rows()
    out += _rows(observed, [row for row in lab_rows() if row not in legacy])
    out += [
        "",
        "## Legacy profile (a CentOS 5-era old server)",
        "",
        "The same runs on a lab brought up with `python -m lab up --profile legacy`:",
        "old speaks TLS 1.0 only, its MySQL accounts carry pre-4.1 hashes, its Dovecot",
        "advertises a 1.x capability list, its vhosts are in Apache 2.2 syntax, the",
        "zones live in MyDNS's `soa`/`rr` tables, and mail is copied with",
        "`lab sync --method rsync`. Nothing in the suite knows the profile: it judges",
        "what the servers show.",
        "",
        "| phase | fault | checks run | failing checks | why more than one |",
        "|---|---|---|---|---|",
    ]
    out += _rows(observed, legacy)
    out += [
        "",
        "## VFIO/VM host scenarios",
        "",
        "The VFIO and VM checks judge a host, not the lab: each scenario in",
        "`fixtures/vfio/scenarios/` is generated as a host tree, captured with",
        "`python -m cutover capture-host`, and checked with `--host-snapshot`",
        "(tests/vfio/test_scenarios.py).",
        "",
        "| scenario | what it is | failing checks |",
        "|---|---|---|",
    ]
    for name in sorted(scenario_expectations):
        summary = str(scenario_expectations[name]).replace("|", "\\|")
        failing = _ids(observed.scenarios[name]) if name in observed.scenarios else "(not run)"
        out.append(f"| `{name}` | {summary} | {failing} |")
    return "\n".join(out) + "\n"
