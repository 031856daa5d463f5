"""The warehouse port over clickhouse-connect (a ClickHouse server, or the single-node endpoint)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.exceptions import Error, OperationalError

from services.core.warehouse.clickhouse_errors import BAD_ARGUMENTS
from services.core.warehouse.port import QueryParameters, WarehouseError, WarehouseUnavailable
from services.core.warehouse.sql_text import qualified_table

_T = TypeVar("_T")

# Every failed request would log a warning or two of the HTTP client's own (a dropped connection, a
# retry) on top of the error this adapter raises; the callers report failures themselves, once per
# outage (services/core/failure_log.py). Errors of the client still show.
for _noisy in ("clickhouse_connect.driver", "urllib3.connectionpool"):
    logging.getLogger(_noisy).setLevel(logging.ERROR)


def _client_options(url: str) -> dict[str, Any]:
    """get_client keyword arguments from ``http[s]://user:password@host:port[/proxy_path]``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Not the URL itself: it may carry the password.
        missing = "" if parts.hostname else " and no host"
        raise WarehouseError(
            "ClickHouse URL must look like http://user:password@host:8123, "
            f"got scheme {parts.scheme!r}{missing}"
        )
    options: dict[str, Any] = {
        "interface": parts.scheme,
        "host": parts.hostname,
        "port": parts.port or (8443 if parts.scheme == "https" else 8123),
        "username": unquote(parts.username) if parts.username else "default",
        "password": unquote(parts.password) if parts.password else "",
    }
    if parts.path.strip("/"):
        options["proxy_path"] = parts.path
    return options


def _translate(exc: Error) -> WarehouseError:
    code = exc.code or 0
    name = exc.name or ""
    if isinstance(exc, OperationalError):
        return WarehouseUnavailable(str(exc), code, name)
    return WarehouseError(str(exc), code, name)


class ConnectWarehouse:
    """Warehouse port over clickhouse-connect's HTTP client.

    The client connects on first use (a warehouse that is down makes calls raise
    WarehouseUnavailable, and ``ping`` answer False, rather than failing construction).
    Statements run in the server's default database: SQL names tables as ``{database}.table``.
    """

    def __init__(
        self, url: str, database: str, *, compress: bool | str = True, send_receive_timeout: int = 300
    ) -> None:
        self._options = _client_options(url)
        self._options.update(
            compress=compress,
            send_receive_timeout=send_receive_timeout,
            connect_timeout=10,
            # A session forbids concurrent queries, and threads share this object.
            autogenerate_session_id=False,
            tz_mode="aware",
        )
        self._database = database
        self._client: Any = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def database(self) -> str:
        return self._database

    def _connected(self) -> Any:
        if self._client is not None:
            return self._client
        with self._lock:
            if self._closed:
                raise WarehouseError("the warehouse connection is closed", BAD_ARGUMENTS, "BAD_ARGUMENTS")
            if self._client is None:
                try:
                    self._client = clickhouse_connect.get_client(**self._options)
                except Error as exc:
                    raise _translate(exc) from exc
            return self._client

    def _call(self, action: Callable[[Any], _T]) -> _T:
        client = self._connected()
        try:
            return action(client)
        except Error as exc:
            raise _translate(exc) from exc

    def command(self, sql: str, parameters: QueryParameters | None = None) -> None:
        params = dict(parameters) if parameters else None
        self._call(lambda client: client.command(sql, parameters=params))

    def query(self, sql: str, parameters: QueryParameters | None = None) -> list[tuple[Any, ...]]:
        params = dict(parameters) if parameters else None
        result = self._call(lambda client: client.query(sql, parameters=params))
        return [row if isinstance(row, tuple) else tuple(row) for row in result.result_rows]

    def query_dicts(self, sql: str, parameters: QueryParameters | None = None) -> list[dict[str, Any]]:
        params = dict(parameters) if parameters else None
        result = self._call(lambda client: client.query(sql, parameters=params))
        names = result.column_names
        return [dict(zip(names, row, strict=True)) for row in result.result_rows]

    def insert_json_rows(
        self, table: str, rows: bytes, *, columns: Sequence[str] | None = None, dedup_token: str | None = None
    ) -> None:
        if not rows.strip():
            return
        settings = {"insert_deduplication_token": dedup_token} if dedup_token is not None else None
        target = qualified_table(table, self._database)
        column_names = list(columns) if columns else None
        self._call(
            lambda client: client.raw_insert(
                target, column_names, insert_block=rows, fmt="JSONEachRow", settings=settings
            )
        )

    def ping(self) -> bool:
        try:
            return bool(self._connected().ping())
        except WarehouseError:
            return False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is not None:
            client.close()
