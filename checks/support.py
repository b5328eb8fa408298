"""Glue between the pytest run and the checks: what a check module may ask of the run.

>>> def pytest_generate_tests(metafunc):            # doctest: +SKIP
...     if "endpoint" in metafunc.fixturenames:
...         parametrize(metafunc, "endpoint", endpoints(inventory_of(metafunc.config),
...                                                     expectations_of(metafunc.config)))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

import pytest

from cutover.inventory import Inventory
from cutover.net import ProbeError
from cutover.phases import Phase, PhaseExpectations, expectations

INVENTORY_KEY = pytest.StashKey[Inventory]()
PHASE_KEY = pytest.StashKey[Phase]()


class Target(Protocol):
    @property
    def id(self) -> str: ...


def inventory_of(config: pytest.Config) -> Inventory:
    return config.stash[INVENTORY_KEY]


def phase_of(config: pytest.Config) -> Phase:
    return config.stash[PHASE_KEY]


def expectations_of(config: pytest.Config) -> PhaseExpectations:
    inventory = inventory_of(config)
    return expectations(phase_of(config), old_ip_closed=inventory.acceptance.old_ip == "closed")


def parametrize(metafunc: pytest.Metafunc, argname: str, targets: Sequence[Target]) -> None:
    """Parametrise `argname` with targets, each test id being the target's `id`.

    With nothing to check (e.g. no accounts in the inventory) the check is
    skipped with a reason instead of silently vanishing.
    """
    if targets:
        metafunc.parametrize(argname, list(targets), ids=[t.id for t in targets])
    else:
        metafunc.parametrize(
            argname,
            [pytest.param(None, marks=pytest.mark.skip(reason=f"inventory lists no {argname}"))],
            ids=["none"],
        )


T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Observed(Protocol[T_co]):
    def get(self, target: Any) -> T_co: ...


def observed(observations: Observed[T], target: object, where: str) -> T:
    """What was observed of `target`, or the check fails with the probe's one-line reason.

    >>> answer = observed(services, endpoint, endpoint.where)  # doctest: +SKIP
    """
    __tracebackhide__ = True
    try:
        return observations.get(target)
    except ProbeError as exc:
        pytest.fail(f"{where}: no answer: {exc}", pytrace=False)


def no_problems(problems: list[str], headline: str) -> None:
    """Fail with the headline and one line of evidence per problem."""
    __tracebackhide__ = True
    if problems:
        pytest.fail(headline + ":\n  " + "\n  ".join(problems), pytrace=False)


def skip_unless(condition: bool, reason: str) -> None:
    """Skip when a check has nothing to look at (another check reports why)."""
    __tracebackhide__ = True
    if not condition:
        pytest.skip(reason)
