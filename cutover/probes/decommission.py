"""The old host before it is switched off: who still uses it, what landed on it, what leans on it.

Three read-only looks at the old host over its ssh target (`old.ssh`), each one
bounded shell script run by the one remote runner (`cutover.probes.remote`):

- `observe_clients`: every connection that arrives on a forwarded port of the
  old host during an observation window, sampled once a second with `ss`
  (any connected state, so a connection that is already closing still
  counts), minus the suite's own address toward the old IP.
- `observe_stranded`: what arrived on old after the cutover: Maildir files
  (with their Message-ID and Date headers), the Postfix queue
  (`postqueue -j`), files changed in the MySQL data directory.
- `observe_dependants`: processes on old connected to the forwarded MySQL
  socket or to a forward's local port (the forwarders themselves excluded),
  with their command lines.

The cutover moment is read on the old host itself, on its own clock (no
clock skew between the suite and old): the start of the oldest process that
listens on a forwarded port. The forwards are started right after the old
services stop (the playbook's script), so anything written into a Maildir,
the queue or the MySQL data directory after that moment was not copied by
the last sync. Every string from the host goes through `shown()`.

>>> parse_ss_tcp("ESTAB 0 0 198.51.100.10:25 198.51.100.7:40312")[0].peer
'198.51.100.7'
"""

from __future__ import annotations

import json
import re
import shlex
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from cutover.model.settings import ProbeSettings
from cutover.probes.connect import ProbeError, one_line
from cutover.probes.remote import RemoteHost
from cutover.untrusted import shown

__all__ = [
    "ClientsSeen",
    "Dependant",
    "Dependants",
    "QueuedMessage",
    "SocketRow",
    "Stranded",
    "StrandedMessage",
    "observe_clients",
    "observe_dependants",
    "observe_stranded",
    "parse_postqueue",
    "parse_ss_tcp",
    "parse_ss_unix",
    "suite_addresses",
]

# Bounds on what is read from the host: lines of `ss` per sample, messages, queue entries.
MAX_LINES = 5000
MAX_ITEMS = 200
MAX_FIELD = 300
MAX_OUTPUT = 8_000_000  # bytes of sampling output read in all
_PID = re.compile(r'\("(?P<name>[^"]{0,64})",pid=(?P<pid>\d{1,10})')


def _field(text: str) -> str:
    return shown(text.strip()[:MAX_FIELD])


