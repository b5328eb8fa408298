"""`make demo`: the migration story on the lab, with the suite as the gate at every step.

Each step prints what it does and the suite's verdict; the run fails when a
gate does not behave as the story says (the first preflight must fail on the
TTLs, every later gate must pass). Reports for every gate land in `reports/`.
The lab is torn down at the end unless KEEP_LAB=1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from lab import lock, profiles

REPO = Path(__file__).resolve().parents[1]
REPORTS = REPO / "reports"
LAB_INVENTORY = REPO / ".lab" / "inventory.yaml"
DEMO_INVENTORY = REPO / ".lab" / "inventory.demo.yaml"
# The decommission gate's second run: the demo inventory plus the DNS-switch acknowledgement.
SETTLED_INVENTORY = REPO / ".lab" / "inventory.demo-settled.yaml"
ACKNOWLEDGEMENT = (
    "demo: TTLs were lowered seconds ago; the lab has no resolvers that could still "
    "cache the old 3600 s records, so the wait is waived"
)
SWITCH_ACKNOWLEDGEMENT = (
    "demo: DNS was switched seconds ago; the lab has no resolvers that could still "
    "hand out the old IP, so the wait is waived"
)


@dataclass
class Gate:
    report: str
    passed: bool
    failures: list[tuple[str, str, str]]  # (check id, test name, first line of the message)
    total: int
    seconds: float


def say(text: str = "") -> None:
    print(text, flush=True)


def lab(*args: str) -> None:
    say(f"    $ python -m lab {' '.join(args)}")
    completed = subprocess.run(
        [sys.executable, "-m", "lab", *args], cwd=REPO, text=True, capture_output=True, timeout=600
    )
    for line in completed.stdout.strip().splitlines():
        say(f"      {line}")
    if completed.returncode != 0:
        say(completed.stderr.strip())
        raise SystemExit(f"demo: `python -m lab {' '.join(args)}` failed")


def write_demo_inventory() -> None:
    import yaml  # the demo runs from the project's venv

    data = yaml.safe_load(LAB_INVENTORY.read_text(encoding="utf-8"))
    data.setdefault("dns", {})["lowering_acknowledged"] = ACKNOWLEDGEMENT
    DEMO_INVENTORY.write_text(
        "# The lab's inventory plus the demo's explicit TTL-lowering acknowledgement.\n"
        + yaml.safe_dump(data, sort_keys=False),
        encoding="utf-8",
    )
    data["dns"]["switch_acknowledged"] = SWITCH_ACKNOWLEDGEMENT
    SETTLED_INVENTORY.write_text(
        "# The demo inventory plus the acknowledgement of the DNS-switch wait (DECOM01).\n"
        + yaml.safe_dump(data, sort_keys=False),
        encoding="utf-8",
    )


def gate(phase: str, report: str, *extra: str, inventory: Path = DEMO_INVENTORY) -> Gate:
    junit = REPORTS / f"{report}.xml"
    command = [
        "ip", "netns", "exec", "cutover-client",
        sys.executable, "-m", "cutover", "run", phase, "-i", str(inventory),
        f"--reports-dir={REPORTS}", f"--junitxml={junit}", f"--html={REPORTS / report}.html",
        "--self-contained-html", "-q", "-p", "no:cacheprovider", *extra,
    ]  # fmt: skip
    shown = " ".join(("", *extra)) if extra else ""
    say(f"    $ python -m cutover run {phase} -i {inventory.relative_to(REPO)}{shown}")
    started = time.monotonic()
    completed = subprocess.run(command, cwd=REPO, text=True, capture_output=True, timeout=900)
    seconds = time.monotonic() - started
    failures, total = [], 0
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            total += 1
            problem = case.find("failure")
            if problem is None:
                problem = case.find("error")
            if problem is None:
                continue
            props = {p.get("name"): p.get("value") for p in case.iter("property")}
            message = (problem.get("message") or problem.text or "").strip().splitlines()
            first_line = message[0] if message else ""
            failures.append((props.get("check_id") or "?", case.get("name") or "", first_line))
    if completed.returncode not in (0, 1):  # 1 = some checks failed; anything else broke
        say(completed.stdout[-4000:])
        say(completed.stderr[-4000:])
        raise SystemExit(f"demo: the suite could not run ({completed.returncode})")
    return Gate(report, completed.returncode == 0, failures, total, seconds)


def verdict(result: Gate, *, expect_pass: bool) -> bool:
    count = f"{len(result.failures)} of {result.total} checks"
    state = "PASSED" if result.passed else f"FAILED ({count})"
    say(f"    verdict: {state} in {result.seconds:.1f} s — reports/{result.report}.xml")
    for check_id, name, message in result.failures[:12]:
        # The suite leads each failure's message with its check ID and target.
        shown = message if message.startswith(check_id) else f"{check_id} {name}: {message}"
        say(f"      {shown[:160]}")
    if len(result.failures) > 12:
        say(f"      ... and {len(result.failures) - 12} more (see the report)")
    as_expected = result.passed == expect_pass
    if not as_expected:
        say("    !! not what this step of the story expects")
    return as_expected


def rollback_delta() -> str:
    """`1 message, 0 rows (reports/rollback-delta.json)`: the decommission run's delta."""
    import json

    path = REPORTS / "rollback-delta.json"
    if not path.exists():
        return "no reports/rollback-delta.json was written"
    pairs = json.loads(path.read_text(encoding="utf-8"))["pairs"]
    messages = sum(pair["messages"] for pair in pairs)
    rows = sum(pair["rows"] for pair in pairs)
    return (
        f"{messages} message{'s' * (messages != 1)}, "
        f"{rows} row{'s' * (rows != 1)} (reports/rollback-delta.json)"
    )


