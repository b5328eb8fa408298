"""IMAP continuity against the real lab: Dovecot on both hosts, dsync, the forward.

Healthy in every phase; each IMAP fault fails exactly its check with the
evidence an operator needs; a full run changes nothing on either server; and
what the suite saw agrees with `doveadm mailbox status` on each host.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import Lab
from tests.suite import REPO, Case, SuiteRun

CHECK_FILE = "checks/test_imap.py"
IMAP_IDS = {"IMAP01", "IMAP02", "IMAP03", "IMAP04", "IMAP05"}
ACCOUNTS = ("alice@example.test", "bob@example.test", "carol@example.test")
FAULTED = "alice@example.test"  # every lab IMAP fault breaks alice's mail on new
OLD_IP, NEW_IP = "198.51.100.10", "198.51.100.20"
# The lab described as before it had IPv6: one address per host.
IPV4_INVENTORY = REPO / ".lab" / "inventory-ipv4.yaml"


@pytest.fixture(autouse=True)
def one_address_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests describe the lab by its IPv4 addresses, one per host (its inventory
    before dual stack); tests/mailclients/test_mail_dualstack_lab.py runs the dual one."""
    monkeypatch.setattr(Lab, "inventory", property(lambda lab: IPV4_INVENTORY))


def baseline_of(lab: Lab) -> Path:
    # One baseline across the phases (run_suite's default is per phase).
    return lab.reports / "imap-baseline.json"


def run_imap(lab: Lab, phase: str, baseline: Path) -> SuiteRun:
    return lab.suite(phase, CHECK_FILE, f"--baseline={baseline}")


def assert_all_pass(run: SuiteRun) -> None:
    ids = {c.check_id for c in run.cases}
    assert ids == IMAP_IDS, run.summary()
    assert {c.name.split("[")[1].rstrip("]") for c in run.cases} == set(ACCOUNTS), run.summary()
    assert not run.failing(), run.summary()
    assert all(c.outcome == "passed" for c in run.cases), run.summary()
    assert run.returncode == 0, run.summary()


def test_preflight_healthy_records_the_baseline(preflight_lab: Lab) -> None:
    baseline = baseline_of(preflight_lab)
    run = run_imap(preflight_lab, "preflight", baseline)
    assert_all_pass(run)
    case = run.by_name("test_uidvalidity_unchanged[alice@example.test]")
    assert case.properties["account"] == "alice@example.test"
    assert case.properties["old_address"] == OLD_IP
    assert case.properties["new_address"] == NEW_IP
    listed = json.loads(
        run.by_name("test_mailboxes_and_subscriptions_equal[alice@example.test]").properties[
            "mailboxes_new"
        ]
    )
    assert {"Entwürfe", "Archive/2024"} <= set(listed)
    section = json.loads(baseline.read_text())["sections"]["imap"]
    assert set(section) == set(ACCOUNTS)
    assert section["alice@example.test"]["states"]["INBOX"]["messages"] > 0


# Each lab fault, the one check it must fail, and what the message must show.
FAULTS = {
    "imap-uidvalidity": ("IMAP02", ["mailbox 'Archive/2024'", "UIDVALIDITY", "re-created"]),
    "imap-renumbered": ("IMAP03", ["mailbox 'INBOX'", "renumbered", "imapsync", "missing UIDs"]),
    "imap-missing-message": ("IMAP03", ["mailbox 'INBOX'", "missing UIDs 4.", "skipped"]),
    "imap-flags-lost": ("IMAP04", ["mailbox 'INBOX'", "flags of", "\\Seen", "-> (none)"]),
}


def failing_cases(run: SuiteRun, check_id: str) -> list[Case]:
    assert run.failing_ids() == {check_id}, run.summary()
    cases = run.failing()
    assert [c.name for c in cases] == [c.name for c in cases if FAULTED in c.name], run.summary()
    return cases


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_fails_exactly_its_check(preflight_lab: Lab, fault: str, tmp_path: Path) -> None:
    check_id, needles = FAULTS[fault]
    with preflight_lab.fault(fault):
        run = run_imap(preflight_lab, "preflight", tmp_path / "baseline.json")
    cases = failing_cases(run, check_id)
    assert len(cases) == 1, run.summary()
    message = cases[0].message
    for needle in [FAULTED, f"{OLD_IP}:993", f"{NEW_IP}:993", *needles]:
        assert needle in message, f"{fault}: {check_id} message lacks {needle!r}:\n{message}"
    assert cases[0].properties["account"] == FAULTED
    assert run.returncode == 1


