"""Fleet: one inventory describes several migrations (host pairs).

Proved without a lab, by running the suite as a subprocess and reading what it
collected or reported: every check runs once per pair with the pair leading
its test id and naming its JUnit `migration`/`pair`; a one-pair inventory keeps
exactly today's ids; pairs' verdicts are independent (a healthy VFIO host
passes while a broken one fails); each pair's host is opened once; `-n 2
--dist loadgroup` equals serial; `--pair` selects and names the reports; each
pair has its own baseline file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cutover.model.inventory import Inventory, Pair, load_fleet, load_inventory
from tests.suite import PYTHON, REPO, SuiteRun, parse_junit, run_suite
from tests.vfio.support import CHECK_FILES, generate

SECRET_ENV = "CUTOVER_TEST_FLEET_SECRET"
ENV = {SECRET_ENV: "not-a-real-password"}

# Every area has targets, and every address is a loopback one where nothing
# listens (the MySQL logins are refused at once).
SECTIONS: dict[str, Any] = {
    "hostnames": ["mail.example.test"],
    "mail": {"accounts": [{"user": "alice@example.test", "password_env": SECRET_ENV}]},
    "mysql": {
        "admin": {"user": "ro", "password_env": SECRET_ENV},
        "accounts": [{"user": "app", "via_socket": True, "password_env": SECRET_ENV}],
        "databases": ["app"],
    },
    "dns": {"zones": [{"name": "example.test", "nameservers": ["127.0.0.9"]}]},
    "http": {"vhosts": [{"host": "www.example.test"}]},
    "outbound": {"dkim_selectors": ["s1"]},
    "timeouts": {"connect": 1, "operation": 1},
}
PAIRS = [
    ("web07", "127.0.0.2", "127.0.0.3"),
    ("mail02", "127.0.0.4", "127.0.0.5"),
]


def _old(address: str) -> dict[str, str]:
    """An old host with ssh: the via_socket account's tunnel is tested from it."""
    return {"address": address, "ssh": f"ssh://root@{address}"}


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _single(tmp_path: Path) -> Path:
    name, old, new = PAIRS[0]
    data = {"name": name, "old": _old(old), "new": {"address": new}, **SECTIONS}
    return _write(tmp_path / "single.yaml", data)


def _fleet(tmp_path: Path, pairs: list[tuple[str, str, str]] = PAIRS) -> Path:
    data = {
        "name": "fleet",
        **SECTIONS,
        "pairs": [{"name": n, "old": _old(o), "new": {"address": w}} for n, o, w in pairs],
    }
    return _write(tmp_path / "fleet.yaml", data)


