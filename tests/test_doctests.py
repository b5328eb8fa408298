"""The examples in the docstrings of cutover/, checks/ and lab/ run as written.

Examples that need a server or a file are marked `# doctest: +SKIP`; every
other example is executed, so the documentation cannot drift from the code.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

from tests.suite import REPO

PACKAGES = ("cutover", "checks", "lab")
MODULES = sorted(
    ".".join(path.relative_to(REPO).with_suffix("").parts)
    for package in PACKAGES
    for path in (REPO / package).rglob("*.py")
    if path.name != "__main__.py" and not path.name.startswith("test_")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name.removesuffix(".__init__"))
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False, report=True)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
