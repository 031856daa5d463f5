"""The warehouse port: what services need from ClickHouse, whichever engine is behind it.

Two adapters implement it: ``ChdbWarehouse`` (embedded engine, single-node mode) and
``ConnectWarehouse`` (clickhouse-connect against a ClickHouse server or the single-node
ClickHouse-compatible HTTP endpoint). Services depend only on this module.

Conventions shared by both adapters:
- SQL runs in the server's default database: name tables as ``{warehouse.database}.table``
  (``insert_json_rows`` alone qualifies a bare table name with ``database``).
- Parameters: ``{name:Type}`` placeholders are bound server-side; values are Python values
  (int, float, str, datetime, date, list, dict, None, ...) formatted as clickhouse-connect does.
- Results hold the same Python values in both adapters (clickhouse-connect's decoding):
  UInt64 -> int, Float64 -> float, DateTime/DateTime64 -> timezone-aware datetime,
  Date -> date, Nullable NULL -> None, Array -> list, Map/JSON -> dict, Tuple -> tuple,
  Decimal -> Decimal, UUID -> UUID, LowCardinality(T) -> T.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

QueryParameters = Mapping[str, Any]
Settings = Mapping[str, str | int | float]


class WarehouseError(Exception):
    """A query or insert failed inside ClickHouse; ``code`` is ClickHouse's numeric error code
    (60 UNKNOWN_TABLE, 62 SYNTAX_ERROR, ...) and ``name`` its symbolic name, when known."""

    def __init__(self, message: str, code: int = 0, name: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.name = name


class WarehouseUnavailable(WarehouseError):  # noqa: N818 (the port's published name)
    """The warehouse could not be reached at all (retry later; nothing was written)."""


@runtime_checkable
class Warehouse(Protocol):
    """Synchronous warehouse access. Implementations are safe to call from several threads."""

    @property
    def database(self) -> str: ...

    def command(self, sql: str, parameters: QueryParameters | None = None) -> None:
        """Run a statement that returns nothing of interest (DDL, ALTER, OPTIMIZE, ...)."""

    def query(self, sql: str, parameters: QueryParameters | None = None) -> list[tuple[Any, ...]]:
        """Run a SELECT and return its rows as tuples of Python values."""

    def query_dicts(self, sql: str, parameters: QueryParameters | None = None) -> list[dict[str, Any]]:
        """Run a SELECT and return its rows as dicts keyed by column name."""

    def insert_json_rows(
        self, table: str, rows: bytes, *, columns: Sequence[str] | None = None, dedup_token: str | None = None
    ) -> None:
        """Insert newline-separated JSON objects (JSONEachRow) into ``table`` as one block.

        With ``dedup_token``, inserting the same token again into a table that keeps a
        deduplication window adds no rows (``insert_deduplication_token``).
        """

    def ping(self) -> bool:
        """True when the warehouse answers."""

    def close(self) -> None: ...
