"""The little SQL lexing the endpoint and the migrations rely on (pure, no engine)."""

from __future__ import annotations

import pytest

from services.core.warehouse.sql_text import (
    InsertWithData,
    Undecided,
    locate_insert_data,
    shape_of,
    split_statements,
)


def test_split_statements_ignores_separators_in_strings_and_comments() -> None:
    sql = "CREATE TABLE a (s String DEFAULT ';') ENGINE = Memory;\n-- x; y\n/* ; */ SELECT `a;b` FROM t;;\n"
    assert split_statements(sql) == [
        "CREATE TABLE a (s String DEFAULT ';') ENGINE = Memory",
        "-- x; y\n/* ; */ SELECT `a;b` FROM t",
    ]


@pytest.mark.parametrize(
    ("sql", "output_format"),
    [
        ("SELECT 1 FORMAT JSON", "JSON"),
        ("SELECT 1 FORMAT JSONEachRow SETTINGS max_threads = 1", "JSONEachRow"),
        ("SELECT format FROM t", None),
        ("SELECT format('{}', 'x')", None),
        ("SELECT x AS format FROM t", None),
        ("SELECT 'FORMAT JSON'", None),
        ("SELECT * FROM (SELECT 1 FORMAT CSV)", None),
        ("SHOW TABLES FORMAT Vertical", "Vertical"),
    ],
)
def test_output_format_comes_from_a_top_level_clause(sql: str, output_format: str | None) -> None:
    assert shape_of(sql).output_format == output_format


def test_shape_sees_statements_and_server_files() -> None:
    assert shape_of("SELECT 1; SELECT 2").statement_count == 2
    assert shape_of("SELECT 1;").statement_count == 1
    assert shape_of("INSERT INTO t VALUES ('a;b'); ('c')").statement_count == 1  # VALUES data is data
    assert shape_of("SELECT 1 INTO OUTFILE '/tmp/x'").touches_server_files
    assert shape_of("INSERT INTO t FROM INFILE '/etc/passwd' FORMAT CSV").touches_server_files
    assert not shape_of("SELECT 'INTO OUTFILE'").touches_server_files
    assert shape_of("  -- c\n select 1").keyword == "SELECT"
    assert not shape_of("CREATE TABLE t (a Int8) ENGINE = Memory").returns_rows


def test_insert_data_starts_after_the_first_newline_following_the_format() -> None:
    body = "INSERT INTO db.t (a, b) SETTINGS x = 1 FORMAT Native\n\x03\n\x01data"
    found = locate_insert_data(body, complete=True)
    assert found == InsertWithData("INSERT INTO db.t (a, b) SETTINGS x = 1", "Native", body.index("\x03"))
    found = locate_insert_data("INSERT INTO t FORMAT CSV 1,2", complete=True)
    assert isinstance(found, InsertWithData)
    assert found.data_start == len("INSERT INTO t FORMAT CSV ")


def test_insert_header_cut_by_the_buffer_needs_more() -> None:
    assert locate_insert_data("INSERT INTO t FORM", complete=False) is Undecided.NEED_MORE
    assert locate_insert_data("INSERT INTO t FORMAT JSONEach", complete=False) is Undecided.NEED_MORE
    assert locate_insert_data("INS", complete=False) is Undecided.NEED_MORE
    assert locate_insert_data("SELECT 1", complete=False) is Undecided.NOT_INSERT_WITH_DATA
    assert locate_insert_data("INSERT INTO t VALUES (1)", complete=False) is Undecided.NOT_INSERT_WITH_DATA
    assert locate_insert_data("INSERT INTO t SELECT 1", complete=True) is Undecided.NOT_INSERT_WITH_DATA
