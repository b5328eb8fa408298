"""The import contracts of pyproject.toml hold, and each one fails on the arrow it forbids.

The contracts are the arrows docs/architecture.md allows between cutover's rooms
(cli, probes, compare, model and the shared leaves), plus: cutover never imports
pytest or checks, and nothing in cutover or checks imports lab. `lint-imports`
(import-linter) checks them; `make lint` and `tox -e lint` run it too.
Module docstrings point into the repository, at docs/semantics.md: those
links must name headings that exist.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.suite import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# Building the graph of the whole tree takes well under a second; this bounds a hang.
TIMEOUT_S = 120


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on the tree at `cwd` with the contracts of its pyproject.toml."""
    if not LINT_IMPORTS.exists():
        reason = f"import-linter is not installed ({LINT_IMPORTS} missing; `make install`)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: the import contracts must run, but {reason}", pytrace=False)
        pytest.skip(reason)
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def contract_names() -> dict[str, str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {contract["id"]: contract["name"] for contract in config["contracts"]}


def test_import_contracts_hold() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, (
        "an import crosses an arrow docs/architecture.md forbids:\n" + result.stdout + result.stderr
    )
    kept = [line for line in result.stdout.splitlines() if line.endswith(" KEPT")]
    assert len(kept) == len(contract_names()), result.stdout


# Each forbidden arrow, written into a tree that has the target rooms: (file, import, contract).
FORBIDDEN_ARROWS = [
    ("cutover/probes/session.py", "import pytest", "cutover-without-pytest"),
    ("cutover/cli/main.py", "import checks", "cutover-without-checks"),
    ("cutover/probes/session.py", "import lab", "lab-apart"),
    ("checks/observe.py", "import lab", "lab-apart"),
    ("cutover/model/settings.py", "import cutover.probes.session", "rooms"),
    ("cutover/model/settings.py", "import cutover.compare.diff", "rooms"),
    ("cutover/model/settings.py", "import cutover.cli.main", "rooms"),
    ("cutover/model/settings.py", "import cutover.progress", "rooms"),
    ("cutover/probes/session.py", "import cutover.cli.main", "rooms"),
    ("cutover/compare/diff.py", "import cutover.probes.session", "rooms"),
    ("cutover/untrusted.py", "import cutover.model.settings", "rooms"),
    ("cutover/model/settings.py", "import ssl", "offline-rooms"),
    ("cutover/compare/diff.py", "import socket", "offline-rooms"),
]

ALLOWED_ARROWS = [
    ("checks/observe.py", "import cutover.probes.session, cutover.model.settings"),
    ("cutover/cli/main.py", "import cutover.probes.session, cutover.compare.diff"),
    ("cutover/probes/session.py", "import socket, cutover.model.settings, cutover.progress"),
    ("cutover/probes/session.py", "import cutover.compare.diff"),  # probes return compare's types
    ("cutover/compare/diff.py", "import cutover.model.settings, cutover.untrusted"),
    ("cutover/model/settings.py", "import cutover.untrusted"),
]


def rooms_tree(root: Path, additions: list[tuple[str, str]]) -> Path:
    """A tree with the target rooms, one module each, the repo's contracts, and `additions`."""
    for module in [
        "cutover/untrusted.py",
        "cutover/progress.py",
        "cutover/cli/main.py",
        "cutover/probes/session.py",
        "cutover/compare/diff.py",
        "cutover/model/settings.py",
        "checks/observe.py",
        "lab/netns.py",
    ]:
        path = root / module
        for package in [path.parent, *path.parent.parents]:
            if package == root:
                break
            package.mkdir(parents=True, exist_ok=True)
            (package / "__init__.py").touch()
        path.touch()
    for module, line in additions:
        with (root / module).open("a") as file:
            file.write(line + "\n")
    (root / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    return root


def test_allowed_arrows_keep_every_contract(tmp_path: Path) -> None:
    result = lint_imports(rooms_tree(tmp_path, ALLOWED_ARROWS))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    FORBIDDEN_ARROWS,
    ids=[f"{module}:{line.split()[-1]}" for module, line, _ in FORBIDDEN_ARROWS],
)
def test_a_forbidden_arrow_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    result = lint_imports(rooms_tree(tmp_path, [(module, line)]))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    broken = {line.removesuffix(" BROKEN") for line in lines if line.endswith(" BROKEN")}
    assert broken == {contract_names()[contract]}, result.stdout


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, '-' for ' '."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_to_the_semantics_resolve() -> None:
    """Every `semantics.md#anchor` and `semantics.md "Heading"` in the code or docs exists."""
    semantics = (REPO / "docs" / "semantics.md").read_text()
    headings = {line.lstrip("#").strip() for line in semantics.splitlines() if line.startswith("#")}
    anchors = {github_anchor(heading) for heading in headings}
    sources = [*REPO.glob("cutover/**/*.py"), *REPO.glob("checks/**/*.py"), *REPO.glob("docs/*")]
    texts = {
        path.relative_to(REPO): path.read_text()
        for path in sources
        if path.suffix in {".py", ".md"}
    }
    links = {
        (path, "#" + a)
        for path, text in texts.items()
        for a in re.findall(r"semantics\.md#([\w-]+)", text)
    }
    named = {
        (path, name)
        for path, text in texts.items()
        for quoted in re.findall(r'semantics\.md,?\s+((?:"[^"]+"(?:,?\s*(?:and\s+)?)?)+)', text)
        for name in re.findall(r'"([^"]+)"', quoted)
    }
    assert named, "no module points to its section of docs/semantics.md"
    broken = sorted(f"{path}: {a}" for path, a in links if a[1:] not in anchors)
    broken += sorted(f'{path}: "{name}"' for path, name in named if name not in headings)
    assert not broken, "points to headings docs/semantics.md does not have:\n" + "\n".join(broken)


def test_nothing_points_outside_the_repository() -> None:
    """Users have only this repository: no code or doc names a design file beside it."""
    tracked = [*REPO.glob("cutover/**/*.py"), *REPO.glob("checks/**/*.py"), *REPO.glob("lab/*.py")]
    tracked += [*REPO.glob("docs/*.md"), REPO / "README.md"]
    outside = [str(p.relative_to(REPO)) for p in tracked if "../shared" in p.read_text()]
    assert not outside, f"these point outside the repository: {outside}"
