"""`python -m cutover COMMAND` — the suite's command line.

run PHASE [-i INVENTORY] [--pair NAME]... [PYTEST ARGS...]   run the checks of a phase
validate [--no-secrets] [INVENTORY]         check an inventory and say what it describes
schema                                      the inventory's JSON Schema, for editors
checks [--markdown]                         the check catalogue
capture-host [...]                          snapshot a VFIO/KVM host for offline checks
watch [-i INVENTORY] [--interval S] [...]   probe every service until stopped; report downtime
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from cutover.catalogue import CatalogueError, load_catalogue, render_markdown, render_text
from cutover.inventory import (
    Inventory,
    InventoryError,
    inventory_schema,
    load_fleet,
    load_inventory,
)
from cutover.phases import Phase

REPO = Path(__file__).resolve().parents[1]
EXIT_USAGE = 4  # pytest's own code for usage errors: one code for "fix your input"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _default_inventory() -> str:
    return os.environ.get("CUTOVER_INVENTORY", "inventory.yaml")


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(inventory_schema(), indent=2))
    return 0


def cmd_checks(args: argparse.Namespace) -> int:
    try:
        entries = load_catalogue()
    except CatalogueError as exc:
        print(f"cutover: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(render_markdown(entries) if args.markdown else render_text(entries))
    return 0


def _describe(inventory: Inventory) -> str:
    return (
        f"old {inventory.old.address} -> new {inventory.new.address}, "
        f"{len(inventory.services)} services, {len(inventory.mail.accounts)} mail accounts, "
        f"{len(inventory.mysql.accounts)} MySQL accounts, {len(inventory.dns.zones)} DNS zones"
        + (", a virtualization host" if inventory.virt_host else "")
    )


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        fleet = load_fleet(args.inventory, secrets=not args.no_secrets)
    except InventoryError as exc:
        for problem in exc.problems:
            print(f"cutover: {problem}", file=sys.stderr)
        return EXIT_USAGE
    ok = "ok (secrets not read)" if args.no_secrets else "ok"
    if not fleet.explicit:
        inventory = fleet.pairs[0]
        print(f"{args.inventory}: {ok} — migration {inventory.name}: {_describe(inventory)}")
        return 0
    print(f"{args.inventory}: {ok} — fleet {fleet.name}: {len(fleet.pairs)} pairs")
    for inventory in fleet.pairs:
        print(f"  pair {inventory.name}: {_describe(inventory)}")
    return 0


def cmd_run(args: argparse.Namespace, extra: list[str]) -> int:
    # pytest is exec'd rather than imported: cutover/ stays free of pytest,
    # and an explicit -c/--rootdir keeps pytest.ini in force wherever the
    # inventory lives.
    command = [
        sys.executable,
        "-m",
        "pytest",
        f"-c={REPO / 'pytest.ini'}",
        f"--rootdir={REPO}",
        f"--phase={args.phase}",
        f"--inventory={Path(args.inventory).resolve()}",
        *(f"--pair={name}" for name in args.pair),
        *extra,
    ]
    if not any(not a.startswith("-") for a in extra):
        command.append(str(REPO / "checks"))
    os.execv(sys.executable, command)
    return 0  # pragma: no cover - execv does not return


def cmd_watch(args: argparse.Namespace) -> int:
    import signal
    import threading

    from cutover.watch import render_table, run

    try:
        inventory = load_inventory(args.inventory, pair=args.pair)
    except InventoryError as exc:
        print(f"cutover: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.interval <= 0 or (args.duration is not None and args.duration <= 0):
        print("cutover: --interval and --duration must be positive", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(
        f"cutover: watching {len(inventory.services)} services on {inventory.old.address} and "
        f"{inventory.new.address} every {args.interval:g} s (Ctrl-C to stop)",
        file=sys.stderr,
        flush=True,
    )
    data = run(
        inventory,
        interval=args.interval,
        duration=args.duration,
        output=Path(args.output),
        stop=stop,
        workers=args.workers,
    )
    print("\n".join(render_table(data)), flush=True)
    print(f"cutover: report written to {args.output}", file=sys.stderr)
    return 0


def cmd_capture_host(argv: list[str]) -> int:
    from cutover.capture import capture_host_main

    return capture_host_main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["capture-host"]:
        return cmd_capture_host(argv[1:])
    parser = _Parser(
        prog="python -m cutover", description="Verify a zero-downtime server migration."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run the checks of a phase (extra args go to pytest)")
    run.add_argument("phase", choices=[p.value for p in Phase])
    run.add_argument("-i", "--inventory", default=_default_inventory())
    run.add_argument(
        "--pair",
        action="append",
        default=[],
        metavar="NAME",
        help="check only this pair of a fleet inventory (repeatable)",
    )

    validate = sub.add_parser("validate", help="check an inventory file")
    validate.add_argument("inventory", nargs="?", default=_default_inventory())
    validate.add_argument(
        "--no-secrets",
        action="store_true",
        help="check secret references for their shape only: the environment variables and "
        "files they name need not exist (check a file on a laptop)",
    )

    sub.add_parser("schema", help="print the inventory's JSON Schema")

    checks = sub.add_parser("checks", help="print the check catalogue")
    checks.add_argument("--markdown", action="store_true", help="as docs/checks.md")

    sub.add_parser("capture-host", help="snapshot a VFIO/KVM host (see capture-host --help)")

    watch = sub.add_parser("watch", help="probe every service on both IPs until stopped")
    watch.add_argument("-i", "--inventory", default=_default_inventory())
    watch.add_argument("--pair", default=None, metavar="NAME", help="the pair of a fleet to watch")
    watch.add_argument("--interval", type=float, default=0.2, help="seconds between probes")
    watch.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    watch.add_argument("--output", default="reports/watch.json", help="the JSON report")
    watch.add_argument("--workers", type=int, default=16, help="probes in flight at most")

    args, extra = parser.parse_known_args(argv)
    if args.command == "run":
        return cmd_run(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "validate": cmd_validate,
        "schema": cmd_schema,
        "checks": cmd_checks,
        "watch": cmd_watch,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
