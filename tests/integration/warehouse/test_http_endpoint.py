"""The ClickHouse-compatible HTTP endpoint, spoken to as ClickHouse clients do (clickhouse-connect, curl)."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import clickhouse_connect
import httpx
import orjson
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from services.core.warehouse.chdb_adapter import ChdbWarehouse
from services.core.warehouse.http_endpoint import RunningServer
from tests.integration.warehouse_fixtures import BI_PASSWORD, BI_USER, WRITER_PASSWORD, WRITER_USER

WRITER = (WRITER_USER, WRITER_PASSWORD)
BI = (BI_USER, BI_PASSWORD)


@pytest.fixture
def http(clickhouse_http: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=clickhouse_http.url, timeout=30) as client:
        yield client


def connect(server: RunningServer, user: str, password: str, **options: object) -> Client:
    return clickhouse_connect.get_client(
        host=server.host, port=server.port, username=user, password=password, **options
    )


@pytest.fixture
def writer(clickhouse_http: RunningServer) -> Iterator[Client]:
    client = connect(clickhouse_http, *WRITER)
    yield client
    client.close()


@pytest.fixture
def bi(clickhouse_http: RunningServer) -> Iterator[Client]:
    client = connect(clickhouse_http, *BI)
    yield client
    client.close()


@pytest.fixture
def customers(chdb_engine: ChdbWarehouse, database: str) -> str:
    table = f"{database}.customers"
    chdb_engine.command(
        f"CREATE TABLE {table} (id UInt64, email String, country LowCardinality(String), "
        "nickname Nullable(String), seen_at DateTime64(3, 'UTC'), tags Array(String), "
        "counts Map(String, UInt64), score Float64) ENGINE = MergeTree ORDER BY id"
    )
    return table


ROW = [
    7,
    "ada@example.com",
    "DE",
    None,
    datetime(2024, 3, 1, 12, 0, 0, 123000, tzinfo=UTC),
    ["vip"],
    {"orders": 2},
    0.75,
]
COLUMNS = ["id", "email", "country", "nickname", "seen_at", "tags", "counts", "score"]


def error_code(response: httpx.Response) -> int:
    return int(response.headers["X-ClickHouse-Exception-Code"])


# ---- plain HTTP (curl-style) ------------------------------------------------------------------


def test_ping_answers_ok(http: httpx.Client) -> None:
    response = http.get("/ping")
    assert (response.status_code, response.text) == (200, "Ok.\n")


def test_get_with_query_in_the_url(http: httpx.Client) -> None:
    response = http.get("/", params={"query": "SELECT 1"}, auth=WRITER)
    assert (response.status_code, response.text) == (200, "1\n")
    assert response.headers["X-ClickHouse-Format"] == "TabSeparated"
    assert response.headers["Content-Type"].startswith("text/tab-separated-values")


def test_post_with_query_in_the_body_and_format_clause(http: httpx.Client) -> None:
    response = http.post("/", content=b"SELECT 1 AS one, 'x' AS s FORMAT JSON", auth=WRITER)
    assert response.status_code == 200
    assert response.json()["data"] == [{"one": 1, "s": "x"}]
    assert response.headers["X-ClickHouse-Format"] == "JSON"
    assert response.headers["Content-Type"].startswith("application/json")


def test_response_headers_like_clickhouse(http: httpx.Client) -> None:
    response = http.post(
        "/", params={"query_id": "q-42"}, content=b"SELECT number FROM numbers(5)", auth=WRITER
    )
    headers = response.headers
    assert headers["X-ClickHouse-Query-Id"] == "q-42"
    assert headers["X-ClickHouse-Timezone"]
    assert headers["X-ClickHouse-Server-Display-Name"]
    summary = orjson.loads(headers["X-ClickHouse-Summary"])
    assert summary["read_rows"] == "5"
    assert int(summary["elapsed_ns"]) > 0


def test_query_param_and_body_are_joined(http: httpx.Client) -> None:
    response = http.post("/", params={"query": "SELECT 1 +"}, content=b"2", auth=WRITER)
    assert response.text == "3\n"


def test_url_query_parameters_are_bound(http: httpx.Client) -> None:
    response = http.post(
        "/",
        params={"param_n": "41", "param_s": "it\\'s", "param_tags": "['a','b']"},
        content=b"SELECT {n:UInt8} + 1, {s:String}, {tags:Array(String)} FORMAT JSONCompactEachRow",
        auth=WRITER,
    )
    assert orjson.loads(response.content) == [42, "it's", ["a", "b"]]


def test_default_format_and_database_params(http: httpx.Client, database: str) -> None:
    response = http.get(
        "/",
        params={
            "query": "SELECT currentDatabase() AS db",
            "default_format": "JSONEachRow",
            "database": database,
        },
        auth=WRITER,
    )
    assert orjson.loads(response.content) == {"db": database}
    assert response.headers["X-ClickHouse-Format"] == "JSONEachRow"


def test_settings_in_the_url_are_applied(http: httpx.Client) -> None:
    response = http.post(
        "/",
        params={"output_format_json_quote_64bit_integers": "1"},
        content=b"SELECT toUInt64(5) AS n FORMAT JSONEachRow",
        auth=WRITER,
    )
    assert orjson.loads(response.content) == {"n": "5"}
    response = http.post("/", content=b"SELECT toUInt64(5) AS n FORMAT JSONEachRow", auth=WRITER)
    assert orjson.loads(response.content) == {"n": 5}  # the setting lived for one request only


def test_unknown_setting_is_refused(http: httpx.Client) -> None:
    response = http.get("/", params={"query": "SELECT 1", "no_such_setting": "1"}, auth=WRITER)
    assert (response.status_code, error_code(response)) == (404, 115)


def test_error_response_like_clickhouse(http: httpx.Client, database: str) -> None:
    response = http.post("/", content=f"SELECT * FROM {database}.missing".encode(), auth=WRITER)
    assert (response.status_code, error_code(response)) == (404, 60)
    assert response.text.startswith("Code: 60. DB::Exception: ")
    assert "(UNKNOWN_TABLE)" in response.text
    assert response.headers["X-ClickHouse-Query-Id"]

    response = http.post("/", content=b"SELEC 1", auth=WRITER)
    assert (response.status_code, error_code(response)) == (400, 62)


def test_multi_statements_are_refused(http: httpx.Client) -> None:
    response = http.post("/", content=b"SELECT 1; SELECT 2", auth=WRITER)
    assert (response.status_code, error_code(response)) == (400, 62)
    assert http.post("/", content=b"SELECT 1;", auth=WRITER).text == "1\n"


def test_writer_inserts_with_data_in_the_body(http: httpx.Client, customers: str) -> None:
    rows = b'{"id": 1, "email": "a@x"}\n{"id": 2, "email": "b@x"}\n'
    response = http.post(
        "/",
        params={"query": f"INSERT INTO {customers} (id, email) FORMAT JSONEachRow"},
        content=rows,
        auth=WRITER,
    )
    assert response.status_code == 200, response.text
    assert orjson.loads(response.headers["X-ClickHouse-Summary"])["written_rows"] == "2"
    response = http.post(
        "/", content=f"INSERT INTO {customers} (id, email) FORMAT CSV\n3,c@x\n".encode(), auth=WRITER
    )
    assert response.status_code == 200, response.text
    response = http.post(
        "/", content=f"INSERT INTO {customers} (id, email) VALUES (4, 'd;@x')".encode(), auth=WRITER
    )
    assert response.status_code == 200, response.text
    assert http.get("/", params={"query": f"SELECT count() FROM {customers}"}, auth=WRITER).text == "4\n"


def test_gzip_request_and_response_bodies(http: httpx.Client, customers: str) -> None:
    body = gzip.compress(f"INSERT INTO {customers} (id, email) FORMAT TSV\n1\ta@x\n".encode())
    response = http.post("/", content=body, headers={"Content-Encoding": "gzip"}, auth=WRITER)
    assert response.status_code == 200, response.text

    response = http.post(
        "/",
        params={"enable_http_compression": "1"},
        content=f"SELECT email FROM {customers}".encode(),
        headers={"Accept-Encoding": "gzip"},
        auth=WRITER,
    )
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.text == "a@x\n"  # httpx undid the gzip


def test_get_requests_are_read_only_even_for_the_writer(http: httpx.Client, customers: str) -> None:
    response = http.get("/", params={"query": f"INSERT INTO {customers} (id) VALUES (1)"}, auth=WRITER)
    assert (response.status_code, error_code(response)) == (403, 164)


def test_session_keeps_temporary_tables_and_settings(http: httpx.Client) -> None:
    session = {"session_id": "s-1"}
    assert (
        http.post(
            "/", params=session, content=b"CREATE TEMPORARY TABLE tmp (a UInt8)", auth=WRITER
        ).status_code
        == 200
    )
    assert (
        http.post("/", params=session, content=b"INSERT INTO tmp VALUES (4)", auth=WRITER).status_code == 200
    )
    assert http.post("/", params=session, content=b"SELECT a FROM tmp", auth=WRITER).text == "4\n"
    response = http.post("/", params={"session_id": "s-2"}, content=b"SELECT a FROM tmp", auth=WRITER)
    assert error_code(response) == 60
    response = http.post(
        "/", params={"session_id": "gone", "session_check": "1"}, content=b"SELECT 1", auth=WRITER
    )
    assert error_code(response) == 372


# ---- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "credentials",
    [
        {"auth": WRITER},
        {"headers": {"X-ClickHouse-User": WRITER_USER, "X-ClickHouse-Key": WRITER_PASSWORD}},
        {"params": {"user": WRITER_USER, "password": WRITER_PASSWORD}},
    ],
    ids=["basic", "headers", "url"],
)
def test_every_clickhouse_way_of_authenticating(http: httpx.Client, credentials: dict[str, object]) -> None:
    params = {"query": "SELECT currentUser() != ''"} | dict(credentials.pop("params", {}))  # type: ignore[call-overload]
    response = http.get("/", params=params, **credentials)  # type: ignore[arg-type]
    assert (response.status_code, response.text) == (200, "1\n")


def test_wrong_password_or_unknown_user_is_refused(http: httpx.Client) -> None:
    for auth in [(WRITER_USER, "wrong"), ("mallory", WRITER_PASSWORD), (BI_USER, "")]:
        response = http.get("/", params={"query": "SELECT 1"}, auth=auth)
        assert (response.status_code, error_code(response)) == (403, 516)
        assert "AUTHENTICATION_FAILED" in response.text


def test_missing_credentials_ask_for_a_password(http: httpx.Client) -> None:
    response = http.get("/", params={"query": "SELECT 1"})
    assert (response.status_code, error_code(response)) == (401, 194)
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_clickhouse_connect_wrong_password_raises_516(clickhouse_http: RunningServer) -> None:
    with pytest.raises(DatabaseError) as raised:
        connect(clickhouse_http, WRITER_USER, "wrong")
    assert raised.value.code == 516


# ---- the read-only BI user --------------------------------------------------------------------


def test_bi_user_reads(http: httpx.Client, customers: str, chdb_engine: ChdbWarehouse) -> None:
    chdb_engine.command(f"INSERT INTO {customers} (id, email) VALUES (1, 'a@x')")
    response = http.get("/", params={"query": f"SELECT email FROM {customers}"}, auth=BI)
    assert (response.status_code, response.text) == (200, "a@x\n")
    for sql in [
        "SHOW TABLES FROM system LIKE 'one'",
        f"DESCRIBE TABLE {customers}",
        "EXPLAIN SELECT 1",
        "SELECT sum(number) FROM numbers(10)",
    ]:
        assert http.post("/", content=sql.encode(), auth=BI).status_code == 200, sql


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("INSERT INTO {table} (id) VALUES (1)", 164),
        ("INSERT INTO {table} (id, email) FORMAT CSV\n1,x\n", 164),
        ("CREATE TABLE {table}_copy AS {table}", 164),
        ("DROP TABLE {table}", 164),
        ("TRUNCATE TABLE {table}", 164),
        ("ALTER TABLE {table} DELETE WHERE 1", 164),
        ("OPTIMIZE TABLE {table} FINAL", 164),
        ("SYSTEM FLUSH LOGS", 164),
        ("KILL QUERY WHERE 1", 164),
        ("SET readonly = 0", 164),
        ("SELECT 1 SETTINGS readonly = 0", 164),
        ("SELECT * FROM file('/etc/passwd', 'LineAsString')", 164),
        ("SELECT * FROM (SELECT * FROM url('http://127.0.0.1:1/x', 'LineAsString'))", 164),
        ("SELECT * FROM s3('http://127.0.0.1:1/bucket/x.csv', 'CSV', 'a String')", 164),
        ("SELECT * FROM remote('127.0.0.1:9000', system.one)", 164),
        ("SELECT * FROM executable('ls', 'LineAsString', 'x String')", 164),
        ("SELECT * FROM filesystem('/')", 164),
        ("SELECT 1 WHERE 1 IN (SELECT * FROM sqlite('/tmp/x.sqlite', 't'))", 164),
        ("SELECT file('/etc/hostname')", 497),
        ("SELECT 1 INTO OUTFILE '{outfile}'", 497),
        (
            "CREATE DICTIONARY {table}_dict (id UInt64) PRIMARY KEY id SOURCE(FILE(path '/etc/passwd' format 'TSV')) LAYOUT(FLAT()) LIFETIME(0)",
            164,
        ),
    ],
)
def test_bi_user_cannot_write_or_reach_outside(
    http: httpx.Client, customers: str, tmp_path: Path, sql: str, code: int
) -> None:
    outfile = tmp_path / "out.tsv"
    response = http.post("/", content=sql.format(table=customers, outfile=outfile).encode(), auth=BI)

    assert (response.status_code, error_code(response)) == (403, code), response.text
    assert not outfile.exists()
    assert http.get("/", params={"query": f"EXISTS TABLE {customers}"}, auth=BI).text == "1\n"


def test_bi_user_cannot_change_settings_in_the_url(http: httpx.Client) -> None:
    response = http.get("/", params={"query": "SELECT 1", "readonly": "0"}, auth=BI)
    assert (response.status_code, error_code(response)) == (403, 164)
    response = http.get("/", params={"query": "SELECT 1", "max_threads": "1"}, auth=BI)
    assert (response.status_code, error_code(response)) == (403, 164)


def test_bi_user_with_clickhouse_connect(bi: Client, customers: str, chdb_engine: ChdbWarehouse) -> None:
    chdb_engine.command(f"INSERT INTO {customers} (id, email) VALUES (1, 'a@x')")
    assert bi.query(f"SELECT id, email FROM {customers}").result_rows == [(1, "a@x")]
    with pytest.raises(DatabaseError) as raised:
        bi.insert(customers, [[2, "b@x"]], column_names=["id", "email"])
    assert raised.value.code == 164
    with pytest.raises(DatabaseError) as raised:
        bi.command(f"DROP TABLE {customers}")
    assert raised.value.code == 164


# ---- clickhouse-connect -----------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False, "zstd", "gzip"], ids=["lz4", "none", "zstd", "gzip"])
def test_clickhouse_connect_native_insert_and_typed_query(
    clickhouse_http: RunningServer, customers: str, compress: bool | str
) -> None:
    client = connect(clickhouse_http, *WRITER, compress=compress, tz_mode="aware")
    try:
        summary = client.insert(
            customers, [ROW, [8, "bob@example.com", "FR", "b", ROW[4], [], {}, 1.0]], column_names=COLUMNS
        )
        assert summary.written_rows == 2

        result = client.query(f"SELECT * FROM {customers} ORDER BY id")
    finally:
        client.close()

    assert result.column_names == tuple(COLUMNS)
    assert [t.name for t in result.column_types] == [
        "UInt64",
        "String",
        "LowCardinality(String)",
        "Nullable(String)",
        "DateTime64(3, 'UTC')",
        "Array(String)",
        "Map(String, UInt64)",
        "Float64",
    ]
    assert result.result_rows[0] == tuple(ROW)


def test_large_inserts_stream_through(
    clickhouse_http: RunningServer, http: httpx.Client, customers: str
) -> None:
    client = connect(clickhouse_http, *WRITER)  # lz4-compressed Native body, header inside it
    try:
        rows = [[i, f"user{i}@example.com"] for i in range(60_000)]
        assert client.insert(customers, rows, column_names=["id", "email"]).written_rows == 60_000
    finally:
        client.close()

    def tsv() -> Iterator[bytes]:
        for start in range(0, 60_000, 5_000):
            yield b"".join(b"%d\tbulk%d@x\n" % (i, i) for i in range(start, start + 5_000))

    response = http.post(
        "/", params={"query": f"INSERT INTO {customers} (id, email) FORMAT TSV"}, content=tsv(), auth=WRITER
    )
    assert response.status_code == 200, response.text
    assert http.get("/", params={"query": f"SELECT count() FROM {customers}"}, auth=WRITER).text == "120000\n"


def test_clickhouse_connect_query_types(writer: Client) -> None:
    result = writer.query(
        "SELECT toUInt64(18446744073709551615) AS u64, 1.5::Float64 AS f, 'é' AS s, "
        "toDateTime64('2024-01-02 03:04:05.678', 3) AS t, CAST(NULL, 'Nullable(Int32)') AS n, "
        "toLowCardinality('lc') AS lc, [1, 2]::Array(UInt8) AS a, map('k', 1)::Map(String, UInt8) AS m, "
        "toDecimal32(1.25, 2) AS d"
    )
    assert result.result_rows == [
        (
            18446744073709551615,
            1.5,
            "é",
            datetime(2024, 1, 2, 3, 4, 5, 678000),
            None,
            "lc",
            [1, 2],
            {"k": 1},
            Decimal("1.25"),
        )
    ]
    assert writer.query("SELECT number AS n FROM numbers(3) WHERE n > 10").column_names == ("n",)


def test_clickhouse_connect_command_and_errors(writer: Client, database: str) -> None:
    assert writer.command("SELECT 1 + 1") == 2
    writer.command(f"CREATE TABLE {database}.t (a UInt8) ENGINE = Memory")
    assert writer.command(f"EXISTS TABLE {database}.t") == 1
    with pytest.raises(DatabaseError) as raised:
        writer.query(f"SELECT * FROM {database}.missing")
    assert raised.value.code == 60
    with pytest.raises(DatabaseError) as raised:
        writer.command("SELEC 1")
    assert raised.value.code == 62


def test_clickhouse_connect_raw_insert_json_with_dedup_setting(
    writer: Client, chdb_engine: ChdbWarehouse, database: str
) -> None:
    table = f"{database}.events"
    chdb_engine.command(
        f"CREATE TABLE {table} (id UInt64, kind String) ENGINE = MergeTree ORDER BY id "
        "SETTINGS non_replicated_deduplication_window = 100"
    )
    rows = b'{"id": 1, "kind": "a"}\n{"id": 2, "kind": "b"}\n'
    for _ in range(2):
        writer.raw_insert(
            table,
            ["id", "kind"],
            insert_block=rows,
            fmt="JSONEachRow",
            settings={"insert_deduplication_token": "tok"},
        )
    assert writer.query(f"SELECT count() FROM {table}").result_rows == [(2,)]


def test_clickhouse_connect_ping_and_server_info(writer: Client) -> None:
    assert writer.ping()
    assert writer.server_version
    assert writer.command("SELECT version()") == writer.server_version


# ---- concurrency ------------------------------------------------------------------------------


def test_slow_queries_do_not_block_the_endpoint(clickhouse_http: RunningServer) -> None:
    done: list[float] = []

    def slow() -> None:
        with httpx.Client(base_url=clickhouse_http.url, timeout=30) as client:
            client.post("/", content=b"SELECT sleep(0.5)", auth=WRITER).raise_for_status()
            done.append(time.monotonic())

    threads = [threading.Thread(target=slow) for _ in range(2)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    with httpx.Client(base_url=clickhouse_http.url, timeout=30) as client:
        assert client.get("/ping").status_code == 200
        pinged = time.monotonic()
    for thread in threads:
        thread.join()
    assert pinged - started < 0.4  # answered while both queries were running
    assert max(done) - started < 0.95  # the two sleeps ran side by side
