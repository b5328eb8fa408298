"""Where host-side checks look: one root for every path they read.

A `Host` answers the few questions the VFIO and VM probes ask (read a file,
read a link without following it, list a directory, run a command) against
one of three places:

- `LocalRoot("/")`: this machine, live;
- `LocalRoot(tree)` with captured command output: an unpacked snapshot
  (`python -m cutover capture-host`, opened by `cutover.probes.snapshot`) or a
  generated fixture tree;
- `TestinfraHost`: a remote host over testinfra (ssh://, local://, ...).

Paths are always absolute host paths (`/sys/bus/pci/devices`); a root
directory is applied underneath, and symlinks are resolved *inside* that
root, so an absolute link in a snapshot (`autostart/vm.xml -> /etc/...`)
never escapes to the machine running the checks.

>>> host = LocalRoot(Path("/"))
>>> read_text(host, "/proc/sys/kernel/ostype")
'Linux\\n'
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Protocol

from cutover.model.settings import ProbeSettings
from cutover.probes.remote import RemoteHost
from cutover.untrusted import shown

__all__ = [
    "CommandResult",
    "Host",
    "LocalRoot",
    "SnapshotError",
    "TestinfraHost",
    "read_text",
]

Kind = Literal["file", "dir", "link", "device", "other"]

# How many symlinks one path may traverse (the kernel's own limit).
MAX_LINKS = 40


class SnapshotError(Exception):
    """A host snapshot that cannot be read or is unsafe to unpack."""


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def shell(self) -> str:
        """The command as an operator would type it."""
        return shlex.join(self.argv)


class Host(Protocol):
    """What the host-side probes may ask of a host. Paths are absolute host paths."""

    @property
    def description(self) -> str:
        """`local /`, `snapshot host.tar.gz`, `ssh://root@kvm1` — for failure messages."""
        ...

    def read_bytes(self, path: str) -> bytes | None:
        """The file's content, or None when it is missing or unreadable."""
        ...

    def read_link(self, path: str) -> str | None:
        """The raw target of a symlink (not followed), or None when `path` is no link."""
        ...

    def kind(self, path: str) -> Kind | None:
        """What `path` itself is (a link is not followed), or None when it is missing."""
        ...

    def list_dir(self, path: str) -> list[str]:
        """Sorted entry names of a directory (following links to it); [] when missing."""
        ...

    def exists(self, path: str) -> bool:
        """`path` exists, following links."""
        ...

    def resolve(self, path: str) -> str:
        """`path` with every symlink resolved, as a host path."""
        ...

    def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
        """Run a command on the host (a snapshot answers from what it captured)."""
        ...


def read_text(host: Host, path: str) -> str | None:
    """A file's content as text (sysfs and /proc are ASCII; bad bytes are replaced)."""
    data = host.read_bytes(path)
    return None if data is None else data.decode("utf-8", errors="replace")


