"""The mysql recorder: a preflight narrowed away from MYSQL04/05 still records the old server.

Offline: the inventory's old and new IPs are loopback addresses where nothing
listens, so the end-of-run recorder cannot read the old server and the run
says which records the baseline lacks (the lab test
`test_preflight_narrowed_still_records_the_baseline` proves the green side).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.suite import run_suite

SECRET_ENV = "CUTOVER_TEST_RECORDER_SECRET"


def test_narrowed_preflight_says_what_the_baseline_lacks(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "name": "recorder",
                "old": {"address": "127.0.9.21", "hostname": "old.recorder.test"},
                "new": {"address": "127.0.9.22", "hostname": "new.recorder.test"},
                "services": [{"name": "mysql", "port": 13306, "protocol": "mysql"}],
                "mysql": {
                    "admin": {"user": "ro", "host": "%", "password_env": SECRET_ENV},
                    "databases": ["app"],
                },
                "timeouts": {"connect": 2, "operation": 2, "test": 60},
            }
        )
    )
    run = run_suite(
        "preflight",
        inventory,
        tmp_path / "r",
        "checks/test_mysql.py",
        "-k",
        "MYSQL03",
        env={SECRET_ENV: "not-a-real-password"},
    )
    assert {c.check_id for c in run.cases} == {"MYSQL03"}, run.summary()
    output = run.stdout + run.stderr
    assert (
        "the baseline lacks mysql: cannot connect to mysql 127.0.9.21:13306 (old IP)" in output
    ), output
    assert run.returncode != 0, run.summary()
    assert "not-a-real-password" not in output
