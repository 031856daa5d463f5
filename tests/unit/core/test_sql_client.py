import pytest

from services.core.sql_client import returns_rows


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1",
        "  with x as (select 1) select * from x",
        "SHOW TABLES",
        "describe cdp.events",
        "(SELECT 1)",
    ],
)
def test_reads_return_rows(query):
    assert returns_rows(query)


@pytest.mark.parametrize(
    "query", ["CREATE TABLE t (a Int8) ENGINE=Memory", "INSERT INTO t VALUES (1)", "OPTIMIZE TABLE t FINAL"]
)
def test_other_statements_run_as_commands(query):
    assert not returns_rows(query)
