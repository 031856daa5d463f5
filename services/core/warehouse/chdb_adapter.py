"""The warehouse port over chDB, the ClickHouse engine embedded in this process.

chDB hosts one engine per process, bound to one data directory ("EmbeddedServer already
initialized with path ..."). ``embedded_engine`` hands out that process-wide engine;
``ChdbWarehouse`` objects for the same directory (any database) share it, and asking for a
second directory fails with a WarehouseError. Each ``EngineConnection`` is an extra chDB
connection to the same engine with its own ``USE``/``SET`` state, which is what the HTTP
endpoint runs requests on.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any

import chdb
import chdb.session

from services.core.warehouse.clickhouse_errors import BAD_ARGUMENTS, from_engine_message
from services.core.warehouse.native_rows import bind_parameters, decode_native, server_timezone
from services.core.warehouse.port import QueryParameters, WarehouseError
from services.core.warehouse.sql_text import qualified_table, quote_identifier, quote_string

# chDB ships py.typed but leaves these unannotated.
_chdb_connect: Any = chdb.connect
_chdb_session: Any = chdb.session.Session


@dataclass(frozen=True, slots=True)
class RawResult:
    """Output bytes of one statement and the engine's counters for it."""

    data: bytes
    rows_read: int = 0
    bytes_read: int = 0
    rows_written: int = 0
    bytes_written: int = 0
    elapsed: float = 0.0


def _raw_result(result: Any) -> RawResult:
    return RawResult(
        data=bytes(result.bytes() or b""),
        rows_read=int(result.rows_read()),
        bytes_read=int(result.bytes_read()),
        rows_written=int(result.rows_written()),
        bytes_written=int(result.bytes_written()),
        elapsed=float(result.elapsed()),
    )


def _engine_error(exc: BaseException) -> WarehouseError:
    return from_engine_message(str(exc))


def _query(conn: Any, sql: str, fmt: str, parameters: dict[str, str] | None) -> RawResult:
    try:
        return _raw_result(conn.query(sql, fmt, params=parameters or {}))
    except Exception as exc:
        raise _engine_error(exc) from exc


def _insert(conn: Any, insert_sql: str, fmt: str, chunks: Iterable[bytes]) -> RawResult:
    try:
        inserter = conn.send_insert(insert_sql, fmt)
    except Exception as exc:
        raise _engine_error(exc) from exc
    stream = InsertStream(inserter)
    try:
        for chunk in chunks:
            stream.append(chunk)
    except BaseException:
        stream.cancel()
        raise
    return stream.finish()


class InsertStream:
    """An open streaming INSERT: ``append`` encoded bytes, then ``finish`` (or ``cancel``)."""

    def __init__(self, inserter: Any) -> None:
        self._inserter = inserter
        self._done = False

    def append(self, chunk: bytes) -> None:
        if not chunk:
            return
        try:
            self._inserter.append(chunk)
        except Exception as exc:
            self.cancel()
            raise _engine_error(exc) from exc

    def finish(self) -> RawResult:
        self._done = True
        try:
            result = self._inserter.finish()
        except Exception as exc:
            raise _engine_error(exc) from exc
        return RawResult(
            b"", rows_written=result.rows_written, bytes_written=result.bytes_written, elapsed=result.elapsed
        )

    def cancel(self) -> None:
        if self._done:
            return
        self._done = True
        with contextlib.suppress(Exception):  # the insert is abandoned either way
            self._inserter.cancel()


class EmbeddedEngine:
    """The process-wide chDB engine: one data directory, one shared session, one lock."""

    def __init__(self, path: Path, session: Any) -> None:
        self.path = path
        self._session = session
        self.lock = threading.RLock()
        self.users = 0
        self.timezone_name = self.query("SELECT timezone()", "TSVRaw").data.decode().strip()
        self.timezone: tzinfo = server_timezone(self.timezone_name)

    def query(self, sql: str, fmt: str, parameters: dict[str, str] | None = None) -> RawResult:
        with self.lock:
            return _query(self._session, sql, fmt, parameters)

    def insert(self, insert_sql: str, fmt: str, chunks: Iterable[bytes]) -> RawResult:
        with self.lock:
            return _insert(self._session, insert_sql, fmt, chunks)

    def connect(self, *, readonly: bool = False) -> EngineConnection:
        target = f"{self.path}?readonly=1" if readonly else str(self.path)
        try:
            return EngineConnection(_chdb_connect(target))
        except Exception as exc:
            raise _engine_error(exc) from exc

    def close(self) -> None:
        with self.lock:
            self._session.close()


class EngineConnection:
    """One more connection to the process engine, with its own USE/SET state.

    Not thread-safe: one request at a time. ``readonly`` connections refuse every write, DDL
    and settings change in the engine itself (ClickHouse ``readonly=1``).
    """

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def query_raw(self, sql: str, fmt: str, parameters: dict[str, str] | None = None) -> RawResult:
        return _query(self._conn, sql, fmt, parameters)

    def open_insert(self, insert_sql: str, fmt: str) -> InsertStream:
        """``insert_sql`` is the INSERT without its FORMAT clause; append data in ``fmt``."""
        try:
            return InsertStream(self._conn.send_insert(insert_sql, fmt))
        except Exception as exc:
            raise _engine_error(exc) from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a broken connection has nothing left to release
            self._conn.close()


_registry_lock = threading.Lock()
_engine: EmbeddedEngine | None = None


