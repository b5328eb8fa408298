"""Pure logic of the decommission probes: `ss`, `postqueue -j` and the scripts' tagged lines.

The old host's output is hostile: every string is bounded and sanitised,
malformed lines are skipped, nothing raises.
"""

from __future__ import annotations

import json
from pathlib import Path

from cutover.probes.decommission import (
    MAX_FIELD,
    MAX_ITEMS,
    parse_clients,
    parse_dependants,
    parse_postqueue,
    parse_ss_tcp,
    parse_ss_unix,
    parse_stranded,
)

OLD = "198.51.100.10"
SOCKET = "/run/mysqld/mysqld.sock"


def test_ss_tcp_with_and_without_the_state_column() -> None:
    rows = parse_ss_tcp(
        "ESTAB 0 0 198.51.100.10:25 198.51.100.7:40312\n"
        "0 0 [::ffff:198.51.100.10]:993 [2001:db8::7]:50000\n"
        'LISTEN 0 5 198.51.100.10:143 0.0.0.0:* users:(("socat",pid=12,fd=5))\n'
        "garbage line\n"
    )
    assert [(r.state, r.local, r.local_port, r.peer, r.peer_port) for r in rows] == [
        ("ESTAB", OLD, 25, "198.51.100.7", 40312),
        ("", OLD, 993, "2001:db8::7", 50000),
        ("LISTEN", OLD, 143, "0.0.0.0", None),
    ]
    assert rows[2].processes == (("socat", 12),)


def test_clients_counted_per_port_and_address_without_the_suite() -> None:
    sample = (
        "ESTAB 0 0 198.51.100.10:25 198.51.100.7:40312\n"
        "TIME-WAIT 0 0 198.51.100.10:25 198.51.100.7:40314\n"
        "ESTAB 0 0 198.51.100.10:143 198.51.100.100:5555\n"  # the suite
        "ESTAB 0 0 198.51.100.10:22 198.51.100.9:5555\n"  # not a forwarded port
    )
    text = f"sample:\n{sample}sample:\n{sample}"  # the same connections seen twice
    seen = parse_clients(text, [25, 143], frozenset({"198.51.100.100"}), 3)
    assert seen.samples == 2
    assert seen.by_port == {25: {"198.51.100.7": 2}}


def test_clients_hostile_lines_are_bounded() -> None:
    flood = "".join(
        f"ESTAB 0 0 198.51.100.10:25 10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}:1\n"
        for i in range(2 * MAX_ITEMS)
    )
    seen = parse_clients("sample:\n" + flood + "\x1b[2J\x00\n", [25], frozenset(), 1)
    assert len(seen.by_port[25]) == MAX_ITEMS
    assert seen.truncated


def test_postqueue_json_lines() -> None:
    entry = {
        "queue_name": "deferred",
        "queue_id": "4F2A1C0D3",
        "sender": "alice@example.test",
        "recipients": [
            {"address": "bob@example.org", "delay_reason": "connect to relay: timed out"}
        ],
    }
    text = "\n".join(
        [
            json.dumps(entry),
            "postqueue: warning: Mail system is down -- accessing queue directly",
            json.dumps({"queue_id": 5}),  # not a string: skipped
            json.dumps([1, 2]),
            "{not json",
        ]
    )
    (queued,) = parse_postqueue(text)
    assert queued.queue_id == "4F2A1C0D3"
    assert queued.queue_name == "deferred"
    assert queued.sender == "alice@example.test"
    assert queued.recipients == ("bob@example.org",)
    assert queued.reason == "connect to relay: timed out"


def test_postqueue_hostile_strings_are_sanitised_and_bounded() -> None:
    entry = {
        "queue_id": "A\x1b[31mB",
        "sender": "x" * 10_000,
        "recipients": [{"address": "\u202eevil"}] * 100,
    }
    (queued,) = parse_postqueue(json.dumps(entry))
    assert "\x1b" not in queued.queue_id
    assert len(queued.sender) <= MAX_FIELD + 10
    assert len(queued.recipients) == 20
    assert "\u202e" not in queued.recipients[0]


def test_stranded_lines() -> None:
    text = "\n".join(
        [
            "started: 1700000100.50 socat TCP-LISTEN:25,bind=198.51.100.10,fork",
            "started: 1700000100.20 socat TCP-LISTEN:110,bind=198.51.100.10,fork",
            "mail: 1700000200.00 /srv/vmail/example.test/alice/Maildir/new/1700000200.M1.old",
            "header: Message-ID: <late@example.test>",
            "header: Date: Mon, 30 Nov 2026 15:00:00 +0000",
            "mail: 1700000300.0 /srv/vmail/example.test/bob/Maildir/.Sent/cur/x:2,S",
            "datadir: 1700000400.0 app/orders.ibd",
            "queue: " + json.dumps({"queue_id": "ABC", "queue_name": "maildrop", "sender": ""}),
            "mail: not-a-number /x",
        ]
    )
    seen = parse_stranded(text, with_queue=True)
    assert seen.cutover_at == 1700000100.20
    assert seen.cutover_by.startswith("socat TCP-LISTEN:110")
    first, second = seen.messages
    assert first.mailbox == "/srv/vmail/example.test/alice/Maildir"
    assert first.message_id == "<late@example.test>"
    assert first.date == "Mon, 30 Nov 2026 15:00:00 +0000"
    assert (second.mailbox, second.message_id, second.date) == (
        "/srv/vmail/example.test/bob/Maildir/.Sent",
        "",
        "",
    )
    assert seen.datadir_files == ("app/orders.ibd",)
    assert [q.queue_id for q in seen.queue or ()] == ["ABC"]
    assert not seen.queue_error


