"""The verdict a run ends with: every failure led by its check ID, the root causes last.

Three things, each in one place:

- `CheckIdLeads` rewrites each failure's report once, where pytest makes it:
  its first line starts with the check ID and the target (`PORT01
  imaps-993-new: ...`) in the terminal, the JUnit `message` and the HTML, and
  an exception chain keeps only its last exception (the one the check
  raised, which already says what the probe found), so no failure reads
  "During handling of the above exception, another exception occurred".
- `VerdictSummary` prints, after pytest's own summary, the services x IPs
  matrix, one line per area (`not checked` when -k/-m deselected its checks
  or -x stopped the run before them; setup errors counted as errors, not
  failures) and the root-cause block: failures grouped by what they share
  (an address that answered nothing, a missing baseline, one account
  rejected everywhere), each with the number of checks it failed (the
  grouping itself is checks/causes.py).
- `session_error` records a failure that belongs to no check (the baseline
  could not be written): its own line, a JUnit suite property and a
  non-zero exit, never pinned on whichever check ran last.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter, defaultdict
from collections.abc import Generator
from typing import Any

import pytest
from _pytest._code.code import ExceptionChainRepr, ReprEntry, ReprFileLocation

from checks.causes import Result, area_verdict, root_causes
from cutover.model.catalogue import area_of
from cutover.model.phases import CHECK_ID, Phase

SESSION_ERRORS_KEY = pytest.StashKey[list[str]]()
_WORKER_OUTPUT = "cutover_session_errors"


def headline(check_id: str, target: str, message: str) -> str:
    """A failure's message led by its check ID and target, said once.

    >>> headline("PORT01", "imaps-993-new", "Failed: imaps 198.51.100.20:993: no answer")
    'PORT01 imaps-993-new: imaps 198.51.100.20:993: no answer'
    >>> headline("DNS03", "", "DNS03: TTL 3600 on ns1")
    'DNS03: TTL 3600 on ns1'
    """
    text = message.removeprefix("Failed: ")
    lead = f"{check_id} {target}" if target else check_id
    if text.startswith(lead + ":"):
        return text
    if text.startswith(check_id + ":"):
        text = text[len(check_id) + 1 :].lstrip()
    return f"{lead}: {text}"


def target_of(item: pytest.Item) -> str:
    """What a check looked at, as its test id says it (`imaps-993-new`, `web07-alice@x`)."""
    callspec = getattr(item, "callspec", None)
    return str(callspec.id) if callspec is not None else ""


class CheckIdLeads:
    """Registered on every process (xdist workers make the reports)."""

    def __init__(self, check_id_of: Any) -> None:
        self.check_id_of = check_id_of

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        check_id = self.check_id_of(item)
        if report.failed and check_id is not None:
            lead_with_check_id(report, check_id, target_of(item))
        return report


def lead_with_check_id(report: pytest.TestReport, check_id: str, target: str) -> None:
    """The report's first line (terminal, JUnit, HTML) starts with the ID and the target."""
    longrepr = report.longrepr
    domain = report.location[2]
    if not domain.startswith(check_id):  # the terminal's `____ PORT01 test_x[...] ____` header
        report.location = (report.location[0], report.location[1], f"{check_id} {domain}")
    if isinstance(longrepr, str):
        report.longrepr = headline(check_id, target, longrepr)
        return
    if not isinstance(longrepr, ExceptionChainRepr):
        return
    reprtraceback, reprcrash, _ = longrepr.chain[-1]
    if reprcrash is None:
        return
    message = headline(check_id, target, reprcrash.message)
    crash = ReprFileLocation(reprcrash.path, reprcrash.lineno, message)
    entries = reprtraceback.reprentries
    lead = ReprEntry(message.split("\n"), None, None, None, "value")
    if entries and isinstance(entries[-1], ReprEntry) and entries[-1].style == "value":
        # pytest.fail(..., pytrace=False): the body is the message itself.
        reprtraceback.reprentries = [*entries[:-1], lead]
    else:  # a traceback (an unexpected exception): the headline first, then the traceback
        reprtraceback.reprentries = [lead, *entries]
    short = ExceptionChainRepr([(reprtraceback, crash, None)])
    for name, content, sep in longrepr.sections:
        short.addsection(name, content, sep)
    report.longrepr = short


