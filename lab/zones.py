"""The lab's DNS data, generated in one place (PowerDNS gmysql rows; the legacy
profile stores the same records as MyDNS rows, lab/mydns.py).

Each zone follows the MyDNS add-domain script of the source post: apex A to
the shared IP, `www` and `mail` CNAMEs to the apex, MX 10 mail; plus NS, SOA
and an SPF TXT that authorises both servers. The reverse zone maps every lab
address back to its host name (forward-confirmed reverse DNS).

Dual stack: every name with an A record also has an AAAA record (the apex to
the shared IPv6 address, each host to its own), the SPF record authorises both
servers' IPv6 addresses too, and an ip6.arpa zone (nibble format) maps the
servers' IPv6 addresses back to their names.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lab.pki import DKIM_SELECTOR
from lab.topology import (
    HOSTS,
    NEW,
    NS1,
    NS2,
    OLD,
    REVERSE_ZONE,
    REVERSE_ZONE6,
    SERVERS,
    reverse_name6,
)

SOA_TIMERS = "10800 3600 604800 300"  # refresh retry expire minimum (negative TTL)


@dataclass(frozen=True)
class Record:
    name: str
    type: str
    content: str
    ttl: int
    prio: int = 0


def initial_serial() -> int:
    return int(time.strftime("%Y%m%d")) * 100 + 1


def soa_content(zone: str, serial: int) -> str:
    return f"{NS1.fqdn} hostmaster.{zone} {serial} {SOA_TIMERS}"


def dkim_txt(public_key: str) -> str:
    """TXT content for a DKIM key, split into strings of at most 255 characters."""
    text = f"v=DKIM1; k=rsa; p={public_key}"
    return " ".join(f'"{text[i : i + 250]}"' for i in range(0, len(text), 250))


def spf_txt() -> str:
    """The SPF record of every zone: both servers, both families."""
    return (
        f'"v=spf1 ip4:{OLD.address} ip4:{NEW.address} ip6:{OLD.address6} ip6:{NEW.address6} -all"'
    )


def zone_records(
    zone: str,
    apex_ip: str,
    ttl: int,
    serial: int,
    dkim_public: str | None = None,
    apex_ip6: str | None = None,
) -> list[Record]:
    records = [
        Record(zone, "SOA", soa_content(zone, serial), ttl),
        Record(zone, "NS", NS1.fqdn, ttl),
        Record(zone, "NS", NS2.fqdn, ttl),
        Record(zone, "A", apex_ip, ttl),
        *([Record(zone, "AAAA", apex_ip6, ttl)] if apex_ip6 else []),
        Record(f"www.{zone}", "CNAME", zone, ttl),
        Record(f"mail.{zone}", "CNAME", zone, ttl),
        Record(zone, "MX", f"mail.{zone}", ttl, prio=10),
        Record(zone, "TXT", spf_txt(), ttl),
    ]
    if dkim_public:
        records.append(
            Record(f"{DKIM_SELECTOR}._domainkey.{zone}", "TXT", dkim_txt(dkim_public), ttl)
        )
    if zone == "example.test":
        # The hosts themselves live in the first zone (and NS names need glue).
        records += [Record(h.fqdn, "A", h.address, ttl) for h in HOSTS.values()]
        records += [Record(h.fqdn, "AAAA", h.address6, ttl) for h in HOSTS.values()]
    return records


def reverse_records(ttl: int, serial: int) -> list[Record]:
    records = [
        Record(REVERSE_ZONE, "SOA", soa_content(REVERSE_ZONE, serial), ttl),
        Record(REVERSE_ZONE, "NS", NS1.fqdn, ttl),
        Record(REVERSE_ZONE, "NS", NS2.fqdn, ttl),
    ]
    for host in HOSTS.values():
        last = host.address.rsplit(".", 1)[1]
        records.append(Record(f"{last}.{REVERSE_ZONE}", "PTR", host.fqdn, ttl))
    return records


def reverse_records6(ttl: int, serial: int) -> list[Record]:
    """The ip6.arpa zone: nibble-format PTRs for the servers' IPv6 addresses."""
    records = [
        Record(REVERSE_ZONE6, "SOA", soa_content(REVERSE_ZONE6, serial), ttl),
        Record(REVERSE_ZONE6, "NS", NS1.fqdn, ttl),
        Record(REVERSE_ZONE6, "NS", NS2.fqdn, ttl),
    ]
    records += [Record(reverse_name6(h.address6), "PTR", h.fqdn, ttl) for h in SERVERS]
    return records


def sql_string(value: str) -> str:
    """A MariaDB string literal (backslashes and quotes escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def insert_zone_sql(zone: str, records: list[Record]) -> str:
    """SQL that (re)creates one zone in the gmysql schema."""
    name = sql_string(zone)
    lines = [
        f"DELETE r FROM records r JOIN domains d ON r.domain_id = d.id WHERE d.name = {name};",
        f"DELETE FROM domains WHERE name = {name};",
        f"INSERT INTO domains (name, type) VALUES ({name}, 'NATIVE');",
        "SET @domain_id = LAST_INSERT_ID();",
    ]
    lines += [
        "INSERT INTO records (domain_id, name, type, content, ttl, prio, disabled, auth) "
        f"VALUES (@domain_id, {sql_string(r.name)}, {sql_string(r.type)}, "
        f"{sql_string(r.content)}, {r.ttl}, {r.prio}, 0, 1);"
        for r in records
    ]
    return "\n".join(lines) + "\n"
