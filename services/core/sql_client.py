"""``cdp sql``: queries through clickhouse-connect, never by opening the embedded engine directly
(the running ``cdp up`` owns it; a second process cannot open the same data directory)."""

from __future__ import annotations

import logging
from typing import Any

from services.core.secrets import read_existing
from services.core.settings import Settings


class SqlClientError(Exception):
    pass


_READS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS", "(")


def returns_rows(query: str) -> bool:
    """Statements whose answer is a result set; everything else runs as a command."""
    return query.lstrip().upper().startswith(_READS)


def run_sql(
    settings: Settings, query: str, *, write: bool = False
) -> tuple[list[str], list[tuple[Any, ...]]]:
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

    # The driver logs connection failures itself; the CLI explains them once, below.
    logging.getLogger("clickhouse_connect").setLevel(logging.CRITICAL)

    if settings.clickhouse_url:
        target: dict[str, Any] = {"dsn": settings.clickhouse_url}
    else:
        if write:
            password = settings.clickhouse_writer_password.get_secret_value()
            password = password or read_existing(settings).get("clickhouse_writer_password", "")
            user = settings.clickhouse_writer_user
        else:
            user, password = settings.clickhouse_bi_user, settings.clickhouse_bi_password.get_secret_value()
        target = {
            "host": settings.clickhouse_http_host, "port": settings.clickhouse_http_port,
            "username": user, "password": password,
        }  # fmt: skip
    try:
        client = clickhouse_connect.get_client(
            **target, connect_timeout=3, database=settings.clickhouse_database
        )
    except OperationalError as exc:
        where = settings.clickhouse_url or f"{settings.clickhouse_http_host}:{settings.clickhouse_http_port}"
        raise SqlClientError(f"cannot reach the warehouse at {where}: is 'cdp up' running? ({exc})") from None
    except ClickHouseError as exc:
        raise SqlClientError(str(exc)) from None
    try:
        if not returns_rows(query):
            client.command(query)
            return ["result"], [("OK",)]
        result = client.query(query)
        return list(result.column_names), [tuple(row) for row in result.result_rows]
    except ClickHouseError as exc:
        message = str(exc).strip()
        if "code: 164" in message and not write:
            message += "\nhint: the BI user is read-only; pass --write to change data"
        raise SqlClientError(message) from None
    finally:
        client.close()
