"""The baseline service: observations record the old server, checks only judge.

Preflight is the last time the old server answers on its own address, so a
preflight run records everything later phases compare against: mailboxes,
grants, vhost answers, zone TTLs... An observation fixture (checks/observe/)
writes what it saw through `Records`, and says when it has recorded all of
one kind (`records.recorded("imap")`). A check function never writes.

Whatever `-k`/`-m` selected, the baseline a preflight leaves is whole: at
the end of the run every registered recorder whose kind no observation of
this run recorded runs now, for every pair whose inventory configures its
sections. So a `-k imap` preflight followed by a full acceptance judges as a
full preflight would have. What cannot be recorded then (the old server does
not answer) is listed in a closing "cutover baseline: incomplete" section; it
is not the narrowed run's verdict, and later phases name each missing record.

Later phases read through `records.require(section, key)`: the recorded
value, or one line naming the baseline file, the section and the key, and
saying to run preflight first.

>>> @recorder("example", sections=("mail",))          # doctest: +SKIP
... def record_example(ctx: RecordContext) -> None:
...     ctx.records.write("example", "key", observe_something(ctx.inventory))
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from checks.support import PAIRS_KEY, PHASE_KEY, baseline_path, expectations_for, fleet_of
from cutover.model.phases import PhaseExpectations, expectations
from cutover.probes.connect import ProbeError

if TYPE_CHECKING:
    from cutover.model.baseline import Baseline
    from cutover.model.inventory import Inventory

__all__ = ["RecordContext", "RecordMissing", "Records", "recorder", "records"]

# Which run wrote a "recorded" mark: a mark from an earlier run does not count.
_RUN_KEY = pytest.StashKey[str]()
_WORKER_INPUT = "cutover_record_run"
_MARKS = "recorded"  # the baseline section of the marks: kind -> run token


class RecordMissing(ProbeError):
    """A later phase needs a record the baseline does not hold."""


@dataclass(frozen=True)
class RecordContext:
    """What a recorder gets: one pair, the phase's rules, and where to write."""

    config: pytest.Config
    inventory: Inventory
    expect: PhaseExpectations
    records: Records


RecordFn = Callable[[RecordContext], None]


@dataclass(frozen=True)
class _Recorder:
    kind: str
    sections: tuple[str, ...]  # inventory sections; none: every inventory
    record: RecordFn


_RECORDERS: dict[str, _Recorder] = {}


def recorder(kind: str, *, sections: tuple[str, ...] = ()) -> Callable[[RecordFn], RecordFn]:
    """Register `fn(ctx)`: records everything of `kind` the old server shows.

    `sections` are the inventory sections that configure it (`("mail",)`);
    a pair without any of them has nothing of this kind to record.
    """

    def register(fn: RecordFn) -> RecordFn:
        if kind in _RECORDERS and _RECORDERS[kind].record is not fn:
            raise ValueError(f"two recorders for {kind!r}")
        _RECORDERS[kind] = _Recorder(kind, sections, fn)
        return fn

    return register


class Records:
    """One pair's baseline as the observations use it (the session fixture `records`)."""

    def __init__(self, baseline: Baseline, expect: PhaseExpectations, run: str) -> None:
        self.baseline = baseline
        self.recording = expect.records_baseline
        self._run = run

    @property
    def path(self) -> Any:
        return self.baseline.path

    def write(self, section: str, key: str, value: Any, *, keep_existing: bool = False) -> Any:
        return self.baseline.record(section, key, value, keep_existing=keep_existing)

    def write_many(
        self, section: str, values: Mapping[str, Any], *, keep_existing: bool = False
    ) -> None:
        self.baseline.record_many(section, dict(values), keep_existing=keep_existing)

    def recorded(self, kind: str) -> None:
        """This run recorded all of `kind`: the end-of-run pass need not."""
        self.baseline.record(_MARKS, kind, self._run)

    def is_recorded(self, kind: str) -> bool:
        return bool(self.baseline.get(_MARKS, kind) == self._run)

    def get(self, section: str, key: str, default: Any = None) -> Any:
        return self.baseline.get(section, key, default)

    def section(self, name: str) -> dict[str, Any]:
        return self.baseline.section(name)

    def require(self, section: str, key: str) -> Any:
        value = self.baseline.get(section, key)
        if value is None:
            raise RecordMissing(
                f"the baseline {self.baseline.path} holds no {section} record {key!r} "
                "of the old server: run preflight first (it records them)"
            )
        return value


