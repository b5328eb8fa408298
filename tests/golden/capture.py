"""Golden files: what users see of the suite, so a restructuring can prove it changed nothing.

What is captured (tests/golden/):

- collect/<inventory>.<phase>.jsonl, for the example inventory and the fleet
  example (fixtures/), each phase: every collected test id, in order, with the
  JUnit properties the cutover plugin gives it at collection. Captured with
  `cutover run PHASE --collect-only` from a directory outside the checkout,
  with the plugin tests/golden/collect_dump.py, which refuses every network
  connection while collecting (no lab, no network).
- lab/collect.<phase>.jsonl: the same for the lab's own inventory, in its
  IPv4-only form (LAB_INVENTORY, `.lab/inventory-ipv4.yaml`): the lab is dual
  stack since issue #18, and this is the inventory it had before.
- lab/preflight.junit.jsonl, lab/preflight.json, lab/preflight.terminal.txt: a
  real preflight run on the healthy lab (the story's preflight state: TTLs
  lowered, data synced), with the lab's own inventory and a fresh baseline:
  each JUnit testcase (name, outcome, message, properties), the JSON report
  and the verdict the terminal ends with. Every check passes but DNS03 (x3):
  the TTLs were lowered seconds ago and the inventory does not acknowledge
  it, so the goldens hold failure messages and root causes too.
- lab/cutover.*, lab/acceptance.*: the same for a cutover run and an acceptance
  run, in those story states of the same lab, against what that preflight run
  recorded (baseline.json and the IMAP UID maps). Both pass (PORT03, opt-in,
  is skipped).

Normalised, in the goldens and in every live capture alike:

- MYSQL04 (checks/test_mysql.py::test_grants_match): before issue #16 it was
  parametrised per MySQL account, listed on the servers at collection time
  (network I/O during collection); after it, one item per pair. Its items are
  collapsed to that form: the `[account]` parameter dropped (a fleet keeps
  `[pair]`), duplicates removed (the first kept), and of its properties only
  those not about one account are kept (MYSQL04_PROPERTIES). In the JSON
  report, its checks are merged the same way (the worst verdict, the first
  evidence) and the totals and per-area counts recomputed; in the terminal
  verdict its count is what one check per pair gives. This is the one
  difference the restructuring is allowed; the test keeps its name
  (`test_grants_match`): its id loses only the parameter.
- What differs between two runs of the same code, each on a freshly built lab
  (found by capturing twice): durations, timestamps and the times in DNS03's
  message, temporary paths, and what `lab up` makes anew: certificate
  fingerprints, the DKIM key's hash, IMAP UIDVALIDITY (and the POP3 UIDLs
  made of it), date-based SOA serials, certificate days left, login timings
  (`_LAB_VOLATILE`, `_VOLATILE_PROPERTIES`); and the `FILE:LINE:` pytest
  puts before a skip's reason (the checkout's path, a line number that moves
  with the code). The terminal's lines lose their trailing blanks.

Regenerate (then look at `git diff tests/golden/`):

    .venv/bin/python -m tests.golden.capture            # the collections (no lab)
    flock -w 3600 /tmp/cutover-lab.lock env CUTOVER_SELFTEST_LAB=1 \\
        .venv/bin/python -m tests.golden.capture --lab  # the lab goldens (a lab run)

Only regenerate when a change is MEANT to change what users see (a new check,
a renamed property, a reworded verdict): the commit that changes a golden file
must say, for each difference, why it is intended. A restructuring (issue #16)
must leave every golden file as it is. The tests that compare are
tests/golden/test_golden.py (no lab) and tests/golden/test_golden_lab.py (lab).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent
CUTOVER = str(Path(sys.executable).parent / "cutover")
PHASES = ("preflight", "cutover", "acceptance")
# The lab's inventory the lab goldens are recorded with (IPv4 only, as before issue #18).
LAB_INVENTORY = REPO / ".lab" / "inventory-ipv4.yaml"
INVENTORIES = {
    "example": REPO / "fixtures" / "inventory.example.yaml",
    "fleet-example": REPO / "fixtures" / "inventory.fleet.example.yaml",
}
DUMP_PLUGIN = "tests.golden.collect_dump"
DUMP_ENV = "CUTOVER_GOLDEN_DUMP"
# What the example inventories read from the environment (never a real secret).
EXAMPLE_ENV = {"CUTOVER_ALICE_PASSWORD": "golden-not-a-password"}

MYSQL04 = "MYSQL04"
MYSQL04_TEST = "checks/test_mysql.py::test_grants_match"
# MYSQL04's properties that do not name one account: the rest (`account`, a
# system account's `note`) go with the per-account items.
MYSQL04_PROPERTIES = ("check_id", "phase", "migration", "pair", "grants_reference")
VERDICT_ORDER = ("error", "failed", "passed", "skipped")  # the worst first


# --- normalising -----------------------------------------------------------------------


def _mysql04_id(nodeid: str, pair: str | None) -> str:
    """`...::test_grants_match[app@localhost]` -> `...::test_grants_match` (`[pair]` in a fleet)."""
    base = nodeid.partition("[")[0]
    return f"{base}[{pair}]" if pair else base


def _pair_in_id(nodeid: str, pair: str | None) -> str | None:
    """The pair when it leads the test id's parameter (a fleet of several pairs), else None."""
    if pair and nodeid.partition("[")[2].startswith(pair):
        return pair
    return None


