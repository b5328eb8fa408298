"""`-n N` splits the mail accounts (the imap area) into N shares, each observed on its own.

Pure logic, no lab: which share an account is in on an xdist worker (and
that nothing is split in a serial run), that an observation split in
batches observes only the asked target's batch, that reports get back the
serial node id whatever share suffix xdist added, and that the POP3
recorder reads only the accounts no worker marked. A suite run with `-n 2`
giving the serial verdicts over a fleet with mail accounts is in
tests/test_fleet.py.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from checks.grouping import SerialNodeIds, account_share
from cutover.model.inventory import load_inventory
from cutover.probes.services import Observations

USERS = [f"user{index}@example.test" for index in range(1, 6)]


@pytest.fixture
def inventory(tmp_path: Path) -> Any:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "shares",
                "old": {"address": "127.0.0.2"},
                "new": {"address": "127.0.0.3"},
                "mail": {"accounts": [{"user": u, "password_env": "SHARES_SECRET"} for u in USERS]},
            }
        )
    )
    return load_inventory(path, environ={"SHARES_SECRET": "x"})


def _config(**workerinput: Any) -> Any:
    return SimpleNamespace(workerinput=workerinput) if workerinput else SimpleNamespace()


def test_accounts_are_split_into_one_share_per_worker(inventory: Any) -> None:
    config = _config(cutover_loadgroup=True, workercount=2)
    shares = [account_share(config, inventory, user) for user in USERS]
    assert shares == ["1of2", "2of2", "1of2", "2of2", "1of2"]
    three = _config(cutover_loadgroup=True, workercount=3)
    assert {account_share(three, inventory, user) for user in USERS} == {"1of3", "2of3", "3of3"}


@pytest.mark.parametrize(
    "config",
    [
        _config(),  # a serial run (the controller has no workerinput either)
        _config(cutover_loadgroup=False, workercount=2),  # --dist load
        _config(cutover_loadgroup=True, workercount=1),  # -n 1
    ],
    ids=["serial", "dist-load", "one-worker"],
)
def test_nothing_is_split_without_several_grouped_workers(config: Any, inventory: Any) -> None:
    assert {account_share(config, inventory, user) for user in USERS} == {None}


def test_an_unknown_account_is_not_split(inventory: Any) -> None:
    config = _config(cutover_loadgroup=True, workercount=2)
    assert account_share(config, inventory, "nobody@example.test") is None


def test_a_batched_observation_observes_the_asked_batch_only() -> None:
    seen: list[int] = []

    def probe(target: int) -> int:
        seen.append(target)
        return target * 10

    observations = Observations(
        list(range(6)), probe, key=lambda t: t, batch=lambda target: target % 2
    )
    assert observations.get(3) == 30
    assert sorted(seen) == [1, 3, 5]  # its batch, all at once
    assert observations.get(5) == 50 and sorted(seen) == [1, 3, 5]  # not again
    assert observations.get(0) == 0
    assert sorted(seen) == [0, 1, 2, 3, 4, 5]


def test_without_batches_the_first_use_observes_everything() -> None:
    seen: list[int] = []
    observations = Observations(list(range(4)), lambda t: seen.append(t), key=lambda t: t)
    observations.get(2)
    assert sorted(seen) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("nodeid", "pair"),
    [
        ("checks/test_mailclients.py::test_account_logs_in_everywhere[a@b.test]@imap.2of2", "x"),
        ("checks/test_mailclients.py::test_account_logs_in_everywhere[a@b.test]@imap", "x"),
        ("checks/test_imap.py::test_uids_kept[web07-a@imap.test]@web07.imap.1of3", "web07"),
    ],
)
def test_reports_keep_the_serial_node_id_whatever_the_share(nodeid: str, pair: str) -> None:
    report = SimpleNamespace(
        nodeid=nodeid, user_properties=[("check_id", "AUTH01"), ("migration", pair)]
    )
    SerialNodeIds().pytest_runtest_logreport(report)  # type: ignore[arg-type]
    assert report.nodeid == nodeid.rsplit("@", 1)[0]


def test_a_share_like_suffix_of_another_group_is_left_alone() -> None:
    nodeid = "checks/test_ports.py::test_port_answers[imaps-993-old]@ports"
    report = SimpleNamespace(
        nodeid=nodeid + ".1of2", user_properties=[("check_id", "AUTH01"), ("migration", "x")]
    )
    SerialNodeIds().pytest_runtest_logreport(report)  # type: ignore[arg-type]
    assert report.nodeid == nodeid + ".1of2"


def test_the_pop3_recorder_reads_only_the_accounts_no_worker_marked(
    inventory: Any, tmp_path: Path
) -> None:
    from checks.observe.mail import record_maildrops
    from checks.record import RecordContext, Records
    from cutover.model.baseline import Baseline
    from cutover.model.phases import expectations
    from cutover.probes.connect import ProbeError

    expect = expectations("preflight")
    records = Records(Baseline(tmp_path / "baseline.json"), expect, "run1")
    for user in USERS[:4]:  # what the workers observed, each its share
        records.recorded(f"pop3/{user}")
    context = RecordContext(SimpleNamespace(), inventory, expect, records)  # type: ignore[arg-type]
    # Nothing listens on 127.0.0.2: the one account left is tried, and only it.
    with pytest.raises(ProbeError) as raised:
        record_maildrops(context)
    assert USERS[4] in str(raised.value)
    assert not any(user in str(raised.value) for user in USERS[:4])
    records.recorded(f"pop3/{USERS[4]}")
    record_maildrops(context)  # every account marked: nothing to read