def embedded_engine(data_dir: Path) -> EmbeddedEngine:
    """The process-wide engine for ``data_dir``, opened on first use.

    Raises WarehouseError when this process already has another data directory open:
    chDB allows only one per process.
    """
    with _registry_lock:
        return _open_locked(Path(data_dir).expanduser().resolve())


def _open_locked(path: Path) -> EmbeddedEngine:
    """Open or return the engine; the caller holds ``_registry_lock``."""
    global _engine
    if _engine is not None:
        if _engine.path != path:
            raise WarehouseError(
                f"chDB allows one data directory per process: {_engine.path} is open, "
                f"so {path} cannot be opened too",
                BAD_ARGUMENTS,
                "BAD_ARGUMENTS",
            )
        return _engine
    if "?" in str(path):
        raise WarehouseError(
            f"chDB data directory must not contain '?': {path}", BAD_ARGUMENTS, "BAD_ARGUMENTS"
        )
    path.mkdir(parents=True, exist_ok=True)
    try:
        session = _chdb_session(str(path))
    except Exception as exc:
        raise WarehouseError(
            f"cannot open chDB data directory {path} (only one data directory per process, "
            f"and one process per directory): {exc}",
            BAD_ARGUMENTS,
            "BAD_ARGUMENTS",
        ) from exc
    _engine = EmbeddedEngine(path, session)
    return _engine


def embedded_engine_path() -> Path | None:
    """The data directory of the engine this process has open, if any."""
    with _registry_lock:
        return None if _engine is None else _engine.path


def _release(engine: EmbeddedEngine) -> None:
    global _engine
    with _registry_lock:
        engine.users -= 1
        if engine.users > 0 or _engine is not engine:
            return
        _engine = None
    engine.close()


class ChdbWarehouse:
    """Warehouse port over the process-wide chDB engine in ``data_dir``.

    Statements run on the engine's shared session, serialised by its lock, with ``default``
    as the current database: SQL names its tables as ``{database}.table``. Several instances
    (for any databases) share the engine; it closes when the last one is closed.
    """

    def __init__(self, data_dir: Path, database: str) -> None:
        with _registry_lock:
            self._engine = _open_locked(Path(data_dir).expanduser().resolve())
            self._engine.users += 1
        self._database = database
        self._closed = False

    @classmethod
    def for_path(cls, data_dir: Path, database: str = "default") -> ChdbWarehouse:
        """A warehouse on the process-wide engine for ``data_dir`` (opened on first use)."""
        return cls(data_dir, database)

    @property
    def database(self) -> str:
        return self._database

    @property
    def data_dir(self) -> Path:
        return self._engine.path

    @property
    def engine(self) -> EmbeddedEngine:
        return self._engine

    @property
    def timezone(self) -> tzinfo:
        return self._engine.timezone

    def command(self, sql: str, parameters: QueryParameters | None = None) -> None:
        bound, params = bind_parameters(sql, parameters, self._engine.timezone)
        self._engine.query(bound, "TabSeparated", params)

    def query(self, sql: str, parameters: QueryParameters | None = None) -> list[tuple[Any, ...]]:
        return self._select(sql, parameters)[1]

    def query_dicts(self, sql: str, parameters: QueryParameters | None = None) -> list[dict[str, Any]]:
        names, rows = self._select(sql, parameters)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def _select(
        self, sql: str, parameters: QueryParameters | None
    ) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        bound, params = bind_parameters(sql, parameters, self._engine.timezone)
        data = self._engine.query(bound, "Native", params).data
        return decode_native(data, self._engine.timezone)

    def insert_json_rows(
        self, table: str, rows: bytes, *, columns: Sequence[str] | None = None, dedup_token: str | None = None
    ) -> None:
        if not rows.strip():
            return
        self._engine.insert(
            insert_statement(qualified_table(table, self._database), columns, dedup_token),
            "JSONEachRow",
            [rows],
        )

    def query_raw(self, sql: str, fmt: str, parameters: dict[str, str] | None = None) -> RawResult:
        """Run any statement and return its output in ``fmt`` (an inline FORMAT clause wins).

        ``parameters`` are ``{name:Type}`` values already in ClickHouse text form.
        """
        return self._engine.query(sql, fmt, parameters)

    def insert_raw(self, insert_sql: str, fmt: str, chunks: Iterable[bytes]) -> RawResult:
        """Stream ``chunks`` encoded in ``fmt`` into ``insert_sql`` (an INSERT without FORMAT)."""
        return self._engine.insert(insert_sql, fmt, chunks)

    def connect(self, *, readonly: bool = False) -> EngineConnection:
        """An isolated connection to the same engine (own USE/SET state)."""
        return self._engine.connect(readonly=readonly)

    def ping(self) -> bool:
        try:
            return self._engine.query("SELECT 1", "TSVRaw").data.strip() == b"1"
        except WarehouseError:
            return False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _release(self._engine)


def insert_statement(table: str, columns: Sequence[str] | None, dedup_token: str | None) -> str:
    """``INSERT INTO table (cols) [SETTINGS insert_deduplication_token=...]`` without FORMAT."""
    sql = f"INSERT INTO {table}"
    if columns:
        sql += " (" + ", ".join(quote_identifier(column) for column in columns) + ")"
    if dedup_token is not None:
        sql += f" SETTINGS insert_deduplication_token = {quote_string(dedup_token)}"
    return sql