class LocalRoot:
    """A directory tree on this machine seen as a host's `/`.

    >>> LocalRoot(Path("/")).kind("/proc/self")
    'link'
    """

    def __init__(
        self,
        root: Path,
        *,
        commands: dict[tuple[str, ...], CommandResult] | None = None,
        description: str | None = None,
    ) -> None:
        self.root = root.resolve()
        # None: run commands for real. A dict: a snapshot's captured output.
        self.commands = commands
        self._description = description or f"local {self.root}"

    @property
    def description(self) -> str:
        return self._description

    @property
    def is_live_root(self) -> bool:
        return self.root == Path("/")

    def _local(self, host_path: str) -> Path:
        return self.root / host_path.lstrip("/")

    def resolve(self, path: str) -> str:
        if self.is_live_root:
            return os.path.realpath(path)
        return str(self._resolve(PurePosixPath(path), follow_last=True))

    def _resolve(self, path: PurePosixPath, *, follow_last: bool) -> PurePosixPath:
        """Resolve `path` inside the root, like the kernel would with the root chrooted.

        An absolute link target starts again at the root (never at this
        machine's `/`). A chain longer than `MAX_LINKS` and a `..` that would
        climb above the root are refused with a `SnapshotError` naming the
        path: handing back a half-resolved path would let the OS follow the
        rest of the chain out of the root.
        """
        pending = list(path.parts[1:]) if path.is_absolute() else list(path.parts)
        done = PurePosixPath("/")
        hops = 0
        while pending:
            part = pending.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if done == done.parent:
                    raise SnapshotError(
                        f"{self.description}: {shown(str(path))} leads outside the snapshot"
                    )
                done = done.parent
                continue
            candidate = done / part
            local = self._local(str(candidate))
            if (pending or follow_last) and local.is_symlink():
                hops += 1
                if hops > MAX_LINKS:
                    raise SnapshotError(
                        f"{self.description}: {shown(str(path))} goes through more than "
                        f"{MAX_LINKS} symlinks"
                    )
                target = PurePosixPath(os.readlink(local))
                if target.is_absolute():
                    done = PurePosixPath("/")
                pending[:0] = [p for p in target.parts if p != "/"]
                continue
            done = candidate
        return done

    def _real(self, path: str, *, follow_last: bool = True) -> Path:
        if self.is_live_root:
            return Path(path)
        return self._local(str(self._resolve(PurePosixPath(path), follow_last=follow_last)))

    def read_bytes(self, path: str) -> bytes | None:
        try:
            return self._real(path).read_bytes()
        except OSError:
            return None

    def read_link(self, path: str) -> str | None:
        try:
            return os.readlink(self._real(path, follow_last=False))
        except OSError:
            return None

    def kind(self, path: str) -> Kind | None:
        try:
            mode = os.lstat(self._real(path, follow_last=False)).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            return "link"
        if stat.S_ISDIR(mode):
            return "dir"
        if stat.S_ISREG(mode):
            return "file"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            return "device"
        return "other"

    def list_dir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(self._real(path)))
        except OSError:
            return []

    def exists(self, path: str) -> bool:
        return os.path.exists(self._real(path))

    def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
        args = tuple(argv)
        if self.commands is not None:
            captured = self.commands.get(args)
            if captured is not None:
                return captured
            return CommandResult(
                args, 127, "", f"{self.description}: `{shlex.join(args)}` was not captured"
            )
        try:
            done = subprocess.run(
                args, capture_output=True, text=True, timeout=timeout, check=False
            )
        except FileNotFoundError:
            return CommandResult(args, 127, "", f"{args[0]}: command not found")
        except subprocess.TimeoutExpired:
            return CommandResult(args, 124, "", f"timed out after {timeout:g}s")
        return CommandResult(args, done.returncode, done.stdout, done.stderr)


class TestinfraHost:
    """A host over testinfra (`ssh://root@kvm1`, `local://`): every probe is a bounded command.

    Each command runs through the one remote runner (`RemoteHost`), under
    the operation timeout; one that cannot run to its end is a `ProbeError`.

    >>> settings = ProbeSettings(connect_timeout=5.0, operation_timeout=5.0)
    >>> TestinfraHost.from_spec("local://", settings).read_link("/proc/self") is not None
    True
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, remote: RemoteHost) -> None:
        self.remote = remote
        self.spec = remote.hostspec

    @classmethod
    def from_spec(cls, spec: str, settings: ProbeSettings) -> TestinfraHost:
        return cls(RemoteHost(spec, settings.ssh_config, settings.operation_timeout))

    @property
    def description(self) -> str:
        return self.spec

    def _sh(self, command: str, *args: str) -> Any:
        line = command + "".join(" " + shlex.quote(a) for a in args)
        return self.remote.run(line, command.split()[0])

    def read_bytes(self, path: str) -> bytes | None:
        out = self._sh("cat --", path)
        if out.rc != 0:
            return None
        stdout = out.stdout_bytes
        return stdout if isinstance(stdout, bytes) else str(stdout).encode()

    def read_link(self, path: str) -> str | None:
        out = self._sh("readlink --", path)
        return out.stdout.rstrip("\n") if out.rc == 0 else None

    def kind(self, path: str) -> Kind | None:
        out = self._sh("stat -c %F --", path)
        if out.rc != 0:
            return None
        name = out.stdout.strip()
        if name == "symbolic link":
            return "link"
        if name == "directory":
            return "dir"
        if name.startswith("regular"):
            return "file"
        if name.endswith("special file"):
            return "device"
        return "other"

    def list_dir(self, path: str) -> list[str]:
        out = self._sh("ls -1A --", path + "/")
        return sorted(out.stdout.splitlines()) if out.rc == 0 else []

    def exists(self, path: str) -> bool:
        return bool(self._sh("test -e", path).rc == 0)

    def resolve(self, path: str) -> str:
        out = self._sh("readlink -m --", path)
        return out.stdout.rstrip("\n") if out.rc == 0 else path

    def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
        args = tuple(argv)
        out = self.remote.execute(shlex.join(args), args[0], timeout)
        return CommandResult(args, int(out.rc), str(out.stdout), str(out.stderr))
