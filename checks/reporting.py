"""What a run reports: JUnit properties, the verdict at the end, the HTML report's hooks.

Every testcase carries the check ID, phase, pair and its target's properties
(`param_properties`, set at collection) and what the check observed (`record`).
The terminal ends with the verdict (checks/verdict.py), the HTML report is
checks/report_html.py; server text is made safe before it reaches any of them.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator

import pytest

from checks.support import PHASE_KEY, check_id_of, expectations_for, fleet_of, pairs_of
from cutover.model.phases import Phase
from cutover.untrusted import shown, shown_lines


def register_verdict(config: pytest.Config, phase: Phase, selected: list[str]) -> None:
    """Failures led by check IDs (every process); the closing verdict (the controller)."""
    from checks.html_later import html_wanted
    from checks.report_html import HtmlReport
    from checks.verdict import CheckIdLeads, SessionErrorsFromWorker, VerdictSummary

    config.pluginmanager.register(CheckIdLeads(check_id_of), "cutover-check-id-leads")
    if hasattr(config, "workerinput"):
        config.pluginmanager.register(SessionErrorsFromWorker(config), "cutover-session-errors")
        return
    summary = VerdictSummary(config, phase, selected)
    config.pluginmanager.register(summary, "cutover-verdict-summary")
    if html_wanted(config):  # pytest-html loaded now, or at session end (checks/html_later.py)
        config.pluginmanager.register(HtmlReport(config, summary), "cutover-html-report")


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if not config.getoption("phase"):
        return None
    from cutover.model.endpoints import listed  # the models load only for a run with an inventory

    phase = config.stash[PHASE_KEY]
    pairs = pairs_of(config)
    lines = [f"cutover: phase {phase.value} — {expectations_for(config, pairs[0]).summary}"]
    if not fleet_of(config).several:
        inventory = pairs[0]
        return [
            *lines,
            f"cutover: inventory {inventory.source} ({inventory.name}: "
            f"old {listed(inventory.old)} -> new {listed(inventory.new)})",
        ]
    fleet = fleet_of(config)
    lines.append(
        f"cutover: inventory {fleet.source} ({fleet.name}: {len(pairs)} of "
        f"{len(fleet.pairs)} pairs)"
    )
    lines += [f"cutover: pair {p.name}: old {listed(p.old)} -> new {listed(p.new)}" for p in pairs]
    return lines


def param_properties(item: pytest.Item) -> Iterator[tuple[str, str]]:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return
    for value in callspec.params.values():
        describe = getattr(value, "junit_properties", None)
        if callable(describe):
            for name, text in describe():
                yield shown(name), shown_lines(text)


# A recorded fact longer than this is cut (with a marker): a flood, not an observation.
RECORDED_LIMIT = 64 * 1024


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Attach observed facts to this check's JUnit testcase: `record(identity="new")`."""

    def add(**facts: object) -> None:
        for name, value in facts.items():
            # Values are data other tools read (JSON of mailboxes): escaped, cut only when huge.
            request.node.user_properties.append(
                (shown(name), shown_lines(value, limit=RECORDED_LIMIT))
            )

    return add


# --- server text in reports --------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """No raw control character of a failure or skip message reaches a report or the terminal.

    The checks pass server text through `shown()` where they quote it; this
    is the net under them, applied to the exception before the report is
    made (its own newlines are kept).
    """
    exc = call.excinfo.value if call.excinfo is not None else None
    if isinstance(exc, pytest.fail.Exception | pytest.skip.Exception):
        exc.msg = shown_lines(exc.msg)
    elif isinstance(exc, Exception) and all(isinstance(a, str) for a in exc.args):
        exc.args = tuple(shown_lines(a) for a in exc.args)
    return (yield)


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_row(report: pytest.TestReport, cells: list[str]) -> None:
    """pytest-html puts the test id into its page as HTML: put it there as text.

    A test id can name a MySQL account or a mailbox, and a name such as
    `<img src=x onerror=...>` would otherwise run in the operator's browser.
    """
    for index, cell in enumerate(cells):
        if cell.startswith('<td class="col-testId">'):
            test_id = report.nodeid + ("" if report.when == "call" else f"::{report.when}")
            cells[index] = f'<td class="col-testId">{html.escape(test_id)}</td>'