def collected(inventory: Path, phase: str = "preflight", *args: str) -> list[str]:
    completed = subprocess.run(
        [
            PYTHON,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            f"-c={REPO / 'pytest.ini'}",
            f"--rootdir={REPO}",
            f"--phase={phase}",
            f"--inventory={inventory}",
            f"--reports-dir={inventory.parent / 'reports'}",
            "--collect-only",
            "-q",
            *args,
            str(REPO / "checks"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, **ENV},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return [line for line in completed.stdout.splitlines() if "::" in line]


def _without_pair(nodeid: str, pair: str) -> str:
    base, _, params = nodeid.partition("[")
    assert params.startswith(pair), nodeid
    rest = params[len(pair) :]
    return base if rest == "]" else f"{base}[{rest.removeprefix('-')}"


# --- the inventory ------------------------------------------------------------


def test_pairs_inherit_the_top_level_sections_whole(tmp_path: Path) -> None:
    data = {
        "name": "fleet",
        **SECTIONS,
        "pairs": [
            {"name": "web07", "old": _old("127.0.0.2"), "new": {"address": "127.0.0.3"}},
            {
                "name": "mail02",
                "old": _old("127.0.0.4"),
                "new": {"address": "127.0.0.5"},
                "mail": {"batch_size": 10},
                "timeouts": {"operation": 3},
            },
        ],
    }
    fleet = load_fleet(_write(tmp_path / "fleet.yaml", data), environ=ENV)
    assert fleet.name == "fleet" and fleet.explicit and fleet.several
    assert fleet.names == ["web07", "mail02"]
    web, mail = fleet.pairs
    assert (web.name, str(web.old.address), str(web.new.address)) == PAIRS[0]
    assert [a.user for a in web.mail.accounts] == ["alice@example.test"]
    assert web.mail.accounts[0].password.reveal() == ENV[SECRET_ENV]
    # A pair's section replaces the default whole: nothing merged inside it.
    assert mail.mail.accounts == [] and mail.mail.batch_size == 10
    assert mail.timeouts.operation == 3 and mail.timeouts.connect == 5.0
    assert mail.dns == web.dns and mail.source == web.source


def test_an_inventory_without_pairs_is_one_pair_named_after_it(tmp_path: Path) -> None:
    fleet = load_fleet(_single(tmp_path), environ=ENV)
    assert fleet.names == ["web07"] and not fleet.explicit and not fleet.several
    assert load_inventory(_single(tmp_path), environ=ENV) == fleet.pairs[0]


def test_one_migration_of_a_fleet_is_asked_for_by_name(tmp_path: Path) -> None:
    path = _fleet(tmp_path)
    assert load_inventory(path, environ=ENV, pair="mail02").name == "mail02"
    with pytest.raises(Exception, match=r"describes 2 migrations \(web07, mail02\)"):
        load_inventory(path, environ=ENV)
    with pytest.raises(Exception, match="no pair named 'db01'"):
        load_inventory(path, environ=ENV, pair="db01")


def test_a_pair_may_override_every_section() -> None:
    assert set(Pair.model_fields) == set(Inventory.model_fields)


def test_the_fleet_example_validates() -> None:
    completed = subprocess.run(
        [PYTHON, "-m", "cutover", "validate", "fixtures/inventory.fleet.example.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "CUTOVER_ALICE_PASSWORD": "x", "CUTOVER_BOB_PASSWORD": "y"},
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert "ok — fleet" in lines[0] and "3 pairs" in lines[0], completed.stdout
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "pair lab",
        "pair web-only",
        "pair kvm1",
    ]


# --- collection -----------------------------------------------------------------


@pytest.mark.parametrize("phase", ["preflight", "acceptance"])
def test_every_check_runs_once_per_pair_with_the_pair_in_its_id(tmp_path: Path, phase: str) -> None:
    single = collected(_single(tmp_path), phase)
    fleet = collected(_fleet(tmp_path), phase)
    assert len(fleet) == len(set(fleet)) == 2 * len(single)
    by_pair = {
        name: [i for i in fleet if f"[{name}-" in i or f"[{name}]" in i] for name, *_ in PAIRS
    }
    assert sum(len(ids) for ids in by_pair.values()) == len(fleet)
    # The pairs run one after the other, each in the one-pair order, same ids after the pair.
    assert fleet == by_pair["web07"] + by_pair["mail02"]
    for name, ids in by_pair.items():
        assert [_without_pair(i, name) for i in ids] == single
    assert "checks/test_ports.py::test_port_answers[web07-imaps-993-old]" in fleet
    assert "checks/test_http.py::test_apache_config[mail02]" in fleet


def test_one_pair_keeps_todays_ids(tmp_path: Path) -> None:
    single = collected(_single(tmp_path))
    assert "checks/test_ports.py::test_port_answers[imaps-993-old]" in single
    assert "checks/test_http.py::test_apache_config" in single
    assert not [i for i in single if "web07" in i]
    assert collected(_fleet(tmp_path, PAIRS[:1])) == single


def test_pair_selects(tmp_path: Path) -> None:
    fleet = _fleet(tmp_path)
    only = collected(fleet, "preflight", "--pair=mail02")
    assert only == [i for i in collected(fleet) if "[mail02" in i]


def test_an_unknown_pair_is_a_usage_error(tmp_path: Path) -> None:
    completed = subprocess.run(
        [PYTHON, "-m", "cutover", "run", "preflight", "-i", str(_fleet(tmp_path)), "--pair=db01"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, **ENV},
    )
    assert completed.returncode == 4, completed.stdout + completed.stderr
    assert "--pair db01: " in completed.stderr and "(it has: web07, mail02)" in completed.stderr


# --- runs: two VFIO hosts, one healthy, one broken ---------------------------------


HEALTHY, BROKEN = "kvm1", "kvm2"


@pytest.fixture(scope="module")
def vfio_fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A fleet of two VFIO hosts (captured snapshots): kvm1 healthy, kvm2 with its audio
    function left on snd_hda_intel (VFIO05)."""
    tmp_path = tmp_path_factory.mktemp("vfio-fleet")
    pairs, snapshots = [], []
    for index, (name, scenario) in enumerate(
        [(HEALTHY, "healthy"), (BROKEN, "audio-on-snd-hda-intel")]
    ):
        built = generate.build(scenario, tmp_path / name)
        tarball = generate.snapshot(built, tmp_path / f"{name}.tar.gz")
        virt_host = yaml.safe_load(built.inventory.read_text())["virt_host"]
        old, new = f"127.0.0.{2 + 2 * index}", f"127.0.0.{3 + 2 * index}"
        pairs.append(
            {"name": name, "old": {"address": old}, "new": {"address": new}, "virt_host": virt_host}
        )
        snapshots.append(f"--host-snapshot={name}={tarball}")
    data = {
        "name": "vfio-fleet",
        "mysql": {"admin": {"user": "ro", "password_env": SECRET_ENV}},
        "timeouts": {"connect": 1, "operation": 1},
        "pairs": pairs,
    }
    return _write(tmp_path / "fleet.yaml", data), snapshots


def _run(fleet: tuple[Path, list[str]], reports: Path, *args: str) -> SuiteRun:
    inventory, snapshots = fleet
    return run_suite(
        "preflight",
        inventory,
        reports,
        *CHECK_FILES,
        *snapshots,
        f"--basetemp={reports / 'tmp'}",
        *args,
        env=ENV,
    )


@pytest.fixture(scope="module")
def serial(vfio_fleet: tuple[Path, list[str]], tmp_path_factory: pytest.TempPathFactory) -> Any:
    reports = tmp_path_factory.mktemp("serial")
    return _run(vfio_fleet, reports), reports


def test_each_pair_gets_its_own_verdict(serial: tuple[SuiteRun, Path]) -> None:
    run, _ = serial
    assert run.returncode == 1, run.summary()
    for case in run.cases:
        pair = case.properties["pair"]
        assert case.properties["migration"] == pair, case
        assert case.name.split("[", 1)[1].startswith(pair), case.name
    healthy = [c for c in run.cases if c.properties["pair"] == HEALTHY]
    broken = [c for c in run.cases if c.properties["pair"] == BROKEN]
    assert healthy and len(healthy) == len(broken), run.summary()
    assert not [c for c in healthy if c.outcome in ("failed", "error")], run.summary()
    failing = [c for c in broken if c.outcome in ("failed", "error")]
    assert {c.check_id for c in failing} == {"VFIO05"}, run.summary()
    assert "snd_hda_intel" in failing[0].message
    assert f"pair {HEALTHY}: ok" in run.stdout and f"pair {BROKEN}: FAIL" in run.stdout
    assert run.stdout.index(f"pair {HEALTHY}:") < run.stdout.index(f"pair {BROKEN}:")


def test_each_pairs_host_is_opened_once(serial: tuple[SuiteRun, Path]) -> None:
    _, reports = serial
    opened = sorted(p.name for p in (reports / "tmp").glob("host-snapshot[0-9]*"))
    assert opened == ["host-snapshot0", "host-snapshot1"]


def test_parallel_loadgroup_gives_the_serial_verdicts(
    serial: tuple[SuiteRun, Path], vfio_fleet: tuple[Path, list[str]], tmp_path: Path
) -> None:
    run, _ = serial
    parallel = _run(vfio_fleet, tmp_path, "-n", "2")  # loadgroup by default
    assert {(c.classname, c.name, c.outcome) for c in parallel.cases} == {
        (c.classname, c.name, c.outcome) for c in run.cases
    }, parallel.summary()
    # Grouped by pair and area (vfio, vm): each pair's host is opened at most
    # once per worker, at most once per area in all.
    workers = list((tmp_path / "tmp").glob("popen-gw*"))
    opened = [list(w.glob("host-snapshot[0-9]*")) for w in workers]
    assert all(len(each) <= 2 for each in opened), opened
    assert 2 <= sum(len(each) for each in opened) <= 4, opened
    assert f"pair {BROKEN}: FAIL" in parallel.stdout


def test_a_ci_job_per_pair_names_its_reports_and_merges(
    serial: tuple[SuiteRun, Path], vfio_fleet: tuple[Path, list[str]], tmp_path: Path
) -> None:
    run, _ = serial
    inventory, snapshots = vfio_fleet
    cases = []
    for pair in (HEALTHY, BROKEN):
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "cutover",
                "run",
                "preflight",
                "-i",
                str(inventory),
                "--pair",
                pair,
                f"--reports-dir={tmp_path}",
                f"--baseline={tmp_path / 'baseline.json'}",
                *snapshots,
                *CHECK_FILES,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=REPO,
            env={**os.environ, **ENV},
        )
        assert completed.returncode == (0 if pair == HEALTHY else 1), completed.stdout
        junit = tmp_path / f"preflight-{pair}.xml"
        assert (tmp_path / f"preflight-{pair}.html").is_file()
        job = parse_junit(junit)
        assert job and {c.properties["pair"] for c in job} == {pair}
        cases += job
    assert not (tmp_path / "preflight.xml").exists()
    # The jobs' testcases together are the whole fleet's, each named once.
    assert sorted((c.classname, c.name, c.outcome) for c in cases) == sorted(
        (c.classname, c.name, c.outcome) for c in run.cases
    )


def test_each_pair_has_its_own_baseline(vfio_fleet: tuple[Path, list[str]], tmp_path: Path) -> None:
    inventory, _ = vfio_fleet
    run = run_suite(
        "acceptance", inventory, tmp_path, "checks/test_mysql.py", "-k", "grants", env=ENV
    )
    grants = {c.properties["pair"]: c for c in run.cases if c.check_id == "MYSQL04"}
    assert set(grants) == {HEALTHY, BROKEN}, run.summary()
    for pair, case in grants.items():
        other = BROKEN if pair == HEALTHY else HEALTHY
        missing = f"{tmp_path / f'baseline-{pair}.json'} holds no mysql record 'grants'"
        assert missing in case.message
        assert f"baseline-{other}.json" not in case.message