def test_stranded_without_forwards_or_postqueue() -> None:
    seen = parse_stranded("queue-missing:\n", with_queue=True)
    assert seen.cutover_at is None
    assert seen.queue is None


def test_stranded_postqueue_error_is_said() -> None:
    text = "queue: postqueue: fatal: open /etc/postfix/main.cf\nqueue: rc: 69\n"
    seen = parse_stranded(text, with_queue=True)
    assert seen.queue == ()
    assert "main.cf" in seen.queue_error


def test_stranded_postqueue_warning_of_a_stopped_postfix_is_no_error() -> None:
    text = (
        "queue: postqueue: warning: Mail system is down -- accessing queue directly\nqueue: rc: 0\n"
    )
    seen = parse_stranded(text, with_queue=True)
    assert seen.queue == () and not seen.queue_error


def test_dependants_exclude_the_forwarders() -> None:
    text = "\n".join(
        [
            "unix:",
            f'u_str LISTEN 0 5 {SOCKET} 100 * 0 users:(("socat",pid=10,fd=5))',
            f'u_str ESTAB 0 0 {SOCKET} 101 * 102 users:(("socat",pid=11,fd=6))',
            'u_str ESTAB 0 0 * 102 * 101 users:(("mariadb",pid=50,fd=3))',
            'u_str ESTAB 0 0 * 200 * 201 users:(("other",pid=60,fd=3))',
            "tcp:",
            'LISTEN 0 128 127.0.0.1:3307 0.0.0.0:* users:(("ssh",pid=20,fd=4))',
            f'LISTEN 0 5 {OLD}:25 0.0.0.0:* users:(("socat",pid=30,fd=5))',
            'ESTAB 0 0 127.0.0.1:40000 127.0.0.1:3307 users:(("socat",pid=11,fd=7))',
            f'ESTAB 0 0 {OLD}:41000 {OLD}:25 users:(("cron-mailer",pid=70,fd=3))',
            f'ESTAB 0 0 {OLD}:25 {OLD}:41000 users:(("socat",pid=31,fd=8))',
            "procs:",
            "proc: 10 1 socat unix-listen:/run/mysqld/mysqld.sock,fork",
            "proc: 11 10 socat unix-listen:/run/mysqld/mysqld.sock,fork",
            "proc: 31 30 socat TCP-LISTEN:25,fork",
            "proc: 50 1 mariadb --socket=/run/mysqld/mysqld.sock -e SELECT SLEEP(600)",
            "proc: 70 1 /usr/local/bin/cron-mailer \x1b[2J",
        ]
    )
    seen = parse_dependants(text, SOCKET, OLD, [25, 3306])
    assert [(p.pid, p.name, p.via) for p in seen.processes] == [
        (50, "mariadb", f"the MySQL socket {SOCKET}"),
        (70, "cron-mailer", f"{OLD}:25"),
    ]
    assert seen.processes[0].cmdline.startswith("mariadb --socket=")
    assert "\x1b" not in seen.processes[1].cmdline
    assert set(seen.forwarders) == {10, 11, 20, 30, 31}


def test_ss_unix_skips_malformed_lines() -> None:
    assert parse_ss_unix("u_str ESTAB 0 0 /x notanumber * 1\nshort\n") == []


def test_the_check_backstop_leaves_room_for_the_window() -> None:
    from checks.config import _backstop
    from cutover.model.inventory import Inventory
    from cutover.model.phases import Phase

    inventory = Inventory.model_validate(
        {
            "old": {"address": "198.51.100.10"},
            "new": {"address": "198.51.100.20"},
            "decommission": {"observe_seconds": 600},
        }
    )
    assert _backstop(inventory, Phase.DECOMMISSION) == 600 + 2 * 5 + 30
    assert _backstop(inventory, Phase.ACCEPTANCE) == inventory.timeouts.test == 120


def test_without_old_ssh_the_old_host_checks_skip_saying_why(tmp_path: Path) -> None:
    from tests.suite import run_suite

    inventory = tmp_path / "inventory.yaml"
    # Zones, so the module is collected (DECOM01 judges them); no old.ssh. Nothing is asked
    # of 127.0.0.2: the selection leaves DECOM01 out.
    inventory.write_text(
        "old: {address: 127.0.0.1}\nnew: {address: 127.0.0.2}\n"
        "dns: {zones: [{name: example.test, nameservers: [127.0.0.2]}]}\n",
        encoding="utf-8",
    )
    run = run_suite(
        "decommission", inventory, tmp_path / "reports", "-k", "DECOM02 or DECOM03 or DECOM04"
    )
    assert {c.check_id for c in run.cases} == {"DECOM02", "DECOM03", "DECOM04"}, run.summary()
    for case in run.cases:
        assert case.outcome == "skipped", run.summary()
        assert "no old.ssh in the inventory" in case.message, case.message
