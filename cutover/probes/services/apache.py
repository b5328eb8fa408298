"""Apache httpd's configuration on a host, seen over ssh (testinfra): syntax and 2.2 leftovers.

Not a network protocol like its siblings, but the same kind of thing: one
observation, plain data, its own timeout (the remote `timeout` command, since
testinfra has no per-command timeout).

One `apachectl -t -D DUMP_INCLUDES -D DUMP_MODULES` gives the syntax verdict,
every included file (listed even when the config does not parse: Apache reads
the whole tree before it processes a directive) and, when the config parses,
the loaded modules. The included files are then grepped for the 2.2
directives and for `LoadModule access_compat_module`, which says whether the
module is loaded when the config does not parse and Apache lists none.

>>> config = observe_config("ssh://root@198.51.100.20", ssh_config, 5.0)  # doctest: +SKIP
>>> config.syntax_ok, config.access_compat, config.legacy                  # doctest: +SKIP
(True, False, ())
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from cutover.probes.remote import RemoteHost
from cutover.untrusted import shown, shown_lines

__all__ = [
    "ApacheConfig",
    "LegacyDirective",
    "access_compat_loaded",
    "included_files",
    "loaded_modules",
    "observe_config",
    "parse_grep",
]

# Apache 2.2 access control (`Order`, `Allow from`, `Deny from`, `Satisfy`: on 2.4
# only mod_access_compat knows them) and vhost declaration (`NameVirtualHost`:
# a no-op in 2.4, whatever is loaded).
LEGACY = (
    r"^[[:space:]]*(Order|Allow[[:space:]]+from|Deny[[:space:]]+from|Satisfy|NameVirtualHost)"
    r"([[:space:]]|$)"
)
COMPAT_MODULE = "access_compat_module"
_LOAD_COMPAT = rf"^[[:space:]]*LoadModule[[:space:]]+{COMPAT_MODULE}[[:space:]]"
_ACCESS = ("order", "allow", "deny", "satisfy")


@dataclass(frozen=True)
class LegacyDirective:
    file: str
    line: int
    text: str

    @property
    def needs_access_compat(self) -> bool:
        """An access directive that only mod_access_compat makes valid on 2.4.

        >>> LegacyDirective("a.conf", 3, "Allow from all").needs_access_compat
        True
        >>> LegacyDirective("a.conf", 1, "NameVirtualHost *:80").needs_access_compat
        False
        """
        return self.text.split(maxsplit=1)[0].lower() in _ACCESS

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text}"


@dataclass(frozen=True)
class ApacheConfig:
    host: str
    syntax_ok: bool
    syntax_output: str
    files: tuple[str, ...]
    legacy: tuple[LegacyDirective, ...]
    # mod_access_compat loaded: from Apache's module list, else from a LoadModule line
    access_compat: bool = False

    @property
    def unsupported(self) -> tuple[LegacyDirective, ...]:
        """The 2.2 directives this server does not honour: all of them without
        mod_access_compat, NameVirtualHost (a no-op in 2.4) with it."""
        return tuple(d for d in self.legacy if not (self.access_compat and d.needs_access_compat))


def included_files(dump: str) -> list[str]:
    """The files of `apachectl -t -D DUMP_INCLUDES` output.

    >>> included_files("Included configuration files:\\n  (*) /etc/a.conf\\n    (9) /etc/b.conf\\n")
    ['/etc/a.conf', '/etc/b.conf']
    """
    return [m.group(1) for m in re.finditer(r"^\s*\([^)]*\)\s+(\S+)\s*$", dump, re.MULTILINE)]


def loaded_modules(dump: str) -> list[str]:
    """The modules of `apachectl -t -D DUMP_MODULES` output (none when the config did not parse).

    >>> loaded_modules("Loaded Modules:\\n core_module (static)\\n dir_module (shared)\\n")
    ['core_module', 'dir_module']
    """
    return re.findall(r"^\s*(\w+_module) \((?:static|shared)\)\s*$", dump, re.MULTILINE)


def parse_grep(output: str) -> list[tuple[str, int, str]]:
    """(file, line, text) of `grep -nHZ` output: the file name ends at a NUL byte.

    >>> parse_grep("/etc/a:b.conf\\x003:  Order allow,deny\\n")
    [('/etc/a:b.conf', 3, 'Order allow,deny')]
    """
    found = []
    for line in output.splitlines():
        path, nul, rest = line.partition("\0")
        number, _, text = rest.partition(":")
        if nul and number.isdigit():
            found.append((path, int(number), text.strip()))
    return found


def access_compat_loaded(modules: list[str], load_lines: int) -> bool:
    """Apache's own module list when it gave one, else whether a file loads the module.

    >>> access_compat_loaded(["core_module"], 1), access_compat_loaded([], 1)
    (False, True)
    """
    return COMPAT_MODULE in modules if modules else load_lines > 0


def observe_config(
    hostspec: str, ssh_config: Path | None, timeout: float, command: str = "apachectl"
) -> ApacheConfig:
    """Run `apachectl -t` with the include and module dumps on the host, grep its files."""
    remote = RemoteHost(hostspec, ssh_config, timeout)
    check = remote.run(f"{shlex.quote(command)} -t -D DUMP_INCLUDES -D DUMP_MODULES", command)
    files = included_files(check.stdout)
    legacy: list[LegacyDirective] = []
    load_lines = 0
    if files:
        quoted = " ".join(shlex.quote(f) for f in files)
        pattern = shlex.quote(f"{LEGACY}|{_LOAD_COMPAT}")
        found = remote.run(f"grep -nHZiE {pattern} {quoted}", "grep")
        for path, number, text in parse_grep(found.stdout):
            if text.lower().startswith("loadmodule"):
                load_lines += 1
            else:
                legacy.append(LegacyDirective(shown(path), number, shown(text)))
    return ApacheConfig(
        host=hostspec,
        syntax_ok=check.rc == 0,
        # "Syntax OK" or the errors: shown line by line, the end kept
        syntax_output=shown_lines(check.stderr.strip()[-1000:]),
        files=tuple(shown(f) for f in files),
        legacy=tuple(legacy),
        access_compat=access_compat_loaded(loaded_modules(check.stdout), load_lines),
    )