def _run_token(config: pytest.Config) -> str:
    if _RUN_KEY not in config.stash:
        workerinput = getattr(config, "workerinput", None)
        token = workerinput.get(_WORKER_INPUT) if workerinput else None
        config.stash[_RUN_KEY] = token or secrets.token_hex(8)
    return config.stash[_RUN_KEY]


def pytest_configure(config: pytest.Config) -> None:
    _run_token(config)
    if not hasattr(config, "workerinput") and not config.option.collectonly:
        config.pluginmanager.register(_Completion(config), "cutover-baseline-completion")


def pytest_configure_node(node: Any) -> None:
    """xdist, on the controller: every worker marks its records with the controller's run."""
    node.workerinput[_WORKER_INPUT] = _run_token(node.config)


@pytest.fixture(scope="session")
def records(
    pytestconfig: pytest.Config, baseline: Baseline, expect: PhaseExpectations
) -> Iterator[Records]:
    """The baseline service for this pair: observations write, later phases read."""
    yield Records(baseline, expect, _run_token(pytestconfig))


def _configures(inventory: Inventory, sections: tuple[str, ...]) -> bool:
    return not sections or any(inventory.configures(section) for section in sections)


def complete_baselines(config: pytest.Config) -> list[str]:
    """Run every recorder no observation of this run covered; the problems, one line each."""
    from checks.observe import OBSERVERS  # every module registers its recorders on import
    from cutover.model.baseline import Baseline, BaselineError

    for name in OBSERVERS:
        config.pluginmanager.import_plugin(name)
    fleet = fleet_of(config)
    problems = []
    for pair_name in config.stash[PAIRS_KEY]:
        inventory = fleet.pair(pair_name)
        store = Baseline(baseline_path(config, inventory.name))
        expect = expectations_for(config, inventory)
        records = Records(store, expect, _run_token(config))
        context = RecordContext(config, inventory, expect, records)
        # Asked once, before any recorder marks its kind: each mark would make the
        # next question write the whole (1,000-zone) baseline to ask it.
        done = {kind for kind in _RECORDERS if records.is_recorded(kind)}
        for kind, entry in sorted(_RECORDERS.items()):
            if kind in done or not _configures(inventory, entry.sections):
                continue
            try:
                entry.record(context)
                records.recorded(kind)
            except ProbeError as exc:
                where = f"pair {inventory.name}: " if fleet.several else ""
                problems.append(f"{where}the baseline lacks {kind}: {exc}")
        try:
            store.flush()
        except BaselineError as exc:
            problems.append(f"the baseline was not saved: {exc}")
    return problems


class _Completion:
    """On the controller: once the checks ran, a preflight's baseline is made whole."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.judged = False  # a check of checks/ ran (not skipped): this run is a preflight
        self.problems: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" and not report.skipped:
            self.judged = self.judged or any(n == "check_id" for n, _ in report.user_properties)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Iterator[None]:
        # After the loop (every session fixture torn down, every worker done), before
        # pytest_sessionfinish: the verdict and the reports see what this pass found.
        result = yield
        config = self.config
        if (
            self.judged
            and not session.shouldfail
            and not session.shouldstop
            and PHASE_KEY in config.stash
            and expectations(config.stash[PHASE_KEY]).records_baseline
        ):
            self.problems = complete_baselines(config)
        return result

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """What the baseline lacks: not this run's verdict, but later phases will miss it."""
        if not self.problems:
            return
        terminalreporter.write_sep("=", "cutover baseline: incomplete", yellow=True)
        for problem in self.problems:
            terminalreporter.write_line(problem, yellow=True)
        terminalreporter.write_line(
            "later phases name each record they miss: run preflight again while the old "
            "server answers to complete it"
        )
