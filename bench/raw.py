"""The raw baselines: bare scripts doing the suite's network operations one after another.

`python -m bench.raw AREA INVENTORY` with AREA one of ports, http, dns,
imap, mysql, mysql-data, mailclients, full, fleet (the full steps for each
pair of a `pairs:` inventory, one pair after another). Deliberately plain: the inventory read with
yaml (no pydantic), stdlib clients for the protocols, dnspython, imapclient
and pymysql called directly, no threads, no error handling beyond what the
libraries do. This is what "the same work, sequentially, without the
suite" costs on this machine.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import imaplib
import poplib
import smtplib
import socket
import ssl
import sys
from pathlib import Path
from typing import Any

import yaml

APEX = ("SOA", "A", "AAAA", "MX")


def addresses(data: dict[str, Any]) -> list[str]:
    """Every address of both sides, a dual-stack side's two included, as the suite probes them."""
    found = []
    for side in ("old", "new"):
        address = data[side]["address"]
        found += [str(a) for a in address] if isinstance(address, list) else [str(address)]
    return found


class Inventory:
    def __init__(self, path: Path, data: dict[str, Any] | None = None) -> None:
        self.base = path.parent
        self.data: dict[str, Any] = (
            data if data is not None else yaml.safe_load(path.read_text(encoding="utf-8"))
        )
        self.timeout = float(self.data.get("timeouts", {}).get("operation", 5))
        ca = self.data.get("tls", {}).get("ca_file")
        self.context = ssl.create_default_context(cafile=str(self.base / ca) if ca else None)
        self.context.check_hostname = False
        # Every address of both sides (a dual-stack side has two), as the suite probes them.
        self.ips = addresses(self.data)

    def secret(self, ref: dict[str, Any]) -> str:
        return str((self.base / ref["password_file"]).read_text(encoding="utf-8")).strip()


def ports(inv: Inventory) -> None:
    """Each service on each IP: greeting, capabilities, STARTTLS + capabilities again."""
    for service in inv.data["services"]:
        for ip in inv.ips:
            port, tls, protocol = service["port"], service.get("tls", "none"), service["protocol"]
            if protocol == "smtp":
                smtp = (
                    smtplib.SMTP_SSL(ip, port, timeout=inv.timeout, context=inv.context)
                    if tls == "implicit"
                    else smtplib.SMTP(ip, port, timeout=inv.timeout)
                )
                smtp.ehlo("cutover.invalid")
                if tls == "starttls":
                    smtp.starttls(context=inv.context)
                    smtp.ehlo("cutover.invalid")
                smtp.quit()
            elif protocol == "imap":
                imap: imaplib.IMAP4
                if tls == "implicit":
                    imap = imaplib.IMAP4_SSL(ip, port, ssl_context=inv.context, timeout=inv.timeout)
                else:
                    imap = imaplib.IMAP4(ip, port, timeout=inv.timeout)
                imap.capability()
                if tls == "starttls":
                    imap.starttls(inv.context)
                    imap.capability()
                imap.logout()
            elif protocol == "pop3":
                pop: poplib.POP3
                if tls == "implicit":
                    pop = poplib.POP3_SSL(ip, port, context=inv.context, timeout=inv.timeout)
                else:
                    pop = poplib.POP3(ip, port, timeout=inv.timeout)
                pop.capa()
                if tls == "starttls":
                    pop.stls(inv.context)
                    pop.capa()
                pop.quit()
            elif protocol == "http":
                get(inv, ip, port, inv.data.get("hostnames", [ip])[0])
            elif protocol == "mysql":
                with socket.create_connection((ip, port), timeout=inv.timeout) as sock:
                    sock.recv(4096)  # the handshake packet
                mysql_rows(inv, ip, inv.data["mysql"]["admin"], "SELECT @@hostname")


def get(inv: Inventory, ip: str, port: int, host: str) -> bytes:
    connection = http.client.HTTPConnection(ip, port, timeout=inv.timeout)
    connection.request("GET", "/", headers={"Host": host, "Connection": "close"})
    body = connection.getresponse().read()
    connection.close()
    return body