def _mysql04_properties(properties: Iterable[tuple[str, str]]) -> list[list[str]]:
    return [[k, v] for k, v in properties if k in MYSQL04_PROPERTIES]


def normalise_items(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Collected items (collect_dump.py's `items`): MYSQL04 collapsed to one item per pair."""
    seen: set[str] = set()
    out = []
    for item in items:
        nodeid, properties = item["nodeid"], [tuple(p) for p in item["properties"]]
        if dict(properties).get("check_id") == MYSQL04:
            nodeid = _mysql04_id(nodeid, item.get("pair"))
            properties = [tuple(p) for p in _mysql04_properties(properties)]
        if nodeid in seen:
            continue
        seen.add(nodeid)
        out.append({"id": nodeid, "properties": [list(p) for p in properties]})
    return out


def as_lines(records: Iterable[Any]) -> str:
    """One JSON value a line: a golden file whose diff is read line by line."""
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)


def unified_diff(expected: str, actual: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            fromfile=f"golden/{name}",
            tofile=f"now/{name}",
        )
    )


def compare(golden: dict[str, str], now: dict[str, str]) -> str:
    """The unified diffs of every golden file that the live capture changed ('' = unchanged)."""
    diffs = []
    for name in sorted(set(golden) | set(now)):
        diff = unified_diff(golden.get(name, ""), now.get(name, ""), name)
        if diff:
            diffs.append(diff)
    return "\n".join(diffs)


def read_golden(names: Iterable[str]) -> dict[str, str]:
    return {n: (GOLDEN / n).read_text("utf-8") if (GOLDEN / n).is_file() else "" for n in names}


def write_golden(files: dict[str, str]) -> None:
    for name, text in files.items():
        path = GOLDEN / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(REPO)}")


# --- the collections, no lab -----------------------------------------------------------