def session_error(config: pytest.Config, message: str) -> None:
    """A failure of the run itself, not of a check: reported on its own line, exit non-zero."""
    config.stash.setdefault(SESSION_ERRORS_KEY, []).append(message)


def session_errors(config: pytest.Config) -> list[str]:
    return config.stash.get(SESSION_ERRORS_KEY, [])


class SessionErrorsFromWorker:
    """On an xdist worker: hand the worker's session errors to the controller."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(trylast=True)  # after the session fixtures were torn down
    def pytest_sessionfinish(self) -> None:
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[_WORKER_OUTPUT] = list(session_errors(self.config))


# --- the closing verdict ----------------------------------------------------

_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}
_MARK = {"passed": "ok", "skipped": "skip", "failed": "FAIL", "error": "ERROR"}
_OUTCOMES = ("passed", "failed", "error", "skipped")
_COUNTED = {"passed": "passed", "failed": "failed", "error": "errors", "skipped": "skipped"}
_SIDES = ("old", "new")
_JUNIT_WRAPPED = re.compile(r'failed on (?:setup|teardown) with "(?P<message>.*)"', re.S)


class VerdictSummary:
    """Collects each check's outcome (on the xdist controller too) for the closing verdict.

    Registered on the controller only (never on an xdist worker).
    """

    def __init__(self, config: pytest.Config, phase: Phase, pairs: list[str] | None = None) -> None:
        self.config = config
        self.phase = phase
        self.pairs = pairs or []
        self.results: list[Result] = []
        # The phase's checks that were collected: (pair, check ID), deselected (-k, -m) or
        # selected. Unknown on an xdist controller (the workers collect): only results count.
        self.deselected: list[tuple[str, str]] = []
        self.selected: list[tuple[str, str]] = []

    @pytest.hookimpl(trylast=True)
    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected += self._planned(items)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.selected = self._planned(session.items)

    def _planned(self, items: list[pytest.Item]) -> list[tuple[str, str]]:
        """The phase's checks among `items` (the phase deselects the other phases' first)."""
        planned = []
        for item in items:
            props = {str(k): str(v) for k, v in item.user_properties}
            if props.get("phase") == self.phase.value and "check_id" in props:
                planned.append((props.get("pair", ""), props["check_id"]))
        return planned

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and not report.passed):
            props = {str(k): str(v) for k, v in report.user_properties}
            if "check_id" in props:
                crash = getattr(report.longrepr, "reprcrash", None)
                message = crash.message if crash is not None else str(report.longrepr or "")
                # A check whose setup failed could not run: an error, as pytest counts it.
                outcome = "error" if report.failed and report.when != "call" else report.outcome
                self.results.append(Result(props, outcome, message if report.failed else ""))

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist, on the controller: a worker's session errors become the run's."""
        for message in getattr(node, "workeroutput", {}).get(_WORKER_OUTPUT, []):
            if message not in session_errors(self.config):
                session_error(self.config, message)

    @pytest.hookimpl(wrapper=True, tryfirst=True)  # around the terminal's: print after its summary
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, object, object]:
        errors = session_errors(self.config)
        self._junit_errors_lead_with_check_id()
        if errors:
            self._record_in_junit(errors)
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        result = yield
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and (self.results or errors):
            for line, markup in self.verdict_lines():
                if line.startswith("== ") and line.endswith(" =="):
                    reporter.write_sep("=", line[3:-3], **markup)
                else:
                    reporter.write_line(line, **markup)
        return result

    def _junit_errors_lead_with_check_id(self) -> None:
        """pytest's JUnit writer wraps an error's message: `failed on setup with "..."`.

        A check whose observation failed in a fixture is still that check's
        failure: its `<error message>` starts with the check ID like any
        other. (Before pytest writes the file: its testcases are built.)
        """
        from _pytest.junitxml import xml_key

        xml = self.config.stash.get(xml_key, None)
        for reporter in getattr(xml, "node_reporters_ordered", []):
            for element in reporter.to_xml().iter("error"):
                wrapped = _JUNIT_WRAPPED.fullmatch(element.get("message", ""))
                if wrapped and CHECK_ID.match(wrapped.group("message")):
                    element.set("message", wrapped.group("message"))

    def _record_in_junit(self, errors: list[str]) -> None:
        from _pytest.junitxml import xml_key

        xml = self.config.stash.get(xml_key, None)
        if xml is not None:
            for index, message in enumerate(errors):
                xml.add_global_property(f"session_error_{index + 1}", message)

    def verdict_lines(self) -> list[tuple[str, dict[str, bool]]]:
        """What the terminal ends with: the overview, then the root causes (with markup)."""
        bold: dict[str, bool] = {"bold": True}
        matrix = any("service" in r.props and "side" in r.props for r in self.results)
        title = "services x IPs" if matrix else "areas"
        lines: list[tuple[str, dict[str, bool]]] = [
            (f"== cutover {self.phase.value}: {title} ==", bold)
        ]
        lines += [
            (line, bold if line.startswith("pair ") else {}) for line in self.overview_lines()
        ]
        causes = self.cause_lines()
        if causes:
            lines.append((f"== cutover {self.phase.value}: root causes ==", bold))
            lines += [(line, {"red": True}) for line in causes]
        return lines

    def overview_lines(self) -> list[str]:
        """The services x IPs matrix and one line per area (one block per pair in a fleet)."""
        by_pair: dict[str, list[Result]] = defaultdict(list)
        for result in self.results:
            by_pair[result.props.get("pair", "")].append(result)
        for pair, _ in self.selected + self.deselected:
            by_pair.setdefault(pair, [])
        if list(by_pair) in ([""], []):
            return self.matrix_lines() + self.area_lines() + self.not_run_lines()
        lines = []
        order = {name: index for index, name in enumerate(self.pairs)}
        for pair in sorted(by_pair, key=lambda name: order.get(name, len(order))):
            results = by_pair[pair]
            counts: dict[str, int] = defaultdict(int)
            for result in results:
                counts[result.outcome] += 1
            lines.append(f"pair {pair}: {area_verdict(counts) if results else 'not checked'}")
            lines += [
                f"  {line}" for line in self.matrix_lines(results) + self.area_lines(results, pair)
            ]
        return lines + self.not_run_lines()

    def _not_run(self, pair: str | None = None) -> tuple[Counter[str], Counter[str]]:
        """Per area: the checks deselected, and the checks selected that never ran (-x)."""
        deselected = Counter(area_of(c) for p, c in self.deselected if pair in (None, p))
        selected = Counter(area_of(c) for p, c in self.selected if pair in (None, p))
        results = (
            self.results
            if pair is None
            else [r for r in self.results if r.props.get("pair", "") == pair]
        )
        ran = Counter(area_of(r.props["check_id"]) for r in results)
        return deselected, selected - ran

    def _why_deselected(self) -> str:
        from checks.selection import selection_given

        given = selection_given(self.config)
        return f"deselected by {given}" if given else "deselected"

    def _why_not_run(self) -> str:
        maxfail = self.config.option.maxfail
        if maxfail:
            stopped_by = "-x" if maxfail == 1 else f"--maxfail {maxfail}"
            return f"not run ({stopped_by} stopped the run)"
        return "not run (the run stopped early)"

    def not_run_lines(self) -> list[str]:
        """How many of the phase's checks were not run, and why: a partial run says so."""
        deselected, unrun = self._not_run()
        missing = deselected.total() + unrun.total()
        if not missing:
            return []
        planned = len(self.selected) + len(self.deselected)
        why = [
            f"{count} {text}"
            for count, text in (
                (deselected.total(), self._why_deselected()),
                (unrun.total(), self._why_not_run()),
            )
            if count
        ]
        return [
            f"{missing} of {planned} checks of the {self.phase.value} phase not checked: "
            + "; ".join(why)
        ]

    def cause_lines(self) -> list[str]:
        """Session errors, then the failures grouped by what they share."""
        errors = [f"session error: {message}" for message in session_errors(self.config)]
        return errors + root_causes(self.results)

    def matrix_lines(self, results: list[Result] | None = None) -> list[str]:
        return matrix_lines(self.results if results is None else results)

    def area_lines(self, results: list[Result] | None = None, pair: str | None = None) -> list[str]:
        """One line per area: its verdict and counts; an area none of whose checks ran is
        `not checked`, saying why (deselected by -k/-m, or not run after -x stopped the run)."""
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        failing: dict[str, set[str]] = defaultdict(set)
        for result in self.results if results is None else results:
            area = area_of(result.props["check_id"])
            counts[area][result.outcome] += 1
            if result.outcome in ("failed", "error"):
                failing[area].add(result.props["check_id"])
        deselected, unrun = self._not_run(pair)
        lines = []
        for area in sorted(set(counts) | set(deselected) | set(unrun)):
            missing = [
                f"{count} {text}"
                for count, text in (
                    (deselected[area], self._why_deselected()),
                    (unrun[area], self._why_not_run()),
                )
                if count
            ]
            if area not in counts:
                lines.append(f"{area:<8}not checked: {'; '.join(missing)}")
                continue
            detail = ", ".join(
                f"{counts[area][o]} {_COUNTED[o]}" for o in _OUTCOMES if counts[area][o]
            )
            ids = f" [{', '.join(sorted(failing[area]))}]" if failing[area] else ""
            also = f" ({'; '.join(missing)})" if missing else ""
            lines.append(f"{area:<8}{area_verdict(counts[area]):<8}{detail}{ids}{also}")
        return lines


