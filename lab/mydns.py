"""The nameservers' zones in MyDNS's schema (profile legacy), served by PowerDNS.

The playbook's nameservers ran MyDNS: zones in `soa` (one row per zone) and
`rr` (one row per record), as `mydns --create-tables` makes them. The lab
stores its zones there and lets PowerDNS's gmysql backend serve them through
two SQL views named like the tables it reads, `domains` and `records`.

Why views, not custom `gmysql-*-query` settings: PowerDNS 4.7 reads
`domains`/`records` in more than thirty queries (lookups, zone listing, zone
info, catalog, metadata); two views cover every one of them, pdns.conf stays the
default profile's, and the mapping is in one place an admin can read with
`SHOW CREATE VIEW`. The views do what MyDNS itself does with a row:

- `rr.name` and the data of CNAME, MX, NS and PTR are relative to the zone's
  `origin` unless they end in a dot; an empty name is the apex;
- `aux` is the MX (and SRV) priority: PowerDNS's `prio`;
- TXT data is stored unquoted: the view quotes it (data that already starts
  with a quote, such as a DKIM key split into strings, is served as written);
- the SOA record comes from the `soa` row (its `ttl` is the zone's TTL);
- a row is served only when both its zone and the row are `active = 'Y'`
  (`disabled` in the view). `views_sql(honour_active=False)` writes the views
  a misconfigured server has: every row served whatever its flag (the fault
  `mydns-row-inactive`).

PowerDNS wants names without the final dot, lower case: the views make them so.
The database keeps the name `pdns` (pdns.conf, the inventory and the story read
it); the rest of PowerDNS's schema (metadata, keys, comments) stays as it is.
Writes go to `soa`/`rr` (the views are read-only): `lower-ttl` and `dns-switch`
edit them the way an admin of a MyDNS server would (see the `*_sql` helpers).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lab import seed
from lab.daemons import mysql
from lab.topology import NAMESERVERS, Host
from lab.zones import SOA_TIMERS, Record, sql_string

# `mydns --create-tables` (MyDNS 1.2.8), with `rr.data` widened from CHAR(128) so a
# 2048-bit DKIM key fits, as an admin publishing DKIM there has to.
TABLES_SQL = """\
CREATE TABLE soa (
  id      INT UNSIGNED NOT NULL AUTO_INCREMENT,
  origin  CHAR(255) NOT NULL,
  ns      CHAR(255) NOT NULL,
  mbox    CHAR(255) NOT NULL,
  serial  INT UNSIGNED NOT NULL DEFAULT 1,
  refresh INT UNSIGNED NOT NULL DEFAULT 28800,
  retry   INT UNSIGNED NOT NULL DEFAULT 7200,
  expire  INT UNSIGNED NOT NULL DEFAULT 604800,
  minimum INT UNSIGNED NOT NULL DEFAULT 86400,
  ttl     INT UNSIGNED NOT NULL DEFAULT 86400,
  active  ENUM('Y','N') NOT NULL DEFAULT 'Y',
  PRIMARY KEY (id),
  UNIQUE KEY (origin)
) ENGINE=InnoDB;
CREATE TABLE rr (
  id      INT UNSIGNED NOT NULL AUTO_INCREMENT,
  zone    INT UNSIGNED NOT NULL,
  name    CHAR(64) NOT NULL,
  type    ENUM('A','AAAA','CNAME','HINFO','MX','NAPTR','NS','PTR','RP','SRV','TXT'),
  data    VARCHAR(2048) NOT NULL,
  aux     INT UNSIGNED NOT NULL DEFAULT 0,
  ttl     INT UNSIGNED NOT NULL DEFAULT 86400,
  active  ENUM('Y','N') NOT NULL DEFAULT 'Y',
  PRIMARY KEY (id),
  KEY rr (zone, name, type)
) ENGINE=InnoDB;
"""

_ORIGIN = "TRIM(TRAILING '.' FROM LOWER(s.origin))"


def _absolute(column: str) -> str:
    """SQL: a MyDNS name (relative to the origin unless dotted; empty = apex) as PowerDNS's."""
    return (
        f"IF({column} LIKE '%.', TRIM(TRAILING '.' FROM LOWER({column})), "
        f"IF({column} IN ('', '@'), {_ORIGIN}, CONCAT(LOWER({column}), '.', {_ORIGIN})))"
    )


# TXT: MyDNS data is the text itself; PowerDNS content is quoted strings.
_TXT_QUOTED = "CONCAT('\"', REPLACE(REPLACE(r.data, '\\\\', '\\\\\\\\'), '\"', '\\\\\"'), '\"')"


def views_sql(*, honour_active: bool = True) -> str:
    """The `domains` and `records` views PowerDNS reads (see the module docstring)."""
    zone_on = "s.active = 'Y'" if honour_active else "TRUE"
    row_on = "s.active = 'Y' AND r.active = 'Y'" if honour_active else "TRUE"
    content = (
        "CASE WHEN r.type IN ('CNAME', 'MX', 'NS', 'PTR') THEN " + _absolute("r.data") + " "
        "WHEN r.type = 'TXT' AND r.data NOT LIKE '\"%' THEN " + _TXT_QUOTED + " "
        "ELSE r.data END"
    )
    soa = (
        f"CONCAT_WS(' ', {_absolute('s.ns')}, {_absolute('s.mbox')}, "
        "s.serial, s.refresh, s.retry, s.expire, s.minimum)"
    )
    return (
        "CREATE OR REPLACE VIEW domains AS SELECT s.id AS id, "
        f"{_ORIGIN} AS name, NULL AS master, NULL AS last_check, 'NATIVE' AS type, "
        "NULL AS notified_serial, NULL AS account, NULL AS options, NULL AS catalog "
        f"FROM soa s WHERE {zone_on};\n"
        "CREATE OR REPLACE VIEW records AS "
        f"SELECT r.id AS id, r.zone AS domain_id, {_absolute('r.name')} AS name, "
        f"CAST(r.type AS CHAR(10)) AS type, {content} AS content, r.ttl AS ttl, "
        f"r.aux AS prio, IF({row_on}, 0, 1) AS disabled, NULL AS ordername, 1 AS auth "
        "FROM rr r JOIN soa s ON r.zone = s.id "
        "UNION ALL "
        f"SELECT NULL, s.id, {_ORIGIN}, 'SOA', {soa}, s.ttl, 0, IF({zone_on}, 0, 1), NULL, 1 "
        "FROM soa s;\n"
    )


