"""The warehouse port, run against both adapters (chDB in-process; clickhouse-connect over HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from services.core.warehouse.chdb_adapter import ChdbWarehouse
from services.core.warehouse.migrations import (
    MigrationError,
    apply_migrations,
    default_ddl_dir,
    load_migrations,
)
from services.core.warehouse.port import Warehouse, WarehouseError

TYPED_TABLE = """
CREATE TABLE {db}.typed (
    id UInt64,
    big UInt64,
    score Float64,
    name String,
    nickname Nullable(String),
    country LowCardinality(String),
    seen_at DateTime64(3, 'UTC'),
    tags Array(String),
    counts Map(String, UInt64)
) ENGINE = MergeTree ORDER BY id
"""

ROWS = [
    {
        "id": 1,
        "big": 18446744073709551615,
        "score": 0.5,
        "name": "Ada",
        "nickname": None,
        "country": "DE",
        "seen_at": "2024-03-01 12:34:56.789",
        "tags": ["vip", "eu"],
        "counts": {"orders": 3},
    },
    {
        "id": 2,
        "big": 7,
        "score": -1.25,
        "name": "Bob 'the' \\ builder\t",
        "nickname": "bobby",
        "country": "FR",
        "seen_at": "2024-03-02 00:00:00.001",
        "tags": [],
        "counts": {},
    },
]


def json_rows(rows: list[dict[str, object]]) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def dedup_table(warehouse: Warehouse) -> None:
    warehouse.command(
        f"CREATE TABLE {warehouse.database}.events (id UInt64, kind String) ENGINE = MergeTree ORDER BY id "
        "SETTINGS non_replicated_deduplication_window = 1000"
    )


def test_database_is_the_one_asked_for(warehouse: Warehouse, database: str) -> None:
    assert warehouse.database == database
    assert warehouse.ping()


def test_rows_round_trip_with_python_types(warehouse: Warehouse) -> None:
    warehouse.command(TYPED_TABLE.format(db=warehouse.database))
    warehouse.insert_json_rows("typed", json_rows(ROWS))

    rows = warehouse.query(f"SELECT * FROM {warehouse.database}.typed ORDER BY id")

    assert rows == [
        (
            1,
            18446744073709551615,
            0.5,
            "Ada",
            None,
            "DE",
            datetime(2024, 3, 1, 12, 34, 56, 789000, tzinfo=UTC),
            ["vip", "eu"],
            {"orders": 3},
        ),
        (
            2,
            7,
            -1.25,
            "Bob 'the' \\ builder\t",
            "bobby",
            "FR",
            datetime(2024, 3, 2, 0, 0, 0, 1000, tzinfo=UTC),
            [],
            {},
        ),
    ]
    assert all(isinstance(row[0], int) and isinstance(row[2], float) for row in rows)


def test_query_dicts_are_keyed_by_column_name(warehouse: Warehouse) -> None:
    warehouse.command(TYPED_TABLE.format(db=warehouse.database))
    warehouse.insert_json_rows("typed", json_rows(ROWS), columns=["id", "name", "seen_at"])

    dicts = warehouse.query_dicts(f"SELECT id, name, big, tags FROM {warehouse.database}.typed ORDER BY id")

    assert dicts == [
        {"id": 1, "name": "Ada", "big": 0, "tags": []},
        {"id": 2, "name": "Bob 'the' \\ builder\t", "big": 0, "tags": []},
    ]


def test_empty_result_is_an_empty_list(warehouse: Warehouse) -> None:
    assert warehouse.query("SELECT number FROM numbers(3) WHERE number > 5") == []
    assert warehouse.query_dicts("SELECT number FROM numbers(3) WHERE number > 5") == []


def test_parameters_are_bound_server_side(warehouse: Warehouse) -> None:
    moment = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    rows = warehouse.query(
        "SELECT {n:UInt64} + 1, {s:String}, {t:DateTime64(3, 'UTC')}, {tags:Array(String)}, {x:Float64}",
        {"n": 41, "s": "it's a\ttab \\ slash", "t": moment, "tags": ["a", "b'c"], "x": 2.5},
    )
    assert rows == [(42, "it's a\ttab \\ slash", moment, ["a", "b'c"], 2.5)]


def test_parameters_work_in_commands(warehouse: Warehouse) -> None:
    dedup_table(warehouse)
    warehouse.command(
        f"INSERT INTO {warehouse.database}.events SELECT {{id:UInt64}}, {{kind:String}}",
        {"id": 9, "kind": "x"},
    )
    assert warehouse.query(f"SELECT id, kind FROM {warehouse.database}.events") == [(9, "x")]


def test_same_dedup_token_twice_inserts_rows_once(warehouse: Warehouse) -> None:
    dedup_table(warehouse)
    batch = json_rows([{"id": 1, "kind": "a"}, {"id": 2, "kind": "b"}])

    warehouse.insert_json_rows("events", batch, columns=["id", "kind"], dedup_token="partition-0:offset-10")
    warehouse.insert_json_rows("events", batch, columns=["id", "kind"], dedup_token="partition-0:offset-10")

    assert warehouse.query(f"SELECT count() FROM {warehouse.database}.events") == [(2,)]


def test_different_dedup_tokens_insert_both_batches(warehouse: Warehouse) -> None:
    dedup_table(warehouse)
    batch = json_rows([{"id": 1, "kind": "a"}])

    warehouse.insert_json_rows("events", batch, dedup_token="t1")
    warehouse.insert_json_rows("events", batch, dedup_token="t2")

    assert warehouse.query(f"SELECT count() FROM {warehouse.database}.events") == [(2,)]


def test_insert_accepts_a_qualified_table_name(warehouse: Warehouse) -> None:
    dedup_table(warehouse)
    warehouse.insert_json_rows(f"{warehouse.database}.events", json_rows([{"id": 5, "kind": "q"}]))
    assert warehouse.query(f"SELECT id FROM {warehouse.database}.events") == [(5,)]


def test_unknown_table_raises_code_60(warehouse: Warehouse) -> None:
    with pytest.raises(WarehouseError) as raised:
        warehouse.query(f"SELECT * FROM {warehouse.database}.missing")
    assert (raised.value.code, raised.value.name) == (60, "UNKNOWN_TABLE")


def test_syntax_error_raises_code_62(warehouse: Warehouse) -> None:
    with pytest.raises(WarehouseError) as raised:
        warehouse.command("SELEC 1")
    assert (raised.value.code, raised.value.name) == (62, "SYNTAX_ERROR")


def test_bad_insert_data_raises_with_a_code(warehouse: Warehouse) -> None:
    dedup_table(warehouse)
    with pytest.raises(WarehouseError) as raised:
        warehouse.insert_json_rows("events", b'{"id": "not a number"}\n')
    assert raised.value.code > 0


def write_ddl(directory: Path, name: str, sql: str) -> None:
    (directory / name).write_text(sql)


def test_migrations_apply_once_in_order(warehouse: Warehouse, tmp_path: Path) -> None:
    write_ddl(tmp_path, "002_second.sql", "ALTER TABLE {db}.first ADD COLUMN IF NOT EXISTS b String;\n")
    write_ddl(
        tmp_path,
        "001_first.sql",
        "-- two statements; the ';' inside the string is not a separator\n"
        "CREATE TABLE IF NOT EXISTS {db}.first (a UInt8, note String DEFAULT 'x;y') ENGINE = MergeTree ORDER BY a\n;\n"
        "INSERT INTO {db}.first (a) VALUES (1);\n",
    )
    write_ddl(tmp_path, "README.md", "not a migration")

    assert apply_migrations(warehouse, tmp_path) == ["001_first", "002_second"]
    assert apply_migrations(warehouse, tmp_path) == []

    write_ddl(tmp_path, "003_third.sql", "INSERT INTO {db}.first (a, b) VALUES (2, 'two')")
    assert apply_migrations(warehouse, tmp_path) == ["003_third"]
    assert warehouse.query(f"SELECT a, note, b FROM {warehouse.database}.first ORDER BY a") == [
        (1, "x;y", ""),
        (2, "x;y", "two"),
    ]
    recorded = warehouse.query(
        f"SELECT version, name FROM {warehouse.database}.schema_migrations ORDER BY version"
    )
    assert recorded == [(1, "001_first"), (2, "002_second"), (3, "003_third")]


def test_changed_migration_is_refused(warehouse: Warehouse, tmp_path: Path) -> None:
    write_ddl(tmp_path, "001_first.sql", "CREATE TABLE IF NOT EXISTS {db}.first (a UInt8) ENGINE = Memory")
    apply_migrations(warehouse, tmp_path)
    write_ddl(tmp_path, "001_first.sql", "CREATE TABLE IF NOT EXISTS {db}.first (a UInt16) ENGINE = Memory")

    with pytest.raises(MigrationError, match=r"001_first.*checksum"):
        apply_migrations(warehouse, tmp_path)


def test_failing_migration_is_not_recorded(warehouse: Warehouse, tmp_path: Path) -> None:
    write_ddl(tmp_path, "001_broken.sql", "CREATE TABLE {db}.broken (a UInt8) ENGINE = NoSuchEngine")
    with pytest.raises(MigrationError) as raised:
        apply_migrations(warehouse, tmp_path)
    assert raised.value.code == 56  # UNKNOWN_STORAGE
    assert warehouse.query(f"SELECT count() FROM {warehouse.database}.schema_migrations") == [(0,)]


def test_packaged_migrations_apply_and_are_idempotent(warehouse: Warehouse) -> None:
    names = [migration.name for migration in load_migrations(default_ddl_dir())]
    assert apply_migrations(warehouse) == names
    assert apply_migrations(warehouse) == []


def test_duplicate_versions_are_refused(tmp_path: Path) -> None:
    write_ddl(tmp_path, "001_a.sql", "SELECT 1")
    write_ddl(tmp_path, "001_b.sql", "SELECT 2")
    with pytest.raises(MigrationError, match="version 1"):
        load_migrations(tmp_path)


def test_second_data_dir_in_one_process_is_refused(chdb_engine: ChdbWarehouse, tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match="one data directory per process"):
        ChdbWarehouse(tmp_path / "other", "default")


def test_adapters_agree_on_values(chdb_engine: ChdbWarehouse, warehouse: Warehouse) -> None:
    sql = (
        "SELECT toUUID('00000000-0000-0000-0000-00000000002a') AS u, toDate('2024-01-31') AS d, "
        "toDecimal64(12.34, 2) AS dec, (1, 'x') AS tup, toDateTime64('2024-01-01 10:00:00', 3, 'Europe/Berlin') AS b, "
        "CAST(NULL AS Nullable(UInt8)) AS n, [[1, 2], [3]] AS nested"
    )
    assert warehouse.query_dicts(sql) == chdb_engine.query_dicts(sql)
