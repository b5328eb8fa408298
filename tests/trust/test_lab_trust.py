"""Against the lab: read-only (state digests), bounded (new host unreachable), -n 2 == serial.

Read-only: before and after the whole suite in each phase of one story walk
(decommission in the acceptance state, its rollback delta included),
the digest of every server's state is identical: Maildir file names and
dovecot-uidlist (tests/imap's snapshot), MariaDB dumps (old, new, and the
PowerDNS rows on ns1/ns2), the Postfix queue, the Apache docroots.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from pathlib import Path

import yaml

from tests.conftest import Lab, lab_cli
from tests.suite import SuiteRun, run_suite
from tests.trust.expected import ACCEPTANCE, CUTOVER, DECOMMISSION, PREFLIGHT
from tests.trust.matrix import matrix_inventory, run_whole_suite

NEW = "198.51.100.20"
NEW6 = "2001:db8:5100::20"  # the lab is dual stack: the new host is silenced on both
SERVERS, NAMESERVERS = ("old", "new"), ("ns1", "ns2")
# pytest start, collection, reports, in the client namespace on a loaded CI machine.
STARTUP_ALLOWANCE = 60.0
# Observation stages that may each wait a connect and an operation timeout in
# turn: services, vhosts, IMAP sessions, logins, POP3, MySQL, DNS, outbound.
OBSERVATION_STAGES = 8
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


# The old MySQL's data directory, file by file (DECOM03 reads it after the cutover,
# when the old MariaDB is stopped: only then do its files stand still).
OLD_DATADIR = "find /var/lib/mysql -type f -printf '%T@ %s %P\\n' | sort"


def assert_read_only(lab: Lab, phase: str, inventory: Path | None = None) -> None:
    before = state(lab)
    if phase == DECOMMISSION:
        before["old mysql datadir"] = digest(lab, "old", OLD_DATADIR)
    assert not str(before["old mariadb"]).startswith("unavailable") or phase != PREFLIGHT, before
    run = lab.suite(phase, f"--baseline={lab.reports / 'trust-baseline.json'}", inventory=inventory)
    assert run.cases, run.summary()
    after = state(lab)
    if phase == DECOMMISSION:
        after["old mysql datadir"] = digest(lab, "old", OLD_DATADIR)
    changed = [what for what in before if before[what] != after[what]]
    assert not changed, f"{phase}: the run changed {changed}"


def test_preflight_changes_nothing(preflight_lab: Lab) -> None:
    assert_read_only(preflight_lab, PREFLIGHT)


def test_cutover_changes_nothing(cutover_lab: Lab) -> None:
    assert_read_only(cutover_lab, CUTOVER)


def test_acceptance_changes_nothing(acceptance_lab: Lab) -> None:
    assert_read_only(acceptance_lab, ACCEPTANCE)


def test_decommission_changes_nothing(acceptance_lab: Lab, tmp_path: Path) -> None:
    """The old host's Maildirs, queue and MySQL files stand still while it is watched."""
    inventory = matrix_inventory(acceptance_lab, tmp_path / "inventory")
    assert_read_only(acceptance_lab, DECOMMISSION, inventory)


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


# --- bounded: the new host answers nobody ------------------------------------

# The new host's address answered by nobody: the client and the old host send
# its frames to a MAC address no one has (a static neighbour entry), so
# connections to it are neither refused nor unreachable: they go unanswered,
# as to a host that hangs or behind a firewall that drops. (This machine's
# kernel has no tc classifiers or netem to drop packets on the new host.)
NOBODY_MAC = "02:00:00:00:00:99"
SILENCED_FROM = ("cutover-client", "cutover-old")


def silence_new_host(silent: bool) -> None:
    for namespace in SILENCED_FROM:
        for family, address in (("-4", NEW), ("-6", NEW6)):
            neigh = ["ip", family, "-n", namespace, "neigh"]
            if silent:
                command = [*neigh, "replace", address, "lladdr", NOBODY_MAC, "nud", "permanent"]
            else:
                command = [*neigh, "del", address]
            subprocess.run([*command, "dev", "eth0"], check=True, timeout=30, capture_output=True)


