"""Dual stack in the mail checks (issue #18), pure logic: every address of a side is compared.

One address per host: one test per account, ids and JUnit properties as they
always were. Several (dual stack): one test per account and compared address
(`alice@example.test-old-v6`), each failing only on what its own address
served. The comparison reads every address once per account, in one walk.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from checks.observe import imap as observe_imap
from checks.targets.mail import (
    ImapTarget,
    account_targets,
    compared_endpoints,
    imap_accounts,
    imap_targets,
    place,
    pop3_targets,
)
from cutover.compare.imap import MailboxState
from cutover.model.endpoints import Endpoint
from cutover.model.inventory import Inventory, load_inventory
from cutover.model.phases import expectations
from cutover.probes.connect import ProbeError
from tests.imap.test_imapdiff import MemorySource, healthy

ACCOUNTS = """\
services:
  - {name: imaps, port: 993, protocol: imap, tls: implicit}
  - {name: pop3s, port: 995, protocol: pop3, tls: implicit}
  - {name: submission, port: 587, protocol: smtp, tls: starttls}
mail:
  accounts:
    - {user: alice@example.test, password_env: ALICE_PASSWORD}
"""
SINGLE = "old: {address: 203.0.113.10}\nnew: {address: 203.0.113.20}\n" + ACCOUNTS
DUAL = (
    'old: {address: [203.0.113.10, "2001:db8::10"]}\n'
    'new: {address: [203.0.113.20, "2001:db8::20"]}\n' + ACCOUNTS
)
V6_ONLY = 'old: {address: "2001:db8::10"}\nnew: {address: "2001:db8::20"}\n' + ACCOUNTS


def _load(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> Inventory:
    monkeypatch.setenv("ALICE_PASSWORD", "secret")
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return load_inventory(path)


def _ids(targets: Any) -> list[str]:
    return [target.id for target in targets]


def test_one_address_per_host_keeps_one_test_per_account_and_its_properties(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = _load(tmp_path, SINGLE, monkeypatch)
    for phase in ("preflight", "cutover", "acceptance"):
        expect = expectations(phase)
        assert _ids(imap_targets(inventory, expect)) == ["alice@example.test"]
        assert _ids(pop3_targets(inventory, expect)) == ["alice@example.test"]
        assert _ids(account_targets(inventory, expect)) == ["alice@example.test"]
    (target,) = imap_targets(inventory, expectations("cutover"))
    assert list(target.junit_properties()) == [
        ("account", "alice@example.test"),
        ("imap_service", target.service.label),
        ("old_address", "203.0.113.10"),
        ("new_address", "203.0.113.20"),
    ]
    (login,) = account_targets(inventory, expectations("cutover"))
    assert list(login.junit_properties()) == [("account", "alice@example.test")]


def test_dual_stack_has_a_test_per_compared_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = _load(tmp_path, DUAL, monkeypatch)
    user = "alice@example.test"
    # Preflight: old's first address is the reference; its other address must agree with it.
    assert _ids(imap_targets(inventory, expectations("preflight"))) == [
        f"{user}-new-v4",
        f"{user}-new-v6",
        f"{user}-old-v6",
    ]
    # Cutover: every address is the new server's (old's through the forwards).
    cutover = [f"{user}-{p}" for p in ("new-v4", "new-v6", "old-v4", "old-v6")]
    assert _ids(imap_targets(inventory, expectations("cutover"))) == cutover
    assert _ids(pop3_targets(inventory, expectations("cutover"))) == cutover
    # Logins: every address that must answer, the old ones first (as PORT01 lists them).
    assert _ids(account_targets(inventory, expectations("preflight"))) == [
        f"{user}-{p}" for p in ("old-v4", "old-v6", "new-v4", "new-v6")
    ]
    closed = expectations("acceptance", old_ip_closed=True)
    assert _ids(imap_targets(inventory, closed)) == [f"{user}-new-v4", f"{user}-new-v6"]
    old_v6 = imap_targets(inventory, expectations("cutover"))[-1]
    properties = dict(old_v6.junit_properties())
    assert properties["old_address"] == "203.0.113.10,2001:db8::10"
    assert properties["new_address"] == "203.0.113.20,2001:db8::20"
    assert (properties["address"], properties["family"]) == ("2001:db8::10", "v6")
    login = account_targets(inventory, expectations("cutover"))[1]
    assert dict(login.junit_properties())["family"] == "v6"


def test_an_ipv6_only_inventory_keeps_the_plain_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = _load(tmp_path, V6_ONLY, monkeypatch)
    (target,) = imap_targets(inventory, expectations("cutover"))
    assert target.id == "alice@example.test"
    assert [e.where for e in compared_endpoints(target, expectations("cutover"))] == [
        "imaps [2001:db8::20]:993 (new IP)",
        "imaps [2001:db8::10]:993 (old IP)",
    ]


# --- the comparison across every address ----------------------------------------------


class FakeSession(MemorySource):
    greeting = "new.example.test IMAP/POP3 ready"

    def close(self) -> None:
        pass


def _stale() -> Any:
    """What old's own Dovecot still serves: a message delivered since the sync is missing."""
    mailboxes = healthy()
    state, messages = mailboxes["INBOX"]
    mailboxes["INBOX"] = (
        MailboxState("INBOX", state.uidvalidity, state.uidnext, 5, state.highestmodseq),
        {uid: k for uid, k in messages.items() if uid != 7},
    )
    return mailboxes


