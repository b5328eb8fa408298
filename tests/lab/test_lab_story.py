"""The story verbs do what they say, checked with the servers' own tools."""

from __future__ import annotations

import stat

from cutover.model.inventory import load_inventory
from tests.conftest import Lab, lab_cli
from tests.lab.conftest import (
    NEW_IP,
    NEW_IP6,
    NS1_IP,
    NS2_IP,
    OLD_IP,
    OLD_IP6,
    REPO,
    app_login_via_old_socket,
    dig,
    greeting,
    observe,
)

ZONES = ("example.test", "shop.test", "blog.test")
VHOSTS = ("www.example.test", "www.shop.test", "www.blog.test")
ACCOUNTS = ("alice@example.test", "bob@example.test", "carol@example.test")


def _sweep() -> dict[str, str]:
    """`lab status`'s protocol-level sweep from the client: 'IP:PORT' -> what answered
    (both families: an IPv6 address unbracketed, split at the last colon)."""
    out = lab_cli("status").stdout
    rows = [
        line.split(None, 2)
        for line in out.splitlines()
        if line.lstrip().startswith(("198.51.100.", "2001:db8:5100::"))
    ]
    return {row[0]: row[2] for row in rows}


def _served_by(sweep: dict[str, str], address: str) -> set[str]:
    return {
        "new.example.test"
        if "new.example.test" in answer
        else "old.example.test"
        if "old.example.test" in answer
        else "none"
        for key, answer in sweep.items()
        if key.rsplit(":", 1)[0] == address and not key.endswith(":3306")
    }


def test_every_port_answers_from_its_own_server(up_lab: Lab) -> None:
    sweep = _sweep()
    assert len(sweep) == 36  # 9 ports x 2 servers x 2 families
    assert all(answer.startswith("ok") for answer in sweep.values()), sweep
    for address in (OLD_IP, OLD_IP6):
        assert _served_by(sweep, address) == {"old.example.test"}, address
    for address in (NEW_IP, NEW_IP6):
        assert _served_by(sweep, address) == {"new.example.test"}, address
    assert greeting(NEW_IP, 993).startswith("verify=0 (ok) * OK")
    # After STARTTLS, s_client shows no greeting: the upgrade and verification are the point.
    assert greeting(OLD_IP, 587, "smtp").startswith("verify=0 (ok)")


def test_inventory_is_valid_and_secrets_private(up_lab: Lab) -> None:
    inventory = load_inventory(REPO / ".lab/inventory.yaml")
    assert [a.user for a in inventory.mail.accounts] == list(ACCOUNTS)
    assert inventory.mysql.admin is not None and inventory.mysql.admin.has_password
    assert len(inventory.dns.sql) == 2
    for secret in (REPO / ".lab/secrets").iterdir():
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret


def test_new_starts_without_mail_and_zones_at_3600(up_lab: Lab) -> None:
    # Looked at on disk: any doveadm mailbox command would create alice's INBOX on new.
    assert not (REPO / ".lab/hosts/new/srv/vmail/example.test").exists()
    assert (REPO / ".lab/hosts/old/srv/vmail/example.test/alice/Maildir/cur").is_dir()
    for server in (NS1_IP, NS2_IP):
        answer = dig(server, "shop.test", "A", "+noall", "+answer")
        assert f"3600\tIN\tA\t{OLD_IP}" in answer


def _mail_state(host: str) -> str:
    lines = []
    for user in ACCOUNTS:
        lines.append(
            observe(
                host,
                "doveadm",
                "mailbox",
                "status",
                "-u",
                user,
                "messages uidvalidity uidnext",
                "*",
            )
        )
        lines.append(observe(host, "doveadm", "mailbox", "list", "-s", "-u", user))
        lines.append(
            observe(host, "doveadm", "fetch", "-u", user, "mailbox uid flags hdr.message-id", "all")
        )
    # Sorted lines: dsync may list mailboxes in another order.
    return "\n".join(sorted("\n".join(lines).replace("\\Recent", "").splitlines()))


def test_lower_ttl_is_served_by_both_nameservers(preflight_lab: Lab) -> None:
    for server in (NS1_IP, NS2_IP):
        for zone in ZONES:
            for name in (zone, f"www.{zone}", f"mail.{zone}"):
                ttls = {
                    line.split()[1]
                    for line in dig(server, name, "A", "+noall", "+answer").splitlines()
                }
                assert ttls == {"300"}, (server, name, ttls)
    assert "already" in lab_cli("lower-ttl").stdout


def test_sync_copies_mail_with_uids_database_and_sites(preflight_lab: Lab) -> None:
    assert _mail_state("new") == _mail_state("old")
    assert "Entwürfe" in observe("new", "doveadm", "mailbox", "list", "-u", ACCOUNTS[0])
    query = (
        "SELECT COUNT(*), SUM(CRC32(CONCAT_WS('|', id, customer_id, total))) "
        "FROM app.orders; SHOW GRANTS FOR 'app'@'localhost';"
    )
    assert observe("new", "mariadb", "-e", query) == observe("old", "mariadb", "-e", query)
    bodies = {}
    for vhost in VHOSTS:
        old, new = (
            observe("client", "curl", "-s", "-H", f"Host: {vhost}", f"http://{ip}/")
            for ip in (OLD_IP, NEW_IP)
        )
        assert old == new and vhost in old
        bodies[vhost] = old
    assert len(set(bodies.values())) == len(VHOSTS)


def test_cutover_forwards_every_port_to_new(cutover_lab: Lab) -> None:
    sweep = _sweep()
    assert all(answer.startswith("ok") for answer in sweep.values()), sweep
    assert _served_by(sweep, OLD_IP) == {"new.example.test"}
    assert _served_by(sweep, OLD_IP6) == {"new.example.test"}
    assert app_login_via_old_socket() == "app@localhost\tnew.example.test"
    assert "already" in lab_cli("cutover").stdout


def test_dns_switch_points_every_zone_at_new(acceptance_lab: Lab) -> None:
    for server in (NS1_IP, NS2_IP):
        for zone in ZONES:
            assert dig(server, zone, "A", "+short") == NEW_IP
        assert dig(server, "old.example.test", "A", "+short") == OLD_IP
    serials = {dig(s, "example.test", "SOA", "+short").split()[2] for s in (NS1_IP, NS2_IP)}
    assert len(serials) == 1
