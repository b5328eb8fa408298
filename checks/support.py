"""Glue between the pytest run and the checks: what a check module may ask of the run.

>>> def pytest_generate_tests(metafunc):            # doctest: +SKIP
...     if "endpoint" in metafunc.fixturenames:
...         config = metafunc.config
...         parametrize(metafunc, "endpoint",
...                     lambda inventory: endpoints(inventory, expectations_for(config, inventory)))

Targets are given as a function of one pair's inventory: an inventory may
describe several migrations (a fleet), and every check runs once per pair.
With several pairs, the pair's name leads every test id
(`test_port_answers[web07-imaps-993-old]`) and the pair is a session-scoped
parameter (`cutover_pair`) of every check, so the session fixtures (which all
depend on `inventory`, hence on the pair) observe each pair once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pytest

from cutover.model.phases import CHECK_ID, Phase, PhaseExpectations, expectations
from cutover.untrusted import shown

if TYPE_CHECKING:  # the models (pydantic) load only when a run has an inventory
    from cutover.model.inventory import Fleet, Inventory

INVENTORY_KEY = pytest.StashKey["Inventory"]()  # only when the inventory is one pair
FLEET_KEY = pytest.StashKey["Fleet"]()
PAIRS_KEY = pytest.StashKey[list[str]]()  # the pairs this run checks (--pair)
PHASE_KEY = pytest.StashKey[Phase]()
# Set on a test function's definition once its pair is parametrized.
PAIRED_KEY = pytest.StashKey[bool]()

PAIR_ARG = "cutover_pair"
CHECKS_DIR = Path(__file__).resolve().parent


class Target(Protocol):
    @property
    def id(self) -> str: ...


def inventory_of(config: pytest.Config) -> Inventory:
    """The inventory of a one-pair run; a fleet has one per pair (see `parametrize`)."""
    if INVENTORY_KEY not in config.stash:
        raise pytest.UsageError(
            "this inventory describes several pairs: give parametrize() a function of "
            "the pair's inventory, or use the `inventory` fixture"
        )
    return config.stash[INVENTORY_KEY]


def fleet_of(config: pytest.Config) -> Fleet:
    return config.stash[FLEET_KEY]


def pairs_of(config: pytest.Config) -> list[Inventory]:
    """The pairs this run checks, in the inventory's order."""
    fleet = fleet_of(config)
    return [fleet.pair(name) for name in config.stash[PAIRS_KEY]]


def phase_of(config: pytest.Config) -> Phase:
    return config.stash[PHASE_KEY]


def expectations_for(config: pytest.Config, inventory: Inventory) -> PhaseExpectations:
    """What must hold for this pair in the run's phase."""
    return expectations(phase_of(config), old_ip_closed=inventory.acceptance.old_ip == "closed")


def expectations_of(config: pytest.Config) -> PhaseExpectations:
    return expectations_for(config, inventory_of(config))


def baseline_path(config: pytest.Config, pair: str) -> Path:
    """The pair's baseline file: `--baseline` itself, or `NAME-PAIR.json` beside it in a fleet."""
    path = Path(config.getoption("baseline"))
    if FLEET_KEY in config.stash and fleet_of(config).several:
        return path.with_name(f"{path.stem}-{pair}{path.suffix}")
    return path


@dataclass(frozen=True)
class NoTargets:
    """A pair has nothing for the check to look at: it is skipped with `reason`."""

    reason: str
    id: str = "none"


Targets = Sequence[Target] | NoTargets


def parametrize(
    metafunc: pytest.Metafunc,
    argname: str,
    targets: Targets | Callable[[Inventory], Targets],
) -> None:
    """Parametrise `argname` with targets, each test id being the target's `id`.

    `targets` is a function of a pair's inventory (a plain sequence still
    works when the inventory is one pair). With nothing to check (e.g. no
    accounts in the inventory) the check is skipped with a reason instead of
    silently vanishing. With several pairs the pair is parametrized with the
    target (`[web07-imaps-993-old]`), never as a cartesian product.
    """
    config = metafunc.config
    if FLEET_KEY not in config.stash or not fleet_of(config).several:
        found = targets(inventory_of(config)) if callable(targets) else targets
        if isinstance(found, NoTargets) or not found:
            empty = found if isinstance(found, NoTargets) else _nothing(argname)
            skip = pytest.mark.skip(reason=empty.reason)
            metafunc.parametrize(argname, [pytest.param(None, marks=skip)], ids=[empty.id])
        else:
            metafunc.parametrize(argname, list(found), ids=[shown(t.id) for t in found])
        return
    if not callable(targets):
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid}: with several pairs, parametrize({argname!r}) "
            "needs a function of the pair's inventory"
        )
    if metafunc.definition.stash.get(PAIRED_KEY, False):
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid}: a check can have one target parameter per pair"
        )
    values = []
    for inventory in pairs_of(config):
        pair = inventory.name
        found = targets(inventory)
        if isinstance(found, NoTargets) or not found:
            empty = found if isinstance(found, NoTargets) else _nothing(argname)
            skip = pytest.mark.skip(reason=empty.reason)
            values.append(pytest.param(pair, None, id=f"{pair}-{empty.id}", marks=skip))
        else:
            values += [pytest.param(pair, t, id=f"{pair}-{shown(t.id)}") for t in found]
    # Session scope: pytest caches the pair by value and tears down what depends
    # on it when the pair changes; the plugin runs each pair's checks together,
    # so each pair's session fixtures are made once.
    metafunc.parametrize([PAIR_ARG, argname], values, scope="session")
    metafunc.definition.stash[PAIRED_KEY] = True


def _nothing(argname: str) -> NoTargets:
    return NoTargets(f"inventory lists no {argname}")


T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Observed(Protocol[T_co]):
    def get(self, target: Any) -> T_co: ...


def observed(observations: Observed[T], target: object, where: str) -> T:
    """What was observed of `target`, or the check fails with the probe's one-line reason.

    >>> answer = observed(services, endpoint, endpoint.where)  # doctest: +SKIP
    """
    __tracebackhide__ = True
    # Here, not at the top: the probes import the inventory models (pydantic), which a
    # run without --phase (`pytest --version`, the self-tests) never needs.
    from cutover.probes.connect import ProbeError

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


def check_id_of(item: pytest.Item) -> str | None:
    function = getattr(item, "function", None)
    doc = getattr(function, "__doc__", None) or ""
    match = CHECK_ID.match(doc.strip())
    return match.group(0) if match else None


def pair_of(item: pytest.Item) -> str | None:
    """The pair a check item runs for (None in a one-pair run)."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(PAIR_ARG) if callspec is not None else None


def is_check(item: pytest.Item) -> bool:
    """Is the item one of the checks (a test in checks/), not a self-test?"""
    return in_checks_dir(item.path)


@functools.cache  # one answer per test file, not per item (10,000 items)
def in_checks_dir(path: Path) -> bool:
    return CHECKS_DIR in path.parents
