"""Table comparison from chunk digests: pure logic, no server."""

from __future__ import annotations

from cutover.compare.mysql import (
    Chunk,
    DatabaseScan,
    TableScan,
    compare_database_scans,
    compare_with_recorded,
)


def chunk(first: int, last: int, digest: bytes) -> Chunk:
    return Chunk((str(first),), (str(last),), last - first + 1, digest)


def table(name: str, chunks: list[Chunk], *, columns: tuple[str, ...] = ("id", "v")) -> TableScan:
    rows = sum(c.rows for c in chunks)
    digest = b"".join(c.digest for c in chunks).hex() + str(rows)
    return TableScan(name, columns, ("id",), rows, tuple(chunks), digest, 10)


def db(*tables: TableScan) -> DatabaseScan:
    return DatabaseScan(
        "app", "mysql 198.51.100.20:3306 (new IP)", True, {t.name: t for t in tables}
    )


def test_equal_tables_match() -> None:
    orders = table("orders", [chunk(1, 10, b"a"), chunk(11, 20, b"b")])
    assert compare_database_scans(db(orders), db(orders)) == []


def test_changed_row_names_its_chunk() -> None:
    old = table("orders", [chunk(1, 10, b"a"), chunk(11, 20, b"b"), chunk(21, 30, b"c")])
    new = table("orders", [chunk(1, 10, b"a"), chunk(11, 20, b"X"), chunk(21, 30, b"c")])
    [difference] = compare_database_scans(db(old), db(new))
    assert difference.table == "orders"
    assert "first differing chunk #2" in difference.problem
    assert "id 11 .. 20" in difference.problem
    assert "rows old 30, new 30" in difference.problem


def test_deleted_row_shifts_ranges_and_counts() -> None:
    old = table("orders", [chunk(1, 10, b"a"), chunk(11, 20, b"b")])
    new = table("orders", [chunk(1, 10, b"a"), chunk(12, 20, b"Y")])
    [difference] = compare_database_scans(db(old), db(new))
    assert "rows old 20, new 19" in difference.problem
    assert "old id 11 .. 20, new id 12 .. 20" in difference.problem


def test_rows_only_on_one_side() -> None:
    old = table("orders", [chunk(1, 10, b"a")])
    new = table("orders", [chunk(1, 10, b"a"), chunk(11, 12, b"b")])
    [difference] = compare_database_scans(db(old), db(new))
    assert "rows only on new from id 11 .. 12" in difference.problem


def test_missing_extra_and_changed_tables() -> None:
    orders = table("orders", [chunk(1, 10, b"a")])
    audit = table("audit", [chunk(1, 1, b"z")])
    renamed = table("orders", [chunk(1, 10, b"a")], columns=("id", "value"))
    problems = {d.table: d.problem for d in compare_database_scans(db(orders, audit), db(renamed))}
    assert problems["audit"] == "table missing on new"
    assert "columns differ" in problems["orders"] and "missing on new: v" in problems["orders"]


def test_table_without_primary_key() -> None:
    old = TableScan("log", ("at", "msg"), (), 3, (), "aaa", 10)
    new = TableScan("log", ("at", "msg"), (), 2, (), "bbb", 10)
    [difference] = compare_database_scans(db(old), db(new))
    assert "no primary key" in difference.problem and "rows old 3, new 2" in difference.problem
    assert db(old).without_primary_key == ["log"]


def test_after_the_switch_only_losses_count() -> None:
    before = {"orders": table("orders", [chunk(1, 10, b"a")]).to_json()}
    grown = db(table("orders", [chunk(1, 10, b"a"), chunk(11, 12, b"b")]))
    differences, notes = compare_with_recorded(before, grown)
    assert differences == [] and notes == ["orders: content changed since preflight (12 rows)"]
    shrunk = db(table("orders", [chunk(1, 5, b"a")]))
    [lost] = compare_with_recorded(before, shrunk)[0]
    assert "fewer rows" in lost.problem and "10 -> 5" in lost.problem
    [gone] = compare_with_recorded(before, db())[0]
    assert gone.problem.startswith("table missing on new")
