"""Realistic seed data: mailboxes with history, an application database,
the suite's read-only accounts and the nameservers' zone databases.

Mail is written straight into Maildir++ (flags in file names, keywords in
dovecot-keywords), the layout Dovecot reads; Dovecot assigns UIDs in file
order on first access. The same writer serves `scale`.
"""

from __future__ import annotations

import base64
import datetime
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.utils import format_datetime
from pathlib import Path

from lab import legacy_web, state
from lab.daemons import mysql
from lab.render import write
from lab.run import on, run
from lab.topology import NAMESERVERS, NS1, SUBNET, SUBNET6, VHOSTS, ZONES, Host

LAB_HOSTS_PATTERN = str(SUBNET.network_address).rsplit(".", 1)[0] + ".%"  # 198.51.100.%
# The same hosts reached over IPv6 (MariaDB matches the pattern against the address text).
LAB_HOSTS_PATTERN6 = f"{SUBNET6.network_address}%"  # 2001:db8:5100::%
LAB_HOST_PATTERNS = (LAB_HOSTS_PATTERN, LAB_HOSTS_PATTERN6)
KEYWORDS = ("$Important", "Project-X")  # maildir flag letters a, b
PDNS_SCHEMA = "/usr/share/pdns-backend-mysql/schema/schema.mysql.sql"


@dataclass
class Message:
    subject: str
    flags: str = ""  # Maildir info letters: S seen, F flagged, R replied, D draft, a/b keywords
    message_id: bool = True
    body: str = "Hello from the cutover lab.\n"


@dataclass
class Mailbox:
    name: str
    messages: list[Message] = field(default_factory=list)
    subscribed: bool = True
    # UIDs expunged after delivery, leaving a gap (UID numbering is never reused).
    expunge: tuple[int, ...] = ()


SEED_ACCOUNTS = ("alice@example.test", "bob@example.test", "carol@example.test")


def seed_mailboxes() -> dict[str, list[Mailbox]]:
    """The mail every lab starts with on the old server."""
    return {
        "alice@example.test": [
            Mailbox(
                "INBOX",
                [
                    Message("Welcome", "S"),
                    Message("Quarterly numbers", "FS"),
                    Message("Expunged later"),
                    Message("Needs an answer", "a"),
                    Message("Legacy system notice", "S", message_id=False),
                    Message("Lunch?", "RS"),
                    Message("Project kickoff", "b"),
                ],
                expunge=(3,),
            ),
            Mailbox("Archive", [Message("Old archive root", "S")]),
            Mailbox("Archive/2024", [Message(f"Invoice 2024-{m:02d}", "S") for m in (1, 2, 3)]),
            Mailbox("Entwürfe", [Message("Entwurf: Angebot", "DS")]),
            Mailbox("Sent", [Message("Re: Lunch?", "S")]),
            Mailbox("Trash", [], subscribed=False),
        ],
        "bob@example.test": [
            Mailbox(
                "INBOX",
                [
                    Message("Hi Bob", "S"),
                    Message("Server move", "F"),
                    Message("Spam?"),
                    Message("Meeting notes", "S"),
                ],
                expunge=(3,),
            ),
            Mailbox("Archive/2024", [Message("Contract", "S")]),
        ],
        "carol@example.test": [
            Mailbox("INBOX", [Message("First mail"), Message("Second mail", "Sa")]),
        ],
    }


def _mutf7(name: str) -> str:
    """IMAP modified UTF-7 (RFC 3501 5.1.3), as Dovecot names Maildir folders."""
    out, pending = [], ""

    def flush() -> None:
        nonlocal pending
        if pending:
            encoded = base64.b64encode(pending.encode("utf-16-be")).decode()
            out.append("&" + encoded.rstrip("=").replace("/", ",") + "-")
            pending = ""

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending += char
    flush()
    return "".join(out)


def maildir_path(host: Host, user: str, mailbox: str) -> Path:
    local, domain = user.split("@")
    root = host.root / "srv/vmail" / domain / local / "Maildir"
    if mailbox == "INBOX":
        return root
    return root / ("." + ".".join(_mutf7(part) for part in mailbox.split("/")))


