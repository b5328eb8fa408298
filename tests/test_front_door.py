"""Every way a user types a run checks what they meant, or says why not.

Each command runs as a subprocess from a temporary directory outside the
checkout (as a user would, with the installed `cutover` command and plain
pytest), against a small inventory that needs no lab: the healthy VFIO
fixture host through `--host-snapshot`, and loopback addresses where nothing
listens (no services, so nothing is probed). For each form the test reads
the run's JSON report: which checks ran (by ID), where the reports went,
that an empty run left the previous reports alone, and the exit code.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from checks.selection import NEEDS_PHASE
from cutover.cli import nagios, watch
from cutover.model.catalogue import area_of, load_catalogue, runs_in
from cutover.model.phases import Phase
from tests.suite import REPO
from tests.vfio.support import generate

BIN = Path(sys.executable).parent
CUTOVER = str(BIN / "cutover")
PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
PASSWORD_ENV = "FRONT_DOOR_PASSWORD"  # read by the IMAP checks, which find nothing listening
SCHEMA = json.loads((REPO / "docs" / "report.schema.json").read_text(encoding="utf-8"))
VIRT_IDS = {e.check_id for e in load_catalogue() if area_of(e.check_id) in ("vfio", "vm")}
NAGIOS_LINE = re.compile(
    r"^CUTOVER (?P<phase>[A-Z]+) (?P<state>OK|WARNING|CRITICAL|UNKNOWN) - (?P<text>[^|\n]+?)"
    r"(?: \| (?P<perfdata>[^|\n]+))?$"
)
# Nagios plugin guidelines: 'label'=value[UOM];[warn];[crit];[min];[max]
PERFDATA_ITEM = re.compile(
    r"^(?:'(?:[^']|'')+'|[^'= ]+)=-?[0-9.]+(?:[a-zA-Z%]+)?(?:;[0-9:~@.-]*){0,4}$"
)


def ids_of(phase: Phase, *areas: str) -> set[str]:
    """The check IDs of `areas` that run in `phase`, from the catalogue."""
    return {
        e.check_id
        for e in load_catalogue()
        if area_of(e.check_id) in areas and runs_in(e.check_id, phase)
    }


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str
    cwd: Path

    def report(self, stem: str) -> dict[str, Any]:
        path = self.cwd / "reports" / f"{stem}.json"
        assert path.is_file(), f"no {path}:\n{self.output}"
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        jsonschema.validate(data, SCHEMA)
        return data

    def exit_matches(self, stem: str) -> bool:
        """The documented exit code: 1 when a check failed or errored, else 0."""
        totals = self.report(stem)["totals"]
        return self.returncode == (1 if totals["failed"] + totals["error"] else 0)

    def ids(self, stem: str) -> set[str]:
        return {check["id"] for check in self.report(stem)["checks"]}

    @property
    def output(self) -> str:
        return f"exit {self.returncode}\n{self.stdout[-4000:]}\n{self.stderr[-3000:]}"


def report_files(directory: Path) -> list[str]:
    return sorted(p.name for p in (directory / "reports").glob("*"))


def user_env(*, cache: bool = False) -> dict[str, str]:
    """The environment of a user's shell: no self-test settings, no pytest cache unless `cache`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "CUTOVER_")) and k != "COLUMNS"
    }
    env[PASSWORD_ENV] = "not-a-real-password"
    if not cache:
        env["PYTEST_ADDOPTS"] = "-p no:cacheprovider"
    return env


def run(argv: list[str], cwd: Path, timeout: float = 300, *, cache: bool = False) -> Ran:
    env = user_env(cache=cache)
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
    return Ran(done.returncode, done.stdout, done.stderr, cwd)