def _sql(host: Host, text: str) -> str:
    return mysql(host, text, database="pdns", timeout=20)


def create_schema(host: Host) -> None:
    """On a nameserver whose pdns database has PowerDNS's schema: MyDNS's tables + the views."""
    _sql(host, "DROP TABLE records, domains;\n" + TABLES_SQL + views_sql())


def set_views(host: Host, *, honour_active: bool) -> None:
    _sql(host, views_sql(honour_active=honour_active))


# --- the zones as MyDNS rows ---------------------------------------------------------


def _relative(name: str, zone: str) -> str:
    """An absolute name (no final dot) as MyDNS stores it in `zone`: relative, else dotted."""
    if name == zone:
        return ""
    if name.endswith("." + zone):
        return name[: -len(zone) - 1]
    return f"{name}."


def _data(record: Record, zone: str) -> str:
    if record.type in ("CNAME", "MX", "NS", "PTR"):
        # The apex as a target is written dotted (MyDNS reads an empty data as nothing).
        return _relative(record.content, zone) or f"{zone}."
    text = record.content
    if record.type == "TXT" and text.count('"') == 2 and text.startswith('"'):
        return text[1:-1]  # one string: MyDNS stores it unquoted
    return text


def zone_sql(zone: str, records: Sequence[Record]) -> str:
    """SQL that (re)creates one zone in MyDNS's tables, from the default profile's records."""
    (soa,) = [r for r in records if r.type == "SOA"]
    ns, mbox, serial, *_ = soa.content.split()
    refresh, retry, expire, minimum = SOA_TIMERS.split()
    origin = sql_string(f"{zone}.")
    lines = [
        f"DELETE r FROM rr r JOIN soa s ON r.zone = s.id WHERE s.origin = {origin};",
        f"DELETE FROM soa WHERE origin = {origin};",
        "INSERT INTO soa (origin, ns, mbox, serial, refresh, retry, expire, minimum, ttl) "
        f"VALUES ({origin}, {sql_string(ns + '.')}, {sql_string(mbox + '.')}, {serial}, "
        f"{refresh}, {retry}, {expire}, {minimum}, {soa.ttl});",
        "SET @zone = LAST_INSERT_ID();",
    ]
    lines += [
        "INSERT INTO rr (zone, name, type, data, aux, ttl) VALUES (@zone, "
        f"{sql_string(name)}, {sql_string(rtype)}, {sql_string(data)}, {aux}, {ttl});"
        for name, rtype, data, aux, ttl in rr_rows(zone, records)
    ]
    return "\n".join(lines) + "\n"


def rr_rows(zone: str, records: Sequence[Record]) -> list[tuple[str, str, str, int, int]]:
    """The zone's `rr` rows (name, type, data, aux, ttl): every record but the SOA."""
    return [
        (_relative(r.name, zone), r.type, _data(r, zone), r.prio, r.ttl)
        for r in records
        if r.type != "SOA"
    ]


def load_zones(zones: Iterable[tuple[str, Sequence[Record]]]) -> None:
    """MyDNS's tables and the views on every nameserver; the zones on ns1, copied to ns2."""
    for host in NAMESERVERS:
        create_schema(host)
    seed.load_zones([zone_sql(zone, records) for zone, records in zones], tables=("soa", "rr"))


# --- the story's edits, as an admin of a MyDNS server writes them --------------------


def lower_ttl_sql(ttl: int) -> str:
    """Every row's TTL and every zone's (the SOA's) down to `ttl`."""
    return "".join(
        f"UPDATE {table} SET ttl = {ttl} WHERE ttl > {ttl};\n" for table in ("rr", "soa")
    )


def bump_serial_sql(zone_ids: str | None = None) -> str:
    where = f" WHERE id IN ({zone_ids})" if zone_ids else ""
    return f"UPDATE soa SET serial = serial + 1{where};\n"


def point_apex_sql(rtype: str, old: str, new: str) -> str:
    """The apex `rtype` rows (empty name) that hold `old` now hold `new`."""
    return (
        f"UPDATE rr SET data = {sql_string(new)} "
        f"WHERE type = {sql_string(rtype)} AND name = '' AND data = {sql_string(old)};\n"
    )


# --- lab postconditions (lab/health.py) ----------------------------------------------


def health(host: Host) -> list[tuple[str, bool, str]]:
    """(name, holds, detail): every row active, and the views serve exactly the rows."""
    inactive, rows, served = (
        int(x)
        for x in _sql(
            host,
            "SELECT (SELECT COUNT(*) FROM rr WHERE active <> 'Y') "
            "+ (SELECT COUNT(*) FROM soa WHERE active <> 'Y'), "
            "(SELECT COUNT(*) FROM rr) + (SELECT COUNT(*) FROM soa), "
            "(SELECT COUNT(*) FROM records WHERE disabled = 0);",
        ).split()
    )
    ok = inactive == 0 and rows == served
    detail = f"{rows} MyDNS rows, {inactive} inactive, {served} served by the views"
    return [(f"{host.key}: MyDNS rows active and served", ok, detail)]
