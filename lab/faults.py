"""Faults: each breaks exactly one property the suite checks, and undoes itself.

A fault is one small class with `@register` (lab/fault_registry.py) in one of
lab/faults_core.py, lab/faults_mailclients.py, lab/faults_outbound.py,
lab/faults_decom.py, lab/faults_dualstack.py, lab/faults_legacy_dns.py, all
imported here; `fault --list` picks it up. This module is the `fault` verb:
apply, undo, list, heal.
"""

from __future__ import annotations

from typing import Any

# Each module registers its faults when imported, in this order (`fault --list`).
from lab import (  # noqa: F401
    daemons,
    faults_core,
    faults_decom,
    faults_dualstack,
    faults_legacy_dns,
    faults_legacy_mail,
    faults_legacy_mysql,
    faults_legacy_tls,
    faults_legacy_web,
    faults_mailclients,
    faults_outbound,
    health,
    pki,
    profiles,
    staleclient,
    state,
    story,
)
from lab.fault_registry import FAULTS, Fault, kill_helper, restart_daemon
from lab.labctl import lab_state, say
from lab.run import LabError, pid_alive, run
from lab.topology import FORWARDED_PORTS, HOSTS, NEW, OLD

# --- the verb ----------------------------------------------------------------------


def _split(spec: str) -> tuple[Fault, str | None]:
    name, _, arg = spec.partition(":")
    if name not in FAULTS:
        raise LabError(f"unknown fault {name!r}; see `python -m lab fault --list`")
    fault = FAULTS[name]
    return fault, fault.check_arg(arg or None)


def _key(fault: Fault, arg: str | None) -> str:
    return f"{fault.name}:{arg}" if arg else fault.name


def describe() -> list[str]:
    return [
        f"{f.name + (':' + f.arg if f.arg else ''):<34} {f.summary}"
        + (f" [after {f.needs}]" if f.needs else "")
        + (
            f" [profile {', '.join(f.for_profiles)}]"
            if f.for_profiles != (profiles.DEFAULT,)
            else ""
        )
        for f in FAULTS.values()
    ]


def apply(spec: str) -> None:
    fault, arg = _split(spec)
    data = lab_state()
    key = _key(fault, arg)
    if key in data["faults"]:
        say(f"fault {key}: already active")
        return
    story_state = data["story"]
    reached = {
        "synced": story_state["synced"],
        "cutover": story_state["cutover"],
        "dns": story_state["dns"] == "new",
    }
    running = data.get("profile", profiles.DEFAULT)
    if running not in fault.for_profiles:
        raise LabError(
            f"fault {key} breaks a lab of profile {', '.join(fault.for_profiles)}; this lab runs "
            f"profile {running} (`python -m lab up --profile {fault.for_profiles[0]}`)"
        )
    if fault.needs and not reached[fault.needs]:
        raise LabError(f"fault {key} needs the lab after `{fault.needs}`")
    data["faults"][key] = fault.apply(data, arg)
    state.save(data)
    say(f"fault {key}: active: {fault.summary}")


def undo(spec: str, *, verify: bool = True) -> None:
    fault, arg = _split(spec)
    data = lab_state()
    key = _key(fault, arg)
    if key not in data["faults"]:
        say(f"fault {key}: not active, nothing to undo")
        return
    fault.undo(data, arg, data["faults"].pop(key))
    state.save(data)
    if verify and not data["faults"]:
        # With no fault left, every postcondition of the story holds again.
        health.verify(data, f"fault --undo {key}")
    say(f"fault {key}: undone")


def _unsilence() -> list[str]:
    """Remove static neighbour entries (a host made to answer nobody) from every lab host."""
    done = []
    for host in HOSTS.values():
        listing = run(
            ["ip", "-n", host.netns, "neigh", "show", "nud", "permanent"], timeout=10, check=False
        ).stdout
        for line in listing.splitlines():
            fields = line.split()
            if "dev" not in fields:
                continue
            device = fields[fields.index("dev") + 1]
            run(["ip", "-n", host.netns, "neigh", "del", fields[0], "dev", device], timeout=10)
            done.append(f"{host.key}: static neighbour entry for {fields[0]} removed")
    return done


def _restart_dead_daemons(data: dict[str, Any]) -> list[str]:
    done = []
    for key, info in data["hosts"].items():
        if key == OLD.key and data["story"]["cutover"]:
            continue  # stopped by the cutover on purpose
        for name, pid in list(info["pids"].items()):
            if not pid_alive(pid):
                restart_daemon(data, HOSTS[key], name)
                done.append(f"{key}: {name} restarted")
    return done


def _restart_helpers(data: dict[str, Any]) -> list[str]:
    """Every cutover helper on old running, and MySQL answering through old's socket."""
    done = []
    helpers: dict[str, int] = data["cutover"]
    families = [("forward", NEW.address)]
    if story.forwards_ipv6(data):
        families.append(("forward6", NEW.address6))
    for port in FORWARDED_PORTS:
        for prefix, target in families:
            name = f"{prefix}-{port}"
            if not pid_alive(helpers.get(name, 0)):
                helpers.update(story.start_helper("--forward", str(port), target))
                done.append(f"old: {name} restarted")
    if not pid_alive(helpers.get("mysql-socket", 0)):
        helpers.update(story.start_helper("--socket"))
        done.append("old: MySQL socket relay restarted")
    through = [c for c in health.conditions(data) if c.name.startswith("MySQL through")]
    if not pid_alive(helpers.get("tunnel", 0)) or not all(c.ok for c in through):
        # A tunnel can outlive its connection (ssh still waiting on a silent
        # peer): restart it whenever MySQL does not answer through it.
        kill_helper(data, "tunnel")
        helpers.update(story.start_helper("--tunnel", NEW.address))
        done.append("old: ssh tunnel restarted")
    data["cutover"] = helpers
    return done


def heal() -> None:
    """Undo every fault, repair what broke outside any fault, and verify the story state."""
    active = list(lab_state()["faults"])
    for key in reversed(active):
        undo(key, verify=False)
    data = lab_state()
    done = _unsilence() + _restart_dead_daemons(data)
    done += [f"client: stale client {pid} stopped" for pid in staleclient.stop(data)]
    if data["story"]["cutover"] and not data["story"].get("decommissioned"):
        done += _restart_helpers(data)
    state.save(data)
    health.verify(data, "heal")
    for line in done:
        say(f"heal: {line}")
    if not active and not done:
        say("heal: nothing to do; every postcondition holds")
    else:
        say(f"heal: {len(active)} faults undone, {len(done)} repairs; every postcondition holds")
