"""Self-test fixtures: the lab, driven through its command line, one per session.

Lab tests need root (network namespaces) and run only when asked for:
`make test` (or `CUTOVER_SELFTEST_LAB=1`, under the lab lock). Otherwise each
is skipped with a reason saying how to run it; with CI=true they fail with
one line instead, so CI cannot go green without them.

The lab walks the migration story forward (up -> preflight -> cutover ->
acceptance). Tests ask for the state they need through the `preflight_lab`,
`cutover_lab` and `acceptance_lab` fixtures, and are ordered by that state so
the story is walked once per session; asking for an earlier state than the
current one rebuilds the lab. Before every lab test the tracker verifies the
state it believes in (the lab's own postconditions, `lab.health`) and heals
the lab, or rebuilds it, when something drifted.

`CUTOVER_SHUFFLE=SEED` shuffles the lab tests inside each story state
(seeded, printed in the header): no test may depend on another's leftovers.
`CUTOVER_SHUFFLE=SEED:all` shuffles across states too (the tracker rebuilds
whenever the order goes back in the story; the header says how often).
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab import health, lock
from lab import state as lab_state
from lab.run import LabError
from tests.suite import REPO, SuiteRun, run_suite

IN_CI = os.environ.get("CI") == "true"
OPT_IN = "CUTOVER_SELFTEST_LAB"
SHUFFLE = "CUTOVER_SHUFFLE"
# "scaled": acceptance plus `lab scale` data, which nothing removes but a rebuild;
# "decommissioned": after `lab decommission` (the forwards stopped): the story's end.
# "legacy-*": the same story on a lab of profile legacy (`up --profile legacy`: old as
# a CentOS 5-era server, mail copied by rsync); reaching it from the default story
# rebuilds the lab once, so those tests run last.
STORY = (
    "up",
    "preflight",
    "cutover",
    "acceptance",
    "scaled",
    "decommissioned",
    "legacy-up",
    "legacy-preflight",
    "legacy-cutover",
    "legacy-acceptance",
)
LEGACY = "legacy-"
# What lab.json's story says in each state (a mismatch means: rebuild).
STORY_FLAGS = {
    "up": {"synced": False, "cutover": False, "dns": "old"},
    "preflight": {"synced": True, "cutover": False, "dns": "old"},
    "cutover": {"synced": True, "cutover": True, "dns": "old"},
    "acceptance": {"synced": True, "cutover": True, "dns": "new"},
    "scaled": {"synced": True, "cutover": True, "dns": "new"},
    "decommissioned": {"synced": True, "cutover": True, "dns": "new", "decommissioned": True},
    "legacy-up": {"synced": False, "cutover": False, "dns": "old"},
    "legacy-preflight": {"synced": True, "cutover": False, "dns": "old"},
    "legacy-cutover": {"synced": True, "cutover": True, "dns": "old"},
    "legacy-acceptance": {"synced": True, "cutover": True, "dns": "new"},
}
# The lab verbs that take the lab from one story state to the next.
STEPS = {
    "preflight": [["lower-ttl"], ["sync"]],
    "cutover": [["cutover"]],
    "acceptance": [["dns-switch"]],
    "scaled": [],
    "decommissioned": [["decommission"]],
    "legacy-up": [],
    "legacy-preflight": [["lower-ttl"], ["sync", "--method", "rsync"]],
    "legacy-cutover": [["cutover"]],
    "legacy-acceptance": [["dns-switch"]],
}


def profile_of(story_state: str) -> str:
    """The lab profile (lab/profiles.py) a story state is reached on."""
    return "legacy" if story_state.startswith(LEGACY) else "default"


def lab_unavailable() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.environ.get(OPT_IN) != "1":
        return (
            "lab self-tests run only through `make test` (or, under the lab lock, "
            f"`flock -w 3600 /tmp/cutover-lab.lock env {OPT_IN}=1 .venv/bin/python -m pytest ...`)"
        )
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, daemons)"
    for tool in ("ip", "dovecot", "postfix", "apache2", "mariadbd", "pdns_server", "socat"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return f"the lab needs {tool} (run `make test`, which installs the lab's packages)"
    return None


def require_lab() -> None:
    reason = lab_unavailable()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true: lab tests must run, but {reason}", pytrace=False)
    pytest.skip(reason)


def lab_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [sys.executable, "-m", "lab", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if completed.returncode != 0:
        raise AssertionError(
            f"`python -m lab {' '.join(args)}` failed ({completed.returncode}):\n"
            f"{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
        )
    return completed


@dataclass
class Lab:
    """The running lab, as the self-tests see it."""

    root: Path
    state: str = "down"
    faults: list[str] = field(default_factory=list)
    heals: int = 0
    rebuilds: int = 0
    # One per `lab up`: what a test recorded (baselines) describes one lab only.
    generation: int = 0

    @property
    def reports(self) -> Path:
        """Reports and baselines of the current lab; a rebuilt lab starts without any."""
        path = self.root / f"lab-{self.generation}"
        path.mkdir(exist_ok=True)
        return path

    @property
    def inventory(self) -> Path:
        return REPO / ".lab" / "inventory.yaml"

    def exec(
        self, host: str, *command: str, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a command on a lab host (`python -m lab exec HOST -- CMD`), checked."""
        return lab_cli("exec", host, "--", *command, timeout=timeout)

    def drift(self) -> str | None:
        """What differs from the state the tracker believes in, or None (cheap: postconditions)."""
        data = lab_state.load()
        if not data:
            return "no lab is up"
        story = data["story"]
        flags = {"synced": story["synced"], "cutover": story["cutover"], "dns": story["dns"]}
        if story.get("decommissioned"):
            flags["decommissioned"] = True
        if flags != STORY_FLAGS[self.state]:
            return f"story is {flags}, expected {STORY_FLAGS[self.state]} ({self.state})"
        profile = data.get("profile", "default")
        if profile != profile_of(self.state):
            return f"story is on profile {profile}, expected {profile_of(self.state)}"
        problems = [f"fault {name} still active" for name in data["faults"]]
        try:
            problems += [f"{c.name}: {c.detail}" for c in health.failing(data)]
        except (LabError, OSError, ValueError, KeyError) as exc:  # not observable: drift too
            problems.append(f"postconditions not observable: {exc}")
        return "; ".join(problems) or None

    def heal(self) -> None:
        """Bring the lab back to the state the tracker believes in: heal, else rebuild."""
        if self.state == "down":
            return
        found = self.drift()
        if found is None:
            return
        print(f"\nlab tracker: drift in state {self.state}: {found}", flush=True)
        story_drift = found.startswith(("story is", "no lab is up"))
        if not story_drift:
            try:
                lab_cli("heal")
                found = self.drift()
            except AssertionError as exc:
                found = str(exc).splitlines()[0]
        if found is not None:
            print(f"lab tracker: rebuilding ({found})", flush=True)
            self.rebuilds += 1
            self.state = "down"
        else:
            self.heals += 1
            print("lab tracker: healed", flush=True)

    def reach(self, target: str) -> None:
        if self.state != "down" and (
            STORY.index(target) < STORY.index(self.state)
            or profile_of(target) != profile_of(self.state)
        ):
            self.state = "down"  # going back in the story, or another profile: rebuild
            self.rebuilds += 1
        self.heal()
        if self.state == "down":
            profile = profile_of(target)
            lab_cli("up", "--profile", profile)
            self.state = "legacy-up" if profile == "legacy" else "up"
            self.generation += 1
            if self.generation > 1:
                print(
                    f"lab tracker: lab #{self.generation}: baselines recorded on the previous "
                    "lab are not carried over",
                    flush=True,
                )
        for step in STORY[STORY.index(self.state) + 1 : STORY.index(target) + 1]:
            for verb in STEPS[step]:
                lab_cli(*verb)
            self.state = step

    @contextmanager
    def fault(self, name: str) -> Iterator[None]:
        """Break exactly one property for the duration of the block."""
        lab_cli("fault", name)
        try:
            yield
        finally:
            lab_cli("fault", "--undo", name)

    def recover_from_silent_new_host(self) -> None:
        """After a test silenced the new host: restart the MySQL tunnel, verify the state.

        The tunnel (ssh -L, ServerAliveInterval 10 x 3) may have died during the
        silence, or may die a few seconds after it (ssh still counting unanswered
        keepalives while TCP retransmits): restart it whatever it looks like now.
        `fault --undo` with no other fault active verifies every postcondition.
        """
        if lab_state.load().get("story", {}).get("cutover"):
            lab_cli("fault", "mysql-tunnel-down")
            lab_cli("fault", "--undo", "mysql-tunnel-down")
        lab_cli("heal")

    def suite(self, phase: str, *args: str, inventory: Path | None = None) -> SuiteRun:
        """Run the cutover suite from the client namespace, as an operator would."""
        return run_suite(
            phase,
            inventory or self.inventory,
            self.reports / phase,
            *args,
            namespace="cutover-client",
        )

    def inventory_variant(
        self,
        directory: Path,
        change: Callable[[dict[str, Any]], None] | None = None,
        *,
        source: str | None = None,
    ) -> Path:
        """A copy of the lab's inventory in `directory`, its file paths made absolute.

        `change` edits the parsed YAML in place (e.g. acknowledge the TTL lowering).
        `source` names another inventory the lab writes next to it
        (`inventory-ipv6.yaml`: only the IPv6 addresses).
        """
        base = self.inventory.parent
        original = base / source if source else self.inventory

        def absolute(node: Any) -> Any:
            if isinstance(node, dict):
                return {
                    key: str(base / value)
                    if (key.endswith("_file") or key == "ssh_config") and value
                    else absolute(value)
                    for key, value in node.items()
                }
            if isinstance(node, list):
                return [absolute(item) for item in node]
            return node

        data = absolute(yaml.safe_load(original.read_text(encoding="utf-8")))
        if change is not None:
            change(data)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "inventory.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), "utf-8")
        return path

    def down(self) -> None:
        lab_cli("down")
        self.state = "down"


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_lab()
    with ExitStack() as stack:
        if not lock.held_by_us():
            # Run without `make test`'s flock: hold the machine's lab lock for the session.
            stack.enter_context(lock.hold("lab self-tests"))
        session_lab = Lab(root=tmp_path_factory.mktemp("lab-reports"))
        try:
            yield session_lab
        finally:
            print(
                f"\nlab tracker: {session_lab.heals} heals, {session_lab.rebuilds} rebuilds",
                flush=True,
            )
            session_lab.down()


