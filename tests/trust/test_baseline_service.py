"""Against the lab: a narrowed preflight leaves the whole old server in the baseline.

Preflight is the last time the old server answers on its own address. A
preflight narrowed with `-k imap` must still record everything the later
phases compare against, so that a full acceptance run after it judges
exactly as after a full preflight (checks/record.py completes the baseline
at the end of the run). A later phase whose baseline lacks a record says
which one, and to run preflight first.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Lab
from tests.suite import SuiteRun
from tests.trust.expected import ACCEPTANCE, PREFLIGHT
from tests.trust.matrix import matrix_inventory

FULL = "service-full.json"
NARROW = "service-k-imap.json"


def _baseline(lab: Lab, name: str) -> Path:
    return lab.reports / "baseline-service" / name


def _recorded(path: Path) -> dict[str, set[str]]:
    """The baseline's sections and their keys (values carry times; keys say what was kept)."""
    sections = json.loads(path.read_text(encoding="utf-8"))["sections"]
    return {name: set(keys) for name, keys in sections.items() if name != "recorded"}


def _verdicts(run: SuiteRun) -> dict[str, tuple[str, str]]:
    return {case.name: (case.outcome, case.message) for case in run.cases}


def test_a_narrowed_preflight_records_what_a_full_one_does(preflight_lab: Lab) -> None:
    full, narrow = _baseline(preflight_lab, FULL), _baseline(preflight_lab, NARROW)
    full.parent.mkdir(parents=True, exist_ok=True)
    for path in (full, narrow):
        path.unlink(missing_ok=True)
    # TTL lowering acknowledged: DNS03's wait is not what this test is about.
    inventory = matrix_inventory(preflight_lab, full.parent)
    whole = preflight_lab.suite(PREFLIGHT, f"--baseline={full}", inventory=inventory)
    assert whole.returncode == 0, whole.summary()
    narrowed = preflight_lab.suite(
        PREFLIGHT, f"--baseline={narrow}", "-k", "imap", inventory=inventory
    )
    assert narrowed.returncode == 0, narrowed.summary()
    ran = {case.check_id for case in narrowed.cases if case.outcome != "skipped"}
    assert any(check_id.startswith("IMAP") for check_id in ran), ran
    everything = {case.check_id for case in whole.cases if case.outcome != "skipped"}
    assert {"MYSQL04", "HTTP01", "DNS02"} <= everything - ran, sorted(ran)
    assert _recorded(narrow) == _recorded(full)


def test_acceptance_after_a_narrowed_preflight_judges_as_after_a_full_one(
    acceptance_lab: Lab,
) -> None:
    full, narrow = _baseline(acceptance_lab, FULL), _baseline(acceptance_lab, NARROW)
    assert full.exists() and narrow.exists(), (
        "run the module whole: its preflight test records both baselines"
    )
    inventory = matrix_inventory(acceptance_lab, full.parent)
    after_full = acceptance_lab.suite(ACCEPTANCE, f"--baseline={full}", inventory=inventory)
    after_narrow = acceptance_lab.suite(ACCEPTANCE, f"--baseline={narrow}", inventory=inventory)
    assert after_full.cases, after_full.summary()
    assert _verdicts(after_narrow) == _verdicts(after_full), after_narrow.summary()
    assert after_narrow.returncode == after_full.returncode


def test_a_missing_record_is_named(acceptance_lab: Lab) -> None:
    empty = _baseline(acceptance_lab, "service-empty.json")
    empty.unlink(missing_ok=True)
    inventory = matrix_inventory(acceptance_lab, empty.parent)
    run = acceptance_lab.suite(ACCEPTANCE, f"--baseline={empty}", "-k", "imap", inventory=inventory)
    assert run.returncode != 0, run.summary()
    failing = run.failing()
    assert failing, run.summary()
    for case in failing:
        assert "preflight" in case.message, case.message
        assert case.message.startswith(case.check_id), case.message
