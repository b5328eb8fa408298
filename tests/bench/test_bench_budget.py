"""bench/budget.py's own logic: the logins per server read from a run's JUnit, the inventories."""

from __future__ import annotations

from pathlib import Path

from bench.budget import GENEROUS, at_default, generous, logins_per_server

JUNIT = """<?xml version="1.0"?>
<testsuites><testsuite name="pytest">
<testcase name="test_account_logs_in_everywhere[alice@example.test]"><properties>
<property name="check_id" value="AUTH01"/>
<property name="logins" value="imaps-993-old-v4 LOGIN: ok; imaps-993-old-v6 LOGIN: ok; \
imaps-993-new-v4 LOGIN: credentials rejected; \
imaps-993-new-v4 AUTHENTICATE PLAIN: not tried after credentials rejected on x; \
pop3-110-new-v6 USER/PASS: no answer: timed out after 5 s connecting to y"/>
</properties></testcase>
<testcase name="test_port_answers[smtp-25-old]"><properties>
<property name="check_id" value="PORT01"/></properties></testcase>
</testsuite></testsuites>
"""


def test_logins_are_counted_per_server_where_one_was_made(tmp_path: Path) -> None:
    junit = tmp_path / "run.xml"
    junit.write_text(JUNIT)
    counted = logins_per_server(junit)
    # Not counted: a login not tried, and one whose connection never got an answer.
    assert dict(counted) == {"old": 2, "new": 1}


def test_the_two_inventories() -> None:
    data = {"old": {"address": "x", "budget": {"connections": 1}}, "budget": {"connections": 1}}
    at_default(data)
    assert "budget" not in data and "budget" not in data["old"]
    generous(data)
    assert data["budget"] == GENEROUS
