"""Which checks a run collects, with which markers, and how xdist groups them.

An area module none of whose inventory sections any selected pair configures
is not collected (`AREA_SECTIONS`); checks that do not run in the phase (as
their `@check` declares) are deselected; every check gets its phase and area
markers, its JUnit properties and an xdist group (its area, per pair in a
fleet), so `-n N` observes each area of each pair once. In a fleet every
check runs once per pair, the pairs one after the other.

The one exception is the mail accounts (the imap area: logins, POP3
maildrops, IMAP continuity), half a full preflight: with `-n N` they are
split by account into N shares, each its own group (`imap.1of2`), and a
worker observes the accounts of the shares it runs only (`account_share`).
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from checks.reporting import param_properties
from checks.support import (
    FLEET_KEY,
    PAIR_ARG,
    PAIRED_KEY,
    PAIRS_KEY,
    PHASE_KEY,
    check_id_of,
    fleet_of,
    in_checks_dir,
    is_check,
    pair_of,
    pairs_of,
)
from cutover.model.catalogue import area_of, runs_in

if TYPE_CHECKING:
    from cutover.model.inventory import Inventory


# The inventory sections that give each area module something to check. A module
# none of whose sections any selected pair configures is not collected: no MySQL
# checks without `mysql:`. The modules not named here check `services`, which
# always has a value (the default nine ports).
AREA_SECTIONS: dict[str, tuple[str, ...]] = {
    "test_http.py": ("http",),
    "test_imap.py": ("mail",),
    "test_mailclients.py": ("mail",),
    "test_mysql.py": ("mysql",),
    # DECOM01 judges the zones; DECOM02-04 read the old host over ssh.
    "test_decommission.py": ("dns", "old.ssh"),
    "test_dns.py": ("dns",),
    "test_outbound.py": ("dns", "outbound"),
    "test_vfio.py": ("virt_host",),
    "test_vm.py": ("virt_host",),
}


def _configures_area(inventory: Inventory, path: Path) -> bool:
    sections = AREA_SECTIONS.get(path.name) if in_checks_dir(path) else None
    return sections is None or any(inventory.configures(section) for section in sections)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave out an area module that no selected pair's inventory configures."""
    if PAIRS_KEY not in config.stash or collection_path.name not in AREA_SECTIONS:
        return None
    if any(_configures_area(pair, collection_path) for pair in pairs_of(config)):
        return None
    return True


# (pair, module) -> does the pair configure the module's area: `configures` compares a
# whole section with its default (1,000 zones: ~1.5 ms), asked once per module, not per item.
_CONFIGURES_KEY = pytest.StashKey[dict[tuple[str, str], bool]]()


def pytest_itemcollected(item: pytest.Item) -> None:
    """A check of an area its pair does not configure is skipped, saying so.

    That is a fleet's pair without the section another pair gives, or a module
    named on the command line (pytest collects those whatever the hook above says).
    """
    if PAIRS_KEY not in item.config.stash:
        return
    fleet = fleet_of(item.config)
    pair = pair_of(item)
    name = pair or fleet.pairs[0].name
    known = item.config.stash.setdefault(_CONFIGURES_KEY, {})
    key = (name, str(item.path))
    if key not in known:
        known[key] = _configures_area(fleet.pair(name), item.path)
    if not known[key]:
        sections = " or ".join(f"{s}:" for s in AREA_SECTIONS[item.path.name])
        whose = f"pair {pair}: its inventory" if pair else "the inventory"
        item.add_marker(pytest.mark.skip(reason=f"{whose} has no {sections}"), append=False)