def _split_address(text: str) -> tuple[str, int | None] | None:
    """'198.51.100.7:40312' or '[2001:db8::7]:40312' -> (address, port); None if not one."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not (port.isdigit() or port == "*"):
        return None
    host = host.strip("[]")
    if "%" in host:
        host = host.split("%", 1)[0]
    if host.startswith("::ffff:") and "." in host:
        host = host.removeprefix("::ffff:")
    return host, int(port) if port.isdigit() else None


# --- ss ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SocketRow:
    """One TCP or unix socket line of `ss -H` (with -p: the processes holding it)."""

    state: str
    local: str
    local_port: int | None
    peer: str
    peer_port: int | None
    processes: tuple[tuple[str, int], ...] = ()  # (name, pid)


def _processes(text: str) -> tuple[tuple[str, int], ...]:
    return tuple((shown(m.group("name")), int(m.group("pid"))) for m in _PID.finditer(text))


def parse_ss_tcp(text: str) -> list[SocketRow]:
    """Lines of `ss -tnH [-p] state ...` -> rows; lines that are not a socket are skipped.

    With a `state` filter ss leaves the state column out; both forms are read.
    """
    rows = []
    for line in text.splitlines()[:MAX_LINES]:
        fields = line.split()
        addresses = [(i, a) for i, f in enumerate(fields[:6]) if (a := _split_address(f))]
        if len(addresses) < 2:
            continue
        (_, (local, lport)), (_, (peer, pport)) = addresses[0], addresses[1]
        state = fields[0] if not fields[0].isdigit() else ""
        rows.append(
            SocketRow(shown(state), shown(local), lport, shown(peer), pport, _processes(line))
        )
    return rows


def parse_ss_unix(text: str) -> list[SocketRow]:
    """Lines of `ss -xnpH` -> rows: local is the path (or '*'), ports are the inodes."""
    rows = []
    for line in text.splitlines()[:MAX_LINES]:
        fields = line.split()
        # Netid State Recv-Q Send-Q Local Port Peer Port [Process]
        if len(fields) < 8 or not fields[5].isdigit() or not fields[7].isdigit():
            continue
        rows.append(
            SocketRow(
                shown(fields[1]),
                shown(fields[4][:MAX_FIELD]),
                int(fields[5]),
                shown(fields[6][:MAX_FIELD]),
                int(fields[7]),
                _processes(line),
            )
        )
    return rows


def _port_filter(ports: Iterable[int], direction: str = "sport") -> str:
    return "( " + " or ".join(f"{direction} = :{int(p)}" for p in sorted(set(ports))) + " )"


def _remote(old_ssh: str | None, settings: ProbeSettings) -> RemoteHost:
    if not old_ssh:
        raise ProbeError("the inventory gives no old.ssh (testinfra host spec of the old host)")
    return RemoteHost(old_ssh, settings.ssh_config, settings.operation_timeout)


def _run_script(remote: RemoteHost, script: str, what: str, seconds: float) -> str:
    result = remote.execute(f"sh -c {shlex.quote(script)}", what, timeout=seconds)
    if result.rc == 255:
        raise ProbeError(f"ssh to {remote.hostspec} failed: {_field(result.stderr)}")
    if result.rc == 124:
        raise ProbeError(f"{what} on {remote.hostspec} timed out after {seconds:g} s")
    return str(result.stdout)


# --- DECOM02: clients ---------------------------------------------------------------


def suite_addresses(old_ip: str) -> frozenset[str]:
    """The addresses this machine uses toward the old IP (a UDP connect sends nothing)."""
    family = socket.AF_INET6 if ":" in old_ip else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((old_ip, 9))
            return frozenset({str(probe.getsockname()[0])})
    except OSError as exc:
        raise ProbeError(f"no route from here to the old IP {old_ip}: {one_line(exc)}") from None


@dataclass(frozen=True)
class ClientsSeen:
    """Connections that arrived on each forwarded port during the window, by client address."""

    seconds: float
    samples: int
    excluded: frozenset[str]  # the suite's own addresses
    # port -> client address -> distinct connections (client ports) seen
    by_port: dict[int, dict[str, int]] = field(default_factory=dict)
    truncated: bool = False  # more client addresses than listed (the listing is bounded)


def clients_script(ports: Iterable[int], seconds: float) -> str:
    """Sample `ss` once a second for `seconds`: every connected socket on the ports."""
    spec = shlex.quote(_port_filter(ports))
    return f"""end=$(( $(date +%s) + {max(1, round(seconds))} ))
while :; do
  echo "sample:"
  ss -tnH state connected {spec} 2>&1 | head -n {MAX_LINES}
  [ "$(date +%s)" -lt "$end" ] || break
  sleep 1
