"""The IMAP checks against servers that speak IMAP4rev1 and nothing newer (Dovecot 1.x).

The lab's legacy old host only advertises a 1.x capability list: Dovecot 2.3
underneath would still answer a CONDSTORE command. These loopback peers
answer BAD to every extension 1.x lacked (ENABLE, CONDSTORE parameters,
STATUS HIGHESTMODSEQ, LIST ... RETURN) and to every unknown command, so a
passing run shows the suite's mailbox reading never sends one; a changed
UIDVALIDITY on one of them shows the checks still judge.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.suite import SuiteRun, run_suite
from tests.test_reports import UNUSED_NEW, UNUSED_OLD
from tests.trust.peers import Imap4rev1Mail, Peer, imap4rev1_only

PORT = 11144
USER, PASSWORD = "alice@example.test", "peer-password"
IMAP_IDS = {"IMAP01", "IMAP02", "IMAP03", "IMAP04", "IMAP05"}


def _mailboxes(
    inbox_validity: int = 1700000001,
) -> dict[str, tuple[int, int, list[tuple[int, str, str]]]]:
    return {
        "INBOX": (
            inbox_validity,
            7,
            [
                (1, "\\Seen", "m1@example.test"),
                (4, "", "m4@example.test"),
                (6, "\\Flagged", "m6@example.test"),
            ],
        ),
        "Archive": (1700000002, 2, [(1, "\\Seen", "a1@example.test")]),
        "Archive/2024": (
            1700000003,
            3,
            [(1, "\\Seen", "b1@example.test"), (2, "\\Seen", "b2@example.test")],
        ),
    }


def _run(tmp_path: Path, old: Imap4rev1Mail, new: Imap4rev1Mail, *selection: str) -> SuiteRun:
    tmp_path.mkdir(exist_ok=True)
    inventory = tmp_path / "inventory.yaml"
    data = {
        "name": "imap4rev1-only",
        "old": {"address": UNUSED_OLD},
        "new": {"address": UNUSED_NEW},
        "services": [{"name": "imap", "port": PORT, "protocol": "imap", "tls": "none"}],
        "mail": {"accounts": [{"user": USER, "password_env": "PEER_PW"}]},
        "timeouts": {"connect": 2, "operation": 5},
    }
    inventory.write_text(yaml.safe_dump(data), encoding="utf-8")
    with (
        Peer(UNUSED_OLD, PORT, imap4rev1_only(old), "old"),
        Peer(UNUSED_NEW, PORT, imap4rev1_only(new), "new"),
    ):
        return run_suite(
            "preflight",
            inventory,
            tmp_path / "reports",
            *(selection or ("checks/test_imap.py",)),
            env={"PEER_PW": PASSWORD},
        )


def test_mailboxes_are_read_without_any_extension(tmp_path: Path) -> None:
    old = Imap4rev1Mail(USER, PASSWORD, _mailboxes())
    new = Imap4rev1Mail(USER, PASSWORD, _mailboxes())
    run = _run(tmp_path, old, new)
    assert {c.check_id for c in run.cases} == IMAP_IDS, run.summary()
    assert all(c.outcome == "passed" for c in run.cases), run.summary()
    for peer in (old, new):
        assert peer.refused == [], peer.refused
        # The mailboxes were read: every one examined, messages fetched by UID.
        assert peer.commands.count("EXAMINE") >= len(peer.mailboxes), peer.commands
        assert "UID FETCH" in peer.commands, peer.commands
    imap05 = next(c for c in run.cases if c.check_id == "IMAP05")
    assert imap05.properties["highestmodseq_not_compared"] == (
        "no CONDSTORE (no HIGHESTMODSEQ) on old, new"
    ), imap05.properties


def test_a_changed_uidvalidity_still_fails_imap02(tmp_path: Path) -> None:
    old = Imap4rev1Mail(USER, PASSWORD, _mailboxes())
    new = Imap4rev1Mail(USER, PASSWORD, _mailboxes(inbox_validity=1700009999))
    run = _run(tmp_path, old, new)
    assert {c.check_id for c in run.failing()} == {"IMAP02"}, run.summary()
    (case,) = run.failing()
    assert (
        "mailbox 'INBOX': UIDVALIDITY 1700000001 on imap 127.0.0.2:11144 (old IP), "
        "1700009999 on imap 127.0.0.3:11144 (new IP)"
    ) in case.message, case.message
    assert old.refused == [] and new.refused == [], (old.refused, new.refused)


# Dovecot 2.x before login: the extensions of the logged-in state come after login.
DOVECOT2_BEFORE_LOGIN = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN"


def test_cap01_compares_before_login_what_clients_use_then(tmp_path: Path) -> None:
    """Old lists SORT, NAMESPACE ... before login (1.x), new only after (2.x): recorded, not
    failed; a login mechanism old offered and new lacks still fails CAP01."""
    old = Imap4rev1Mail(USER, PASSWORD, _mailboxes())
    new = Imap4rev1Mail(USER, PASSWORD, _mailboxes(), capability=DOVECOT2_BEFORE_LOGIN)
    selection = ("checks/test_ports.py", "-k", "test_capabilities_kept")
    run = _run(tmp_path / "later", old, new, *selection)
    (case,) = run.cases
    assert case.check_id == "CAP01" and case.outcome == "passed", run.summary()
    later = ["CHILDREN", "MULTIAPPEND", "NAMESPACE", "SORT", "THREAD=REFERENCES", "UNSELECT"]
    recorded = case.properties["listed_before_login_on_old_only"]
    assert recorded == "; ".join(f"offered: {c}" for c in later), case.properties

    new = Imap4rev1Mail(
        USER, PASSWORD, _mailboxes(), capability=DOVECOT2_BEFORE_LOGIN.replace(" AUTH=PLAIN", "")
    )
    run = _run(tmp_path / "dropped", old, new, *selection)
    (case,) = run.failing()
    assert case.message.startswith(
        "CAP01 imap-11144: imap 127.0.0.3:11144 (new IP) lacks capabilities that the old "
        "server on imap 127.0.0.2:11144 (old IP) offered — offered: AUTH=PLAIN"
    ), case.message
