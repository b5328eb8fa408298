"""The cutover pytest plugin: it only wires the run's three concerns together.

The suite is active when `--phase` is given: checks/config.py loads the
inventory and settles pairs, report paths and timeouts; checks/grouping.py
decides which checks are collected (the phases each `@check` declares, the
inventory's areas), marks them and groups them for xdist; checks/reporting.py
gives every testcase its JUnit properties, registers the verdict that ends
the terminal output (checks/verdict.py, which also leads every failure with
its check ID and target) and the HTML report (checks/report_html.py). JUnit
XML and the HTML report go to `reports/`.

An inventory with several pairs (a fleet) runs every check once per pair
(`--pair NAME` selects): the pair leads each test id, is the testcase's
`migration` and `pair` property, has its own baseline file, and its checks
run together (on one xdist worker with `--dist loadgroup`), so each pair's
session-scoped observations are made once.
"""

from __future__ import annotations

import pytest

from cutover.model.phases import Phase

# The plugin is loaded by every pytest run in this environment (`pytest
# --version`, the self-tests): the inventory models (pydantic), the probes
# and the baseline are imported only where a run with `--phase` needs them.
pytest_plugins = [
    "checks.config",  # options and the session fixtures
    "checks.reporting",  # JUnit properties, server text in reports
    "checks.grouping",  # collection, markers, xdist groups (after reporting: it imports it)
    "checks.selection",  # the front door: selection, never green on nothing
    "checks.machine",  # the machine outputs (JSON report)
    "checks.rollback",  # decommission: the rollback delta (after machine: it reuses its names)
]


@pytest.hookimpl(tryfirst=True)  # report paths must be set before junitxml/pytest-html read them
def pytest_configure(config: pytest.Config) -> None:
    phase_name = config.getoption("phase")
    if not phase_name:
        return
    phase = Phase(phase_name)
    # Imported here, once pytest has loaded them as plugins (pytest_plugins above).
    from checks.config import configure, set_report_paths
    from checks.grouping import SerialNodeIds, group_by_area
    from checks.observe import observers_for
    from checks.reporting import register_verdict
    from checks.selection import named_check_modules

    # The fixtures the checks judge: of the check modules named, else all.
    for name in ("checks.record", *observers_for(named_check_modules(config))):
        config.pluginmanager.import_plugin(name)
    selected = configure(config, phase)
    group_by_area(config)
    if not hasattr(config, "workerinput"):  # before the verdict: it hears the ids made serial
        config.pluginmanager.register(SerialNodeIds(), "cutover-serial-node-ids")
    register_verdict(config, phase, selected)
    set_report_paths(config)
    if not hasattr(config, "workerinput"):
        # Before junitxml and pytest-html read the paths: they write staged files,
        # which become the reports only when the checks ran to the end.
        from checks.selection import NothingChecked

        config.pluginmanager.register(NothingChecked(config), "cutover-nothing-checked")


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """At the end of a run with `--phase`: the exit's garbage collections stay cheap.

    pytest's unraisable-exception plugin collects garbage five times as it
    closes (to surface errors of late `__del__` methods); each full
    collection walks every object still alive, which for a 1,000-zone run
    (6,000 items, their reports and observations) was about 0.1 s each.
    What is alive now lives until the process exits: frozen (`gc.freeze`),
    those collections only walk what was made after.
    """
    if config.getoption("phase") and not hasattr(config, "workerinput"):
        import gc

        gc.freeze()
