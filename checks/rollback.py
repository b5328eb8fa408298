"""The rollback delta of a decommission run: `reports/rollback-delta.json` and a terminal section.

What a rollback to the old server would have to carry back (cutover.compare.rollback):
read from the NEW server against what preflight recorded in the baseline, once
the checks ran, on the controller. Read-only: EXAMINE and BODY.PEEK over IMAP,
SELECTs in one consistent snapshot over MySQL. Not a check: nothing in it
fails the run; what cannot be read is listed as "not known".
Semantics: docs/semantics.md, "Decommission"; the file: docs/json-report.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from checks.support import PAIRS_KEY, PHASE_KEY, baseline_path, expectations_for, fleet_of

if TYPE_CHECKING:
    from checks.targets.mail import ImapTarget
    from cutover.compare.rollback import MailboxDelta, PairDelta
    from cutover.model.inventory import Inventory
    from cutover.model.settings import ProbeSettings

__all__ = ["observe_delta"]

REPORT = "rollback-delta"
SECTION = "cutover decommission: rollback delta"


@pytest.hookimpl(trylast=True)  # after checks/selection.py registered the staging guard
def pytest_configure(config: pytest.Config) -> None:
    from cutover.model.phases import expectations

    if hasattr(config, "workerinput") or config.option.collectonly or PHASE_KEY not in config.stash:
        return
    phase = config.stash[PHASE_KEY]
    if not expectations(phase).rollback_delta:
        return
    from checks.machine import report_stem

    suffix = report_stem(config)[len(phase.value) :]  # `-web07`: one pair of a fleet
    final = Path(config.getoption("reports_dir")) / f"{REPORT}{suffix}.json"
    guard = config.pluginmanager.get_plugin("cutover-nothing-checked")
    staged = guard.stage(final) if guard is not None else final
    config.pluginmanager.register(RollbackDelta(config, final, staged), "cutover-rollback-delta")


def _mailbox_deltas(
    target: ImapTarget, settings: ProbeSettings, recorded: dict[str, Any], batch_size: int
) -> list[MailboxDelta]:
    from cutover.compare.rollback import MailboxDelta, NewMessage
    from cutover.model.phases import Side
    from cutover.probes.mail.imap_parsing import HEADER_DIGEST_PREFIX
    from cutover.probes.mail.mailboxes import ImapSession

    user = target.account.user
    states = recorded.get("states", {})
    found = []
    with ImapSession.open(target.endpoint(Side.NEW), target.account, settings) as session:
        for name in sorted(session.listing().selectable):
            state = session.examine(name)
            before = states.get(name)
            note = None
            if before is None:
                since, note = 1, "a mailbox preflight did not see: every message listed"
            elif int(before["uidvalidity"]) != state.uidvalidity:
                since = 1
                note = (
                    f"UIDVALIDITY changed since preflight ({before['uidvalidity']} -> "
                    f"{state.uidvalidity}): every message listed"
                )
            else:
                since = int(before["uidnext"])
                if state.uidnext <= since:
                    continue
            messages = [
                NewMessage(
                    uid,
                    None
                    if not key.ident or key.ident.startswith(HEADER_DIGEST_PREFIX)
                    else key.ident,
                    key.size,
                )
                for uid, key in session.messages_from(since, batch_size)
            ]
            if messages:
                found.append(MailboxDelta(user, name, since, messages, note))
    return found


def observe_delta(config: pytest.Config, inventory: Inventory) -> PairDelta:
    """One pair's rollback delta: the new server read against the pair's baseline."""
    from checks.observe.mysql import mysql_servers_of
    from checks.record import Records
    from checks.targets.mail import imap_accounts
    from cutover.compare.rollback import PairDelta
    from cutover.model.baseline import Baseline, BaselineError
    from cutover.model.phases import Side
    from cutover.model.settings import settings_for
    from cutover.probes.connect import ProbeError
    from cutover.probes.mysql.data import rows_since

    records = Records(
        Baseline(baseline_path(config, inventory.name)), expectations_for(config, inventory), ""
    )
    settings = settings_for(inventory)
    delta = PairDelta(inventory.name)
    for target in imap_accounts(inventory):
        user = target.account.user
        try:
            recorded = records.require("imap", user)
            delta.mail += _mailbox_deltas(target, settings, recorded, inventory.mail.batch_size)
        except (ProbeError, BaselineError) as exc:
            delta.problems.append(f"{user}: {exc}")
    if inventory.configures("mysql") and settings.mysql_admin is not None:
        server = mysql_servers_of(inventory)[Side.NEW]
        for database in inventory.mysql.databases:
            try:
                tables = records.require("mysql", f"data/{database}")
                delta.mysql += rows_since(server, settings, database, tables)
            except (ProbeError, BaselineError) as exc:
                delta.problems.append(f"{database}: {exc}")
    return delta


class RollbackDelta:
    """On the controller of a decommission run: observe, write the file, print the section."""

    def __init__(self, config: pytest.Config, final: Path, staged: Path) -> None:
        self.config = config
        self.final = final
        self.staged = staged
        self.judged = False
        self.deltas: list[PairDelta] = []
        self.written = False

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" and not report.skipped:
            self.judged = self.judged or any(n == "check_id" for n, _ in report.user_properties)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Iterator[None]:
        result = yield
        if self.judged and not session.shouldstop:
            self.write()
        return result

    def write(self) -> None:
        from cutover.compare.rollback import document

        config = self.config
        fleet = fleet_of(config)
        self.deltas = [observe_delta(config, fleet.pair(name)) for name in config.stash[PAIRS_KEY]]
        baselines = [
            str(baseline_path(config, fleet.pair(name).name)) for name in config.stash[PAIRS_KEY]
        ]
        data = document(
            self.deltas,
            migration=fleet.name,
            phase=config.stash[PHASE_KEY].value,
            generated_utc=datetime.now(UTC).isoformat(timespec="seconds"),
            baseline=", ".join(baselines),
        )
        self.staged.parent.mkdir(parents=True, exist_ok=True)
        self.staged.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        self.written = True

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from cutover.compare.rollback import summary_lines

        if not self.written:
            return
        terminalreporter.write_sep("=", SECTION)
        for line in summary_lines(self.deltas, several=fleet_of(self.config).several):
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"written to {self.final}")
