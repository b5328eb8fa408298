"""Login and POP3 UIDL continuity against the real lab (Dovecot and Postfix on both hosts).

Healthy in every phase; each mail-client fault fails exactly its check for
the right account, with the cause named and no password anywhere in the
output; the UIDLs the suite saw are what `doveadm fetch pop3.uidl` prints on
each host; and a full run changes no mail on either server.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cutover.compare.pop3_baseline import read_baseline_maildrop
from cutover.model.baseline import Baseline
from tests.conftest import Lab
from tests.imap.test_imap_lab import IPV4_INVENTORY, maildir_snapshot
from tests.suite import REPO, Case, SuiteRun

CHECK_FILE = "checks/test_mailclients.py"
CHECK_IDS = {"AUTH01", "POP01"}
ACCOUNTS = ("alice@example.test", "bob@example.test", "carol@example.test")
OLD_IP, NEW_IP = "198.51.100.10", "198.51.100.20"


@pytest.fixture(autouse=True)
def one_address_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests describe the lab by its IPv4 addresses, one per host (its inventory
    before dual stack); tests/mailclients/test_mail_dualstack_lab.py runs the dual one."""
    monkeypatch.setattr(Lab, "inventory", property(lambda lab: IPV4_INVENTORY))


# What a client of each login port may use on the lab's servers (auth_mechanisms = plain login).
METHODS = {
    "pop3-110": ("USER/PASS", "AUTH LOGIN", "AUTH PLAIN"),
    "pop3s-995": ("USER/PASS", "AUTH LOGIN", "AUTH PLAIN"),
    "imap-143": ("LOGIN", "AUTHENTICATE LOGIN", "AUTHENTICATE PLAIN"),
    "imaps-993": ("LOGIN", "AUTHENTICATE LOGIN", "AUTHENTICATE PLAIN"),
    "smtps-465": ("AUTH LOGIN", "AUTH PLAIN"),
    "submission-587": ("AUTH LOGIN", "AUTH PLAIN"),
}


def baseline_of(lab: Lab) -> Path:
    return lab.reports / "mailclients-baseline.json"  # one baseline across the phases


def run_checks(lab: Lab, phase: str, baseline: Path) -> SuiteRun:
    return lab.suite(phase, CHECK_FILE, f"--baseline={baseline}")


def passwords() -> list[str]:
    secrets = REPO / ".lab" / "secrets"
    return [(secrets / f"mail-{user}").read_text().strip() for user in ACCOUNTS]


def assert_no_password_leaks(lab: Lab, phase: str, run: SuiteRun) -> None:
    junit = (lab.reports / phase / f"{phase}.xml").read_text()
    for secret in passwords():
        for name, text in (("stdout", run.stdout), ("stderr", run.stderr), ("JUnit", junit)):
            assert secret not in text, f"an account password appears in the run's {name}"


def assert_all_pass(run: SuiteRun, sides: set[str]) -> None:
    assert {c.check_id for c in run.cases} == CHECK_IDS, run.summary()
    assert {c.name.split("[")[1].rstrip("]") for c in run.cases} == set(ACCOUNTS), run.summary()
    assert all(c.outcome == "passed" for c in run.cases), run.summary()
    assert run.returncode == 0, run.summary()
    for user in ACCOUNTS:
        logins = run.by_name(f"test_account_logs_in_everywhere[{user}]").properties["logins"]
        expected = {
            f"{label}-{side} {method}: ok"
            for label, methods in METHODS.items()
            for method in methods
            for side in sides
        }
        assert set(logins.split("; ")) == expected, logins


def test_preflight_healthy_records_the_baseline(preflight_lab: Lab) -> None:
    baseline = baseline_of(preflight_lab)
    run = run_checks(preflight_lab, "preflight", baseline)
    assert_all_pass(run, {"old", "new"})
    sections = json.loads(baseline.read_text())["sections"]
    assert set(sections["auth_methods"]) == set(METHODS)
    assert sorted(sections["auth_methods"]["imaps-993"]) == sorted(METHODS["imaps-993"])
    assert set(sections["pop3"]) == set(ACCOUNTS)
    entry = sections["pop3"]["alice@example.test"]
    assert "messages" not in entry, "the maildrop belongs in its file beside the baseline"
    alice = read_baseline_maildrop(Baseline(baseline), "alice@example.test", entry).messages
    assert alice and all(m.ident for m in alice), "messages not tied to Message-IDs"


