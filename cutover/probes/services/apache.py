"""Apache httpd's configuration on a host, seen over ssh (testinfra): syntax and 2.2 leftovers.

Not a network protocol like its siblings, but the same kind of thing: one
observation, plain data, its own timeout (the remote `timeout` command, since
testinfra has no per-command timeout).

>>> config = observe_config("ssh://root@198.51.100.20", ssh_config, 5.0)  # doctest: +SKIP
>>> config.syntax_ok, config.legacy                                         # doctest: +SKIP
(True, ())
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from cutover.probes.remote import RemoteHost
from cutover.untrusted import shown, shown_lines

__all__ = ["ApacheConfig", "LegacyDirective", "included_files", "observe_config"]

# Apache 2.2 access control and vhost declaration; 2.4 uses `Require` and
# needs no NameVirtualHost (mod_access_compat only keeps the old ones alive).
LEGACY = r"^[[:space:]]*(Order|Allow[[:space:]]+from|Deny[[:space:]]+from|NameVirtualHost)\b"


@dataclass(frozen=True)
class LegacyDirective:
    file: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text}"


@dataclass(frozen=True)
class ApacheConfig:
    host: str
    syntax_ok: bool
    syntax_output: str
    files: tuple[str, ...]
    legacy: tuple[LegacyDirective, ...]


def included_files(dump: str) -> list[str]:
    """The files of `apachectl -t -D DUMP_INCLUDES` output.

    >>> included_files("Included configuration files:\\n  (*) /etc/a.conf\\n    (9) /etc/b.conf\\n")
    ['/etc/a.conf', '/etc/b.conf']
    """
    return [m.group(1) for m in re.finditer(r"^\s*\([^)]*\)\s+(\S+)\s*$", dump, re.MULTILINE)]


def observe_config(
    hostspec: str, ssh_config: Path | None, timeout: float, command: str = "apachectl"
) -> ApacheConfig:
    """Run `apachectl -t -D DUMP_INCLUDES` on the host and grep its files for 2.2 directives."""
    remote = RemoteHost(hostspec, ssh_config, timeout)
    check = remote.run(f"{shlex.quote(command)} -t -D DUMP_INCLUDES", command)
    files = included_files(check.stdout)
    legacy: list[LegacyDirective] = []
    if files:
        quoted = " ".join(shlex.quote(f) for f in files)
        found = remote.run(f"grep -nHiE {shlex.quote(LEGACY)} {quoted}", "grep")
        for line in found.stdout.splitlines():
            path, _, rest = line.partition(":")
            number, _, text = rest.partition(":")
            if number.isdigit():
                legacy.append(LegacyDirective(shown(path), int(number), shown(text.strip())))
    return ApacheConfig(
        host=hostspec,
        syntax_ok=check.rc == 0,
        # "Syntax OK" or the errors: shown line by line, the end kept
        syntax_output=shown_lines(check.stderr.strip()[-1000:]),
        files=tuple(shown(f) for f in files),
        legacy=tuple(legacy),
    )