def snapshot_of(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `directory`: its bytes and mtime (ns)."""
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@dataclass(frozen=True)
class Host:
    inventory: Path  # one pair, loopback addresses
    fleet: Path  # two pairs: web07, mail02
    snapshot: Path  # the healthy VFIO host
    broken: Path  # a host whose IOMMU is off: VFIO checks fail
    broken_inventory: Path


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Host:
    base = tmp_path_factory.mktemp("front-door-host")
    assert REPO not in base.parents
    built = generate.build("healthy", base / "healthy")
    snapshot = generate.snapshot(built, base / "healthy.tar.gz")
    data = yaml.safe_load(built.inventory.read_text(encoding="utf-8"))
    del data["services"]  # the playbook's nine ports, on loopback addresses where nothing listens
    data.update(
        name="front-door",
        old={"address": "127.0.0.1"},
        new={"address": "127.0.0.2"},
        hostnames=["mail.example.test"],
        mail={"accounts": [{"user": "alice@example.test", "password_env": PASSWORD_ENV}]},
        dns={"zones": [{"name": "example.test", "nameservers": ["127.0.0.2"]}]},
        timeouts={"connect": 1, "operation": 1},
    )
    inventory = base / "inventory.yaml"
    inventory.write_text(yaml.safe_dump(data), encoding="utf-8")
    fleet_data = {
        "name": "front-door-fleet",
        "services": [],
        "virt_host": data["virt_host"],
        "pairs": [
            {"name": "web07", "old": {"address": "127.0.0.3"}, "new": {"address": "127.0.0.4"}},
            {"name": "mail02", "old": {"address": "127.0.0.5"}, "new": {"address": "127.0.0.6"}},
        ],
    }
    fleet = base / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(fleet_data), encoding="utf-8")
    bad = generate.build("iommu-disabled-by-last-flag", base / "broken")
    broken = generate.snapshot(bad, base / "broken.tar.gz")
    return Host(inventory, fleet, snapshot, broken, bad.inventory)


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    """A directory of the user's own, outside the checkout."""
    assert REPO not in tmp_path.parents
    return tmp_path


def snap(host: Host) -> str:
    return f"--host-snapshot={host.snapshot}"


# --- one way in -------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "phase", "areas"),
    [
        (["-k", "imap"], Phase.CUTOVER, ("imap",)),
        (["-k=imap"], Phase.CUTOVER, ("imap",)),
        (["-m", "dns or imap"], Phase.CUTOVER, ("dns", "imap")),
        (["-m=vfio or vm", "-x"], Phase.PREFLIGHT, ("vfio", "vm")),
        (["-k", "VFIO or VM", "-n", "2"], Phase.PREFLIGHT, ("vfio", "vm")),
    ],
    ids=["k-space", "k-equals", "m-space", "m-equals-x", "xdist"],
)
def test_cutover_run_checks_what_the_pass_through_args_select(
    form: list[str], phase: Phase, areas: tuple[str, ...], host: Host, user_dir: Path
) -> None:
    ran = run([CUTOVER, "run", phase.value, "-i", str(host.inventory), snap(host), *form], user_dir)
    assert ran.exit_matches(phase.value), ran.output
    assert ids_of(phase, *areas) <= ran.ids(phase.value), ran.output
    keyword = form[0] in ("-k", "-k=imap")  # -k also matches test ids: imaps-993-old (PORT01)
    for check in ran.report(phase.value)["checks"]:
        assert check["area"] in areas or (keyword and "imap" in (check["target"] or "")), check
    assert (user_dir / "reports" / f"{phase.value}.xml").is_file()
    assert (user_dir / "reports" / f"{phase.value}.html").is_file()


def test_python_m_cutover_stays_and_the_inventory_is_relative_to_the_cwd(
    host: Host, user_dir: Path
) -> None:
    (user_dir / "inventory.yaml").write_text(host.inventory.read_text(encoding="utf-8"))
    command = [sys.executable, "-m", "cutover", "run", "preflight", "-i", "inventory.yaml"]
    ran = run([*command, snap(host), "-k", "VFIO"], user_dir)
    assert ran.returncode == 0, ran.output
    assert ran.ids("preflight") == ids_of(Phase.PREFLIGHT, "vfio")


def test_cutover_run_decommission_runs_only_the_decom_checks(host: Host, user_dir: Path) -> None:
    """The fourth phase from a user's own directory: its checks, its reports, nothing else.

    Nothing answers DNS on the front door's loopback nameserver, so the switch was
    never seen: DECOM01 fails and says so.
    """
    ran = run([CUTOVER, "run", "decommission", "-i", str(host.inventory)], user_dir)
    assert ran.returncode == 1, ran.output
    report = ran.report("decommission")  # validated against docs/report.schema.json
    assert report["phase"] == "decommission"
    assert ran.ids("decommission") == ids_of(Phase.DECOMMISSION, "decom")
    (decom01,) = [c for c in report["checks"] if c["id"] == "DECOM01"]
    assert decom01["verdict"] == "failed"
    assert "the DNS switch was never seen" in decom01["evidence"], decom01
    assert (user_dir / "reports" / "decommission.xml").is_file()
    # The rollback delta beside it: nothing recorded, so nothing known, and it says why.
    delta = json.loads((user_dir / "reports" / "rollback-delta.json").read_text(encoding="utf-8"))
    assert delta["format"] == "cutover-rollback-delta" and delta["phase"] == "decommission"
    (pair,) = delta["pairs"]
    assert any("run preflight first" in problem for problem in pair["problems"]), pair
    assert "cutover decommission: rollback delta" in ran.stdout, ran.output


