"""The HTML report for people: the verdict on top, a check-ID column, the evidence, the environment.

pytest-html builds the page; these hooks add what an operator reads first:
the phase, the inventory and its pairs, the services x IPs matrix, the area
lines and the root causes (the same lines the terminal ends with), a
`Check` column, each failure's recorded observations under its log, and in
the environment table the cutover version and the greetings the servers
gave. Everything added is escaped here (`html.escape`); text that came from
a server goes through `cutover.untrusted.shown()` first.
"""

from __future__ import annotations

from html import escape
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import pytest

from checks.support import fleet_of, pairs_of
from checks.verdict import VerdictSummary
from cutover.untrusted import shown

# Properties every testcase carries: the row already says them.
_FRAMING = {"check_id", "phase", "migration", "pair"}


def cutover_version() -> str:
    try:
        return version("cutover")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _pre(lines: list[str], kind: str = "cutover-lines") -> str:
    return f"<pre class='{kind}'>" + escape("\n".join(lines)) + "</pre>"


# The verdict is what people read first: the page's own parts keep their look,
# but the environment table moves below the verdict, above the results.
_STYLE = """<style>
body { display: flex; flex-direction: column; align-items: stretch; }
#environment-header, #environment { order: 1; }
#results-table, footer { order: 2; }
#environment { align-self: flex-start; }
.cutover-verdict h2, .cutover-verdict h3 { color: #111; }
.cutover-verdict pre { color: #111; background: #f6f6f6; padding: 6px 10px; }
.cutover-verdict pre.cutover-causes { color: #a40000; font-weight: bold; }
</style>"""


class HtmlReport:
    """Registered on the xdist controller (or the only process) when pytest-html is active."""

    def __init__(self, config: pytest.Config, summary: VerdictSummary) -> None:
        self.config = config
        self.summary = summary

    def _environment(self) -> dict[str, Any] | None:
        try:
            from pytest_metadata.plugin import metadata_key
        except ImportError:  # pragma: no cover - pytest-html depends on pytest-metadata
            return None
        return self.config.stash.get(metadata_key, None)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self) -> None:
        environment = self._environment()
        if environment is None:
            return
        # Values are shown as HTML by pytest-html's page, keys as text.
        environment["cutover"] = escape(cutover_version())
        environment["cutover phase"] = escape(self.summary.phase.value)
        environment["cutover inventory"] = escape(str(fleet_of(self.config).source))

    @pytest.hookimpl(tryfirst=True)  # before pytest-html writes the page (trylast)
    def pytest_sessionfinish(self) -> None:
        environment = self._environment()
        if environment is None:
            return
        greetings = {}
        for result in self.summary.results:
            props = result.props
            if props.get("check_id") != "PORT01" or "greeting" not in props:
                continue
            pair = f"{props['pair']} " if "pair" in props else ""
            where = f"{pair}{props.get('service', '?')} {props.get('side', '?')} IP"
            if "family" in props:  # each address of a dual-stack side has its own greeting
                where += f" ({props['family']}, {props.get('address', '?')})"
            # A dict is shown as a list of `key: value` lines, both as HTML.
            greetings[escape(where)] = escape(shown(props["greeting"]))
        if greetings:
            environment["server greetings (PORT01)"] = greetings

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_report_title(self, report: Any) -> None:
        report.title = f"cutover {self.summary.phase.value}: {fleet_of(self.config).name}"

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: Any
    ) -> None:
        fleet = fleet_of(self.config)
        pairs = [
            f"{pair.name}: old {pair.old.address} -> new {pair.new.address}"
            for pair in pairs_of(self.config)
        ]
        parts = [
            _STYLE,
            "<section class='cutover-verdict'>",
            f"<h2>Verdict: phase {escape(self.summary.phase.value)}, inventory "
            f"{escape(fleet.name)}</h2>",
            f"<p>Inventory file: <code>{escape(str(fleet.source))}</code></p>",
            *(f"<p>{escape(line)}</p>" for line in self._selection_lines()),
            "<h3>Pairs</h3>",
            _pre(pairs),
            "<h3>Services x IPs, and one line per area</h3>",
            _pre(self.summary.overview_lines()),
        ]
        causes = self.summary.cause_lines()
        if causes:
            parts += ["<h3>Root causes</h3>", _pre(causes, "cutover-causes")]
        parts.append("</section>")
        prefix.extend(parts)

    def _selection_lines(self) -> list[str]:
        """`selection: -k 'VFIO or VM' — N checks of the phase not selected`, when not all ran."""
        guard = self.config.pluginmanager.get_plugin("cutover-nothing-checked")
        line = guard.selection_line() if guard is not None else None
        return [line] if line else []

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells.insert(1, '<th class="sortable" data-column-type="checkId">Check</th>')

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        check_id = dict(report.user_properties).get("check_id", "")
        cells.insert(1, f'<td class="col-checkId">{escape(str(check_id))}</td>')

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_html(self, report: pytest.TestReport, data: list[str]) -> None:
        if not report.failed:
            return
        evidence = [
            f"{name}: {shown(str(value))}"
            for name, value in report.user_properties
            if name not in _FRAMING
        ]
        if evidence:
            data.append("\n" + escape("evidence recorded:\n  " + "\n  ".join(evidence)) + "\n")