@pytest.fixture
def one_address_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """Describe the lab by its IPv4 addresses, one per host: its inventory before dual
    stack (`.lab/inventory-ipv4.yaml`), for the tests whose ids and figures are those
    of a single-address inventory. The dual-stack tests use the lab's own inventory."""
    ipv4 = REPO / ".lab" / "inventory-ipv4.yaml"
    monkeypatch.setattr(Lab, "inventory", property(lambda lab: ipv4))


@pytest.fixture
def preflight_lab(lab: Lab) -> Lab:
    """The lab with TTLs lowered and data synced: preflight must pass."""
    lab.reach("preflight")
    return lab


@pytest.fixture
def cutover_lab(lab: Lab) -> Lab:
    """The lab with the old host forwarding every port to the new one."""
    lab.reach("cutover")
    return lab


@pytest.fixture
def acceptance_lab(lab: Lab) -> Lab:
    """The lab after the DNS switch."""
    lab.reach("acceptance")
    return lab


@pytest.fixture
def up_lab(lab: Lab) -> Lab:
    """The lab freshly up: TTLs still 3600, new host not yet synced."""
    lab.reach("up")
    return lab


@pytest.fixture
def scaled_lab(lab: Lab) -> Lab:
    """The lab after the DNS switch, with `lab scale` data added: runs after every other state."""
    lab.reach("scaled")
    return lab


