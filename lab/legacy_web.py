"""The legacy profile's web side: old's vhosts in Apache 2.2 syntax, and the playbook's sed.

Old (profile legacy) serves vhosts written for Apache 2.2 (`Order`, `Allow
from`, `Deny from` in their `<Directory>` and `<Location>` sections) with
Debian's Apache 2.4 and mod_access_compat loaded, as a 2.2 server answered
them. New never loads mod_access_compat: its module list is the lab's short
explicit one, like a 2.4 host whose admin disabled the module (Debian and
CentOS 7 both load it by default). So the vhosts must be converted to
`Require` on their way to new: `sync` runs `CONVERT` (the playbook's "few sed
commands") on new's copy. `PARTIAL` is the same sed knowing only the two
generic pairs, which drops the address exceptions: a partly converted config
that parses and answers 403.
"""

from __future__ import annotations

import shlex

from lab import profiles
from lab.render import render
from lab.run import on
from lab.topology import NEW, OLD, SUBNET, SUBNET6, Host

SITES = "/etc/apache2/sites-enabled"
COMPAT = "LoadModule access_compat_module /usr/lib/apache2/modules/mod_access_compat.so"
# What `apachectl configtest` runs on a lab host (the lab's Apache takes its config by flags).
CONFIGTEST = ("apache2", "-d", "/etc/apache2", "-f", "/etc/apache2/apache2.conf", "-t")
ACCESS_22 = r"^[[:space:]]*(Order|Allow[[:space:]]+from|Deny[[:space:]]+from|Satisfy)[[:space:]]"
# The site open to the lab's networks only: its Allow line is an address exception.
RESTRICTED = "www.shop.test"

_ALLOW_ALL = "        Order allow,deny\n        Allow from all"
_RESTRICTED = (
    f"        Order deny,allow\n        Deny from all\n        Allow from {SUBNET} {SUBNET6}"
)
_ADMIN = (
    "    <Location /admin>\n"
    "        Order deny,allow\n"
    "        Deny from all\n"
    "        Allow from 127.0.0.1 ::1\n"
    "    </Location>\n"
)

# The playbook's sed, one expression per 2.2 line: Order goes, `Allow from all` and
# `Deny from all` become `Require all granted|denied`, `Allow from ADDR` `Require ip
# ADDR` (several Require lines in a section: any one grants).
_GENERIC = (
    r"/^[[:space:]]*Order[[:space:]]/Id",
    r"s/^([[:space:]]*)Allow from all[[:space:]]*$/\1Require all granted/I",
    r"s/^([[:space:]]*)Deny from all[[:space:]]*$/\1Require all denied/I",
)
CONVERT = (*_GENERIC, r"s/^([[:space:]]*)Allow from[[:space:]]+/\1Require ip /I")
PARTIAL = (*_GENERIC, r"/^[[:space:]]*Allow from[[:space:]]/Id")


def vhost_config(vhost: str) -> str:
    """The vhost's config file on old: 2.2 syntax on the legacy profile, 2.4 otherwise."""
    if not profiles.legacy():
        return render("apache-vhost.conf", vhost=vhost)
    return render(
        "apache22-vhost.conf",
        vhost=vhost,
        access=_RESTRICTED if vhost == RESTRICTED else _ALLOW_ALL,
        locations=_ADMIN if vhost.startswith("www.example.") else "",
    )


def apache2_conf(host: Host, text: str) -> str:
    """Old's apache2.conf on the legacy profile loads mod_access_compat (before any vhost)
    and keeps 2.2's NameVirtualHost line (a no-op in 2.4, not copied: sync copies vhosts)."""
    if host != OLD or not profiles.legacy():
        return text
    anchor = "\nTypesConfig "
    return text.replace(anchor, f"\n{COMPAT}\nNameVirtualHost *:80\n{anchor}", 1)


def conditions(story: dict[str, object]) -> list[tuple[str, bool, str]]:
    """Legacy postconditions (name, holds, detail): after `sync`, new's Apache config
    parses and none of its vhosts keeps a 2.2 access line."""
    if not profiles.legacy() or not story["synced"]:
        return []
    test = on(NEW, list(CONFIGTEST), timeout=30, check=False)
    grep = f"grep -lE {shlex.quote(ACCESS_22)} {SITES}/*.conf || true"
    left = on(NEW, ["sh", "-c", grep], timeout=30).stdout.split()
    if test.returncode != 0:
        detail = f"apache2 -t: {test.stderr.strip()[-200:]}"
    else:
        detail = f"2.2 access lines in {', '.join(left)}" if left else "apache2 -t: Syntax OK"
    return [("legacy: new's vhosts converted", test.returncode == 0 and not left, detail)]


def sed_vhosts(host: Host, expressions: tuple[str, ...]) -> None:
    """Run the playbook's sed (in place) over the host's enabled vhosts."""
    args = " ".join(f"-e {shlex.quote(e)}" for e in expressions)
    on(host, ["sh", "-ec", f"sed -i -E {args} {SITES}/*.conf"], timeout=30)


def convert_synced_vhosts() -> None:
    """`sync`, legacy profile: convert the vhosts just copied to new (new's Apache reloads next)."""
    if profiles.legacy():
        sed_vhosts(NEW, CONVERT)