def _observe(
    monkeypatch: pytest.MonkeyPatch,
    inventory: Inventory,
    phase: str,
    served: dict[str, Any],
) -> observe_imap.Continuity:
    """Run the observation with every address served from memory (`served` by place)."""

    def fake_open(endpoint: Endpoint, *_: object) -> FakeSession:
        mailboxes = served[place(endpoint)]
        if isinstance(mailboxes, ProbeError):
            raise mailboxes
        return FakeSession(endpoint.where, mailboxes)

    monkeypatch.setattr(observe_imap, "_open", fake_open)
    monkeypatch.setattr(
        observe_imap, "BaselineSource", lambda *_: MemorySource("the preflight baseline", healthy())
    )
    records = SimpleNamespace(recording=False, baseline=None)
    (target,) = imap_accounts(inventory)
    return observe_imap._observe(target, expectations(phase), records, None, None, 2)  # type: ignore[arg-type]


def _verdict(continuity: observe_imap.Continuity, target: ImapTarget, check: str) -> str:
    try:
        continuity.holds(check, target)
    except pytest.fail.Exception as failed:
        return str(failed.msg)
    return "ok"


def test_cutover_stale_mailboxes_on_old_v6_fail_only_the_old_v6_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = _load(tmp_path, DUAL, monkeypatch)
    served = {p: healthy() for p in ("new-v4", "new-v6", "old-v4")} | {"old-v6": _stale()}
    continuity = _observe(monkeypatch, inventory, "cutover", served)
    assert continuity.sides == ["baseline", "new-v4", "new-v6", "old-v4", "old-v6"]
    verdicts = {
        t.place: _verdict(continuity, t, "IMAP03")
        for t in imap_targets(inventory, expectations("cutover"))
    }
    assert verdicts["new-v4"] == verdicts["new-v6"] == verdicts["old-v4"] == "ok"
    text = verdicts["old-v6"]
    # Against the baseline, and against the new server's first address, each naming the endpoint.
    assert "imaps [2001:db8::10]:993 (old IP)" in text
    assert "the old IP must serve the new server's mailboxes" in text
    assert "imaps 203.0.113.20:993 (new IP)" in text
    # One address per host: the same stale old IP fails the account's one test.
    single = _load(tmp_path, SINGLE, monkeypatch)
    continuity = _observe(monkeypatch, single, "cutover", {"new": healthy(), "old": _stale()})
    (target,) = imap_targets(single, expectations("cutover"))
    assert continuity.sides == ["baseline", "new", "old"]
    assert "imaps 203.0.113.10:993 (old IP)" in _verdict(continuity, target, "IMAP03")


def test_an_address_that_cannot_be_read_fails_its_tests_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = _load(tmp_path, DUAL, monkeypatch)
    refused = ProbeError("connection refused by imaps [2001:db8::10]:993 (old IP)")
    served = {p: healthy() for p in ("new-v4", "new-v6", "old-v4")} | {"old-v6": refused}
    continuity = _observe(monkeypatch, inventory, "cutover", served)
    for target in imap_targets(inventory, expectations("cutover")):
        for check in ("IMAP01", "IMAP02", "IMAP03", "IMAP04", "IMAP05"):
            verdict = _verdict(continuity, target, check)
            if target.place == "old-v6":
                assert verdict == f"alice@example.test: {refused}"
            else:
                assert verdict == "ok", (target.id, check, verdict)


def test_preflight_every_old_address_must_agree_with_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = _load(tmp_path, DUAL, monkeypatch)
    served = {p: healthy() for p in ("old-v4", "new-v4", "new-v6")} | {"old-v6": _stale()}
    continuity = _observe(monkeypatch, inventory, "preflight", served)
    assert continuity.sides == ["old-v4", "new-v4", "new-v6", "old-v6"]
    by_place = {t.place: t for t in imap_targets(inventory, expectations("preflight"))}
    text = _verdict(continuity, by_place["old-v6"], "IMAP03")
    assert "every address of the old server must serve the same mailboxes" in text
    assert _verdict(continuity, by_place["new-v6"], "IMAP03") == "ok"


def test_pop01_judges_the_maildrop_of_its_own_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from checks.observe.mail import PopContinuity
    from checks.test_mailclients import _uidl_problems
    from cutover.compare.pop3 import Maildrop, PopMessage, compare

    inventory = _load(tmp_path, DUAL, monkeypatch)
    kept = (
        PopMessage(1, "0000000155aa0001", 10, "~a"),
        PopMessage(2, "0000000255aa0001", 20, "~b"),
    )
    changed = (PopMessage(1, "0000000166bb0002", 10, "~a"), kept[1])
    reference = Maildrop("the preflight baseline", kept)
    drops = {
        "new-v4": Maildrop("pop3s 203.0.113.20:995 (new IP)", kept),
        "old-v6": Maildrop("pop3s [2001:db8::10]:995 (old IP)", changed),
    }
    continuity = PopContinuity(
        reference,
        "baseline",
        [(where, drop, compare(kept, drop.messages)) for where, drop in drops.items()],
        {"new-v6": "connection refused by pop3s [2001:db8::20]:995 (new IP)"},
    )
    by_place = {t.place: t for t in pop3_targets(inventory, expectations("cutover"))}
    assert _uidl_problems(continuity, by_place["new-v4"]) == []
    problems = _uidl_problems(continuity, by_place["old-v6"])
    assert "1 of 2 messages have a new UIDL on pop3s [2001:db8::10]:995 (old IP)" in problems[0]
    assert continuity.unread and by_place["new-v6"].judges("new-v6")
