"""Namespaces, links, guard routes and mounts: building the lab's network and
tearing it all down again, even after a crash or a killed `up`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shlex
import shutil
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from lab.run import NS_FILES, LabError, pid_alive, run
from lab.topology import HOSTS, NS1, NS_PREFIX, STATE, SUBNET, SUBNET6, SWITCH_NS, Host

ETC_NETNS = Path("/etc/netns")
BRIDGE = "br0"

# Per-host directories bind-mounted over the usual paths inside a server's
# mount namespace, so every tool finds its usual config and socket.
SERVER_BINDS = {
    "etc/dovecot": "/etc/dovecot",
    "etc/postfix": "/etc/postfix",
    "etc/apache2": "/etc/apache2",
    "etc/mysql": "/etc/mysql",
    "etc/powerdns": "/etc/powerdns",
    "etc/ssh": "/etc/ssh",
    "tls": "/etc/ssl/private",
    "var/lib/mysql": "/var/lib/mysql",
    "var/lib/postfix": "/var/lib/postfix",
    "var/spool/postfix": "/var/spool/postfix",
    "var/www": "/var/www",
    "srv": "/srv",
    "root": "/root",
}
FILE_BINDS = {"etc/hosts": "/etc/hosts", "etc/resolv.conf": "/etc/resolv.conf"}


def lab_namespaces() -> list[str]:
    listing = run(["ip", "netns", "list"], timeout=10).stdout
    names = [line.split()[0] for line in listing.splitlines() if line.strip()]
    return [n for n in names if n.startswith(NS_PREFIX)]


def hosts_file() -> str:
    lines = ["127.0.0.1 localhost"]
    lines += [f"{h.address} {h.fqdn} {h.key}" for h in HOSTS.values()]
    lines += [f"{h.address6} {h.fqdn} {h.key}" for h in HOSTS.values()]
    return "\n".join(lines) + "\n"


def _ip(*args: str, netns: str | None = None) -> None:
    run(["ip", *(["-n", netns] if netns else []), *args], timeout=10)


def create_network() -> None:
    """The switch namespace with its bridge, and one veth pair per host."""
    _ip("netns", "add", SWITCH_NS)
    _ip("link", "set", "lo", "up", netns=SWITCH_NS)
    _ip("link", "add", BRIDGE, "type", "bridge", netns=SWITCH_NS)
    _ip("link", "set", BRIDGE, "up", netns=SWITCH_NS)
    for host in HOSTS.values():
        _ip("netns", "add", host.netns)
        # Both ends are created in lab namespaces: nothing touches the root's links.
        _ip(
            "link",
            "add",
            host.key,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            host.netns,
            netns=SWITCH_NS,
        )
        _ip("link", "set", host.key, "master", BRIDGE, "up", netns=SWITCH_NS)
        _ip("addr", "add", f"{host.address}/{SUBNET.prefixlen}", "dev", "eth0", netns=host.netns)
        # An interface that goes down loses its IPv6 addresses by default (IPv4 keeps
        # its own): keep them, so a test that takes a host's link down and up again
        # finds it on both families.
        run(
            [
                "ip",
                "netns",
                "exec",
                host.netns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.eth0.keep_addr_on_down=1",
            ],
            timeout=10,
        )
        # nodad: no duplicate address detection, so daemons can bind the address at once.
        _ip(
            "-6",
            "addr",
            "add",
            f"{host.address6}/{SUBNET6.prefixlen}",
            "dev",
            "eth0",
            "nodad",
            netns=host.netns,
        )
        _ip("link", "set", "eth0", "up", netns=host.netns)
        _ip("link", "set", "lo", "up", netns=host.netns)
        # A probe started outside the lab by mistake fails here, locally.
        _ip("route", "replace", "unreachable", f"{host.address}/32")
    _ip("-6", "route", "replace", "unreachable", str(SUBNET6))
    for host in HOSTS.values():
        etc = ETC_NETNS / host.netns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(hosts_file())
        (etc / "resolv.conf").write_text(f"nameserver {NS1.address}\n")


def prepare_host_dirs(host: Host) -> None:
    (host.root / "etc").mkdir(parents=True, exist_ok=True)
    host.logs.mkdir(parents=True, exist_ok=True)
    (host.root / "etc/hosts").write_text(hosts_file())
    (host.root / "etc/resolv.conf").write_text(f"nameserver {NS1.address}\n")
    if host.role != "client":
        for source in SERVER_BINDS:
            (host.root / source).mkdir(parents=True, exist_ok=True)


def create_host_namespaces(host: Host) -> None:
    """Persistent mount and UTS namespaces for `host`, joined to its netns."""
    NS_FILES.mkdir(parents=True, exist_ok=True)
    if not _mountpoints(NS_FILES):
        # `unshare --mount=FILE` needs FILE on a private mount.
        run(["mount", "--bind", str(NS_FILES), str(NS_FILES)], timeout=10)
        run(["mount", "--make-private", str(NS_FILES)], timeout=10)
    mnt, uts = NS_FILES / f"{host.key}.mnt", NS_FILES / f"{host.key}.uts"
    mnt.touch()
    uts.touch()
    steps = [f"hostname {shlex.quote(host.fqdn)}"]
    binds = dict(FILE_BINDS)
    if host.role != "client":
        steps.append("mount -t tmpfs -o mode=755,size=64m lab-run /run")
        # /var/lock is /run/lock on Debian; apachectl's envvars mktemp there.
        steps.append("mkdir -m 1777 /run/lock")
        repo = shlex.quote(str(STATE.resolve().parent))
        under_tmp = Path("/tmp") in STATE.resolve().parents
        if under_tmp:
            # A private /tmp would hide a checkout that lives under /tmp (CI
            # clones may): carry it across the new /tmp at the same path.
            steps.append(f"mkdir /run/lab-repo && mount --bind {repo} /run/lab-repo")
        steps.append("mount -t tmpfs -o mode=1777,size=256m lab-tmp /tmp")
        if under_tmp:
            steps.append(f"mkdir -p {repo} && mount --bind /run/lab-repo {repo}")
        binds.update(SERVER_BINDS)
    steps += [
        f"mount --bind {shlex.quote(str(host.root / src))} {shlex.quote(dst)}"
        for src, dst in binds.items()
    ]
    run(
        [
            "nsenter",
            f"--net=/run/netns/{host.netns}",
            "unshare",
            f"--mount={mnt}",
            f"--uts={uts}",
            "--propagation",
            "private",
            "sh",
            "-ec",
            " && ".join(steps),
        ],
        timeout=20,
    )


def _mountpoints(under: Path) -> list[str]:
    prefix = str(under)
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as info:
        for line in info:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return points


def _kill_namespace_processes(names: list[str], grace: float = 5.0) -> int:
    pids = {
        int(p)
        for name in names
        for p in run(["ip", "netns", "pids", name], timeout=10, check=False).stdout.split()
    }
    pids.discard(os.getpid())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return len(pids)


def teardown(other_ns_files: Iterable[Path] = ()) -> list[str]:
    """Remove every trace of a lab, whatever state it is in. Returns what was done.

    `other_ns_files`: another checkout's `.lab/ns` whose lab is being removed.
    """
    done: list[str] = []
    names = lab_namespaces()
    if names:
        killed = _kill_namespace_processes(names)
        done.append(f"stopped {killed} processes in {len(names)} namespaces")
    # Deepest first: the namespace files, then the private bind under them.
    for _attempt in range(3):
        points = sorted(
            (p for d in (NS_FILES, *other_ns_files) for p in _mountpoints(d)),
            key=len,
            reverse=True,
        )
        if not points:
            break
        for point in points:
            run(["umount", "-l", point], timeout=10, check=False)
        done.append(f"unmounted {len(points)} namespace mounts")
    for name in names:
        run(["ip", "netns", "delete", name], timeout=10, check=False)
    if names:
        done.append(f"deleted namespaces {' '.join(sorted(names))}")
    for etc in sorted(ETC_NETNS.glob(f"{NS_PREFIX}*")):
        shutil.rmtree(etc, ignore_errors=True)
        done.append(f"removed {etc}")
    for family in ("-4", "-6"):
        routes = run(["ip", family, "route", "show", "type", "unreachable"], timeout=10).stdout
        for line in routes.splitlines():
            target = line.split()[1]
            if _is_lab_route(target):
                run(
                    ["ip", family, "route", "delete", "unreachable", target],
                    timeout=10,
                    check=False,
                )
                done.append(f"removed guard route {target}")
    return done


def _is_lab_route(target: str) -> bool:
    """A guard route of the lab: an IPv4 /32 in SUBNET, or SUBNET6 itself."""
    try:
        network = ipaddress.ip_network(target)
    except ValueError:
        return False
    if network.version == 4:
        return network.subnet_of(SUBNET)
    return network.subnet_of(SUBNET6)


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, mounts, daemons)")