@pytest.fixture
def decommissioned_lab(lab: Lab) -> Lab:
    """The lab after `lab decommission` (forwards, tunnel stopped): after every other state."""
    lab.reach("decommissioned")
    return lab


@pytest.fixture
def legacy_up_lab(lab: Lab) -> Lab:
    """A lab of profile legacy, freshly up (old as a CentOS 5-era server)."""
    lab.reach("legacy-up")
    return lab


@pytest.fixture
def legacy_preflight_lab(lab: Lab) -> Lab:
    """The legacy lab with TTLs lowered and data synced (mail by rsync): preflight passes."""
    lab.reach("legacy-preflight")
    return lab


@pytest.fixture
def legacy_cutover_lab(lab: Lab) -> Lab:
    """The legacy lab with the old host forwarding every port to the new one."""
    lab.reach("legacy-cutover")
    return lab


@pytest.fixture
def legacy_acceptance_lab(lab: Lab) -> Lab:
    """The legacy lab after the DNS switch."""
    lab.reach("legacy-acceptance")
    return lab


_ORDER = {
    "up_lab": 0,
    "preflight_lab": 1,
    "cutover_lab": 2,
    "acceptance_lab": 3,
    "scaled_lab": 4,
    "decommissioned_lab": 5,
    "legacy_up_lab": 6,
    "legacy_preflight_lab": 7,
    "legacy_cutover_lab": 8,
    "legacy_acceptance_lab": 9,
}