def vhosts(inv: Inventory) -> None:
    http_port = next(s["port"] for s in inv.data["services"] if s["protocol"] == "http")
    for vhost in inv.data.get("http", {}).get("vhosts", []):
        for ip in inv.ips:
            get(inv, ip, http_port, vhost["host"])


def mysql_connect(inv: Inventory, ip: str, account: dict[str, Any]) -> Any:
    import pymysql

    return pymysql.connect(
        host=ip, port=int(account.get("port", 3306)), user=account["user"],
        password=inv.secret(account), database=account.get("database"),
        connect_timeout=inv.timeout, ssl_disabled=True,
    )  # fmt: skip


def mysql_rows(inv: Inventory, ip: str, account: dict[str, Any], sql: str) -> list[Any]:
    connection = mysql_connect(inv, ip, account)
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = list(cursor.fetchall())
    connection.close()
    return rows


def questions(zone: dict[str, Any]) -> list[tuple[str, str]]:
    """The suite's questions for a zone (as `zone_questions` asks): apex, then each name."""
    apex = zone["name"].rstrip(".") + "."
    found = [(apex, t) for t in APEX]
    for label in zone.get("names", ["www", "mail"]):
        found += [
            (f"{label}.{apex}", t) for t in ("A", "AAAA") if (f"{label}.{apex}", t) not in found
        ]
    return found


def dns_questions(inv: Inventory) -> list[tuple[str, str, str]]:
    """(server, name, type) the suite's DNS area asks: every zone's questions on every
    nameserver, then for SQL-backed servers each row's (name, type) not asked yet."""
    asked: dict[tuple[str, str, str], None] = {}
    for zone in inv.data["dns"]["zones"]:
        for server in zone["nameservers"]:
            for name, rdtype in questions(zone):
                asked[(server, name, rdtype)] = None
    for source in inv.data["dns"].get("sql", []):
        rows = mysql_rows(
            inv, source["host"], source,
            "SELECT d.name, r.name, r.type, r.content, r.ttl FROM records r "
            "JOIN domains d ON d.id = r.domain_id ORDER BY r.id",
        )  # fmt: skip
        for _, name, rdtype, _, _ in rows:
            if rdtype:
                asked.setdefault((source["nameserver"], f"{name}.", rdtype), None)
    return list(asked)


def dns(inv: Inventory) -> None:
    """Every zone's questions and the SQL rows' (`dns_questions`), one UDP query at a time."""
    import dns.message
    import dns.query

    for server, name, rdtype in dns_questions(inv):
        query = dns.message.make_query(name, rdtype, flags=0)
        dns.query.udp(query, server, timeout=inv.timeout)


