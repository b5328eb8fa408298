"""The catalogue is complete, read from each check's `@check`, and docs/checks.md is current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cutover.model.catalogue import (
    CatalogueError,
    area_of,
    load_catalogue,
    render_markdown,
    runs_in,
)
from cutover.model.phases import Phase, prefix_area
from tests.suite import REPO


def test_every_check_has_a_unique_id_and_a_complete_docstring() -> None:
    entries = load_catalogue()  # raises on a malformed or duplicate docstring
    assert entries, "checks/ declares no checks"
    for entry in entries:
        assert entry.objective and entry.why and entry.inputs and entry.fix
        assert area_of(entry.check_id) == entry.area


def test_phases_are_what_each_check_declares() -> None:
    assert runs_in("MYSQL01", Phase.CUTOVER)
    assert not runs_in("MYSQL01", Phase.PREFLIGHT)
    assert not runs_in("DNS03", Phase.ACCEPTANCE)
    assert all(runs_in("PORT01", phase) for phase in Phase if phase is not Phase.DECOMMISSION)


def test_decommission_runs_only_the_decom_checks() -> None:
    """Acceptance already proved the new server: the last phase asks only what it adds."""
    running = {e.check_id for e in load_catalogue() if runs_in(e.check_id, Phase.DECOMMISSION)}
    assert "DECOM01" in running
    assert all(area_of(check_id) == "decom" for check_id in running), running
    assert not runs_in("DECOM01", Phase.ACCEPTANCE)


def _checks_dir(tmp_path: Path, declaration: str, doc: str = "PORT01") -> Path:
    (tmp_path / "test_x.py").write_text(
        "from checks.declare import check\n\n\n"
        f"{declaration}\n"
        "def test_x() -> None:\n"
        f'    """{doc}: the port answers.\n\n'
        '    Why: clients connect.\n    Inputs: services.\n    Fix: start it.\n    """\n',
        encoding="utf-8",
    )
    return tmp_path


def test_the_declaration_gives_phases_and_area(tmp_path: Path) -> None:
    path = _checks_dir(tmp_path, '@check("PORT01", phases=("cutover",), area="imap")')
    (entry,) = load_catalogue(path)
    assert (entry.phases, entry.area) == ((Phase.CUTOVER,), "imap")
    (entry,) = load_catalogue(_checks_dir(tmp_path, '@check("PORT01")'))
    assert (entry.phases, entry.area) == (tuple(Phase), prefix_area("PORT01"))


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        ("", "PORT01 has no @check('PORT01', phases=...) above it"),
        ('@check("PORT02", phases=("cutover",))', "docstring starts with PORT01"),
        ('@check("PORT01", phases=("later",))', "@check phases must name phases"),
        ('@check("PORT01", phases=PHASES)', "@check takes literals"),
    ],
)
def test_a_check_without_a_sound_declaration_is_refused(
    tmp_path: Path, declaration: str, message: str
) -> None:
    with pytest.raises(CatalogueError, match=r"test_x\.py:\d+ test_x: ") as caught:
        load_catalogue(_checks_dir(tmp_path, declaration))
    assert message in str(caught.value)


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


def test_the_decorator_refuses_an_id_its_docstring_does_not_start_with() -> None:
    from checks.declare import check

    def test_x() -> None:
        """PORT01: the port answers."""

    assert check("PORT01", phases=("cutover",))(test_x) is test_x
    with pytest.raises(ValueError, match="declared PORT02, but its docstring starts with PORT01"):
        check("PORT02")(test_x)
    with pytest.raises(ValueError):
        check("PORT01", phases=("later",))