def maildir_snapshot(lab: Lab, host: str) -> dict[str, str]:
    """Maildir file names (flags live in them), dovecot-uidlist contents, message counts."""
    names = lab.exec(
        host,
        "find",
        "/srv/vmail",
        "(",
        "-path",
        "*/cur/*",
        "-o",
        "-path",
        "*/new/*",
        ")",
        "-type",
        "f",
        "-printf",
        "%P\\n",
    ).stdout.splitlines()
    uidlists = lab.exec(
        host,
        "find",
        "/srv/vmail",
        "-name",
        "dovecot-uidlist",
        "-exec",
        "sha256sum",
        "{}",
        "+",
    ).stdout
    counts: dict[str, int] = {}
    for name in names:
        folder = name.rsplit("/", 2)[0]
        counts[folder] = counts.get(folder, 0) + 1
    return {
        "files": "\n".join(sorted(names)),
        "uidlists": "\n".join(sorted(uidlists.splitlines())),
        "counts": json.dumps(counts, sort_keys=True),
    }


def test_a_full_run_changes_nothing(preflight_lab: Lab, tmp_path: Path) -> None:
    before = {host: maildir_snapshot(preflight_lab, host) for host in ("old", "new")}
    assert before["old"]["files"].count("\n") > 10, before["old"]["files"]
    run = run_imap(preflight_lab, "preflight", tmp_path / "baseline.json")
    assert_all_pass(run)
    after = {host: maildir_snapshot(preflight_lab, host) for host in ("old", "new")}
    for host in ("old", "new"):
        for what in ("files", "uidlists", "counts"):
            assert after[host][what] == before[host][what], f"{host}: {what} changed by the run"


def doveadm_status(lab: Lab, host: str, user: str) -> dict[str, dict[str, int]]:
    """`doveadm mailbox status` of every mailbox of `user` on `host`, by name (UTF-8)."""
    fields = ("uidvalidity", "uidnext", "messages")
    # With a mask doveadm adds a `mailbox` column; -f tab prints a header line.
    lines = lab.exec(
        host, "doveadm", "-f", "tab", "mailbox", "status", "-u", user, " ".join(fields), "*"
    ).stdout.splitlines()
    header = lines[0].split("\t")
    status = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split("\t"), strict=True))
        status[row["mailbox"]] = {field: int(row[field]) for field in fields}
    return status


def test_suite_agrees_with_doveadm(preflight_lab: Lab, tmp_path: Path) -> None:
    run = run_imap(preflight_lab, "preflight", tmp_path / "baseline.json")
    assert_all_pass(run)
    for user in ACCOUNTS:
        case = run.by_name(f"test_uidvalidity_unchanged[{user}]")
        for host in ("old", "new"):
            seen = json.loads(case.properties[f"states_{host}"])
            suite = {
                name: {
                    "uidvalidity": s["uidvalidity"],
                    "uidnext": s["uidnext"],
                    "messages": s["exists"],
                }
                for name, s in seen.items()
            }
            assert suite == doveadm_status(preflight_lab, host, user), f"{user} on {host}"


def test_a_narrowed_preflight_still_records_every_account(
    preflight_lab: Lab, tmp_path: Path
) -> None:
    """`-k alice` checks alice only; the end of the run records everyone else's mail.

    On two xdist workers: the worker that observed alice marks her as recorded,
    the controller's recorders read the other accounts (and POP3, login methods).
    """
    baseline = tmp_path / "baseline.json"
    run = preflight_lab.suite(
        "preflight", CHECK_FILE, f"--baseline={baseline}", "-k", "alice", "-n", "2"
    )
    assert {c.name.split("[")[1].rstrip("]") for c in run.cases} == {FAULTED}, run.summary()
    assert not run.failing() and run.returncode == 0, run.summary()
    sections = json.loads(baseline.read_text())["sections"]
    assert set(sections["imap"]) == set(ACCOUNTS), sorted(sections["imap"])
    assert set(sections["pop3"]) == set(ACCOUNTS), sorted(sections["pop3"])
    assert sections["auth_methods"], sections
    marks = set(sections["recorded"])
    assert {"imap", "pop3", "mail-logins", f"imap/{FAULTED}"} <= marks, marks
    for account in ACCOUNTS:
        uid_map = baseline.parent / sections["imap"][account]["uid_map"]
        assert uid_map.stat().st_size > 0, uid_map