def test_whole_run_is_bounded_when_the_new_host_answers_nobody(
    cutover_lab: Lab, tmp_path: Path
) -> None:
    """Every check that needs the new host fails with "timed out after N s ...", in bounded time.

    During cutover the new host serves both IPs (the old one forwards to it),
    so with the new host silent every mail, web and MySQL check fails: on the
    new IP with "timed out after 5 s connecting to ...", on the old IP as the
    forwarder behaves (socat accepts, then waits on the new host or gives up).
    The bound: pytest's start, plus one connect and one operation timeout for
    each observation stage that may wait its turn (areas observe one after
    another; inside an area all targets wait concurrently) and for each mail
    account (its mailboxes are compared when its checks run).
    """
    baseline = cutover_lab.reports / "trust-baseline.json"
    assert baseline.exists(), "run the module whole: the preflight tests record the baseline"
    inventory = matrix_inventory(cutover_lab, tmp_path / "inventory")
    data = yaml.safe_load(inventory.read_text(encoding="utf-8"))
    per_stage = float(data["timeouts"]["connect"]) + float(data["timeouts"]["operation"])
    waits = OBSERVATION_STAGES + len(data["mail"]["accounts"])
    bound = STARTUP_ALLOWANCE + waits * per_stage
    silence_new_host(True)
    try:
        started = time.monotonic()
        run = run_whole_suite(cutover_lab, CUTOVER, tmp_path / "run", baseline)
        took = time.monotonic() - started
    finally:
        silence_new_host(False)
        # The MySQL ssh tunnel (old -> new) does not survive 30 s of silence
        # (ServerAliveInterval 10, 3 unanswered: ssh exits, as it would in
        # production; MYSQL01 would say so). Restart it and verify the lab.
        cutover_lab.recover_from_silent_new_host()
    print(f"whole cutover run with the new host silent: {took:.1f} s (bound {bound:.0f} s)")
    assert run.cases, run.summary()
    assert took < bound, f"the run took {took:.1f} s, over the bound of {bound:.0f} s"
    assert not [c for c in run.cases if c.outcome == "error"], run.summary()
    for check_id in ("PORT01", "AUTH01", "IMAP01", "MYSQL01"):
        cases = [c for c in run.cases if c.check_id == check_id]
        assert cases and all(c.outcome == "failed" for c in cases), (check_id, run.summary())
    for case in run.failing():
        # One clean line of evidence: no pytest-timeout, no traceback, no object repr.
        for junk in ("Timeout (>", "Traceback", " object at 0x"):
            assert junk not in case.message, f"{case.name}: {case.message}"
        # Every endpoint check, and on a dual-stack inventory every per-account test of
        # an address (AUTH01, IMAP), carries the address it judged.
        address = case.properties.get("address")
        if address in (NEW, NEW6):
            assert "timed out after 5 s connecting to" in case.message, case.message
            assert address in case.message, case.message
    assert_root_cause_names_the_silent_host(run)


def assert_root_cause_names_the_silent_host(run: SuiteRun) -> None:
    """After pytest's own summary, one root-cause line names the new address and its count."""
    for case in run.failing():  # every failure leads with its check ID
        assert case.message.startswith(case.check_id), case.message
    lines = run.stdout.splitlines()
    final = max(i for i, line in enumerate(lines) if re.match(r"^=+ .* in [\d.]+s", line))
    verdict = lines[final + 1 :]
    print("\n".join(verdict))
    naming = [line for line in verdict if line.startswith(f"{NEW} answered nothing")]
    assert len(naming) == 1, "\n".join(verdict)
    count = re.search(r": (\d+) checks? failed$", naming[0])
    assert count, naming[0]
    # A DNS query the silent host never answers counts too ("timed out after 5 s asking NEW:53").
    silent = [
        c
        for c in run.failing()
        if f"connecting to {NEW}:" in c.message or f"s asking {NEW}:" in c.message
    ]
    assert int(count.group(1)) == len(silent), (naming[0], len(silent))
