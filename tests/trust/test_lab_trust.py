"""Against the lab: read-only (state digests), bounded (new host unreachable), -n 2 == serial.

Read-only: before and after the whole suite in each phase of one story walk,
the digest of every server's state is identical: Maildir file names and
dovecot-uidlist (tests/imap's snapshot), MariaDB dumps (old, new, and the
PowerDNS rows on ns1/ns2), the Postfix queue, the Apache docroots.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from tests.conftest import Lab, lab_cli
from tests.imap.test_imap_lab import maildir_snapshot
from tests.suite import SuiteRun, run_suite
from tests.trust.expected import ACCEPTANCE, CUTOVER, PREFLIGHT

NEW = "198.51.100.20"
SERVERS, NAMESERVERS = ("old", "new"), ("ns1", "ns2")
# pytest start, collection, reports, in the client namespace on a loaded CI machine.
STARTUP_ALLOWANCE = 60.0
DUMP = (
    "mariadb-dump --all-databases --skip-dump-date --skip-comments --order-by-primary "
    "--ignore-table=mysql.innodb_index_stats --ignore-table=mysql.innodb_table_stats "
    "--ignore-table=mysql.gtid_slave_pos"
)


def digest(lab: Lab, host: str, shell: str) -> str:
    """sha256 of a command's output on a host, or why it could not run (same both times)."""
    try:
        out = lab_cli("exec", host, "--", "sh", "-c", shell, timeout=120).stdout
    except AssertionError as exc:
        return "unavailable: " + str(exc).splitlines()[0]
    return hashlib.sha256(out.encode()).hexdigest()


def state(lab: Lab) -> dict[str, object]:
    found: dict[str, object] = {}
    for host in SERVERS:
        found[f"{host} maildir"] = maildir_snapshot(lab, host)
        found[f"{host} mariadb"] = digest(lab, host, DUMP)
        found[f"{host} postfix queue"] = digest(
            lab,
            host,
            "find /var/spool/postfix/maildrop /var/spool/postfix/incoming "
            "/var/spool/postfix/active /var/spool/postfix/deferred /var/spool/postfix/hold "
            "-type f 2>/dev/null | sort",
        )
        found[f"{host} docroots"] = digest(
            lab, host, "find /var/www -type f -exec sha256sum {} + | sort"
        )
    for host in NAMESERVERS:
        found[f"{host} powerdns rows"] = digest(lab, host, DUMP)
    return found


def assert_read_only(lab: Lab, phase: str) -> None:
    before = state(lab)
    assert not str(before["old mariadb"]).startswith("unavailable") or phase != PREFLIGHT, before
    run = lab.suite(phase, f"--baseline={lab.reports / 'trust-baseline.json'}")
    assert run.cases, run.summary()
    after = state(lab)
    changed = [what for what in before if before[what] != after[what]]
    assert not changed, f"{phase}: the run changed {changed}"


def test_preflight_changes_nothing(preflight_lab: Lab) -> None:
    assert_read_only(preflight_lab, PREFLIGHT)


def test_cutover_changes_nothing(cutover_lab: Lab) -> None:
    assert_read_only(cutover_lab, CUTOVER)


def test_acceptance_changes_nothing(acceptance_lab: Lab) -> None:
    assert_read_only(acceptance_lab, ACCEPTANCE)


# --- parallel equals serial ----------------------------------------------------


def verdicts(run: SuiteRun) -> dict[tuple[str, str], tuple[str, str]]:
    return {(c.classname, c.name): (c.outcome, c.check_id) for c in run.cases}


def test_parallel_equals_serial(preflight_lab: Lab, tmp_path: Path) -> None:
    runs = {}
    for label, args in (("serial", ()), ("parallel", ("-n", "2"))):
        runs[label] = run_suite(
            PREFLIGHT,
            preflight_lab.inventory,
            tmp_path / label,
            *args,
            namespace="cutover-client",
        )
    serial, parallel = runs["serial"], runs["parallel"]
    assert serial.cases, serial.summary()
    assert verdicts(parallel) == verdicts(serial), parallel.summary()
    assert parallel.returncode == serial.returncode


# --- the new host unreachable -----------------------------------------------------


@contextmanager
def link_down(host: str) -> Iterator[None]:
    """The host's only link down (as tests/ports/test_ports_lab.py does for PORT checks)."""
    link = ["ip", "netns", "exec", f"cutover-{host}", "ip", "link", "set", "eth0"]
    subprocess.run([*link, "down"], check=True, timeout=30)
    try:
        yield
    finally:
        subprocess.run([*link, "up"], check=True, timeout=30)


UNREACHABLE = ("timed out after", "no route to", "unreachable")


def test_whole_suite_with_the_new_host_unreachable(cutover_lab: Lab, tmp_path: Path) -> None:
    timeouts = yaml.safe_load(cutover_lab.inventory.read_text())["timeouts"]
    per_operation = float(timeouts["connect"]) + float(timeouts["operation"])
    # Probes run concurrently; a check chains at most a few bounded operations
    # (the MySQL tunnel probe: ssh connect + client connect + client run).
    bound = STARTUP_ALLOWANCE + 6 * per_operation
    with link_down("new"):
        start = time.monotonic()
        run = run_suite(
            CUTOVER, cutover_lab.inventory, tmp_path, namespace="cutover-client", timeout=bound * 3
        )
        wall = time.monotonic() - start
    assert wall <= bound, f"the run took {wall:.0f} s, bound {bound:g} s\n{run.summary()}"
    assert run.failing(), run.summary()
    assert not [c for c in run.cases if c.outcome == "error"], run.summary()
    vague = [
        f"{c.check_id} {c.name}: {c.message.splitlines()[0][:200]}"
        for c in run.failing()
        if not any(word in c.message for word in UNREACHABLE)
    ]
    assert not vague, "failures that do not say the host is unreachable:\n" + "\n".join(vague)
    for check_id in ("PORT01", "IMAP01", "MYSQL03"):
        assert check_id in run.failing_ids(), run.summary()