def render_message(user: str, message: Message, sequence: int, when: float) -> bytes:
    headers = [
        "From: Lab Sender <sender@shop.test>",
        f"To: {user}",
        f"Subject: {message.subject}",
        f"Date: {format_datetime(datetime.datetime.fromtimestamp(when, datetime.UTC))}",
    ]
    if message.message_id:
        headers.append(f"Message-ID: <{sequence}.{int(when)}.{user.replace('@', '.')}@lab.test>")
    headers += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    return ("\r\n".join(headers) + "\r\n\r\n" + message.body.replace("\n", "\r\n")).encode()


def write_mail(host: Host, mailboxes: dict[str, list[Mailbox]], *, start: float) -> int:
    """Write messages as Maildir files on `host`; return how many."""
    count = 0
    for user, boxes in mailboxes.items():
        for box in boxes:
            folder = maildir_path(host, user, box.name)
            for sub in ("cur", "new", "tmp"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
            if box.name != "INBOX":
                (folder / "maildirfolder").touch()
            for message in box.messages:
                count += 1
                when = start + count
                data = render_message(user, message, count, when)
                # Dovecot sorts new files by this leading timestamp when assigning UIDs.
                base = f"{int(when)}.M{count}P1.{host.fqdn},S={len(data)}"
                flags = "".join(sorted(message.flags))
                (folder / "cur" / f"{base}:2,{flags}").write_bytes(data)
        root = maildir_path(host, user, "INBOX")
        (root / "dovecot-keywords").write_text(
            "".join(f"{i} {k}\n" for i, k in enumerate(KEYWORDS))
        )
    return count


def finish_mail(host: Host, mailboxes: dict[str, list[Mailbox]]) -> None:
    """Hand the files to vmail, then let Dovecot index, subscribe and expunge."""
    run(["chown", "-R", "vmail:vmail", str(host.root / "srv/vmail")], timeout=60)
    for user, boxes in mailboxes.items():
        subscribed = [b.name for b in boxes if b.subscribed]
        on(host, ["doveadm", "mailbox", "subscribe", "-u", user, *subscribed], timeout=30)
        for box in boxes:
            # Touching each mailbox makes Dovecot assign UIDVALIDITY and UIDs now.
            on(
                host,
                ["doveadm", "mailbox", "status", "-u", user, "uidvalidity", box.name],
                timeout=30,
            )
            for uid in box.expunge:
                on(
                    host,
                    ["doveadm", "expunge", "-u", user, "mailbox", box.name, "uid", str(uid)],
                    timeout=30,
                )


def mail_passwords(users: Sequence[str]) -> list[tuple[str, str]]:
    return [(user, state.new_secret(f"mail-{user}")) for user in users]


# --- MariaDB ------------------------------------------------------------------


def app_database_sql(app_password: str, report_password: str) -> str:
    rng = random.Random(42)
    customers = [(i, f"Customer {i}", f"c{i}@shop.test") for i in range(1, 26)]
    orders = [(i, rng.randint(1, 25), rng.randint(100, 99999) / 100) for i in range(1, 61)]
    return (
        "\n".join(
            [
                "CREATE DATABASE IF NOT EXISTS app CHARACTER SET utf8mb4;",
                "USE app;",
                "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL,"
                " email VARCHAR(128) NOT NULL UNIQUE) ENGINE=InnoDB;",
                "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL,"
                " total DECIMAL(10,2) NOT NULL, FOREIGN KEY (customer_id) REFERENCES customers(id))"
                " ENGINE=InnoDB;",
                "-- No primary key: the suite should say it cannot digest this one by key range.",
                "CREATE TABLE audit_log (at DATETIME NOT NULL, message VARCHAR(255))"
                " ENGINE=InnoDB;",
                "INSERT INTO customers VALUES "
                + ", ".join(f"({i}, '{n}', '{e}')" for i, n, e in customers)
                + ";",
                "INSERT INTO orders VALUES "
                + ", ".join(f"({i}, {c}, {t:.2f})" for i, c, t in orders)
                + ";",
                "INSERT INTO audit_log VALUES ('2024-01-02 03:04:05', 'created'),"
                " ('2024-06-07 08:09:10', 'migrated from CentOS 5'),"
                " ('2024-06-07 08:09:11', NULL);",
                f"CREATE USER 'app'@'localhost' IDENTIFIED BY '{app_password}';",
                "GRANT SELECT, INSERT, UPDATE, DELETE ON app.* TO 'app'@'localhost';",
                *(
                    statement
                    for pattern in LAB_HOST_PATTERNS
                    for statement in (
                        f"CREATE USER 'report'@'{pattern}' IDENTIFIED BY '{report_password}';",
                        f"GRANT SELECT ON app.* TO 'report'@'{pattern}';",
                    )
                ),
            ]
        )
        + "\n"
    )


def suite_account_sql(password: str) -> str:
    # SHOW GRANTS FOR another account needs SELECT on the mysql schema. A 4.1 hash even
    # where old_passwords=1 (the legacy old host): PyMySQL cannot log in to a pre-4.1 one.
    return "SET SESSION old_passwords = 0;\n" + "".join(
        f"CREATE OR REPLACE USER 'cutover_ro'@'{pattern}' IDENTIFIED BY '{password}';\n"
        f"GRANT SELECT, SHOW VIEW ON mysql.* TO 'cutover_ro'@'{pattern}';\n"
        f"GRANT SELECT, SHOW VIEW ON app.* TO 'cutover_ro'@'{pattern}';\n"
        f"GRANT SHOW DATABASES ON *.* TO 'cutover_ro'@'{pattern}';\n"
        for pattern in LAB_HOST_PATTERNS
    )


def seed_app_database(old: Host) -> None:
    sql = app_database_sql(state.new_secret("mysql-app"), state.new_secret("mysql-report"))
    mysql(old, sql)


def create_suite_account(hosts: Iterable[Host]) -> None:
    password = state.new_secret("mysql-ro")
    for host in hosts:
        mysql(host, suite_account_sql(password))


def create_pdns_database(host: Host) -> None:
    backend = state.read_secret(f"pdns-{host.key}-backend")
    reader = state.read_secret("pdns-ro") if host != NS1 else state.new_secret("pdns-ro")
    schema = Path(PDNS_SCHEMA).read_text(encoding="utf-8")
    mysql(
        host,
        "CREATE DATABASE pdns;\n"
        f"CREATE USER 'pdns'@'localhost' IDENTIFIED BY '{backend}';\n"
        "GRANT SELECT, INSERT, UPDATE, DELETE ON pdns.* TO 'pdns'@'localhost';\n"
        + "".join(
            f"CREATE USER 'pdns_ro'@'{pattern}' IDENTIFIED BY '{reader}';\n"
            f"GRANT SELECT ON pdns.* TO 'pdns_ro'@'{pattern}';\n"
            for pattern in LAB_HOST_PATTERNS
        ),
    )
    mysql(host, schema, database="pdns")


def load_zones(zone_sql: Iterable[str], tables: Sequence[str] = ("domains", "records")) -> None:
    """Load the zones on ns1, then copy them to ns2 by SQL dump (as the MyDNS post does)."""
    mysql(NS1, "".join(zone_sql), database="pdns")
    dump = on(NS1, ["mariadb-dump", "--skip-comments", "pdns", *tables], timeout=60).stdout
    for host in NAMESERVERS:
        if host != NS1:
            mysql(host, dump, database="pdns")


# --- web ----------------------------------------------------------------------


def write_web(host: Host) -> None:
    """Name-based vhosts with different content (the old server's sites)."""
    for zone, vhost in zip(ZONES, VHOSTS, strict=True):
        write(
            host.root / f"etc/apache2/sites-enabled/{vhost}.conf",
            legacy_web.vhost_config(vhost),
        )
        write(
            host.root / f"var/www/{vhost}/index.html",
            f"<!doctype html>\n<title>{zone}</title>\n<h1>Welcome to {zone}</h1>\n"
            f"<p>This is the site {vhost}, migrated with care.</p>\n",
        )