def test_one_pair_of_a_fleet_gets_its_own_reports(host: Host, user_dir: Path) -> None:
    ran = run(
        [
            CUTOVER,
            "run",
            "preflight",
            "-i",
            str(host.fleet),
            "--pair",
            "web07",
            "-m",
            "vfio",
            snap(host),
        ],
        user_dir,
    )
    assert ran.returncode == 0, ran.output
    report = ran.report("preflight-web07")
    assert report["pairs"] == ["web07"]
    assert {c["pair"] for c in report["checks"]} == {"web07"}
    assert {c["id"] for c in report["checks"]} == ids_of(Phase.PREFLIGHT, "vfio")
    assert not (user_dir / "reports" / "preflight.json").exists()


@pytest.mark.parametrize("spelling", ["equals", "space"])
def test_plain_pytest_from_any_directory_collects_the_checks(
    spelling: str, host: Host, user_dir: Path
) -> None:
    options = (
        ["--phase=preflight", f"--inventory={host.inventory}"]
        if spelling == "equals"
        else ["--phase", "preflight", "--inventory", str(host.inventory)]
    )
    ran = run([*PYTEST, *options, snap(host), "-k", "VFIO or VM"], user_dir)
    assert ran.returncode == 0, ran.output
    report = ran.report("preflight")
    assert {c["id"] for c in report["checks"]} == VIRT_IDS
    assert all(c["verdict"] in ("passed", "skipped") for c in report["checks"])


def test_a_check_path_names_the_installed_checks_from_anywhere(host: Host, user_dir: Path) -> None:
    ran = run(
        [CUTOVER, "run", "preflight", "-i", str(host.inventory), snap(host), "checks/test_vm.py"],
        user_dir,
    )
    assert ran.returncode == 0, ran.output
    assert ran.ids("preflight") == ids_of(Phase.PREFLIGHT, "vm")


# --- in the checkout: the self-tests never start by accident ------------------


def _namespaces() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    return {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}


LAB_LOCK = Path("/tmp/cutover-lab.lock")


def _lock_holders() -> set[int]:
    """PIDs holding the machine's lab lock (from /proc/locks)."""
    try:
        inode = LAB_LOCK.stat().st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return set()
    return {
        int(fields[4])
        for fields in (line.split() for line in lines if "->" not in line)  # "->": waiting
        if len(fields) > 5 and fields[5].rsplit(":", 1)[-1] == str(inode)
    }


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return pids


@pytest.fixture
def no_namespace_created() -> Iterator[None]:
    """`ip netns list` is the same after the block.

    Only another lab run could change the namespaces meanwhile: the block holds
    the lab lock, or runs inside the run that holds it (`make test`); when
    another checkout's run holds it, the namespaces are not compared.
    """
    with LAB_LOCK.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            ours = True
        except BlockingIOError:
            ours = bool(_lock_holders() & _ancestors())
        before = _namespaces()
        yield
        if ours:
            assert _namespaces() == before


@pytest.mark.usefixtures("no_namespace_created")
def test_plain_pytest_in_the_checkout_says_a_phase_is_needed() -> None:
    ran = run(PYTEST, REPO, timeout=120)
    assert ran.returncode == 4, ran.output
    assert "the checks need a phase" in ran.stderr
    assert "Traceback" not in ran.output and "tests/" not in ran.stdout
    assert " passed" not in ran.stdout and " failed" not in ran.stdout