def expand_uidl_format(template: str, uid: int, uidvalidity: int) -> str:
    """Dovecot's pop3_uidl_format for the variables the lab uses (%u UID, %v UIDVALIDITY).

    >>> expand_uidl_format("%08Xu%08Xv", 1, 0x6B0735B9)
    '000000016b0735b9'
    """

    def value(match: re.Match[str]) -> str:
        number = uid if match.group(3) == "u" else uidvalidity
        return format(number, f"{match.group(1)}{'x' if match.group(2) else 'd'}")

    return re.sub(r"%(0?\d*)(X?)([uv])", value, template)


def doveadm_uidls(lab: Lab, host: str, user: str) -> list[str]:
    """The POP3 UIDLs of `user`'s INBOX on a lab host, by Dovecot's own tools.

    `doveadm fetch -u USER pop3.uidl mailbox INBOX all` prints the UIDLs stored
    with the messages (migrated from another server); where none is stored
    (empty), the POP3 server builds it from pop3_uidl_format, UID and UIDVALIDITY.
    """
    rows = lab.exec(
        host,
        "doveadm",
        "-f",
        "tab",
        "fetch",
        "-u",
        user,
        "uid pop3.uidl",
        "mailbox",
        "INBOX",
        "all",
    ).stdout.splitlines()
    assert rows[0].split("\t") == ["uid", "pop3.uidl"], rows[:1]
    status = lab.exec(
        host, "doveadm", "-f", "tab", "mailbox", "status", "-u", user, "uidvalidity", "INBOX"
    ).stdout.splitlines()
    # With a mailbox argument doveadm adds a `mailbox` column.
    uidvalidity = int(
        dict(zip(status[0].split("\t"), status[1].split("\t"), strict=True))["uidvalidity"]
    )
    template = lab.exec(host, "doveconf", "-h", "pop3_uidl_format").stdout.strip()
    uidls = []
    for row in rows[1:]:
        uid, _, stored = row.partition("\t")
        uidls.append(stored or expand_uidl_format(template, int(uid), uidvalidity))
    return uidls


def test_uidls_agree_with_doveadm(preflight_lab: Lab, tmp_path: Path) -> None:
    run = run_checks(preflight_lab, "preflight", tmp_path / "baseline.json")
    assert not run.failing(), run.summary()
    for user in ACCOUNTS:
        case = run.by_name(f"test_pop3_uidls_unchanged[{user}]")
        for host in ("old", "new"):
            seen = json.loads(case.properties[f"uidls_{host}"])
            assert seen == doveadm_uidls(preflight_lab, host, user), f"{user} on {host}"


def test_a_full_run_changes_no_mail(preflight_lab: Lab, tmp_path: Path) -> None:
    before = {host: maildir_snapshot(preflight_lab, host) for host in ("old", "new")}
    run = run_checks(preflight_lab, "preflight", tmp_path / "baseline.json")
    assert not run.failing(), run.summary()
    after = {host: maildir_snapshot(preflight_lab, host) for host in ("old", "new")}
    assert after == before, "logging in, UIDL or the IMAP identity read changed the mail store"


def only_failures_of(run: SuiteRun, check_id: str, users: set[str]) -> list[Case]:
    assert run.failing_ids() == {check_id}, run.summary()
    cases = run.failing()
    assert {c.name.split("[")[1].rstrip("]") for c in cases} == users, run.summary()
    assert run.returncode == 1, run.summary()
    return cases


@pytest.mark.parametrize(
    ("fault", "user", "needles"),
    [
        (
            "auth-hash-broken",
            "bob@example.test",
            # Dovecot answers an unverifiable hash like a wrong password (and logs why).
            ["credentials rejected", "[AUTH] Authentication failed", "Unknown scheme"],
        ),
        (
            "user-missing",
            "carol@example.test",
            ["credentials rejected", "[AUTH] Authentication failed", "missing from the new passdb"],
        ),
    ],
)
def test_passdb_fault_fails_the_account_logins(
    preflight_lab: Lab, fault: str, user: str, needles: list[str], tmp_path: Path
) -> None:
    with preflight_lab.fault(fault):
        run = run_checks(preflight_lab, "preflight", tmp_path / "baseline.json")
    (case,) = only_failures_of(run, "AUTH01", {user})
    message = case.message
    for needle in [user, f"{NEW_IP}:110 (new IP), USER/PASS", "not tried after", *needles]:
        assert needle in message, f"{fault}: AUTH01 message lacks {needle!r}:\n{message}"
    assert "(old IP)" not in message, message  # the old server lets the account in
    assert case.properties["account"] == user
    pop = run.by_name(f"test_pop3_uidls_unchanged[{user}]")
    assert pop.outcome == "skipped" and "AUTH01 reports it" in pop.message, run.summary()
    assert_no_password_leaks(preflight_lab, "preflight", run)