done | head -c {MAX_OUTPUT}
"""


def parse_clients(
    text: str, ports: Iterable[int], excluded: frozenset[str], seconds: float
) -> ClientsSeen:
    wanted = set(ports)
    seen: dict[int, dict[str, set[int]]] = {}
    samples = 0
    truncated = False
    for line in text.splitlines():
        if line.startswith("sample:"):
            samples += 1
            continue
        for row in parse_ss_tcp(line):
            if row.local_port not in wanted or row.peer in excluded or row.peer_port is None:
                continue
            clients = seen.setdefault(row.local_port, {})
            if row.peer not in clients and len(clients) >= MAX_ITEMS:
                truncated = True
                continue
            ports_of = clients.setdefault(row.peer, set())
            if len(ports_of) < MAX_LINES:
                ports_of.add(row.peer_port)
    counts = {port: {ip: len(cp) for ip, cp in by.items()} for port, by in sorted(seen.items())}
    return ClientsSeen(seconds, samples, excluded, counts, truncated)


def observe_clients(
    old_ssh: str | None,
    old_ips: Iterable[str],
    ports: Iterable[int],
    seconds: float,
    settings: ProbeSettings,
    ignored: Iterable[str] = (),
) -> ClientsSeen:
    """Watch the old host's forwarded `ports` for `seconds`; the suite's own addresses (one
    per family on a dual-stack old host: the suite reaches each of its addresses) and the
    `ignored` ones (decommission.ignore_clients) left out."""
    ports = sorted(set(ports))
    excluded = frozenset().union(*(suite_addresses(ip) for ip in old_ips)) | frozenset(ignored)
    remote = _remote(old_ssh, settings)
    limit = seconds + settings.operation_timeout + 5
    out = _run_script(remote, clients_script(ports, seconds), "ss (connection sampling)", limit)
    if "sample:" not in out:
        raise ProbeError(f"ss on {old_ssh} printed nothing: {_field(out[:200]) or 'no output'}")
    return parse_clients(out, ports, excluded, seconds)


# --- DECOM03: stranded ----------------------------------------------------------------


@dataclass(frozen=True)
class StrandedMessage:
    path: str
    mtime: float
    message_id: str = ""
    date: str = ""

    @property
    def mailbox(self) -> str:
        """The Maildir folder: the path without /new/FILE or /cur/FILE."""
        parts = self.path.rsplit("/", 2)
        return parts[0] if len(parts) == 3 else self.path


@dataclass(frozen=True)
class QueuedMessage:
    queue_id: str
    queue_name: str
    sender: str
    recipients: tuple[str, ...]
    reason: str = ""


@dataclass(frozen=True)
class Stranded:
    """What arrived on old after the cutover (`cutover_at`: epoch seconds, old's clock)."""

    cutover_at: float | None  # None: no process listens on a forwarded port
    cutover_by: str = ""  # the process whose start dates the cutover
    messages: tuple[StrandedMessage, ...] = ()
    queue: tuple[QueuedMessage, ...] | None = None  # None: postqueue not found
    queue_error: str = ""
    datadir_files: tuple[str, ...] = ()  # relative to the data directory
    truncated: bool = False


def _cutover_lines(ports: Iterable[int]) -> str:
    """Shell: `started: EPOCH CMDLINE` for every process listening on a forwarded port."""
    spec = shlex.quote(_port_filter(ports))
    # The start in wall-clock time, as precise as the file times it is compared with:
    # now minus the time elapsed since the start (uptime minus the start, in clock
    # ticks). /proc/stat's btime would cut up to a second (whole seconds only).
    return f"""now=$(date +%s.%N 2>/dev/null)
case $now in (*[!0-9.]*|'') now=$(date +%s) ;; esac
read -r up _ </proc/uptime
hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
for pid in $(ss -tlnpH {spec} 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 \\
    | sort -u | head -n 100); do
  ticks=$(sed 's/^.*) //' /proc/$pid/stat 2>/dev/null | awk '{{print $20}}')
  [ -n "$ticks" ] || continue
  name=$(tr '\\0' ' ' </proc/$pid/cmdline 2>/dev/null | tr -d '\\n' | head -c {MAX_FIELD})
  awk -v now="$now" -v up="$up" -v h="$hz" -v s="$ticks" -v n="$name" \\
    'BEGIN {{printf "started: %.3f %s\\n", now - (up - s / h), n}}'
done"""


# The first Message-ID and Date header of a message file (headers only, first 16 KiB).
_HEADERS = (
    'head -c 16384 "$f" | awk \'/^\\r?$/ {exit} '
    'tolower($0) ~ /^message-id:/ && !m {m=1; print "header: " substr($0, 1, 300)} '
    'tolower($0) ~ /^date:/ && !d {d=1; print "header: " substr($0, 1, 300)}\''
)


def stranded_script(
    ports: Iterable[int], maildir_roots: Iterable[str], datadir: str, with_queue: bool
) -> str:
    """Dated cutover, then Maildir files and data directory files newer than it, and the queue."""
    roots = " ".join(shlex.quote(r) for r in maildir_roots)
    data = shlex.quote(datadir)
    queue = (
        f"""if command -v postqueue >/dev/null 2>&1; then
  {{ postqueue -j 2>&1; echo "rc: $?"; }} | head -n {MAX_ITEMS + 2} | cut -c 1-65536 \\
    | sed 's/^/queue: /'
else
  echo "queue-missing:"
fi"""
        if with_queue
        else ""
    )
    return f"""started=$({_cutover_lines(ports)}
)
printf '%s\\n' "$started"
t=$(printf '%s\\n' "$started" | awk '$1 == "started:" {{print $2}}' | sort -n | head -n 1)
if [ -n "$t" ]; then
  for root in {roots}; do
    [ -d "$root" ] || continue
    find "$root" -xdev -type f \\( -path '*/new/*' -o -path '*/cur/*' \\) \\
      -printf '%T@ %p\\n' 2>/dev/null
  done | awk -v t="$t" '$1 > t' | head -n {MAX_ITEMS + 1} | while IFS= read -r line; do
    f=${{line#* }}
    echo "mail: $line"
    {_HEADERS}
  done
  if [ -d {data} ]; then
    find {data} -xdev -type f -printf '%T@ %P\\n' 2>/dev/null | awk -v t="$t" '$1 > t' \\
      | head -n {MAX_ITEMS + 1} | sed 's/^/datadir: /'
  fi
fi
{queue}
"""


def parse_postqueue(text: str) -> tuple[QueuedMessage, ...]:
    """`postqueue -j` lines (one JSON object each) -> messages; other lines are skipped."""
    found = []
    for line in text.splitlines()[:MAX_ITEMS]:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("queue_id"), str):
            continue
        recipients = entry.get("recipients")
        rcpts = recipients if isinstance(recipients, list) else []
        addresses = tuple(
            _field(str(r.get("address", ""))) for r in rcpts[:20] if isinstance(r, dict)
        )
        reasons = [str(r.get("delay_reason", "")) for r in rcpts[:20] if isinstance(r, dict)]
        found.append(
            QueuedMessage(
                queue_id=_field(entry["queue_id"]),
                queue_name=_field(str(entry.get("queue_name", ""))),
                sender=_field(str(entry.get("sender", ""))),
                recipients=addresses,
                reason=_field(next((r for r in reasons if r), "")),
            )
        )
    return tuple(found)