def test_cutover_healthy_against_the_baseline(cutover_lab: Lab) -> None:
    baseline = baseline_of(cutover_lab)
    assert baseline.exists(), "test_preflight_healthy_records_the_baseline must run first"
    run = run_imap(cutover_lab, "cutover", baseline)
    assert_all_pass(run)
    case = run.by_name("test_uidvalidity_unchanged[alice@example.test]")
    # The old IP now serves the new server's mailboxes, exactly as the new IP does.
    assert case.properties["states_old"] == case.properties["states_new"]
    assert "states_baseline" in case.properties


def test_acceptance_healthy_against_the_baseline(acceptance_lab: Lab) -> None:
    baseline = baseline_of(acceptance_lab)
    assert baseline.exists(), "test_preflight_healthy_records_the_baseline must run first"
    assert_all_pass(run_imap(acceptance_lab, "acceptance", baseline))


def test_acceptance_missing_message_against_the_baseline(acceptance_lab: Lab) -> None:
    baseline = baseline_of(acceptance_lab)
    assert baseline.exists(), "test_preflight_healthy_records_the_baseline must run first"
    with acceptance_lab.fault("imap-missing-message"):
        run = run_imap(acceptance_lab, "acceptance", baseline)
    cases = failing_cases(run, "IMAP03")
    message = cases[0].message
    assert "preflight baseline of the old server" in message, message
    assert f"{NEW_IP}:993 (new IP)" in message and f"{OLD_IP}:993 (old IP)" in message, message
    assert "missing UIDs 4." in message, message


def test_cutover_without_baseline_says_run_preflight(cutover_lab: Lab, tmp_path: Path) -> None:
    run = run_imap(cutover_lab, "cutover", tmp_path / "no-baseline.json")
    assert run.failing_ids() == IMAP_IDS, run.summary()
    for case in run.failing():
        assert "run the preflight phase first" in case.message, case.message


def test_starttls_when_the_inventory_has_no_implicit_tls(
    preflight_lab: Lab, tmp_path: Path
) -> None:
    services = yaml.safe_load(preflight_lab.inventory.read_text())["services"]
    inventory = preflight_lab.inventory_variant(
        tmp_path, lambda data: data.update(services=[s for s in services if s["port"] != 993])
    )
    run = preflight_lab.suite(
        "preflight", CHECK_FILE, f"--baseline={tmp_path / 'baseline.json'}", inventory=inventory
    )
    assert_all_pass(run)
    assert {c.properties["imap_service"] for c in run.cases} == {"imap-143"}


def test_a_wrong_password_fails_without_leaking_it(preflight_lab: Lab, tmp_path: Path) -> None:
    wrong = "Wr0ng-and-Secret-pw"
    (tmp_path / "wrong").write_text(wrong + "\n")
    account = {"user": FAULTED, "password_file": str(tmp_path / "wrong")}
    inventory = preflight_lab.inventory_variant(
        tmp_path, lambda data: data["mail"].update(accounts=[account], probe_account=None)
    )
    run = preflight_lab.suite(
        "preflight", CHECK_FILE, f"--baseline={tmp_path / 'baseline.json'}", inventory=inventory
    )
    assert run.failing_ids() == IMAP_IDS, run.summary()
    for case in run.failing():
        assert f"login as {FAULTED} failed on imaps {OLD_IP}:993 (old IP)" in case.message
    junit = (preflight_lab.reports / "preflight" / "preflight.xml").read_text()
    for text in (run.stdout, run.stderr, junit):
        assert wrong not in text