@pytest.mark.usefixtures("no_namespace_created")
def test_inventory_path_in_the_space_form_inside_the_checkout_runs_no_self_test(
    host: Host, tmp_path: Path
) -> None:
    """pytest takes `/abs/inv.yaml` for a test path when choosing its rootdir: checks only."""
    reports = tmp_path / "reports"
    ran = run(
        [
            *PYTEST,
            "--phase",
            "preflight",
            "--inventory",
            str(host.inventory),
            snap(host),
            f"--reports-dir={reports}",
            f"--baseline={tmp_path / 'baseline.json'}",
        ],
        REPO,
    )
    assert ran.returncode in (0, 1), ran.output
    data = json.loads((reports / "preflight.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, SCHEMA)
    ran_ids = {c["id"] for c in data["checks"]}
    assert VIRT_IDS | ids_of(Phase.PREFLIGHT, "ports", "imap", "dns") <= ran_ids
    assert ran_ids <= ids_of(Phase.PREFLIGHT, *_all_areas())
    assert not re.search(r"^tests/", ran.stdout, re.MULTILINE), ran.output
    # the rootdir is the checkout again (not the inventory's directory): ids as in a `=` run
    assert all(c["test"].startswith("checks/test_") for c in data["checks"]), data["checks"][0]
    assert "rootdir: " + str(REPO) in ran.stdout and "configfile: pytest.ini" in ran.stdout
    # without --phase: one line, nothing collected
    ran = run([*PYTEST, "--inventory", str(host.inventory)], REPO, timeout=120)
    assert ran.returncode == 4, ran.output
    assert "the checks need a phase" in ran.stderr


@pytest.mark.parametrize("form", ["space", "equals"])
def test_an_inventory_without_a_phase_is_refused_before_collecting_the_directory(
    user_dir: Path, form: str
) -> None:
    """pytest would collect the user's own directory (a tree of any size): one line instead."""
    (user_dir / "inv.yaml").write_text("old: {address: 127.0.0.1}\nnew: {address: 127.0.0.2}\n")
    (user_dir / "test_mine.py").write_text(
        "import pathlib\npathlib.Path('collected').touch()\n\n\ndef test_mine():\n    pass\n"
    )
    typed = ["--inventory", "inv.yaml"] if form == "space" else ["--inventory=inv.yaml"]
    ran = run([*PYTEST, *typed], user_dir, timeout=120)
    assert ran.returncode == 4, ran.output
    assert [line for line in ran.stderr.splitlines() if line.strip()] == [
        f"ERROR: {NEEDS_PHASE}"
    ], ran.output
    assert not (user_dir / "collected").exists(), "the user's directory was collected"
    assert " passed" not in ran.stdout


def _all_areas() -> set[str]:
    return {area_of(e.check_id) for e in load_catalogue()}


# --- never green on nothing -------------------------------------------------


def test_a_run_that_deselects_every_check_fails_and_keeps_the_reports(
    host: Host, user_dir: Path
) -> None:
    good = run(
        [CUTOVER, "run", "preflight", "-i", str(host.inventory), snap(host), "-m", "vm"], user_dir
    )
    assert good.returncode == 0, good.output
    reports = sorted((user_dir / "reports").iterdir())
    # A preflight also records the old server's services whatever `-m` selected (the
    # baseline and its lock file, checks/record.py).
    assert [p.name for p in reports if p.name.startswith("preflight.")] == [
        "preflight.html",
        "preflight.json",
        "preflight.xml",
    ]
    before = {p: p.read_bytes() for p in reports}
    for selection in (["-k", "PORT99"], ["-m", "nosuchmarker"], ["-k", "PORT99", "-n", "2"]):
        empty = run([CUTOVER, "run", "preflight", "-i", str(host.inventory), *selection], user_dir)
        assert empty.returncode == 5, empty.output
        why = [line for line in empty.stdout.splitlines() if "no check ran" in line]
        assert len(why) == 1 and selection[1] in why[0], empty.output
        assert {p: p.read_bytes() for p in reports} == before
        assert sorted((user_dir / "reports").iterdir()) == reports


def test_an_area_the_inventory_does_not_configure_is_named(host: Host, user_dir: Path) -> None:
    """`-m mysql` without `mysql:`: not "deselected all", which reads like a typo."""
    for selection in (["-m", "mysql"], ["-k", "MYSQL01"]):
        ran = run([CUTOVER, "run", "preflight", "-i", str(host.inventory), *selection], user_dir)
        assert ran.returncode == 5, ran.output
        why = [line for line in ran.stdout.splitlines() if "no check ran" in line]
        assert len(why) == 1, ran.output
        assert "the inventory configures no mysql: section" in why[0], why[0]
        assert "deselected all" not in why[0], why[0]


def test_decommission_without_zones_or_old_ssh_checks_nothing_and_says_so(user_dir: Path) -> None:
    """The DECOM checks need `dns:` zones or `old.ssh`: without both, never green on skips."""
    inventory = user_dir / "bare.yaml"
    inventory.write_text("old: {address: 127.0.0.1}\nnew: {address: 127.0.0.2}\n", "utf-8")
    for selection in ([], ["-k", "DECOM02"]):
        ran = run([CUTOVER, "run", "decommission", "-i", str(inventory), *selection], user_dir)
        assert ran.returncode == 5, ran.output
        why = [line for line in ran.stdout.splitlines() if "no check ran" in line]
        assert len(why) == 1, ran.output
        if selection:
            assert "configures no dns: or old.ssh: section" in why[0], why[0]


@pytest.mark.parametrize("kind", ["missing", "not-a-tarball", "directory"])
def test_a_host_snapshot_that_cannot_be_read_is_a_usage_error(
    host: Host, user_dir: Path, kind: str
) -> None:
    """One line naming the path, exit 4 (Nagios UNKNOWN), before anything runs."""
    path = user_dir / "host.tar.gz"
    if kind == "not-a-tarball":
        path.write_text("not a tarball\n", encoding="utf-8")
    elif kind == "directory":
        path.mkdir()
    argv = [CUTOVER, "run", "preflight", "-i", str(host.inventory), f"--host-snapshot={path}"]
    ran = run([*argv, "-m", "vfio"], user_dir)
    assert ran.returncode == 4, ran.output
    errors = [line for line in ran.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and f"--host-snapshot {path}: " in errors[0], ran.output
    assert "\\n" not in errors[0] and "Traceback" not in ran.output, errors[0]
    assert report_files(user_dir) == []


def test_an_empty_run_ends_with_its_reason_and_touches_no_report(
    host: Host, user_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    good = run(
        [CUTOVER, "run", "preflight", "-i", str(host.inventory), snap(host), "-k", "VM03"], user_dir
    )
    assert good.returncode == 0, good.output
    before = snapshot_of(user_dir / "reports")
    empty = run(
        [CUTOVER, "run", "preflight", "-i", str(host.inventory), "-k", "nothing_matches"], user_dir
    )
    assert empty.returncode == 5, empty.output
    last = empty.stdout.rstrip().splitlines()[-1]
    assert last.startswith("cutover: no check ran: ") and "left as they were" in last, empty.output
    assert "generated xml file" not in empty.stdout and "Generated html" not in empty.stdout
    assert snapshot_of(user_dir / "reports") == before  # same bytes, same mtimes, nothing else
    fresh = tmp_path_factory.mktemp("fresh")
    empty = run(
        [CUTOVER, "run", "preflight", "-i", str(host.inventory), "-k", "nothing_matches"], fresh
    )
    assert empty.returncode == 5, empty.output
    assert list(fresh.iterdir()) == [], "an empty run left something in a fresh directory"


def silent_listener(address: str) -> socket.socket:
    """Accepts connections (the kernel does) and never says a word."""
    listener = socket.socket()
    listener.bind((address, 0))
    listener.listen(16)
    return listener


@pytest.mark.parametrize("nagios", [False, True], ids=["terminal", "nagios"])
def test_ctrl_c_leaves_the_reports_as_they_were(nagios: bool, host: Host, user_dir: Path) -> None:
    """A check is mid-flight (reading a greeting that never comes) when SIGINT arrives."""
    with silent_listener("127.0.0.7") as listener:
        port = listener.getsockname()[1]
        data = yaml.safe_load(host.inventory.read_text(encoding="utf-8"))
        data.update(
            old={"address": "127.0.0.7"},
            new={"address": "127.0.0.8"},
            services=[{"name": "imap", "port": port, "protocol": "imap"}],
            # The probe threads finish their exchange before the process exits: a
            # Ctrl-C waits for at most the operation timeout.
            timeouts={"connect": 1, "operation": 10, "test": 60},
        )
        inventory = user_dir / "slow.yaml"
        inventory.write_text(yaml.safe_dump(data), encoding="utf-8")
        good = run(
            [CUTOVER, "run", "preflight", "-i", str(host.inventory), snap(host), "-m", "vm"],
            user_dir,
        )
        assert good.returncode == 0, good.output
        before = snapshot_of(user_dir / "reports")
        argv = [CUTOVER, "run", "preflight", "-i", str(inventory), "-k", "PORT01"]
        if nagios:
            argv.append("--nagios")
        with subprocess.Popen(
            argv,
            cwd=user_dir,
            env=user_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: a Ctrl-C from a terminal
            # A shell's background job inherits SIGINT ignored (and Python then installs no
            # KeyboardInterrupt handler): a terminal's foreground run has it at its default.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        ) as started:
            listener.settimeout(60)
            try:
                connection, _ = listener.accept()  # the check is waiting for a greeting now
            except TimeoutError:
                started.kill()
                stdout, stderr = started.communicate(timeout=60)
                raise AssertionError(f"the check never connected:\n{stdout}\n{stderr}") from None
            os.killpg(started.pid, signal.SIGINT)
            stdout, stderr = started.communicate(timeout=120)
            connection.close()
    output = f"exit {started.returncode}\n{stdout}\n{stderr}"
    assert "Traceback" not in output, output
    assert snapshot_of(user_dir / "reports") == before, output
    if nagios:
        assert started.returncode == 3, output
        assert stdout == "CUTOVER PREFLIGHT UNKNOWN - interrupted\n", output
    else:
        assert started.returncode == 2, output
        last = stdout.rstrip().splitlines()[-1]
        assert last.startswith("cutover: interrupted") and "left as they were" in last, output
        assert "generated xml file" not in stdout and "Generated html" not in stdout, output


def test_cutover_run_keeps_the_pytest_cache_in_the_current_directory(
    host: Host, user_dir: Path
) -> None:
    """The rootdir is the install directory: pytest's cache would land there."""
    cache = REPO / ".pytest_cache"
    before = snapshot_of(cache) if cache.is_dir() else None
    ran = run(
        [CUTOVER, "run", "preflight", "-i", str(host.inventory), snap(host), "-k", "VM03"],
        user_dir,
        cache=True,
    )
    assert ran.returncode == 0, ran.output
    assert (user_dir / ".pytest_cache").is_dir(), ran.output
    assert (snapshot_of(cache) if cache.is_dir() else None) == before


def test_unknown_options_are_named_by_the_command_typed(host: Host, user_dir: Path) -> None:
    ran = run(
        [CUTOVER, "run", "preflight", "-i", str(host.inventory), "--no-such-option"], user_dir
    )
    assert ran.returncode == 4, ran.output
    assert "__main__.py" not in ran.output and "cutover run" in ran.stderr, ran.output


def test_collect_only_writes_no_report(host: Host, user_dir: Path) -> None:
    ran = run([CUTOVER, "run", "preflight", "-i", str(host.inventory), "--collect-only"], user_dir)
    assert ran.returncode == 0, ran.output
    assert "test_vfio.py" in ran.stdout
    assert report_files(user_dir) == []


def test_check_ids_select_with_k(host: Host, user_dir: Path) -> None:
    inventory = str(host.inventory)
    ran = run([CUTOVER, "run", "cutover", "-i", inventory, "-k", "PORT03"], user_dir)
    assert ran.returncode == 0, ran.output  # skipped: --probe-mail not given
    assert ran.ids("cutover") == {"PORT03"}
    ran = run([CUTOVER, "run", "preflight", "-i", inventory, "-k", "DNS02 or DNS03"], user_dir)
    assert ran.exit_matches("preflight"), ran.output
    assert ran.ids("preflight") == {"DNS02", "DNS03"}
    ran = run([CUTOVER, "run", "preflight", "-i", inventory, snap(host), "-k", "VM03"], user_dir)
    assert ran.returncode == 0, ran.output
    assert ran.ids("preflight") == {"VM03"}


def test_probe_mail_without_a_probe_account_is_an_inventory_error(
    host: Host, user_dir: Path
) -> None:
    ran = run([CUTOVER, "run", "cutover", "-i", str(host.inventory), "--probe-mail"], user_dir)
    assert ran.returncode == 4, ran.output
    errors = [line for line in ran.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "mail.probe_account" in errors[0], ran.output
    assert "Traceback" not in ran.output
    assert report_files(user_dir) == []


# --- machine outputs ----------------------------------------------------------


def test_the_json_report_describes_every_check(host: Host, user_dir: Path) -> None:
    ran = run(
        [
            CUTOVER,
            "run",
            "preflight",
            "-i",
            str(host.broken_inventory),
            f"--host-snapshot={host.broken}",
            "-m",
            "vfio or vm",
        ],
        user_dir,
    )
    assert ran.returncode == 1, ran.output
    report = ran.report("preflight")  # validated against docs/report.schema.json
    assert report["phase"] == "preflight" and report["exit_status"] == 1
    assert {c["id"] for c in report["checks"]} == VIRT_IDS
    failed = [c for c in report["checks"] if c["verdict"] == "failed"]
    assert failed and all(c["evidence"] for c in failed)
    assert report["totals"]["failed"] == len(failed)
    assert report["totals"]["checks"] == len(report["checks"])
    assert all(c["properties"]["check_id"] == c["id"] for c in report["checks"])


def parse_nagios(output: str) -> tuple[str, str, dict[str, str]]:
    """A plugin's output by the Nagios plugin guidelines: one line, text | perfdata."""
    lines = output.splitlines()
    assert len(lines) == 1, output
    match = NAGIOS_LINE.match(lines[0])
    assert match is not None, lines[0]
    perfdata: dict[str, str] = {}
    for item in (match["perfdata"] or "").split():
        assert PERFDATA_ITEM.match(item), item
        label, _, value = item.rpartition("=")
        perfdata[label.strip("'")] = value
    return match["state"], match["text"], perfdata


def test_nagios_mode_states_and_exit_codes(host: Host, user_dir: Path) -> None:
    cases = [
        (["-i", str(host.inventory), snap(host), "-m", "vfio or vm"], "OK", 0),
        (
            ["-i", str(host.broken_inventory), f"--host-snapshot={host.broken}", "-m", "vfio"],
            "CRITICAL",
            2,
        ),
        (["-i", str(user_dir / "missing.yaml")], "UNKNOWN", 3),
        (["-i", str(host.inventory), "-k", "PORT99"], "UNKNOWN", 3),
    ]
    for args, state, code in cases:
        ran = run([CUTOVER, "run", "preflight", "--nagios", *args], user_dir)
        assert ran.returncode == code, ran.output
        parsed_state, text, perfdata = parse_nagios(ran.stdout)
        assert parsed_state == state, ran.stdout
        if state != "UNKNOWN":
            assert int(perfdata["checks"].split(";")[0]) > 0
            assert {"passed", "failed", "error", "skipped", "vfio_failed"} <= set(perfdata)
            assert "vfio" in text
    assert nagios.STATES == {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


def test_testinfra_nagios_flag_in_a_phase_run_never_says_ok_on_nothing(
    host: Host, user_dir: Path
) -> None:
    inventory = f"--inventory={host.inventory}"
    ran = run([*PYTEST, "--phase=preflight", inventory, "--nagios", "-k", "PORT99"], user_dir)
    assert ran.returncode == 3, ran.output
    assert parse_nagios(ran.stdout)[0] == "UNKNOWN"
    assert "TESTINFRA" not in ran.stdout
    ran = run(
        [*PYTEST, "--phase=preflight", inventory, "--nagios", snap(host), "-m", "vm"], user_dir
    )
    assert ran.returncode == 0, ran.output
    assert parse_nagios(ran.stdout)[0] == "OK"


@pytest.mark.parametrize(
    ("totals", "state"),
    [
        ({"checks": 3, "passed": 3, "failed": 0, "error": 0, "skipped": 0}, "OK"),
        ({"checks": 3, "passed": 2, "failed": 0, "error": 0, "skipped": 1}, "OK"),
        ({"checks": 3, "passed": 2, "failed": 0, "error": 1, "skipped": 0}, "WARNING"),
        ({"checks": 3, "passed": 0, "failed": 0, "error": 0, "skipped": 3}, "WARNING"),
        ({"checks": 3, "passed": 1, "failed": 1, "error": 1, "skipped": 0}, "CRITICAL"),
        ({"checks": 0, "passed": 0, "failed": 0, "error": 0, "skipped": 0}, "UNKNOWN"),
    ],
)
def test_nagios_state_table(totals: dict[str, int], state: str) -> None:
    assert nagios.state_of(totals) == state
    areas = {"ports": {k: totals[k] for k in ("passed", "failed", "error", "skipped")}}
    line, code = nagios.render("cutover", {"totals": totals, "areas": areas, "checks": []})
    assert parse_nagios(line)[0] == state
    assert code == nagios.STATES[state]


def test_watch_max_downtime_on_the_result_model() -> None:
    line = watch.Timeline("imap-143-old")
    for at, problem in ((1.0, None), (1.2, "refused"), (3.4, None), (4.0, "refused"), (4.2, None)):
        line.add(watch.Observation(at, 0.01, None if problem else "new", None, problem))
    data = {
        "endpoints": [{"id": line.endpoint_id, "windows": [w.to_json(5.0) for w in line.windows]}]
    }
    longest = max(w["duration_s"] for w in data["endpoints"][0]["windows"])
    assert watch.over_max_downtime(data, longest + 0.01) == []
    assert watch.over_max_downtime(data, longest - 0.01) == [("imap-143-old", longest)]
    assert watch.over_max_downtime({"endpoints": [{"id": "x", "windows": []}]}, 0) == []


def test_watch_max_downtime_sets_the_exit_code(user_dir: Path) -> None:
    """Nothing listens on the loopback port: every probe fails, one window lasts the whole watch."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inventory = user_dir / "watch.yaml"
    inventory.write_text(
        "name: nothing-listens\nold: {address: 127.0.0.1}\nnew: {address: 127.0.0.2}\n"
        f"services: [{{name: web, port: {port}, protocol: http}}]\n"
        "timeouts: {connect: 1, operation: 1}\n",
        encoding="utf-8",
    )
    watch_run = [CUTOVER, "watch", "-i", str(inventory), "--interval", "0.1", "--duration", "1"]
    ran = run([*watch_run, "--max-downtime", "0.2"], user_dir, timeout=60)
    assert ran.returncode == 1, ran.output
    assert f"web-{port}-old was down" in ran.stderr and "--max-downtime 0.2 s" in ran.stderr
    ran = run([*watch_run, "--max-downtime", "3600"], user_dir, timeout=60)
    assert ran.returncode == 0, ran.output
    assert (user_dir / "reports" / "watch.json").is_file()


# --- help, version, packaging ------------------------------------------------------


def test_help_teaches_phases_exit_codes_and_pass_through_options(user_dir: Path) -> None:
    version = run([CUTOVER, "--version"], user_dir)
    assert version.returncode == 0 and re.fullmatch(r"cutover \S+\n", version.stdout)
    top = run([CUTOVER, "--help"], user_dir)
    sub = run([CUTOVER, "run", "--help"], user_dir)
    for ran in (top, sub):
        assert ran.returncode == 0, ran.output
        for phase in Phase:
            assert re.search(rf"^  {phase.value} +\S", ran.stdout, re.MULTILINE), ran.stdout
        assert "exit codes" in ran.stdout and "  5  no check ran" in ran.stdout
    for option in ("--host-snapshot", "--probe-mail", "--pair", "-n auto", "-k PORT03"):
        assert option in sub.stdout, option


def readme_commands() -> list[str]:
    """The run commands in README.md's shell blocks."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith(("cutover run ", "pytest --phase")):
                commands.append(shlex.join(shlex.split(line, comments=True)))
    return commands


def test_the_readme_has_run_examples() -> None:
    commands = readme_commands()
    assert any(c.startswith("cutover run") for c in commands), commands
    assert any(c.startswith("pytest --phase") for c in commands), commands


@pytest.mark.parametrize("command", readme_commands())
def test_readme_examples_run_as_written(command: str, host: Host, user_dir: Path) -> None:
    (user_dir / "inventory.yaml").write_text(host.inventory.read_text(encoding="utf-8"))
    argv = shlex.split(command)
    argv = ([CUTOVER] if argv[0] == "cutover" else PYTEST) + argv[1:]
    phases = {p.value for p in Phase}
    phase = next(a.split("=")[-1] for a in argv if a in phases or a.startswith("--phase="))
    ran = run([*argv, snap(host)], user_dir)
    assert ran.report(phase)["totals"]["checks"] > 0
    assert ran.exit_matches(phase), ran.output
    assert (user_dir / "reports" / f"{phase}.xml").is_file()


def test_pyproject_licence_is_an_spdx_string_and_the_command_is_installed() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert isinstance(project["license"], str)
    assert project["scripts"]["cutover"] == "cutover.cli.main:main"
    assert Path(CUTOVER).is_file()


def test_a_partial_selection_says_so_in_the_reports(host: Host, user_dir: Path) -> None:
    """`-k VM03` is not a full pass: the JSON and the HTML name the selection."""
    ran = run(
        [CUTOVER, "run", "preflight", "-i", str(host.inventory), snap(host), "-k", "VM03"], user_dir
    )
    assert ran.returncode == 0, ran.output
    document = json.loads((user_dir / "reports" / "preflight.json").read_text(encoding="utf-8"))
    assert document["selection"]["keyword"] == "VM03", document["selection"]
    assert document["selection"]["deselected"] > 0, document["selection"]
    page = (user_dir / "reports" / "preflight.html").read_text(encoding="utf-8")
    assert "selection: -k &#x27;VM03&#x27; — " in page or "selection: -k 'VM03' — " in page
