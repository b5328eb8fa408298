"""pytest-html, loaded only when the HTML report is written: at the end of the session.

pytest-html imports jinja2 and builds its page template when pytest starts,
in every run (`pytest --version` included), although most runs write the
page once, at the end. The project's pytest.ini replaces it with this plugin
(`-p no:html -p checks.html_later` in addopts): the same options (`--html`,
`--self-contained-html`, `--css` and pytest-html's ini keys), the same
`extras` on each test report, and at session end pytest-html's own report
class, given the session's reports in the order they came, writes the page
it would have written. A run with the `generate_report_on_test` ini option
writes the page after every test: that run loads pytest-html at once.

`-p no:html` typed by the user (or in PYTEST_ADDOPTS) still means no HTML
report. Without the project's pytest.ini (plain `pytest` elsewhere)
pytest-html's own entry point loads it as before.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

# pytest-html 4's ini keys: name, type, default, help.
INI: list[tuple[str, str | None, object, str]] = [
    ("render_collapsed", "string", "passed", "row(s) to render collapsed on open."),
    (
        "max_asset_filename_length",
        None,
        255,
        "set the maximum filename length for assets attached to the html report.",
    ),
    (
        "environment_table_redact_list",
        "linelist",
        [],
        "a list of regexes corresponding to environment table variables whose values "
        "should be redacted from the report",
    ),
    ("initial_sort", "string", "result", "column to initially sort on."),
    (
        "generate_report_on_test",
        "bool",
        False,
        "the HTML report will be generated after each test instead of at the end of the run.",
    ),
]


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    config = pluginmanager.get_plugin("pytestconfig")
    if pluginmanager.has_plugin("html") or (config is not None and loaded_by_user(config)):
        return  # pytest-html itself is loaded (`-p html`): its options
    # The same options and ini keys, with the same defaults, as pytest-html 4.
    group = parser.getgroup("terminal reporting")
    group.addoption(
        "--html",
        action="store",
        dest="htmlpath",
        metavar="path",
        default=None,
        help="create html report file at given path.",
    )
    group.addoption(
        "--self-contained-html",
        action="store_true",
        help="create a self-contained html file containing all necessary styles, scripts, "
        "and images.",
    )
    group.addoption(
        "--css",
        action="append",
        metavar="path",
        default=[],
        help="append given css file content to report style file.",
    )
    for name, kind, default, text in INI:
        parser.addini(name, text, type=kind, default=default)  # type: ignore[arg-type]


def plugin_args(config: pytest.Config) -> list[str]:
    """The user's `-p NAME` values (command line, PYTEST_ADDOPTS): not the ini's addopts."""
    words = [*shlex.split(os.environ.get("PYTEST_ADDOPTS", "")), *config.invocation_params.args]
    return [
        (word[2:] if word != "-p" else following).strip()
        for word, following in zip(words, [*words[1:], ""], strict=True)
        if word.startswith("-p")
    ]


def disabled_by_user(config: pytest.Config) -> bool:
    """`-p no:html` (or `no:pytest_html`) typed by the user: no HTML report."""
    return any(value in ("no:html", "no:pytest_html") for value in plugin_args(config))


def loaded_by_user(config: pytest.Config) -> bool:
    """`-p html` typed by the user: pytest-html itself, loaded now (this plugin steps aside)."""
    return any(value in ("html", "pytest_html.plugin") for value in plugin_args(config))


def html_wanted(config: pytest.Config) -> bool:
    """Whether the run has an HTML report (pytest-html loaded now, or at session end)."""
    if config.pluginmanager.hasplugin("html"):
        return True
    return config.pluginmanager.hasplugin(__name__) and not disabled_by_user(config)


@pytest.hookimpl(trylast=True)  # after the cutover plugin has set the report paths
def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("html") or not hasattr(config.option, "htmlpath"):
        return
    if disabled_by_user(config):
        config.option.htmlpath = None
        return
    if not config.option.htmlpath:
        return
    css = [Path(os.path.expandvars(path)).expanduser() for path in config.getoption("css")]
    missing = [str(path) for path in css if not path.exists()]
    if missing:  # pytest-html's own message, at the same moment
        raise OSError(f"Missing CSS file{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    if hasattr(config, "workerinput"):  # xdist: the controller writes the page
        return
    if config.getini("generate_report_on_test"):  # a page after every test: needed at once
        config.pluginmanager.register(build_report(config, css))
        return
    config.pluginmanager.register(HtmlLater(config, css), "cutover-html-later")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """pytest-html's `extras` on the call report (every process, as pytest-html does)."""
    report = yield
    if report.when == "call" and not item.config.pluginmanager.hasplugin("html"):
        from pytest_html.fixtures import extras_stash_key  # no jinja2 in this module

        deprecated = getattr(report, "extra", [])
        report.extras = (  # type: ignore[attr-defined]
            item.config.stash.get(extras_stash_key, []) + getattr(report, "extras", []) + deprecated
        )
    return report


def build_report(config: pytest.Config, css: list[Path]) -> Any:
    """pytest-html's report object, made as its own `pytest_configure` makes it."""
    from pytest_html import hooks
    from pytest_html.report import Report
    from pytest_html.report_data import ReportData
    from pytest_html.selfcontained_report import SelfContainedReport
    from pytest_html.util import _process_css, _read_template

    declared = getattr(config.pluginmanager.hook, "pytest_html_report_title", None)
    if declared is None or not declared.has_spec():
        config.pluginmanager.add_hookspecs(hooks)
    resources = Path(hooks.__file__).parent / "resources"
    template = _read_template([resources])
    style = _process_css(resources / "style.css", css)
    kind = SelfContainedReport if config.getoption("self_contained_html") else Report
    return kind(config.option.htmlpath, config, ReportData(config), template, style)


class HtmlLater:
    """Keeps what pytest-html would have seen; hands it to pytest-html at session end."""

    def __init__(self, config: pytest.Config, css: list[Path]) -> None:
        self.config = config
        self.css = css
        self.started = time.time()
        self.heard: list[tuple[str, Any]] = []

    # pytest-html's own hooks run last (trylast): so do these, and see the same reports.
    @pytest.hookimpl(trylast=True)
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:  # the only ones pytest-html shows
            self.heard.append(("pytest_collectreport", report))

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.heard.append(("collected", len(session.items)))

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.heard.append(("pytest_runtest_logreport", report))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        report = build_report(self.config, self.css)
        report._suite_start_time = self.started
        # Registered now: it prints its "Generated html report" line, and the
        # cutover plugin finds it (a report not published is not announced).
        self.config.pluginmanager.register(report)
        report.pytest_sessionstart(session)
        for name, value in self.heard:
            if name == "collected":
                report._report.collected_items = value
            else:
                getattr(report, name)(value)
        self.heard.clear()
        report.pytest_sessionfinish(session)
