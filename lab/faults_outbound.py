"""Faults of outbound mail: SPF, reverse DNS and DKIM records broken in the zone databases.

Each changes rows on BOTH nameservers' SQL, as an operator editing the zone
would, without bumping serials (like the DNS faults), and undo writes the
saved column values back by row id: the zones are exactly as before.
Registered into `lab.fault_registry.FAULTS` when lab/faults.py imports this module.
"""

from __future__ import annotations

from typing import Any

from lab import pki, story
from lab.fault_registry import (
    BACKUPS,
    Fault,
    RecordsFault,
    Saved,
    read_records,
    register,
    restore_records,
)
from lab.topology import CLIENT, HOSTS, NAMESERVERS, NEW, NS1, NS2, OLD, REVERSE_ZONE, ZONES, Host
from lab.zones import dkim_txt, sql_string

SPF_ROW = "type = 'TXT' AND name = {zone} AND content LIKE '%v=spf1%'"
# DNS-causing SPF terms whose names exist but are neither server: each costs a lookup.
LOOKUP_TERMS = ("a:" + NS1.fqdn, "a:" + NS2.fqdn, "a:" + CLIENT.fqdn) * 4
DKIM_NAME = f"{pki.DKIM_SELECTOR}._domainkey.{ZONES[0]}"


def _txt(text: str) -> str:
    """TXT content as PowerDNS stores it: strings of at most 250 characters."""
    return " ".join(f'"{text[i : i + 250]}"' for i in range(0, len(text), 250))


@register
class SpfMissingNewIp(RecordsFault):
    name = "spf-missing-new-ip"
    column = "content"
    summary = f"{ZONES[1]}'s SPF record lists only the old IP (ip4:{NEW.address} removed, both NS)"

    def where(self) -> str:
        return SPF_ROW.format(zone=sql_string(ZONES[1]))

    def change(self, ns: Host) -> None:
        story.dns_sql(
            ns,
            f"UPDATE records SET content = REPLACE(content, ' ip4:{NEW.address}', '') "
            f"WHERE {self.where()};",
        )


@register
class SpfTooManyLookups(RecordsFault):
    name = "spf-too-many-lookups"
    column = "content"
    summary = (
        f"{ZONES[2]}'s SPF record needs {len(LOOKUP_TERMS)} DNS lookups before its ip4: "
        "terms (limit 10): a permerror for every sender (both NS)"
    )

    def where(self) -> str:
        return SPF_ROW.format(zone=sql_string(ZONES[2]))

    def change(self, ns: Host) -> None:
        record = (
            f"v=spf1 {' '.join(LOOKUP_TERMS)} ip4:{OLD.address} ip4:{NEW.address} "
            f"ip6:{OLD.address6} ip6:{NEW.address6} -all"
        )
        story.dns_sql(
            ns, f"UPDATE records SET content = {sql_string(_txt(record))} WHERE {self.where()};"
        )


@register
class PtrMismatch(RecordsFault):
    name = "ptr-mismatch"
    column = "content"
    summary = (
        f"the new IP's PTR names {OLD.fqdn} (copied from the old server): not "
        f"forward-confirmed, not the HELO name {NEW.fqdn} (both NS)"
    )

    def where(self) -> str:
        pointer = f"{NEW.address.rsplit('.', 1)[1]}.{REVERSE_ZONE}"
        return f"type = 'PTR' AND name = {sql_string(pointer)}"

    def change(self, ns: Host) -> None:
        story.dns_sql(
            ns, f"UPDATE records SET content = {sql_string(OLD.fqdn)} WHERE {self.where()};"
        )


@register
class DkimKeyMismatch(Fault):
    name = "dkim-key-mismatch"
    summary = (
        f"{DKIM_NAME} publishes a freshly generated key, not the one the servers sign "
        "with (both NS)"
    )
    where = f"type = 'TXT' AND name = {sql_string(DKIM_NAME)}"

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        BACKUPS.mkdir(exist_ok=True)
        key = BACKUPS / "dkim-mismatch.key"
        published = sql_string(dkim_txt(pki.dkim_key(key)))
        key.unlink()  # only its public half is wanted: a key nobody signs with
        saved = {ns.key: read_records(ns, "content", self.where) for ns in NAMESERVERS}
        for ns in NAMESERVERS:
            story.dns_sql(ns, f"UPDATE records SET content = {published} WHERE {self.where};")
        return saved

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        for key, rows in saved.items():
            restore_records(HOSTS[key], "content", rows)