@pytest.hookimpl(wrapper=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> Iterator[None]:
    """In a fleet, a check without a target parameter still runs once per pair: `[web07]`."""
    yield  # the area modules' own parametrisation first
    config = metafunc.config
    if (
        FLEET_KEY in config.stash
        and fleet_of(config).several
        and is_check(metafunc.definition)
        and not metafunc.definition.stash.get(PAIRED_KEY, False)
    ):
        names = config.stash[PAIRS_KEY]
        metafunc.parametrize(PAIR_ARG, names, ids=names, scope="session")
        metafunc.definition.stash[PAIRED_KEY] = True


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> Iterator[None]:
    _select_and_describe(config, items)
    position = {id(item): index for index, item in enumerate(items)}
    yield  # pytest reorders items by (session-scoped) parameters here
    if FLEET_KEY in config.stash and fleet_of(config).several:
        # Each pair's checks together, in collection order: a pair's session
        # fixtures are set up once, then torn down before the next pair.
        rank = {name: index for index, name in enumerate(config.stash[PAIRS_KEY])}
        items.sort(key=lambda item: (rank.get(pair_of(item) or "", -1), position[id(item)]))


def xdist_group_of(check_id: str, pair: str, several: bool) -> str:
    """The xdist group of a check: its area (`imap`), per pair in a fleet (`web07.imap`)."""
    return f"{pair}.{area_of(check_id)}" if several else area_of(check_id)


# The area whose checks are split by account across the workers, and the suffix
# of a share's group (`imap.1of2`, `web07.imap.2of2`).
SHARED_AREA = "imap"
_SHARE = re.compile(r"(\.\d+of\d+)?")


def account_share(config: pytest.Config, inventory: Inventory, user: str) -> str | None:
    """On an xdist worker distributing by group: the share of the accounts `user` is in.

    Grouped by area alone, every login, maildrop and IMAP session would be on
    one worker (and, under a per-server budget split across the workers, at
    that worker's part of it). Split into as many shares as there are
    workers, by the account's place in `mail.accounts`, each share is a group
    of its own, observed by whichever worker runs it. None: not split (a
    serial run, `--dist load`, one worker, an unknown account).
    """
    workerinput = getattr(config, "workerinput", None)

    if not workerinput or not workerinput.get("cutover_loadgroup"):
        return None
    shares = int(workerinput.get("workercount", 1))
    users = [account.user for account in inventory.mail.accounts]
    if shares < 2 or user not in users:
        return None
    return f"{users.index(user) % shares + 1}of{shares}"


def _account_of(item: pytest.Item) -> str | None:
    """The mail account a check judges (its target's `account`), if any."""
    callspec = getattr(item, "callspec", None)
    for value in callspec.params.values() if callspec is not None else ():
        user = getattr(getattr(value, "account", None), "user", None)
        if isinstance(user, str):
            return user
    return None


def group_by_area(config: pytest.Config) -> None:
    """`-n N` alone distributes by group (loadgroup), unless `--dist` was given.

    With plain `load` every worker would make every session observation
    (all DNS questions, all IMAP sessions...) for the few checks it gets:
    more work, not less. Grouped, each area is observed by one worker and
    the areas run in parallel.
    """
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        # A worker re-parses the command line, so it does not see the controller's
        # choice: it is passed on in workerinput (pytest_configure_node below).
        if workerinput.get("cutover_loadgroup"):
            config.option.loadgroup = True
        return
    if getattr(config.option, "dist", "no") != "load":
        return
    given = config.invocation_params.args
    if any(str(arg) == "--dist" or str(arg).startswith("--dist=") for arg in given):
        return
    config.option.dist = "loadgroup"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist, on the controller: tell each worker that checks are distributed by group."""
    node.workerinput["cutover_loadgroup"] = node.config.getoption("dist", "no") == "loadgroup"


def _select_and_describe(config: pytest.Config, items: list[pytest.Item]) -> None:
    checks = [item for item in items if is_check(item)]
    if not checks:
        return
    if PHASE_KEY not in config.stash:
        raise pytest.UsageError(
            "the checks need a phase: --phase preflight|cutover|acceptance|decommission"
        )
    phase = config.stash[PHASE_KEY]
    fleet = fleet_of(config)
    selected: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        if not is_check(item):
            selected.append(item)
            continue
        check_id = check_id_of(item)
        if check_id is None:
            raise pytest.UsageError(
                f"{item.nodeid}: a check's docstring must start with its ID (e.g. 'PORT01: ...')"
            )
        if not runs_in(check_id, phase):
            deselected.append(item)
            continue
        item.add_marker(getattr(pytest.mark, phase.value))
        item.add_marker(getattr(pytest.mark, area_of(check_id)))
        pair = pair_of(item) or fleet.pairs[0].name
        # `-n auto` (loadgroup, see group_by_area): one area of one pair on one worker,
        # so that area's session observations are made once, and areas run side by side;
        # the mail accounts in one share per worker.
        group = xdist_group_of(check_id, pair, fleet.several)
        user = _account_of(item) if area_of(check_id) == SHARED_AREA else None
        share = account_share(config, fleet.pair(pair), user) if user else None
        item.add_marker(pytest.mark.xdist_group(f"{group}.{share}" if share else group))
        item.user_properties[:0] = [
            ("check_id", check_id),
            ("phase", phase.value),
            ("migration", pair),
            *([("pair", pair)] if fleet.explicit else []),
            *param_properties(item),
        ]
        selected.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.getoption("phase"):
        # What collection built (items, inventory, modules) lives until the end: keep it out
        # of the garbage collector's full passes, which otherwise walk it again and again,
        # five times over at exit (pytest's unraisable-exception check).
        gc.freeze()


# --- xdist test ids ----------------------------------------------------------


class SerialNodeIds:
    """On the xdist controller: reports and JUnit names stay those of a serial run."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # xdist's loadgroup appends `@GROUP` to node ids (the workers need it).
        props = dict(report.user_properties)
        check_id, pair = props.get("check_id"), props.get("migration")
        if check_id is not None and pair is not None:
            for several in (False, True):
                group = "@" + xdist_group_of(str(check_id), str(pair), several)
                at = report.nodeid.rfind(group)
                if at >= 0 and _SHARE.fullmatch(report.nodeid[at + len(group) :]):
                    report.nodeid = report.nodeid[:at]
                    return
