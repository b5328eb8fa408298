"""Self-test helpers for the VFIO/VM checks: the scenario generator, root-only gates.

Root-only tests (mount namespaces) are skipped with a reason when not root,
except with CI=true, where they must run and fail rather than skip.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from types import ModuleType

import pytest

from tests.suite import REPO

IN_CI = os.environ.get("CI") == "true"


def _load_generator() -> ModuleType:
    path = REPO / "fixtures" / "vfio" / "generate.py"
    spec = importlib.util.spec_from_file_location("vfio_fixture_generate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


generate = _load_generator()


def require(reason: str | None) -> None:
    """Skip with `reason` (None: go on); with CI=true, fail instead of skipping."""
    __tracebackhide__ = True
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true: this test must run, but {reason}", pytrace=False)
    pytest.skip(reason)


def require_root() -> None:
    require(None if os.geteuid() == 0 else "needs root (a private mount namespace)")


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    require(None if path else f"needs {name} (Debian package {package})")
    assert path is not None
    return path


CHECK_FILES = ("checks/test_vfio.py", "checks/test_vm.py")
ALL_IDS = {f"VFIO{n:02d}" for n in range(1, 8)} | {f"VM{n:02d}" for n in range(1, 12)}
