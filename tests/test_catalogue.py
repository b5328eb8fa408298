"""The catalogue is complete, consistent with the phase table, and docs/checks.md is current."""

from __future__ import annotations

import subprocess
import sys

from cutover.model.catalogue import load_catalogue, render_markdown
from cutover.model.phases import CHECK_PHASES, area_of
from tests.suite import REPO


def test_every_check_has_a_unique_id_and_a_complete_docstring() -> None:
    entries = load_catalogue()  # raises on a malformed or duplicate docstring
    assert entries, "checks/ declares no checks"
    for entry in entries:
        assert entry.objective and entry.why and entry.inputs and entry.fix
        assert area_of(entry.check_id) == entry.area


def test_the_phase_table_names_only_checks_that_exist() -> None:
    declared = {entry.check_id for entry in load_catalogue()}
    unknown = sorted(set(CHECK_PHASES) - declared)
    assert not unknown, f"CHECK_PHASES lists IDs no check declares: {unknown}"


def test_docs_checks_md_is_generated_from_the_checks() -> None:
    current = (REPO / "docs" / "checks.md").read_text(encoding="utf-8")
    assert current == render_markdown(load_catalogue()), (
        "docs/checks.md is out of date: run `make docs`"
    )


def test_the_catalogue_command_prints_every_check() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "cutover", "checks"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=True,
    )
    for entry in load_catalogue():
        assert f"{entry.check_id}  {entry.objective}" in completed.stdout
