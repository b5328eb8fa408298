"""Every fault breaks what it claims, and `fault --undo` restores it.

Each fault has an observation made with the servers' own tools and a
predicate saying "broken": the observation is healthy before, broken while
the fault is active, and exactly as before once it is undone.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Lab, lab_cli
from tests.lab.conftest import (
    NEW_IP,
    NEW_IP6,
    NS1_IP,
    NS2_IP,
    OLD_IP,
    OLD_IP6,
    app_login_via_old_socket,
    dig,
    greeting,
    observe,
)

ALICE = "alice@example.test"


def _inbox(fields: str) -> Callable[[], str]:
    return lambda: observe(
        "new", "doveadm", "fetch", "-u", ALICE, fields, "mailbox", "INBOX", "all"
    )


def _new_app_grants() -> str:
    return observe("new", "mariadb", "-e", "SHOW GRANTS FOR 'app'@'localhost'")


def _blog_page() -> str:
    return observe("client", "curl", "-s", "-H", "Host: www.blog.test", f"http://{NEW_IP}/")


# fault -> (observation, "is broken" predicate)
FAULTS: dict[str, tuple[Callable[[], str], Callable[[str], bool]]] = {
    "forward-drop:993": (lambda: greeting(OLD_IP, 993), lambda o: o == "refused"),
    "forward-wrong-backend:993": (lambda: greeting(OLD_IP, 993), lambda o: "+OK" in o),
    "imap-uidvalidity": (
        lambda: observe(
            "new", "doveadm", "mailbox", "status", "-u", ALICE, "uidvalidity", "Archive/2024"
        ),
        lambda o: "uidvalidity=" in o,
    ),  # broken = differs from before (checked below)
    "imap-renumbered": (_inbox("uid hdr.message-id"), lambda o: "uid: 1\n" not in o + "\n"),
    "imap-missing-message": (_inbox("uid"), lambda o: "uid: 4" not in o),
    "imap-flags-lost": (_inbox("uid flags"), lambda o: "\\Flagged" not in o),
    "mysql-skip-name-resolve": (app_login_via_old_socket, lambda o: "not allowed" in o),
    "mysql-grant-missing": (_new_app_grants, lambda o: "DELETE" not in o),
    "mysql-tunnel-down": (app_login_via_old_socket, lambda o: "app@localhost" not in o),
    "dns-ttl-high:ns2": (
        lambda: dig(NS2_IP, "example.test", "A", "+noall", "+answer"),
        lambda o: "\t3600\t" in o,
    ),
    "dns-serial-mismatch": (
        lambda: " ".join(
            dig(s, "example.test", "SOA", "+short").split()[2] for s in (NS1_IP, NS2_IP)
        ),
        lambda o: len(set(o.split())) == 2,
    ),
    "dns-a-stale": (lambda: dig(NS1_IP, "shop.test", "A", "+short"), lambda o: o == OLD_IP),
    "tls-cert-expired": (lambda: greeting(NEW_IP, 993), lambda o: "expired" in o),
    "tls-cert-wrong-name": (lambda: greeting(NEW_IP, 993), lambda o: "hostname mismatch" in o),
    "starttls-off:587": (
        lambda: greeting(NEW_IP, 587, "smtp"),
        lambda o: o == "no STARTTLS offered",
    ),
    "capability-missing": (lambda: greeting(NEW_IP, 993), lambda o: "AUTH=LOGIN" not in o),
    "vhost-missing": (_blog_page, lambda o: "blog.test" not in o),
    "service-down:new:imap": (
        lambda: greeting(NEW_IP, 993) + " | " + greeting(NEW_IP, 995),
        lambda o: o.startswith("refused | verify=0 (ok) +OK"),
    ),
    # Dual stack (issue #18): what IPv6 clients see.
    "forward-v4-only": (lambda: greeting(OLD_IP6, 993), lambda o: o == "refused"),
    "v6-old-server-still-serving": (
        lambda: greeting(OLD_IP6, 993),
        lambda o: "old.example.test IMAP/POP3 ready" in o,
    ),
    "aaaa-stale": (lambda: dig(NS1_IP, "shop.test", "AAAA", "+short"), lambda o: o == OLD_IP6),
    "aaaa-ttl-high:ns2": (
        lambda: dig(NS2_IP, "example.test", "AAAA", "+noall", "+answer"),
        lambda o: "\t3600\t" in o,
    ),
    "ptr6-missing": (
        lambda: dig(NS1_IP, ipaddress.ip_address(NEW_IP6).reverse_pointer, "PTR", "+short"),
        lambda o: o == "",
    ),
    "spf-missing-ip6": (
        lambda: dig(NS2_IP, "shop.test", "TXT", "+short"),
        lambda o: "v=spf1" in o and f"ip6:{NEW_IP6}" not in o,
    ),
}


def test_every_fault_is_listed(lab: Lab) -> None:
    listed = lab_cli("fault", "--list").stdout
    for spec in FAULTS:
        assert spec.split(":")[0] in listed


def settled(look: Any, attempts: int = 20) -> Any:
    """What `look` sees once two looks 0.5 s apart agree (at most 10 s).

    A daemon just restarted by an earlier test's undo may greet with a transient
    line (Dovecot: "Waiting for authentication process to respond..").
    """
    seen = look()
    for _ in range(attempts):
        time.sleep(0.5)
        again = look()
        if again == seen:
            return seen
        seen = again
    return seen


@pytest.mark.parametrize("spec", list(FAULTS))
def test_fault_breaks_its_property_and_undo_heals_it(acceptance_lab: Lab, spec: str) -> None:
    look, broken = FAULTS[spec]
    healthy = settled(look)
    assert not broken(healthy) or spec == "imap-uidvalidity", healthy
    with acceptance_lab.fault(spec):
        during = look()
        assert during != healthy, f"{spec} changed nothing: {during}"
        assert broken(during), during
    assert settled(look) == healthy
    assert "not active" in lab_cli("fault", "--undo", spec).stdout
