"""Against the lab: read-only (state digests), bounded (new host unreachable), -n 2 == serial.

Read-only: before and after the whole suite in each phase of one story walk,
the digest of every server's state is identical: Maildir file names and
dovecot-uidlist (tests/imap's snapshot), MariaDB dumps (old, new, and the
PowerDNS rows on ns1/ns2), the Postfix queue, the Apache docroots.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.conftest import Lab, lab_cli
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


MAIL_LISTING = (
    "cd /srv/vmail && find . -type f \\( -path '*/cur/*' -o -path '*/new/*' \\) | sort; "
    'find . -name dovecot-uidlist | sort | while read f; do echo "== $f"; cat "$f"; done'
)


def mail_state(lab: Lab, host: str) -> list[tuple[str, str, str, str]]:
    """Every message as (folder, file, flags, UID): what a mail client sees.

    Not the raw files: POP3 opens INBOX read-write by design, and Dovecot then
    does its own bookkeeping — moves new/ to cur/ (no longer \\Recent, no flag
    set), rewrites dovecot-uidlist lazily (finalising earlier expunges, caching
    virtual sizes) — without changing any message, flag or UID.
    """
    out = lab_cli("exec", host, "--", "sh", "-c", MAIL_LISTING, timeout=120).stdout
    files: list[str] = []
    uids: dict[tuple[str, str], str] = {}
    folder = ""
    for line in out.splitlines():
        if line.startswith("== "):
            folder = line[3:].rsplit("/", 1)[0]
        elif folder and " :" in line and line[:1].isdigit():
            uids[(folder, line.split(" :", 1)[1])] = line.split(" ", 1)[0]
        elif line.startswith("./"):
            files.append(line)
    found = []
    for path in files:
        folder, name = path.rsplit("/", 2)[0], path.rsplit("/", 1)[1]
        base, _, flags = name.partition(":2,")
        found.append((folder, base, flags, uids.get((folder, base), "?")))
    return sorted(found)


def state(lab: Lab) -> dict[str, object]:
    found: dict[str, object] = {}
    for host in SERVERS:
        found[f"{host} mail"] = mail_state(lab, host)
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
