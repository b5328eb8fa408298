"""The check catalogue: every check's ID, objective, why, inputs, fix, phases and area.

Built by parsing `checks/test_*.py` (not importing them, so no pytest is
needed): each check's `@check("ID", phases=(...))` declaration (checks/declare.py)
and its docstring (`ID: objective`, then Why:, Inputs:, Fix:). `python -m cutover
checks` prints it, `docs/checks.md` is generated from it, and the phase and area
lookups of a run (`runs_in`, `area_of`) read it.

>>> entries = load_catalogue()  # doctest: +SKIP
>>> entries[0].check_id  # doctest: +SKIP
'DNS01'
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from cutover.model.phases import CHECK_ID, Phase, prefix_area

__all__ = [
    "CatalogueEntry",
    "CatalogueError",
    "area_of",
    "load_catalogue",
    "render_markdown",
    "render_text",
    "runs_in",
]

CHECKS_DIR = Path(__file__).resolve().parents[2] / "checks"
SECTIONS = ("Why", "Inputs", "Fix")
_SECTION = re.compile(r"^(Why|Inputs|Fix):\s*", re.MULTILINE)


class CatalogueError(Exception):
    """A check whose docstring does not follow the catalogue's format."""


@dataclass(frozen=True)
class CatalogueEntry:
    check_id: str
    objective: str
    why: str
    inputs: str
    fix: str
    area: str
    phases: tuple[Phase, ...]
    function: str
    module: str

    @property
    def sort_key(self) -> tuple[str, int]:
        match = CHECK_ID.match(self.check_id)
        assert match is not None
        return (match.group(1), int(match.group(2)))


def _parse_docstring(doc: str, where: str) -> tuple[str, str, dict[str, str]]:
    match = CHECK_ID.match(doc)
    if match is None:
        raise CatalogueError(f"{where}: docstring must start with a check ID such as 'PORT01:'")
    check_id = match.group(0)
    rest = doc[match.end() :].lstrip(":").strip()
    parts = _SECTION.split(rest)
    objective = " ".join(parts[0].split())
    sections = {parts[i]: " ".join(parts[i + 1].split()) for i in range(1, len(parts) - 1, 2)}
    missing = [name for name in SECTIONS if not sections.get(name)]
    if not objective:
        raise CatalogueError(f"{where}: {check_id} has no objective line")
    if missing:
        raise CatalogueError(f"{where}: {check_id} docstring lacks {', '.join(missing)}:")
    return check_id, objective, sections


def _declaration(
    node: ast.FunctionDef, check_id: str, where: str
) -> tuple[frozenset[Phase], str | None]:
    """The phases and area of the function's `@check(...)`, read from the source."""
    for decorator in node.decorator_list:
        if not isinstance(decorator, ast.Call):
            continue
        name = decorator.func
        if not (isinstance(name, ast.Name) and name.id == "check") and not (
            isinstance(name, ast.Attribute) and name.attr == "check"
        ):
            continue
        try:
            declared = [ast.literal_eval(arg) for arg in decorator.args]
            keywords = {str(k.arg): ast.literal_eval(k.value) for k in decorator.keywords}
        except ValueError:
            raise CatalogueError(f"{where}: @check takes literals (a string, a tuple)") from None
        if declared != [check_id]:
            raise CatalogueError(
                f"{where}: declared as @check({', '.join(map(repr, declared))}), but its "
                f"docstring starts with {check_id}"
            )
        unknown = set(keywords) - {"phases", "area"}
        if unknown:
            raise CatalogueError(f"{where}: @check has no argument {sorted(unknown)[0]}")
        try:
            phases = frozenset(Phase(p) for p in keywords.get("phases", tuple(Phase)))
        except (TypeError, ValueError):
            names = ", ".join(Phase)
            raise CatalogueError(f"{where}: @check phases must name phases of: {names}") from None
        area = keywords.get("area")
        return phases, area if isinstance(area, str) else None
    raise CatalogueError(f"{where}: {check_id} has no @check({check_id!r}, phases=...) above it")


def load_catalogue(checks_dir: Path = CHECKS_DIR) -> list[CatalogueEntry]:
    entries: dict[str, CatalogueEntry] = {}
    for path in sorted(checks_dir.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
                continue
            where = f"{path.name}:{node.lineno} {node.name}"
            doc = ast.get_docstring(node)
            if not doc:
                raise CatalogueError(f"{where}: a check needs a docstring starting with its ID")
            check_id, objective, sections = _parse_docstring(doc, where)
            phases, area = _declaration(node, check_id, where)
            if check_id in entries:
                other = entries[check_id]
                raise CatalogueError(
                    f"{where}: check ID {check_id} is already used by "
                    f"{other.module}:{other.function}"
                )
            entries[check_id] = CatalogueEntry(
                check_id=check_id,
                objective=objective,
                why=sections["Why"],
                inputs=sections["Inputs"],
                fix=sections["Fix"],
                area=area or prefix_area(check_id),
                phases=tuple(p for p in Phase if p in phases),
                function=node.name,
                module=path.name,
            )
    return sorted(entries.values(), key=lambda e: e.sort_key)


@functools.cache
def _by_id() -> dict[str, CatalogueEntry]:
    return {entry.check_id: entry for entry in load_catalogue()}


def runs_in(check_id: str, phase: Phase) -> bool:
    """Does the check run in this phase (as its `@check` declares)? An unknown ID runs in every one.

    >>> runs_in("MYSQL01", Phase.PREFLIGHT)  # doctest: +SKIP
    False
    """
    entry = _by_id().get(check_id)
    return entry is None or phase in entry.phases


def area_of(check_id: str) -> str:
    """The check's area: declared with `@check(..., area=...)`, or from its ID's prefix."""
    entry = _by_id().get(check_id)
    return entry.area if entry is not None else prefix_area(check_id)


def render_text(entries: list[CatalogueEntry]) -> str:
    lines = []
    for entry in entries:
        phases = ", ".join(p.value for p in entry.phases)
        lines += [
            f"{entry.check_id}  {entry.objective}",
            f"    area: {entry.area}; phases: {phases}; check: {entry.module}::{entry.function}",
            f"    why: {entry.why}",
            f"    inputs: {entry.inputs}",
            f"    fix: {entry.fix}",
            "",
        ]
    return "\n".join(lines)


def render_markdown(entries: list[CatalogueEntry]) -> str:
    out = [
        "# Check catalogue",
        "",
        "Generated by `python -m cutover checks --markdown` from the checks' docstrings;",
        "`tests/test_catalogue.py` fails when this file is out of date. A check ID never",
        "changes meaning: look up the ID a report shows to learn what was checked, why it",
        "matters and how to fix it.",
        "",
        "| ID | area | phases | objective |",
        "|---|---|---|---|",
    ]
    for entry in entries:
        phases = ", ".join(p.value for p in entry.phases)
        anchor = entry.check_id.lower()
        out.append(
            f"| [{entry.check_id}](#{anchor}) | {entry.area} | {phases} | {entry.objective} |"
        )
    for entry in entries:
        out += [
            "",
            f"## {entry.check_id}",
            "",
            f"**{entry.objective}**",
            "",
            f"- Why: {entry.why}",
            f"- Inputs: {entry.inputs}",
            f"- Fix: {entry.fix}",
            f"- Phases: {', '.join(p.value for p in entry.phases)}",
            f"- Check: `checks/{entry.module}::{entry.function}`",
        ]
    return "\n".join(out) + "\n"