def imap(inv: Inventory) -> None:
    """Per account and IP: login, LIST, LSUB, then per mailbox EXAMINE and a batched UID fetch."""
    from imapclient import IMAPClient

    service = next(s for s in inv.data["services"] if s["protocol"] == "imap")
    batch = int(inv.data["mail"].get("batch_size", 1000))
    for account in inv.data["mail"]["accounts"]:
        for ip in inv.ips:
            client = IMAPClient(ip, port=service["port"], ssl=False, timeout=inv.timeout)
            client.starttls(inv.context)
            client.login(account["user"], inv.secret(account))
            client.list_sub_folders()
            for flags, _, folder in client.list_folders():
                if {b"\\noselect", b"\\nonexistent"} & {f.lower() for f in flags}:
                    continue
                client.select_folder(folder, readonly=True)
                uids = client.search(["ALL"])
                for start in range(0, len(uids), batch):
                    client.fetch(
                        uids[start : start + batch],
                        ["RFC822.SIZE", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"],
                    )
            client.logout()


def mysql_data(inv: Inventory) -> None:
    """Every table of every listed database, read in primary-key order from both servers."""
    import pymysql.cursors

    admin = inv.data["mysql"]["admin"]
    for ip in inv.ips:
        connection = mysql_connect(inv, ip, admin)
        with connection.cursor() as cursor:
            for database in inv.data["mysql"].get("databases", []):
                cursor.execute(
                    "SELECT TABLE_NAME FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'",
                    (database,),
                )
                for (table,) in cursor.fetchall():
                    cursor.execute(
                        "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
                        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
                        "AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
                        (database, table),
                    )
                    key = ", ".join(f"`{r[0]}`" for r in cursor.fetchall())
                    order = f" ORDER BY {key}" if key else ""
                    stream = connection.cursor(pymysql.cursors.SSCursor)
                    stream.execute(f"SELECT * FROM `{database}`.`{table}`{order}")
                    while stream.fetchmany(10_000):
                        pass
                    stream.close()
        connection.close()


def mysql(inv: Inventory) -> None:
    """Account logins, every grant on both servers, then the data."""
    admin = inv.data["mysql"]["admin"]
    for ip in inv.ips:
        connection = mysql_connect(inv, ip, admin)
        with connection.cursor() as cursor:
            cursor.execute("SELECT User, Host FROM mysql.user")
            for user, host in cursor.fetchall():
                cursor.execute(f"SHOW GRANTS FOR '{user}'@'{host}'")
                cursor.fetchall()
        connection.close()
        for account in inv.data["mysql"].get("accounts", []):
            # Refused direct logins are part of what is checked.
            with contextlib.suppress(Exception):
                mysql_connect(inv, ip, account).close()
    mysql_data(inv)


def _imap_login(
    inv: Inventory, ip: str, service: dict[str, Any], user: str, pw: str, how: str
) -> None:
    imap: imaplib.IMAP4
    if service.get("tls") == "implicit":
        imap = imaplib.IMAP4_SSL(ip, service["port"], ssl_context=inv.context, timeout=inv.timeout)
    else:
        imap = imaplib.IMAP4(ip, service["port"], timeout=inv.timeout)
        if service.get("tls") == "starttls":
            imap.starttls(inv.context)
    if how == "LOGIN":
        imap.login(user, pw)
    elif how == "AUTHENTICATE PLAIN":
        imap.authenticate("PLAIN", lambda _: f"\0{user}\0{pw}".encode())
    else:  # AUTHENTICATE LOGIN: username, then password
        answers = iter((user.encode(), pw.encode()))
        imap.authenticate("LOGIN", lambda _: next(answers))
    imap.logout()


def _pop_login(
    inv: Inventory, ip: str, service: dict[str, Any], user: str, pw: str, how: str
) -> None:
    pop: poplib.POP3
    if service.get("tls") == "implicit":
        pop = poplib.POP3_SSL(ip, service["port"], context=inv.context, timeout=inv.timeout)
    else:
        pop = poplib.POP3(ip, service["port"], timeout=inv.timeout)
        if service.get("tls") == "starttls":
            pop.stls(inv.context)
    if how == "USER/PASS":
        pop.user(user)
        pop.pass_(pw)
    elif how == "AUTH PLAIN":
        pop._shortcmd("AUTH PLAIN " + base64.b64encode(f"\0{user}\0{pw}".encode()).decode())
    else:  # AUTH LOGIN
        pop._shortcmd("AUTH LOGIN")
        pop._shortcmd(base64.b64encode(user.encode()).decode())
        pop._shortcmd(base64.b64encode(pw.encode()).decode())
    pop.quit()


def _smtp_login(
    inv: Inventory, ip: str, service: dict[str, Any], user: str, pw: str, how: str
) -> None:
    smtp = (
        smtplib.SMTP_SSL(ip, service["port"], timeout=inv.timeout, context=inv.context)
        if service.get("tls") == "implicit"
        else smtplib.SMTP(ip, service["port"], timeout=inv.timeout)
    )
    smtp.ehlo("cutover.invalid")
    if service.get("tls") == "starttls":
        smtp.starttls(context=inv.context)
        smtp.ehlo("cutover.invalid")
    smtp.user, smtp.password = user, pw
    mechanism = how.split()[-1]
    smtp.auth(mechanism, smtp.auth_plain if mechanism == "PLAIN" else smtp.auth_login)
    smtp.quit()


LOGINS = {
    "imap": (_imap_login, ("LOGIN", "AUTHENTICATE PLAIN", "AUTHENTICATE LOGIN")),
    "pop3": (_pop_login, ("USER/PASS", "AUTH PLAIN", "AUTH LOGIN")),
    "smtp": (_smtp_login, ("AUTH PLAIN", "AUTH LOGIN")),
}


def mailclients(inv: Inventory) -> None:
    """As AUTH01 and POP01: every account logs in on every mail port and IP with each method
    (SMTP AUTH on the submission ports), one connection per login; then per account and IP
    the POP3 UIDL and LIST of the maildrop and the INBOX Message-IDs over IMAP."""
    from imapclient import IMAPClient

    accounts = [(a["user"], inv.secret(a)) for a in inv.data["mail"]["accounts"]]

    def logs_in(service: dict[str, Any]) -> bool:
        protocol = service["protocol"]
        return protocol in ("imap", "pop3") or (
            protocol == "smtp" and service["port"] in (465, 587)
        )

    services = [s for s in inv.data["services"] if logs_in(s)]
    for user, pw in accounts:
        for service in services:
            login, methods = LOGINS[service["protocol"]]
            for ip in inv.ips:
                for how in methods:
                    login(inv, ip, service, user, pw, how)
    pop3 = next(
        (s for s in inv.data["services"] if s["protocol"] == "pop3" and s.get("tls") == "implicit"),
        None,
    )
    imap = next(s for s in inv.data["services"] if s["protocol"] == "imap")
    for user, pw in accounts:
        for ip in inv.ips:
            if pop3 is not None:
                pop = poplib.POP3_SSL(ip, pop3["port"], context=inv.context, timeout=inv.timeout)
                pop.user(user)
                pop.pass_(pw)
                pop.uidl()
                pop.list()
                pop.quit()
            client = IMAPClient(ip, port=imap["port"], ssl=False, timeout=inv.timeout)
            client.starttls(inv.context)
            client.login(user, pw)
            client.select_folder("INBOX", readonly=True)
            uids = client.search(["ALL"])
            if uids:
                client.fetch(uids, ["RFC822.SIZE", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
            client.logout()


def outbound(inv: Inventory) -> None:
    """As MAIL01-04: MX, SPF (TXT), DKIM key (TXT) per zone and server, PTR and A of both IPs."""
    import dns.message
    import dns.query
    import dns.reversename

    selectors = inv.data.get("outbound", {}).get("dkim_selectors", [])
    for zone in inv.data["dns"]["zones"]:
        apex = zone["name"].rstrip(".") + "."
        names = [(apex, "MX"), (apex, "TXT")] + [
            (f"{s}._domainkey.{apex}", "TXT") for s in selectors
        ]
        for server in zone["nameservers"]:
            for name, rdtype in names:
                dns.query.udp(
                    dns.message.make_query(name, rdtype, flags=0), server, timeout=inv.timeout
                )
    for server in inv.data.get("outbound", {}).get("reverse_nameservers", []):
        for ip in inv.ips:
            name = dns.reversename.from_address(ip)
            dns.query.udp(dns.message.make_query(name, "PTR", flags=0), server, timeout=inv.timeout)


AREAS = {
    "ports": [ports],
    "http": [vhosts],
    "dns": [dns],
    "imap": [imap],
    "mysql": [mysql],
    "mysql-data": [mysql_data],
    "mailclients": [mailclients],
    "full": [ports, vhosts, dns, imap, mysql, mailclients, outbound],
}


def pair_inventories(path: Path) -> list[Inventory]:
    """Each pair of a `pairs:` inventory: its own sections over the top-level ones (the
    inventory's shallow merge)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    defaults = {key: value for key, value in data.items() if key not in ("name", "pairs")}
    return [Inventory(path, {**defaults, **pair}) for pair in data["pairs"]]


def fleet(path: Path) -> None:
    """As a fleet run: the full steps for each pair, one pair after another."""
    for inv in pair_inventories(path):
        for step in AREAS["full"]:
            step(inv)


def main(argv: list[str]) -> int:
    area, inventory = argv
    if area == "fleet":
        fleet(Path(inventory))
        return 0
    inv = Inventory(Path(inventory))
    for step in AREAS[area]:
        step(inv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