def _user_env(dump: Path) -> dict[str, str]:
    """A user's shell (no self-test settings) that can import the dump plugin from the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CUTOVER_"))}
    return {
        **env,
        **EXAMPLE_ENV,
        "PYTEST_ADDOPTS": "-p no:cacheprovider",
        "PYTHONPATH": str(REPO),
        DUMP_ENV: str(dump),
    }


def collect_example(inventory: Path, phase: str, workdir: Path) -> list[dict[str, Any]]:
    """`cutover run PHASE -i INVENTORY --collect-only` from `workdir`, as a user types it."""
    dump = workdir / f"{inventory.stem}.{phase}.dump.json"
    completed = subprocess.run(
        [CUTOVER, "run", phase, "-i", str(inventory), "--collect-only", "-q", "-p", DUMP_PLUGIN],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        env=_user_env(dump),
    )
    return read_dump(dump, completed.returncode, completed.stdout + completed.stderr)


def read_dump(dump: Path, returncode: int, output: str) -> list[dict[str, Any]]:
    """What collect_dump.py wrote; a failed collection, or one that tried the network, raises."""
    if returncode != 0 or not dump.is_file():
        raise RuntimeError(f"collection failed (exit {returncode}):\n{output[-6000:]}")
    data = json.loads(dump.read_text("utf-8"))
    if data["network_attempts"]:
        raise RuntimeError(f"collection tried the network: {data['network_attempts']}")
    items: list[dict[str, Any]] = data["items"]
    return items


def example_files() -> dict[str, str]:
    """The golden files of the example inventories, as the current code gives them."""
    files = {}
    with tempfile.TemporaryDirectory(prefix="cutover-golden-") as tmp:
        workdir = Path(tmp)
        assert REPO not in workdir.parents
        for name, inventory in INVENTORIES.items():
            for phase in PHASES:
                items = collect_example(inventory, phase, workdir)
                files[f"collect/{name}.{phase}.jsonl"] = as_lines(normalise_items(items))
    return files


# --- the lab ---------------------------------------------------------------------------


def _worst(verdicts: Iterable[str]) -> str:
    return min(verdicts, key=VERDICT_ORDER.index)


def normalise_junit(cases: Iterable[Any]) -> list[dict[str, Any]]:
    """JUnit testcases (tests.suite.Case): name, outcome, properties; MYSQL04 collapsed."""
    out: dict[str, dict[str, Any]] = {}
    for case in cases:
        name, properties = case.name, list(case.properties.items())
        if case.properties.get("check_id") == MYSQL04:
            name = _mysql04_id(name, _pair_in_id(name, case.properties.get("pair")))
            properties = [tuple(p) for p in _mysql04_properties(properties)]
        record = out.setdefault(
            name,
            {
                "classname": case.classname,
                "name": name,
                "outcome": case.outcome,
                "message": _lab_volatile(case.message),
                "properties": [
                    [k, _property(k, v)]
                    for k, v in properties
                    if not _probe_counted(case.properties, k)
                ],
            },
        )
        record["outcome"] = _worst([record["outcome"], case.outcome])
    return list(out.values())


# Text the clock decides, or that the lab makes anew each time it is built (found by
# capturing twice, on two builds of the lab): in every message, property and line.
_LAB_VOLATILE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?"), "<time>"),
    (re.compile(r"\b(\d+h)?\d+m\d+s\b"), "<duration>"),
    # pytest's `FILE:LINE:` before a skip's reason in JUnit: the checkout's path, and lines
    # that move whenever the code does
    (re.compile(r"[^\s\"']+\.py:\d+: "), "<where>: "),
    (re.compile(r"/tmp/[^\s\"',]*"), "<tmp>"),
    # certificates and the DKIM key: generated by `lab up`
    (re.compile(r"\bsha256:[0-9a-f]{8,}"), "sha256:<key>"),
    # IMAP UIDVALIDITY: the time the lab created the mailbox
    (re.compile(r"(uidvalidity\"?:? ?)\d+", re.IGNORECASE), r"\1<uidvalidity>"),
    # SOA serials: YYYYMMDDnn, the day the lab was built
    (re.compile(r"\b(19|20)\d\d(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\d\d\b"), "<serial>"),
]
# JUnit properties whose whole value is volatile, by name.
_VOLATILE_PROPERTIES = {
    "fingerprint": "<certificate sha256>",  # `lab up` makes new certificates
    "login_seconds": "<seconds>",  # a timing
    "days_left": "<days>",  # certificate validity left: the clock
}
# POP3 UIDLs (Dovecot: the UID, then UIDVALIDITY, each 8 hex digits): the UIDVALIDITY part.
_UIDL = re.compile(r"\b([0-9a-f]{8})[0-9a-f]{8}\b")


# The opt-in mail-flow probe (PORT03, `--probe-mail`) delivers to the lab's probe account in
# the cutover state; how many of its messages are there by acceptance depends on which lab
# tests ran before. For that account only, the properties that count its messages go.
PROBE_ACCOUNT = "carol@example.test"
_PROBE_COUNTED = ("states_new", "states_old", "uidls_new", "uidls_old", "new_messages_", "only_on_")


def _probe_counted(properties: dict[str, str], name: str) -> bool:
    return properties.get("account") == PROBE_ACCOUNT and name.startswith(_PROBE_COUNTED)


def _lab_volatile(text: str) -> str:
    for pattern, replacement in _LAB_VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def _property(name: str, value: str) -> str:
    if name in _VOLATILE_PROPERTIES:
        return _VOLATILE_PROPERTIES[name]
    if name.startswith("uidls_"):
        value = _UIDL.sub(r"\1<uidvalidity-hex>", value)
    return _lab_volatile(value)


def _volatile_values(node: Any) -> Any:
    if isinstance(node, str):
        return _lab_volatile(node)
    if isinstance(node, list):
        return [_volatile_values(v) for v in node]
    if isinstance(node, dict):
        return {k: _volatile_values(v) for k, v in node.items()}
    return node


def normalise_json_report(data: dict[str, Any]) -> dict[str, Any]:
    """reports/preflight.json without what varies run to run; MYSQL04 merged, counts recomputed."""
    checks: dict[str, dict[str, Any]] = {}
    for check in data["checks"]:
        check = {k: v for k, v in check.items() if k != "durations"}
        check["properties"] = {
            k: _property(k, v)
            for k, v in check["properties"].items()
            if not _probe_counted(check["properties"], k)
        }
        if check["id"] == MYSQL04:
            pair = _pair_in_id(check["test"], check["properties"].get("pair"))
            check["test"] = _mysql04_id(check["test"], pair)
            check["target"] = None
            check["properties"] = dict(_mysql04_properties(check["properties"].items()))
            if check["test"] in checks:
                first = checks[check["test"]]
                first["verdict"] = _worst([first["verdict"], check["verdict"]])
                first["evidence"] = first["evidence"] or check["evidence"]
                continue
        checks[check["test"]] = check
    totals = dict.fromkeys(VERDICT_ORDER, 0)
    areas: dict[str, dict[str, int]] = {}
    for check in checks.values():
        totals[check["verdict"]] += 1
        areas.setdefault(check["area"], dict.fromkeys(VERDICT_ORDER, 0))[check["verdict"]] += 1
    out = {
        **data,
        "inventory": "<inventory>",
        "started_utc": "<time>",
        "finished_utc": "<time>",
        "duration_s": "<seconds>",
        "totals": {"checks": len(checks), **{v: totals[v] for v in data["totals"] if v in totals}},
        "areas": {a: {v: areas[a][v] for v in data["areas"][a]} for a in sorted(areas)},
        "checks": list(checks.values()),
    }
    normalised: dict[str, Any] = _volatile_values(out)
    return normalised


def collapsed_mysql04(cases: Iterable[Any]) -> dict[str, int]:
    """Per outcome, how many MYSQL04 testcases collapsing them to one per pair removes."""
    cases = list(cases)
    before: dict[str, int] = {}
    for case in cases:
        if case.properties.get("check_id") == MYSQL04:
            before[case.outcome] = before.get(case.outcome, 0) + 1
    after: dict[str, int] = {}
    for record in normalise_junit(cases):
        if dict(map(tuple, record["properties"])).get("check_id") == MYSQL04:
            after[record["outcome"]] = after.get(record["outcome"], 0) + 1
    return {o: before[o] - after.get(o, 0) for o in before if before[o] - after.get(o, 0)}


_COUNTED = {"passed": "passed", "failed": "failed", "error": "errors", "skipped": "skipped"}


def _recount_mysql(line: str, removed: dict[str, int]) -> str:
    """The terminal's `mysql` area line, counted as one MYSQL04 check per pair gives it."""
    if not re.match(r"^\s*mysql\s", line):
        return line
    for outcome, count in removed.items():
        word = _COUNTED[outcome]
        line = re.sub(rf"\b(\d+) {word}\b", lambda m, c=count, w=word: f"{int(m[1]) - c} {w}", line)
    return line


