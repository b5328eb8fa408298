"""`python -m lab VERB`: the lab's command line. Every verb says what it did."""

from __future__ import annotations

import argparse
import os
import sys

from lab import faults, labctl, lock, profiles, scale, staleclient, state, story
from lab.run import LabError, enter
from lab.topology import HOSTS


def _exec(host_key: str, command: list[str]) -> int:
    if host_key not in HOSTS:
        raise LabError(f"unknown host {host_key!r}; one of: {', '.join(HOSTS)}")
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise LabError("exec HOST -- COMMAND...: no command given")
    labctl.lab_state()
    # nsenter's --wd opens the directory before it enters the mount namespace,
    # so the command would run in the root namespace's copy of the directory
    # (another mount: renames between it and an absolute path fail with
    # EXDEV). Enter first, then change directory inside the host.
    # A directory the host does not have (servers have their own /tmp) falls back to /.
    enter_dir = (
        f'cd "$1" 2>/dev/null || {{ echo "lab exec: no $1 on {host_key}; running in /" >&2; '
        'cd /; }; shift; exec "$@"'
    )
    argv = [*enter(HOSTS[host_key]), "sh", "-c", enter_dir, "sh", os.getcwd(), *command]
    os.execvp(argv[0], argv)


def _fault(args: argparse.Namespace) -> int:
    if args.list:
        print("\n".join(faults.describe()))
        return 0
    if not args.name:
        raise LabError("fault NAME[:ARG] | fault --list | fault --undo NAME[:ARG] | fault heal")
    if args.name == "heal":
        faults.heal()
    elif args.undo:
        faults.undo(args.name)
    else:
        faults.apply(args.name)
    return 0


def _stale_client(args: argparse.Namespace) -> None:
    data = labctl.lab_state()
    if args.stop:
        stopped = staleclient.stop(data, args.port)
        state.save(data)
        labctl.say(
            f"stale-client: stopped {' '.join(map(str, stopped)) or 'nothing (none running)'}"
        )
        return
    if args.port is None:
        raise LabError("stale-client --port P [--rate N] | stale-client --stop [--port P]")
    pid = staleclient.start(data, args.port, args.rate)
    state.save(data)
    labctl.say(
        f"stale-client: pid {pid} connects to the old IP's port {args.port} "
        f"{args.rate:g}/s from the client host (until `stale-client --stop`)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    for verb, text in (
        ("up", "build the lab (cleans any stale lab of this checkout first)"),
        ("down", "remove every trace of this checkout's lab (idempotent)"),
    ):
        parsed = verbs.add_parser(verb, help=text)
        parsed.add_argument(
            "--force", action="store_true", help="also remove a lab another checkout started"
        )
        if verb == "up":
            parsed.add_argument(
                "--profile",
                choices=sorted(profiles.PROFILES),
                default=profiles.DEFAULT,
                help="how the servers behave: "
                + "; ".join(f"{name}: {text}" for name, text in profiles.PROFILES.items()),
            )
    verbs.add_parser("status", help="daemons, story state, faults, postconditions and a port sweep")
    verbs.add_parser("lower-ttl", help="set every TTL to 300 on both nameservers (SQL)")
    sync = verbs.add_parser(
        "sync", help="copy mail (dsync), MariaDB (dump | ssh) and web from old to new"
    )
    sync.add_argument(
        "--method",
        choices=("dsync", "rsync"),
        default="dsync",
        help="how mail is copied: dsync (doveadm backup, the default) or rsync (Maildirs "
        "with their dovecot-uidlist files, the playbook's way)",
    )
    cut = verbs.add_parser(
        "cutover",
        help="run lab/cutover.sh on old: stop services, forward all ports (IPv4 and IPv6)",
    )
    cut.add_argument(
        "--ipv4-only",
        action="store_true",
        help="the playbook's script as written: forward IPv4 only (old's IPv6 then refuses)",
    )
    verbs.add_parser(
        "dns-switch", help="point every zone's A and AAAA records at the new server (SQL)"
    )
    verbs.add_parser(
        "decommission", help="stop the forwards and the tunnel on old (by PID): old goes silent"
    )
    stale = verbs.add_parser(
        "stale-client",
        help="a client (client host, second address) that keeps connecting to the OLD IP",
    )
    stale.add_argument("--port", type=int, help="the old IP's forwarded port")
    stale.add_argument("--rate", type=float, default=1.0, help="connections a second (default 1)")
    stale.add_argument("--stop", action="store_true", help="stop it (every one without --port)")
    fault = verbs.add_parser("fault", help="break one property: fault NAME[:ARG]")
    fault.add_argument("name", nargs="?", help="NAME or NAME:ARG (see --list); `heal` undoes all")
    fault.add_argument("--list", action="store_true", help="describe every fault")
    fault.add_argument("--undo", action="store_true", help="restore what NAME broke")
    verbs.add_parser(
        "heal",
        help="undo every fault, repair what else broke (dead daemons or helpers, "
        "a silenced host) and verify the story state",
    )
    bulk = verbs.add_parser("scale", help="bulk, reproducible data for benchmarks")
    bulk.add_argument("--domains", type=int, default=0, help="generated zones")
    bulk.add_argument("--accounts", type=int, default=0, help="generated mail accounts")
    bulk.add_argument("--messages", type=int, default=0, help="messages per generated account")
    bulk.add_argument("--seed", type=int, default=1, help="random seed (same seed, same data)")
    exec_ = verbs.add_parser("exec", help="run a command on a host: exec HOST -- CMD...")
    exec_.add_argument("host", choices=sorted(HOSTS))
    exec_.add_argument("command", nargs=argparse.REMAINDER)
    return parser


# Verbs that only read the lab: every other verb changes it and holds the lab lock.
READ_ONLY = ("status", "exec")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.verb in READ_ONLY or (args.verb == "fault" and args.list):
            return _run(args)
        with lock.hold(f"lab {args.verb}"):
            return _run(args)
    except LabError as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.verb == "up":
        labctl.up(force=args.force, profile=args.profile)
    elif args.verb == "down":
        labctl.down(force=args.force)
    elif args.verb == "status":
        return labctl.status()
    elif args.verb == "lower-ttl":
        story.lower_ttl()
    elif args.verb == "sync":
        story.sync(method=args.method)
    elif args.verb == "cutover":
        story.cutover(ipv4_only=args.ipv4_only)
    elif args.verb == "dns-switch":
        story.dns_switch()
    elif args.verb == "decommission":
        story.decommission()
    elif args.verb == "stale-client":
        _stale_client(args)
    elif args.verb == "fault":
        return _fault(args)
    elif args.verb == "heal":
        faults.heal()
    elif args.verb == "scale":
        scale.scale(args.domains, args.accounts, args.messages, args.seed)
    elif args.verb == "exec":
        return _exec(args.host, args.command)
    return 0
