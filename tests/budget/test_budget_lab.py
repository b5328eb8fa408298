"""The per-server budget against the real lab: what each server saw never exceeds it.

A preflight of the connection-heavy areas (ports, TLS, HTTP, mail logins,
IMAP, MySQL) runs with `budget: {connections: 2}` while a sampler inside each
server's namespace counts, from the server's own socket table, the
connections open to its service ports. The checks still pass, and neither
server ever carried more than 2 of the suite's connections at once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from cutover.model.inventory import Inventory, load_fleet
from tests.conftest import Lab
from tests.suite import REPO, run_suite

SMALL = {"connections": 2, "logins_per_second": 20}
AREAS = (
    "checks/test_ports.py",
    "checks/test_tls.py",
    "checks/test_http.py",
    "checks/test_mailclients.py",
    "checks/test_imap.py",
    "checks/test_mysql.py",
)
NAMESPACES = {"old": "cutover-old", "new": "cutover-new"}


@contextmanager
def counting(namespace: str, inventory: Inventory, side: str) -> Iterator[dict[str, Any]]:
    """Count the connections to `side`'s service ports inside its namespace; the counts after."""
    host = inventory.old if side == "old" else inventory.new
    command = ["ip", "netns", "exec", namespace, sys.executable, "-m", "tests.budget.sampler"]
    command += [f"--address={a}" for a in host.addresses]
    command += [f"--port={s.port}" for s in inventory.services]
    sampler = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    result: dict[str, Any] = {}
    try:
        assert sampler.stdout is not None
        assert sampler.stdout.readline().strip() == "sampling", sampler.stderr
        yield result
    finally:
        sampler.send_signal(signal.SIGTERM)  # `ip netns exec` execs: this is the sampler
        out, err = sampler.communicate(timeout=30)
        assert sampler.returncode == 0, err
        result.update(json.loads(out))


def test_a_small_budget_is_never_exceeded_and_the_checks_still_pass(
    preflight_lab: Lab, tmp_path: Path
) -> None:
    inventory = preflight_lab.inventory_variant(
        tmp_path, lambda data: data.__setitem__("budget", SMALL)
    )
    loaded = load_fleet(inventory, secrets=False).pairs[0]
    with ExitStack() as stack:
        seen = {
            side: stack.enter_context(counting(namespace, loaded, side))
            for side, namespace in NAMESPACES.items()
        }
        run = run_suite(
            "preflight", inventory, tmp_path / "reports", *AREAS, namespace="cutover-client"
        )
    assert run.returncode == 0, run.summary()
    assert run.cases and all(case.outcome == "passed" for case in run.cases), run.summary()
    assert {case.check_id for case in run.cases} >= {"PORT01", "TLS01", "AUTH01", "IMAP01"}
    for side, counted in seen.items():
        print(
            f"{side} server: at most {counted['most']} at once, {counted['distinct']} "
            f"connections seen, {counted['samples']} samples"
        )
        # The server did see the run: many connections, up to the budget.
        assert counted["distinct"] >= 50, f"{side}: {counted}"
        assert counted["most"] <= SMALL["connections"], (
            f"the {side} server carried {counted['most']} of the suite's connections at once "
            f"(budget 2), in {counted['samples']} samples: {counted['peak']}"
        )
        assert counted["most"] >= 1, f"{side}: {counted}"
