"""`cutover COMMAND` (or `python -m cutover COMMAND`) — the suite's command line.

run PHASE [-i INVENTORY] [--pair NAME]... [--nagios] [PYTEST ARGS...]   run a phase's checks
validate [--no-secrets] [INVENTORY | -i INVENTORY]   check an inventory, say what it describes
schema                                      the inventory's JSON Schema, for editors
checks [--markdown]                         the check catalogue
capture-host [...]                          snapshot a VFIO/KVM host for offline checks
watch [-i INVENTORY] [--interval S] [--max-downtime S] [...]   probe until stopped; downtime
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from cutover.cli.run import cmd_run
from cutover.model.catalogue import CatalogueError, load_catalogue, render_markdown, render_text
from cutover.model.inventory import (
    Inventory,
    InventoryError,
    inventory_schema,
    load_fleet,
    load_inventory,
)
from cutover.model.phases import Phase

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


def _counted(count: int, noun: str) -> str:
    """`1 mail account`, `2 mail accounts`.

    >>> _counted(1, "DNS zone"), _counted(0, "service")
    ('1 DNS zone', '0 services')
    """
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _describe(inventory: Inventory) -> str:
    return (
        f"old {inventory.old.address} -> new {inventory.new.address}, "
        f"{_counted(len(inventory.services), 'service')}, "
        f"{_counted(len(inventory.mail.accounts), 'mail account')}, "
        f"{_counted(len(inventory.mysql.accounts), 'MySQL account')}, "
        f"{_counted(len(inventory.dns.zones), 'DNS zone')}"
        + (", a virtualization host" if inventory.virt_host else "")
    )


def cmd_validate(args: argparse.Namespace) -> int:
    path = args.path or args.inventory or _default_inventory()
    try:
        fleet = load_fleet(
            path,
            secrets=not args.no_secrets,
            how_to_name="give it as `cutover validate PATH`, or set CUTOVER_INVENTORY",
        )
    except InventoryError as exc:
        for problem in exc.problems:
            print(f"cutover: {problem}", file=sys.stderr)
        return EXIT_USAGE
    ok = "ok (secrets not read)" if args.no_secrets else "ok"
    if not fleet.explicit:
        inventory = fleet.pairs[0]
        print(f"{path}: {ok} — migration {inventory.name}: {_describe(inventory)}")
        return 0
    print(f"{path}: {ok} — fleet {fleet.name}: {_counted(len(fleet.pairs), 'pair')}")
    for inventory in fleet.pairs:
        print(f"  pair {inventory.name}: {_describe(inventory)}")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    import signal
    import threading

    from cutover.cli.watch import over_max_downtime, render_table, run

    try:
        inventory = load_inventory(args.inventory, pair=args.pair)
    except InventoryError as exc:
        print(f"cutover: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if (
        args.interval <= 0
        or (args.duration is not None and args.duration <= 0)
        or (args.max_downtime is not None and args.max_downtime < 0)
    ):
        print(
            "cutover: --interval and --duration must be positive, --max-downtime not negative",
            file=sys.stderr,
        )
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
    if args.max_downtime is not None:
        over = over_max_downtime(data, args.max_downtime)
        for endpoint_id, longest in over:
            print(
                f"cutover: {endpoint_id} was down {longest:.2f} s at a stretch, more than "
                f"--max-downtime {args.max_downtime:g} s",
                file=sys.stderr,
            )
        return 1 if over else 0
    return 0


def cmd_capture_host(argv: list[str]) -> int:
    from cutover.cli.capture import capture_host_main

    return capture_host_main(argv)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cutover")
    except PackageNotFoundError:  # a checkout used without installing
        return "unknown (not installed)"


def _phase_table() -> str:
    from cutover.model.phases import expectations

    rows = [f"  {phase.value:<13} {expectations(phase).summary}" for phase in Phase]
    return "phases (one run checks one; reports/<phase>.xml, .html, .json):\n" + "\n".join(rows)


EXIT_CODES = """\
exit codes of `run`:
  0  every check that ran passed (skips say why in the report)
  1  at least one check failed: the step is not safe yet
  2  interrupted (Ctrl-C)
  3  internal error (pytest or a plugin crashed)
  4  bad input: the inventory (file, line, field), an option, --probe-mail without
     mail.probe_account; nothing was checked
  5  no check ran: none collected, or -k/-m deselected them all; the reports were
     left as they were
  with --nagios: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (bad inventory, no check ran)"""

PASSED_THROUGH = """\
options passed through to pytest (anything `run` does not know):
  -k EXPR              select by check ID, area or target: -k PORT03, -k "DNS02 or DNS03",
                       -k imaps-993-old
  -m EXPR              select by area marker: -m "dns or imap"
  --host-snapshot [PAIR=]FILE
                       check a VFIO/KVM host tarball from `cutover capture-host`
                       instead of the live host
  --probe-mail         cutover phase: send one test message (PORT03, the only check that
                       writes); needs mail.probe_account
  -n auto              run the areas side by side (pytest-xdist)
  -x, -v, --tb=short   as in pytest
  --reports-dir DIR, --baseline FILE, --report-json FILE
                       where the reports and the baseline go (default: reports/)"""

EXAMPLES = """\
examples:
  cutover validate inventory.yaml
  cutover run preflight -i inventory.yaml
  cutover run cutover -i inventory.yaml -k imap
  cutover run acceptance -i fleet.yaml --pair web07 -n auto
  cutover run decommission -i inventory.yaml
  cutover run preflight -i inventory.yaml --host-snapshot=host.tar.gz -k "VFIO or VM"
  cutover run preflight -i inventory.yaml --nagios
  cutover watch -i inventory.yaml --max-downtime 5"""


def _parser() -> _Parser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="cutover",
        description="Verify, with evidence, each step of a zero-downtime server migration "
        "(also `python -m cutover`).\n\n" + _phase_table(),
        epilog=f"{EXIT_CODES}\n\n{EXAMPLES}\n\n`cutover run --help` lists the options "
        "passed through to pytest.",
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"cutover {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser(
        "run",
        usage="cutover run PHASE [-i INVENTORY] [--pair NAME]... [--nagios] [PYTEST ARGS...]",
        help="run the checks of a phase (extra args go to pytest)",
        description="Run the installed checks of one phase against an inventory, from any "
        "directory.\n\n" + _phase_table(),
        epilog=f"{PASSED_THROUGH}\n\n{EXIT_CODES}\n\n{EXAMPLES}",
        formatter_class=formatter,
        allow_abbrev=False,
    )
    run.add_argument("phase", choices=[p.value for p in Phase])
    run.add_argument(
        "-i",
        "--inventory",
        default=_default_inventory(),
        help="the inventory file (default: $CUTOVER_INVENTORY or inventory.yaml)",
    )
    run.add_argument(
        "--pair",
        action="append",
        default=[],
        metavar="NAME",
        help="check only this pair of a fleet inventory (repeatable)",
    )
    run.add_argument(
        "--nagios",
        action="store_true",
        help="print one Nagios/Icinga status line with perfdata; exit 0 OK, 1 WARNING, "
        "2 CRITICAL, 3 UNKNOWN",
    )

    validate = sub.add_parser(
        "validate",
        usage="cutover validate [--no-secrets] [INVENTORY | -i INVENTORY]",
        help="check an inventory file",
        description="Check an inventory file and say what it describes; every problem is one "
        "line (file:line: field: what), all of them at once, exit 4.",
    )
    named = validate.add_mutually_exclusive_group()
    named.add_argument(
        "path",
        nargs="?",
        metavar="INVENTORY",
        help="the inventory file (default: $CUTOVER_INVENTORY or inventory.yaml)",
    )
    named.add_argument(
        "-i", "--inventory", metavar="INVENTORY", help="the same, as `cutover run` takes it"
    )
    validate.add_argument(
        "--no-secrets",
        action="store_true",
        help="check secret references for their shape only: the environment variables and "
        "files they name need not exist (check a file on a laptop); tls.ca_file and "
        "ssh_config, which hold no secret, must still exist",
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
    watch.add_argument(
        "--max-downtime",
        type=float,
        default=None,
        metavar="S",
        help="exit 1 when any endpoint's longest window without a correct answer exceeded S s",
    )
    for command in sub.choices.values():
        command.set_defaults(command_parser=command)  # its own usage on an error
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["capture-host"]:
        return cmd_capture_host(argv[1:])
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "run":
        return cmd_run(args, extra)
    if extra:
        args.command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "validate": cmd_validate,
        "schema": cmd_schema,
        "checks": cmd_checks,
        "watch": cmd_watch,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
