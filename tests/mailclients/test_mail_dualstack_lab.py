"""The mail checks on the dual-stack lab (issue #18): every address of a side, each on its own.

The lab's inventory lists both addresses of each server. IMAP01-05, POP01
and AUTH01 then have one test per account and address (`[alice@example.test-old-v6]`),
green on the healthy lab in every phase; under `forward-v4-only` only the
old-v6 tests fail, naming the address; under `v6-old-server-still-serving`
the old server's own daemons answer on old-v6, and the checks that judge who
answered there fail (PORT02), and IMAP05 sees the old mail store behind the
new one. An IPv6-only inventory (the lab's v6 addresses only) is
green in every phase.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Lab
from tests.ports.test_ports_lab import PROBE, probe_run
from tests.suite import REPO, SuiteRun

CHECK_FILES = ("checks/test_imap.py", "checks/test_mailclients.py")
MAIL_IDS = {"IMAP01", "IMAP02", "IMAP03", "IMAP04", "IMAP05", "POP01", "AUTH01"}
ACCOUNTS = ("alice@example.test", "bob@example.test", "carol@example.test")
OLD_IP6 = "2001:db8:5100::10"
IPV6_INVENTORY = REPO / ".lab" / "inventory-ipv6.yaml"


def baseline_of(lab: Lab, family: str) -> Path:
    return lab.reports / f"mail-{family}-baseline.json"  # one baseline across the phases


def run_mail(lab: Lab, phase: str, family: str, *args: str) -> SuiteRun:
    inventory = IPV6_INVENTORY if family == "ipv6" else None
    return lab.suite(
        phase,
        *CHECK_FILES,
        f"--baseline={baseline_of(lab, family)}",
        *args,
        inventory=inventory,
    )


def places(run: SuiteRun) -> set[str]:
    """The address part of each test id (`old-v6` in `[alice@example.test-old-v6]`)."""
    found = set()
    for case in run.cases:
        target = case.name.split("[", 1)[1].rstrip("]")
        found.add(target.split("@example.test", 1)[1].lstrip("-"))
    return found


def assert_all_pass(run: SuiteRun, expected_places: set[str]) -> None:
    assert {c.check_id for c in run.cases} >= MAIL_IDS, run.summary()
    assert places(run) == expected_places, run.summary()
    assert all(c.outcome == "passed" for c in run.cases), run.summary()
    assert run.returncode == 0, run.summary()


def test_dual_preflight_compares_every_address(preflight_lab: Lab) -> None:
    run = run_mail(preflight_lab, "preflight", "dual")
    # Old's IPv4 address is the reference of the mailbox checks; logins are tried on all four.
    assert_all_pass(run, {"old-v4", "old-v6", "new-v4", "new-v6"})
    imap = run.by_name("test_uidvalidity_unchanged[alice@example.test-old-v6]")
    assert imap.properties["old_address"] == f"198.51.100.10,{OLD_IP6}"
    assert (imap.properties["address"], imap.properties["family"]) == (OLD_IP6, "v6")
    assert imap.properties["states_old-v6"] == imap.properties["states_old-v4"]
    assert "test_uidvalidity_unchanged[alice@example.test-old-v4]" not in {
        c.name for c in run.cases
    }
    login = run.by_name("test_account_logs_in_everywhere[alice@example.test-new-v6]")
    assert "imaps-993-new-v6 LOGIN: ok" in login.properties["logins"]
    assert "-new-v4 " not in login.properties["logins"]


def test_ipv6_only_preflight_is_green(preflight_lab: Lab) -> None:
    run = run_mail(preflight_lab, "preflight", "ipv6")
    assert_all_pass(run, {""})
    case = run.by_name("test_uidvalidity_unchanged[alice@example.test]")
    assert case.properties["old_address"] == OLD_IP6


def test_dual_cutover_is_green_on_every_address(cutover_lab: Lab) -> None:
    assert baseline_of(cutover_lab, "dual").exists(), "the dual preflight test must run first"
    run = run_mail(cutover_lab, "cutover", "dual")
    assert_all_pass(run, {"old-v4", "old-v6", "new-v4", "new-v6"})
    case = run.by_name("test_uidvalidity_unchanged[alice@example.test-old-v6]")
    # Old's IPv6 address, through its forward, serves the new server's mailboxes.
    assert "states_baseline" in case.properties and "states_old-v6" in case.properties


def test_ipv6_only_cutover_is_green(cutover_lab: Lab) -> None:
    assert baseline_of(cutover_lab, "ipv6").exists(), "the IPv6-only preflight must run first"
    assert_all_pass(run_mail(cutover_lab, "cutover", "ipv6"), {""})


def test_forward_v4_only_fails_the_old_v6_tests_only(cutover_lab: Lab) -> None:
    with cutover_lab.fault("forward-v4-only"):
        run = run_mail(cutover_lab, "cutover", "dual")
    failing = run.failing()
    assert failing, run.summary()
    assert all(c.name.endswith("-old-v6]") for c in failing), run.summary()
    assert {c.check_id for c in failing} == MAIL_IDS, run.summary()
    for case in failing:
        assert f"[{OLD_IP6}]" in case.message and "(old IP)" in case.message, case.message
        assert case.message.startswith(case.check_id), case.message
    assert all(c.outcome == "passed" for c in run.cases if not c.name.endswith("-old-v6]"))


def test_old_server_answering_on_old_v6_is_caught(cutover_lab: Lab) -> None:
    with cutover_lab.fault("v6-old-server-still-serving"):
        run = lab_run_with_identity(cutover_lab)
    failing = run.failing()
    print("\n".join(f"{c.name}: {c.message[:300]}" for c in failing))  # the evidence, with -rP
    assert failing, run.summary()
    assert all("-old-v6" in c.name for c in failing), run.summary()
    # Who answered (PORT02): old's own daemons, on every mail port of old-v6.
    identity = run.by_name("test_served_by_expected_server[imaps-993-old-v6]")
    assert "identifies 'old.example.test" in identity.message, identity.message
    # What they serve: the old mail store, whose HIGHESTMODSEQ stopped at the sync (IMAP05).
    stale = run.by_name("test_uidnext_and_modseq_not_behind[alice@example.test-old-v6]")
    assert stale.outcome == "failed", run.summary()
    for evidence in (
        "HIGHESTMODSEQ went back",
        "imaps 198.51.100.20:993 (new IP)",
        f"imaps [{OLD_IP6}]:993 (old IP)",
        "the old IP must serve the new server's mailboxes",
    ):
        assert evidence in stale.message, stale.message


def lab_run_with_identity(lab: Lab) -> SuiteRun:
    """The mail checks, PORT01 and PORT02 (who answered on each address), in the cutover phase."""
    selected = "PORT01 or PORT02 or IMAP or POP01 or AUTH01"
    return run_mail(lab, "cutover", "dual", "checks/test_ports.py", "-k", selected)


def test_ipv6_only_acceptance_is_green(acceptance_lab: Lab) -> None:
    assert baseline_of(acceptance_lab, "ipv6").exists(), "the IPv6-only preflight must run first"
    assert_all_pass(run_mail(acceptance_lab, "acceptance", "ipv6"), {""})


def test_dual_acceptance_is_green(acceptance_lab: Lab) -> None:
    assert baseline_of(acceptance_lab, "dual").exists(), "the dual preflight test must run first"
    assert_all_pass(
        run_mail(acceptance_lab, "acceptance", "dual"), {"old-v4", "old-v6", "new-v4", "new-v6"}
    )


def test_probe_mail_goes_through_each_old_address(cutover_lab: Lab, tmp_path: Path) -> None:
    """PORT03 sends through old's IPv4 and IPv6 port 25: both land on new (one test)."""
    run = probe_run(cutover_lab, tmp_path, baseline=baseline_of(cutover_lab, "dual"))
    case = run.by_name(PROBE)
    assert case.outcome == "passed", run.summary()
    props = case.properties
    assert props["probe_sent_to"] == "smtp 198.51.100.10:25 (old IP)", props
    assert props["probe_sent_to_old-v6"] == f"smtp [{OLD_IP6}]:25 (old IP)", props
    for suffix in ("", "_old-v6"):
        assert "new.example.test" in props[f"probe_greeting{suffix}"], props
        assert int(props[f"probe_delivered_uid{suffix}"]) > 0, props
    assert props["probe_message_id"] != props["probe_message_id_old-v6"]


def test_probe_mail_fails_on_the_v6_address_without_its_forward(
    cutover_lab: Lab, tmp_path: Path
) -> None:
    with cutover_lab.fault("forward-v4-only"):
        run = probe_run(cutover_lab, tmp_path, baseline=baseline_of(cutover_lab, "dual"))
    case = run.by_name(PROBE)
    assert case.outcome == "failed", run.summary()
    assert case.message.startswith("PORT03"), case.message
    assert f"[{OLD_IP6}]:25" in case.message and "refused" in case.message.lower(), case.message
    assert "198.51.100.10:25" not in case.message, case.message  # the IPv4 probe arrived
    assert int(case.properties["probe_delivered_uid"]) > 0, case.properties
