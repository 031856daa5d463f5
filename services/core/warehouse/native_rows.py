"""Native-format decoding and parameter binding shared by both adapters.

The embedded adapter reuses clickhouse-connect's Native decoder and parameter formatting, so
both adapters return the very same Python values (int for UInt64, aware datetime for
DateTime64, dict for Map and JSON, Decimal, UUID, date, ...) and bind parameters the same way.
These are clickhouse-connect internals (stable since 0.5); the pinned version is the one tested.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import tzinfo
from typing import Any

from clickhouse_connect.driver import tzutil
from clickhouse_connect.driver.binding import bind_query
from clickhouse_connect.driver.ctypes import RespBuffCls
from clickhouse_connect.driver.query import QueryContext, QueryResult
from clickhouse_connect.driver.transform import NativeTransform

from services.core.warehouse.port import QueryParameters

_response_buffer: Any = RespBuffCls  # untyped in clickhouse-connect


class _SingleChunk:
    """The byte-source shape clickhouse-connect's response buffer reads from."""

    __slots__ = ("data", "exception_tag", "last_message")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.last_message: bytes | None = None
        self.exception_tag: str | None = None

    @property
    def gen(self) -> Iterator[bytes]:
        yield self.data

    def close(self) -> None:
        return None


def server_timezone(name: str) -> tzinfo:
    """The zone clickhouse-connect would use for a server reporting ``name`` (UTC normalised)."""
    zone: tzinfo = tzutil.normalize_timezone(tzutil.resolve_zone(name), trust_fixed_offset=True)[0]
    return zone


def decode_native(data: bytes, server_tz: tzinfo) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """Column names and rows of a Native-format result (several blocks allowed)."""
    if not data:
        return (), []
    context = QueryContext(server_tz=server_tz, apply_server_tz=True, tz_mode="aware")
    result = NativeTransform.parse_response(_response_buffer(_SingleChunk(data)), context)
    assert isinstance(result, QueryResult)  # numpy results only when asked for
    rows = [row if isinstance(row, tuple) else tuple(row) for row in result.result_rows]
    return tuple(result.column_names), rows


def bind_parameters(
    sql: str, parameters: QueryParameters | None, server_tz: tzinfo
) -> tuple[str, dict[str, str]]:
    """Server-side ``{name:Type}`` values as ClickHouse text, or ``%(name)s`` bound into the SQL."""
    if not parameters:
        return sql, {}
    bound, params = bind_query(sql, dict(parameters), server_tz)
    text = bound.decode() if isinstance(bound, bytes) else bound
    return text, {key.removeprefix("param_"): str(value) for key, value in params.items()}