def matrix_lines(results: list[Result]) -> list[str]:
    """The services x IPs matrix: one row per service, one column per address of each side.

    A side with one address is one column (`old IP`); a dual-stack side has one
    per address, named by family (`old v4`, `old v6`; a second address of one
    family `old v6-2`, in address order). A cell is its endpoint's worst
    outcome, `-` where nothing ran; columns are in the same order every run
    (old, new; v4, v6; by address), whatever order the results came in.

    >>> ok = {"service": "imaps-993", "side": "old", "address": "198.51.100.10"}
    >>> matrix_lines([Result(ok, "passed"), Result(ok | {"side": "new"}, "failed")])
    ['service           old IP  new IP  ', 'imaps-993         ok      FAIL    ']
    >>> v6 = ok | {"address": "2001:db8::10", "family": "v6"}
    >>> matrix_lines([Result(ok | {"family": "v4"}, "passed"), Result(v6, "failed")])[0]
    'service           old v4  old v6  new IP  '
    """
    cells: dict[tuple[str, tuple[str, str]], str] = {}
    families: dict[tuple[str, str], str] = {}  # (side, address) -> family, where tagged
    for result in results:
        props = result.props
        if "service" in props and props.get("side") in _SIDES:
            # Untagged: the side's only address, one column whatever it is (as always).
            tagged = "family" in props
            column = (props["side"], props.get("address", "") if tagged else "")
            if tagged:
                families[column] = props["family"]
            key = (props["service"], column)
            if _RANK[result.outcome] >= _RANK[cells.get(key, "passed")]:
                cells[key] = result.outcome
    if not cells:
        return []
    labels = _column_labels({column for _, column in cells}, families)
    widths = {column: max(8, len(label) + 2) for column, label in labels.items()}
    lines = [f"{'service':<18}" + "".join(f"{labels[c]:<{widths[c]}}" for c in labels)]
    for service in dict.fromkeys(s for s, _ in cells):
        marks = [(_MARK.get(cells.get((service, c), ""), "-"), widths[c]) for c in labels]
        lines.append(f"{service:<18}" + "".join(f"{mark:<{width}}" for mark, width in marks))
    return lines


def _column_labels(
    columns: set[tuple[str, str]], families: dict[tuple[str, str], str]
) -> dict[tuple[str, str], str]:
    """Each (side, address) column's header, old before new, v4 before v6 within a side.

    A side none of whose results is tagged with a family (one address) is `old IP`;
    each side always has a column, `-` throughout where none of its checks ran.
    """
    labels: dict[tuple[str, str], str] = {}
    for side in _SIDES:
        mine = [c for c in columns if c[0] == side and c in families]
        if not mine or (side, "") in columns:
            labels[(side, "")] = f"{side} IP"
        taken: Counter[str] = Counter()
        for column in sorted(mine, key=lambda c: (families[c], _address_order(c[1]))):
            name = families[column]
            taken[name] += 1
            labels[column] = f"{side} {name}" + (f"-{taken[name]}" if taken[name] > 1 else "")
    return labels


def _address_order(address: str) -> tuple[int, str]:
    try:
        return int(ipaddress.ip_address(address)), address
    except ValueError:
        return -1, address