def start_watch(report: str) -> subprocess.Popen[str]:
    """`python -m cutover watch` in the background, from the client namespace."""
    command = [
        "ip", "netns", "exec", "cutover-client",
        sys.executable, "-m", "cutover", "watch", "-i", str(DEMO_INVENTORY),
        "--interval", "0.2", f"--output={REPORTS / report}.json",
    ]  # fmt: skip
    say(f"    $ python -m cutover watch -i {DEMO_INVENTORY.relative_to(REPO)} &   (every 0.2 s)")
    watcher = subprocess.Popen(
        command, cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    time.sleep(1.0)  # a few probes first, so each window knows who answered before it
    return watcher


def stop_watch(watcher: subprocess.Popen[str], report: str) -> None:
    """Stop the watcher (SIGTERM: `ip netns exec` execs it) and tell its downtime per port."""
    watcher.terminate()
    try:
        table, _ = watcher.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        watcher.kill()
        table, _ = watcher.communicate()
    say(f"    measured downtime (reports/{report}.json):")
    for line in table.rstrip().splitlines():
        say(f"      {line}")
    (REPORTS / f"{report}.txt").write_text(table, encoding="utf-8")


def main(profile: str = "default") -> int:
    started = time.monotonic()
    legacy = profile == "legacy"
    REPORTS.mkdir(exist_ok=True)
    for stale in REPORTS.glob("*"):
        if stale.name != ".gitkeep":
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    ok = True
    try:
        say("==> 1. Bring up the lab: old and new servers, two PowerDNS nameservers, a client")
        if legacy:
            say("    profile legacy: old is a CentOS 5-era server (TLS 1.0 only, MySQL")
            say("    old_passwords, Dovecot 1.x, Apache 2.2 vhosts), zones in MyDNS tables")
        lab("up", "--profile", profile)
        write_demo_inventory()
        say("\n==> 2. Preflight before anything is prepared: the gate must refuse")
        say("    (TTLs are still 3600 s, the new server holds no mail or data yet)")
        first = gate("preflight", "preflight-before")
        ok &= verdict(first, expect_pass=False)
        if not any(check_id == "DNS02" for check_id, _, _ in first.failures):
            say("    !! the TTL check (DNS02) should have named the 3600 s records")
            ok = False
        method = "rsync" if legacy else "dsync"
        say(f"\n==> 3. Lower the TTLs to 300 on both nameservers, sync mail ({method}) and MySQL")
        lab("lower-ttl")
        lab("sync", "--method", method)
        say(f"    (TTL age: {ACKNOWLEDGEMENT.split(': ', 1)[1]}; the report records this)")
        say("\n==> 4. Preflight again: the gate before the DNS change")
        ok &= verdict(gate("preflight", "preflight"), expect_pass=True)
        say("\n==> 5. Cut over: stop the old services, forward every port to the new IP with")
        say("    socat, and the old MySQL socket through ssh -L 3307:localhost:3306")
        say("    The script stops every service before it starts any forward: a watcher")
        say("    probing every port on both IPs measures how long each port was really down")
        watcher = start_watch("watch-cutover")
        try:
            lab("cutover")
            # --probe-mail: one test message through the old IP's port 25 must reach
            # carol's INBOX on the new server (PORT03, the one check that writes).
            ok &= verdict(gate("cutover", "cutover", "--probe-mail"), expect_pass=True)
        finally:
            stop_watch(watcher, "watch-cutover")
        say("\n==> 6. Switch DNS to the new IP on both nameservers")
        lab("dns-switch")
        ok &= verdict(gate("acceptance", "acceptance"), expect_pass=True)
        say("\n==> 7. Decommission: may the forwards stop? Not yet: resolvers may still hold")
        say("    the old records for the old TTL plus the stale allowance (RFC 8767)")
        waiting = gate("decommission", "decommission-waiting")
        ok &= verdict(waiting, expect_pass=False)
        if {check_id for check_id, _, _ in waiting.failures} != {"DECOM01"}:
            say("    !! only the DNS wait (DECOM01) should hold the old host back")
            ok = False
        say(f"    (DNS wait: {SWITCH_ACKNOWLEDGEMENT.split(': ', 1)[1]}; the report records this)")
        settled = gate("decommission", "decommission", inventory=SETTLED_INVENTORY)
        ok &= verdict(settled, expect_pass=True)
        say(f"    what a rollback would carry back: {rollback_delta()}")
    finally:
        if os.environ.get("KEEP_LAB") == "1":
            say("\n==> KEEP_LAB=1: the lab stays up (python -m lab down when done)")
        else:
            say("\n==> 8. Tear the lab down")
            lab("down")
    say(
        f"\n==> The story {'held' if ok else 'did NOT hold'} at every gate "
        f"({time.monotonic() - started:.0f} s). Reports: reports/"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    # The whole story, not only each verb: no other run may take the lab in between.
    parser = argparse.ArgumentParser(prog="python -m lab.demo", description=__doc__)
    parser.add_argument(
        "--profile",
        choices=sorted(profiles.PROFILES),
        default=os.environ.get("PROFILE") or "default",
        help="the lab profile (default: $PROFILE, else default); legacy copies mail with rsync",
    )
    chosen = parser.parse_args().profile
    with lock.hold("lab demo"):
        sys.exit(main(chosen))