def test_pop3_uidl_format_change_fails_pop01(preflight_lab: Lab, tmp_path: Path) -> None:
    with preflight_lab.fault("pop3-uidl-changed"):
        run = run_checks(preflight_lab, "preflight", tmp_path / "baseline.json")
        changed = {user: doveadm_uidls(preflight_lab, "new", user) for user in ACCOUNTS}
    cases = only_failures_of(run, "POP01", set(ACCOUNTS))
    for case in cases:
        user = case.properties["account"]
        for needle in [
            f"{user}: POP3 UIDLs changed",
            f"pop3s {NEW_IP}:995 (new IP)",
            f"pop3s {OLD_IP}:995 (old IP)",
            "have a new UIDL",
            "downloads them again",
            "pop3_uidl_format",
        ]:
            assert needle in case.message, f"POP01 message lacks {needle!r}:\n{case.message}"
        assert json.loads(case.properties["uidls_new"]) == changed[user]
    assert_no_password_leaks(preflight_lab, "preflight", run)


def test_cutover_healthy_against_the_baseline(cutover_lab: Lab) -> None:
    baseline = baseline_of(cutover_lab)
    assert baseline.exists(), "test_preflight_healthy_records_the_baseline must run first"
    run = run_checks(cutover_lab, "cutover", baseline)
    assert_all_pass(run, {"old", "new"})
    case = run.by_name("test_pop3_uidls_unchanged[alice@example.test]")
    assert case.properties["uidls_old"] == case.properties["uidls_new"]
    assert case.properties["uidls_baseline"] == case.properties["uidls_new"]


def test_cutover_user_missing_through_the_forward(cutover_lab: Lab) -> None:
    with cutover_lab.fault("user-missing"):
        run = run_checks(cutover_lab, "cutover", baseline_of(cutover_lab))
    (case,) = only_failures_of(run, "AUTH01", {"carol@example.test"})
    for needle in (f"{OLD_IP}:110 (old IP)", f"{NEW_IP}:110 (new IP)", "credentials rejected"):
        assert needle in case.message, case.message


def test_acceptance_healthy_against_the_baseline(acceptance_lab: Lab) -> None:
    run = run_checks(acceptance_lab, "acceptance", baseline_of(acceptance_lab))
    assert_all_pass(run, {"old", "new"})


def test_acceptance_uidl_change_against_the_baseline(acceptance_lab: Lab) -> None:
    with acceptance_lab.fault("pop3-uidl-changed"):
        run = run_checks(acceptance_lab, "acceptance", baseline_of(acceptance_lab))
    for case in only_failures_of(run, "POP01", set(ACCOUNTS)):
        assert "preflight baseline of the old server" in case.message, case.message


def test_later_phases_without_a_baseline_say_run_preflight(
    acceptance_lab: Lab, tmp_path: Path
) -> None:
    run = run_checks(acceptance_lab, "acceptance", tmp_path / "none.json")
    assert run.failing_ids() == CHECK_IDS, run.summary()
    for case in run.failing():
        assert "run the preflight phase first" in case.message, case.message


def new_dovecot_state(lab: Lab) -> str:
    """What the mail-client faults touch on new: the passwd-file (content, owner, mode), local.d."""
    return "\n".join(
        [
            lab.exec("new", "sha256sum", "/etc/dovecot/users").stdout,
            lab.exec("new", "stat", "-c", "%U:%G %a", "/etc/dovecot/users").stdout,
            lab.exec("new", "ls", "-A", "/etc/dovecot/local.d").stdout,
            lab.exec("new", "doveconf", "-h", "pop3_uidl_format").stdout,
        ]
    )


@pytest.mark.parametrize("fault", ["auth-hash-broken", "user-missing", "pop3-uidl-changed"])
def test_undo_restores_exactly(preflight_lab: Lab, fault: str) -> None:
    before = new_dovecot_state(preflight_lab)
    with preflight_lab.fault(fault):
        assert new_dovecot_state(preflight_lab) != before, f"{fault} changed nothing on new"
    assert new_dovecot_state(preflight_lab) == before