def story_position(item: pytest.Item) -> int:
    """The story state a test needs (-1: none, or the bare `lab` fixture)."""
    names = getattr(item, "fixturenames", ())
    positions = [pos for name, pos in _ORDER.items() if name in names]
    return max(positions, default=-1)


def _shuffle_setting() -> tuple[int, bool] | None:
    value = os.environ.get(SHUFFLE, "")
    if not value:
        return None
    seed, _, scope = value.partition(":")
    if not seed.isdigit() or scope not in ("", "all"):
        raise pytest.UsageError(f"{SHUFFLE}={value}: expected SEED or SEED:all (SEED an integer)")
    return int(seed), scope == "all"


def rebuilds_in(positions: list[int]) -> int:
    """How many times an order of story positions goes back in the story (each: a rebuild)."""
    states = [p for p in positions if p >= 0]
    return sum(1 for before, after in itertools.pairwise(states) if after < before)


def pytest_report_header(config: pytest.Config) -> str | None:
    setting = _shuffle_setting()
    if setting is None:
        return None
    seed, everywhere = setting
    scope = "across story states" if everywhere else "inside each story state"
    return f"lab tests shuffled {scope}: {SHUFFLE}={os.environ[SHUFFLE]} (seed {seed})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Walk the story once: tests that need an earlier lab state run first.
    # Stable sort keeps each module's own order; tests without a lab go first.
    items.sort(key=story_position)
    for item in items:
        if story_position(item) >= 0 or "lab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.lab)
    setting = _shuffle_setting()
    if setting is None:
        return
    seed, everywhere = setting
    rng = random.Random(seed)
    lab_items = [item for item in items if item.get_closest_marker("lab")]
    # A `summary` test reads what the others observed: it stays after them.
    summaries = [item for item in lab_items if item.get_closest_marker("summary")]
    movable = [item for item in lab_items if not item.get_closest_marker("summary")]
    if everywhere:
        rng.shuffle(movable)
        ordered = movable + sorted(summaries, key=story_position)
    else:
        groups: dict[int, list[pytest.Item]] = {}
        for item in movable:
            groups.setdefault(story_position(item), []).append(item)
        ordered = []
        for position in sorted({*groups, *map(story_position, summaries)}):
            group = groups.get(position, [])
            rng.shuffle(group)
            ordered += group + [item for item in summaries if story_position(item) == position]
    others = [item for item in items if not item.get_closest_marker("lab")]
    items[:] = others + ordered
    rebuilds = rebuilds_in([story_position(item) for item in items])
    full = random.Random(seed).sample(movable, len(movable))
    full_rebuilds = rebuilds_in([story_position(item) for item in full])
    config.stash[SHUFFLE_REPORT] = (
        f"{SHUFFLE}={os.environ[SHUFFLE]}: {len(movable)} lab tests shuffled; this order goes "
        f"back in the story {rebuilds} times (one lab rebuild each); a shuffle across states "
        f"with this seed would rebuild {full_rebuilds} times"
    )


SHUFFLE_REPORT = pytest.StashKey[str]()


def pytest_collection_finish(session: pytest.Session) -> None:
    report = session.config.stash.get(SHUFFLE_REPORT, None)
    if report is not None:
        print(report, flush=True)