def _epoch(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_stranded(text: str, *, with_queue: bool) -> Stranded:
    started: list[tuple[float, str]] = []
    messages: list[StrandedMessage] = []
    datadir: list[str] = []
    queue_lines: list[str] = []
    queue_missing = False
    queue_rc = ""  # postqueue's exit status ("" when the listing was cut before it)
    for line in text.splitlines():
        tag, _, value = line.partition(": ")
        if tag == "started":
            when, _, name = value.partition(" ")
            if (at := _epoch(when)) is not None:
                started.append((at, _field(name)))
        elif tag == "mail":
            when, _, path = value.partition(" ")
            if (at := _epoch(when)) is not None:
                messages.append(StrandedMessage(_field(path), at))
        elif tag == "header" and messages:
            name, _, content = value.partition(":")
            last = messages[-1]
            if name.strip().lower() == "message-id" and not last.message_id:
                messages[-1] = StrandedMessage(last.path, last.mtime, _field(content), last.date)
            elif name.strip().lower() == "date" and not last.date:
                messages[-1] = StrandedMessage(
                    last.path, last.mtime, last.message_id, _field(content)
                )
        elif tag == "datadir":
            _, _, path = value.partition(" ")
            datadir.append(_field(path))
        elif tag == "queue" and value.startswith("rc: "):
            queue_rc = value.removeprefix("rc: ").strip()
        elif tag == "queue":
            queue_lines.append(value)
        elif line.startswith("queue-missing:"):
            queue_missing = True
    first = min(started) if started else None
    queue = parse_postqueue("\n".join(queue_lines)) if with_queue and not queue_missing else None
    # Without a running Postfix, postqueue warns ("Mail system is down -- accessing
    # the queue directly") and still lists the queue: only its failure is an error.
    unparsed = [q for q in queue_lines if not q.lstrip().startswith("{")]
    failed = queue_rc not in ("", "0") or any("fatal:" in q for q in unparsed)
    return Stranded(
        cutover_at=first[0] if first else None,
        cutover_by=first[1] if first else "",
        messages=tuple(messages[:MAX_ITEMS]),
        queue=queue,
        queue_error=_field(unparsed[-1] if unparsed else f"exit {queue_rc}") if failed else "",
        datadir_files=tuple(datadir[:MAX_ITEMS]),
        truncated=len(messages) > MAX_ITEMS or len(datadir) > MAX_ITEMS,
    )


def observe_stranded(
    old_ssh: str | None,
    ports: Iterable[int],
    maildir_roots: Iterable[str],
    datadir: str,
    settings: ProbeSettings,
    *,
    with_queue: bool = True,
) -> Stranded:
    """What arrived on old after the cutover: Maildir files, the queue, data directory files."""
    remote = _remote(old_ssh, settings)
    script = stranded_script(ports, maildir_roots, datadir, with_queue)
    limit = 3 * settings.operation_timeout + 10  # a find over the mail store
    return parse_stranded(
        _run_script(remote, script, "find/postqueue", limit), with_queue=with_queue
    )


# --- DECOM04: dependants ---------------------------------------------------------------


@dataclass(frozen=True)
class Dependant:
    """A process on old using a forward: what it is connected to, and its command line."""

    pid: int
    name: str
    cmdline: str
    via: str  # "the MySQL socket /run/mysqld/mysqld.sock" or "198.51.100.10:25"


@dataclass(frozen=True)
class Dependants:
    processes: tuple[Dependant, ...]
    forwarders: tuple[int, ...]  # the PIDs excluded as forwarders


def dependants_script(socket_path: str) -> str:
    return f"""echo "unix:"
ss -xpnH 2>/dev/null | head -n {MAX_LINES}
echo "tcp:"
ss -tnpH state all 2>/dev/null | head -n {MAX_LINES}
echo "procs:"
for pid in $(ss -xtpnaH 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 \\
    | sort -un | head -n 2000); do
  ppid=$(sed 's/^.*) //' /proc/$pid/stat 2>/dev/null | awk '{{print $2}}')
  cmd=$(tr '\\0' ' ' </proc/$pid/cmdline 2>/dev/null | tr -d '\\n' | head -c {MAX_FIELD})
  echo "proc: $pid ${{ppid:-0}} $cmd"
done
echo "socket: {shlex.quote(socket_path)}"
"""


def parse_dependants(text: str, socket_path: str, old_ip: str, ports: Iterable[int]) -> Dependants:
    sections: dict[str, list[str]] = {"unix": [], "tcp": [], "procs": []}
    current = "procs"
    procs: dict[int, tuple[int, str]] = {}
    for line in text.splitlines():
        if line.rstrip(":") in sections and line.endswith(":"):
            current = line.rstrip(":")
            continue
        if line.startswith("proc: "):
            pid, _, rest = line.removeprefix("proc: ").partition(" ")
            ppid, _, cmd = rest.partition(" ")
            if pid.isdigit() and ppid.isdigit():
                procs[int(pid)] = (int(ppid), _field(cmd))
            continue
        sections[current].append(line)
    unix = parse_ss_unix("\n".join(sections["unix"]))
    tcp = parse_ss_tcp("\n".join(sections["tcp"]))
    forwarded = set(ports)
    # The forwarders: whatever listens on the socket, on a forwarded port, or on an
    # ssh -L port; their forked children (socat's fork) count as forwarders too.
    listening_socket = [r for r in unix if r.local == socket_path and r.state.upper() == "LISTEN"]
    tcp_listen = [r for r in tcp if r.state.upper() == "LISTEN"]
    tunnel_ports = {
        r.local_port
        for r in tcp_listen
        if any(name == "ssh" for name, _ in r.processes) and r.local_port is not None
    }
    listeners = {
        pid
        for r in [
            *listening_socket,
            *(r for r in tcp_listen if r.local_port in forwarded | tunnel_ports),
        ]
        for _, pid in r.processes
    }
    forwarders = {pid for pid in procs if pid in listeners or procs[pid][0] in listeners}
    forwarders |= listeners
    found: dict[int, Dependant] = {}

    def add(row: SocketRow, via: str) -> None:
        for name, pid in row.processes:
            if pid in forwarders or pid in found:
                continue
            found[pid] = Dependant(pid, name, procs.get(pid, (0, ""))[1], via)

    # Unix: the accepted ends carry the socket's path; their peers are the clients.
    served = {r.peer_port for r in unix if r.local == socket_path and r.state.upper() != "LISTEN"}
    for row in unix:
        if row.local_port in served:
            add(row, f"the MySQL socket {socket_path}")
    for row in tcp:
        if row.state.upper() in ("LISTEN", "TIME-WAIT") or row.peer_port is None:
            continue
        to_forward = row.peer == old_ip and row.peer_port in forwarded
        to_tunnel = row.peer_port in tunnel_ports and row.peer in ("127.0.0.1", "::1")
        if to_forward or to_tunnel:
            add(row, f"{row.peer}:{row.peer_port}")
    return Dependants(tuple(found.values())[:MAX_ITEMS], tuple(sorted(forwarders)))


def observe_dependants(
    old_ssh: str | None,
    old_ip: str,
    socket_path: str,
    ports: Iterable[int],
    settings: ProbeSettings,
) -> Dependants:
    """Processes on old connected to the forwarded MySQL socket or a forward's local port."""
    remote = _remote(old_ssh, settings)
    out = _run_script(
        remote, dependants_script(socket_path), "ss -xp/-tp", settings.operation_timeout + 5
    )
    if "procs:" not in out:
        raise ProbeError(f"ss on {old_ssh} printed nothing: {_field(out[:200]) or 'no output'}")
    return parse_dependants(out, socket_path, old_ip, ports)