def verdict_section(stdout: str, removed: dict[str, int]) -> str:
    """The verdict the terminal ends with (after pytest's own summary line), normalised.

    `removed`: collapsed_mysql04() of the run's testcases.
    """
    lines = stdout.splitlines()
    last = max(
        (i for i, line in enumerate(lines) if re.match(r"^=+ .* in [\d.]+s( \(.*\))? =+$", line)),
        default=-1,
    )
    kept = [_recount_mysql(_lab_volatile(line.rstrip()), removed) for line in lines[last + 1 :]]
    return "".join(line + "\n" for line in kept)


LAB_COLLECT_FILES = [f"lab/collect.{phase}.jsonl" for phase in PHASES]


def lab_run_files(phase: str) -> list[str]:
    """The golden files of one phase's run on the lab."""
    return [f"lab/{phase}.junit.jsonl", f"lab/{phase}.json", f"lab/{phase}.terminal.txt"]


REGENERATE_ENV = "CUTOVER_GOLDEN_REGENERATE"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.golden.capture", description=__doc__)
    parser.add_argument(
        "--lab",
        action="store_true",
        help="regenerate the lab goldens (a lab run: only under the lab lock, "
        "with CUTOVER_SELFTEST_LAB=1)",
    )
    args = parser.parse_args(argv)
    if not args.lab:
        write_golden(example_files())
        return 0
    return subprocess.call(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            str(GOLDEN / "test_golden_lab.py"),
        ],
        cwd=REPO,
        env={**os.environ, REGENERATE_ENV: "1"},
    )


if __name__ == "__main__":
    sys.exit(main())
