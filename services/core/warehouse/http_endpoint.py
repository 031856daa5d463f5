"""A ClickHouse-compatible HTTP interface over the embedded engine (single-node mode).

clickhouse-connect, BI tools and curl talk to it as to a ClickHouse server: queries in the URL
(``?query=``) or the body, ``INSERT ... FORMAT X`` with the data in the body (compressed or
not), settings and ``param_*`` query parameters in the URL, ClickHouse error codes in
``X-ClickHouse-Exception-Code`` with the HTTP status ClickHouse would use.

Differences from a server: results are sent once the query finished (``wait_end_of_query``
always on); multi-statements, external data and ClickHouse's own ``compress``/``decompress``
block format are refused; HTTP sessions (``session_id``) keep USE/SET/temporary tables but a
setting passed in the URL of a session request stays set for that session; GET requests of
the writer run outside its session (they are read-only, as in ClickHouse).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from services.core.settings import Settings
from services.core.warehouse.chdb_adapter import ChdbWarehouse, EngineConnection, RawResult
from services.core.warehouse.clickhouse_errors import (
    INVALID_SESSION_TIMEOUT,
    NOT_IMPLEMENTED,
    READONLY,
    REQUIRED_PASSWORD,
    SESSION_IS_LOCKED,
    SESSION_NOT_FOUND,
    SYNTAX_ERROR,
    UNKNOWN_EXCEPTION,
    UNKNOWN_SETTING,
    exception_text,
    http_status,
)
from services.core.warehouse.http_access import (
    EndpointUser,
    EndpointUsers,
    check_read_only_statement,
    check_server_files,
    refusal,
)
from services.core.warehouse.http_codec import (
    BodyDecoder,
    content_type,
    encode_response,
    form_fields,
    response_encoding,
)
from services.core.warehouse.port import WarehouseError
from services.core.warehouse.sql_text import (
    InsertWithData,
    Undecided,
    locate_insert_data,
    quote_identifier,
    quote_string,
    shape_of,
    without_span,
)

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# URL parameters the HTTP handler consumes itself (everything else is a setting or param_*).
_RESERVED_PARAMS = frozenset(
    {
        "query",
        "user",
        "password",
        "quota_key",
        "query_id",
        "stacktrace",
        "role",
        "buffer_size",
        "wait_end_of_query",
        "session_id",
        "session_timeout",
        "session_check",
        "close_session",
        "client_protocol_version",
        "database",
        "default_format",
        "compress",
        "decompress",
    }
)
# Settings that only steer the HTTP layer; accepted for every user and never SET in the engine.
_HTTP_SETTINGS = frozenset(
    {
        "enable_http_compression",
        "send_progress_in_http_headers",
        "cancel_http_readonly_queries_on_client_close",
        "add_http_cors_header",
        "output_format_parallel_formatting",
    }
)
_INSERT_CHUNK = 1 << 20
_MAX_INSERT_HEADER = 1 << 20
_DEFAULT_SESSION_TIMEOUT = 60.0
_MAX_SESSION_TIMEOUT = 3600.0
_MAX_SESSIONS = 256


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """What the URL and headers of one request ask for, besides the SQL."""

    settings: dict[str, str]
    query_params: dict[str, str]
    database: str | None
    default_format: str
    session_id: str | None
    session_timeout: float
    session_check: bool
    close_session: bool

    @classmethod
    def parse(cls, params: Mapping[str, str], headers: Mapping[str, str]) -> RequestOptions:
        for name in ("compress", "decompress"):
            if params.get(name, "0") not in ("0", ""):
                raise refusal(NOT_IMPLEMENTED, f"'{name}=1' (ClickHouse block compression) is not supported")
        try:
            timeout = float(params.get("session_timeout", _DEFAULT_SESSION_TIMEOUT))
        except ValueError as exc:
            raise refusal(INVALID_SESSION_TIMEOUT, "Invalid session timeout") from exc
        if not 0 < timeout <= _MAX_SESSION_TIMEOUT:
            raise refusal(
                INVALID_SESSION_TIMEOUT, f"Session timeout must be in (0, {_MAX_SESSION_TIMEOUT:g}]"
            )
        return cls(
            settings={
                k: v for k, v in params.items() if k not in _RESERVED_PARAMS and not k.startswith("param_")
            },
            query_params={k[6:]: v for k, v in params.items() if k.startswith("param_")},
            database=params.get("database") or headers.get("x-clickhouse-database") or None,
            default_format=params.get("default_format")
            or headers.get("x-clickhouse-format")
            or "TabSeparated",
            session_id=params.get("session_id") or None,
            session_timeout=timeout,
            session_check=params.get("session_check", "0") == "1",
            close_session=params.get("close_session", "0") == "1",
        )

    def flag(self, name: str) -> bool:
        return self.settings.get(name, "0").lower() in ("1", "true")


@dataclass(slots=True)
class _Session:
    conn: EngineConnection
    timeout: float
    last_used: float
    busy: bool = False


@dataclass(frozen=True, slots=True)
class _SqlText:
    text: str


@dataclass(frozen=True, slots=True)
class _InsertData:
    header: str
    input_format: str
    first: bytes
    rest: AsyncIterator[bytes] | None


async def _no_chunks() -> AsyncIterator[bytes]:
    return
    yield  # pragma: no cover


async def _decoded(chunks: AsyncIterator[bytes], decoder: BodyDecoder) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        out = decoder.decode(chunk)
        if out:
            yield out
    tail = decoder.flush()
    if tail:
        yield tail


async def read_statement(head: str, chunks: AsyncIterator[bytes]) -> _SqlText | _InsertData:
    """The SQL of a request, or an INSERT header and its (still streaming) data.

    As in ClickHouse, the ``query`` parameter comes first and the body follows after a newline.
    """
    buffer = bytearray((head + "\n").encode() if head else b"")
    exhausted = False
    next_look = 0  # lexing is not free: look again only once the buffer doubled
    while True:
        if exhausted or len(buffer) >= next_look:
            next_look = max(2 * len(buffer), 1 << 16)
            decision = locate_insert_data(buffer.decode("latin-1"), complete=exhausted)
            if isinstance(decision, InsertWithData):
                header = decision.header.encode("latin-1").decode()
                first = bytes(buffer[decision.data_start :])
                return _InsertData(header, decision.input_format, first, None if exhausted else chunks)
            if decision is Undecided.NOT_INSERT_WITH_DATA or exhausted or len(buffer) > _MAX_INSERT_HEADER:
                break
        chunk = await anext(chunks, None)
        if chunk is None:
            exhausted = True
        else:
            buffer += chunk
    if not exhausted:
        async for chunk in chunks:
            buffer += chunk
    try:
        return _SqlText(buffer.decode())
    except UnicodeDecodeError as exc:
        raise refusal(SYNTAX_ERROR, f"The query is not valid UTF-8: {exc}") from exc


def _same_setting_value(value: str, current: str) -> bool:
    pair = {value.lower(), current.lower()}
    return value == current or pair <= {"1", "true"} or pair <= {"0", "false"}


def _native_header(columns: list[tuple[str, str]]) -> bytes:
    """A Native block with the columns and no rows (what a server sends for an empty result)."""

    def leb128(value: int, out: bytearray) -> None:
        while True:
            byte = value & 0x7F
            value >>= 7
            out.append(byte | 0x80 if value else byte)
            if not value:
                return

    out = bytearray()
    leb128(len(columns), out)
    leb128(0, out)
    for name, type_name in columns:
        for text in (name.encode(), type_name.encode()):
            leb128(len(text), out)
            out += text
    return bytes(out)


@dataclass
class ClickHouseHttpEndpoint:
    """Request handling of the HTTP interface; ``create_clickhouse_http_app`` wires it to routes."""

    engine: ChdbWarehouse
    users: EndpointUsers
    max_concurrent_queries: int = 8
    display_name: str = field(default_factory=socket.gethostname)
    _sessions: dict[tuple[str, str], _Session] = field(default_factory=dict, init=False)
    _setting_defaults: dict[str, str] | None = field(default=None, init=False)
    _version: str = field(default="", init=False)
    _limiter: anyio.CapacityLimiter | None = field(default=None, init=False)

    # ---- plumbing -------------------------------------------------------------------------

    async def _blocking(self, func: Callable[..., _T], *args: Any) -> _T:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.max_concurrent_queries)
        return await anyio.to_thread.run_sync(func, *args, limiter=self._limiter)

    def _load_catalog(self) -> None:
        if self._setting_defaults is not None:
            return
        conn = self.engine.connect()
        try:
            rows = conn.query_raw("SELECT name, value FROM system.settings", "JSONCompactEachRow").data
            self._version = conn.query_raw("SELECT version()", "TSVRaw").data.decode().strip()
        finally:
            conn.close()
        self._setting_defaults = {name: value for name, value in map(orjson.loads, rows.splitlines())}

    def _settings_to_apply(
        self, user: EndpointUser, options: RequestOptions, method: str
    ) -> list[tuple[str, str]]:
        assert self._setting_defaults is not None
        changes: list[tuple[str, str]] = []
        for name, value in options.settings.items():
            default = "1" if name == "readonly" and user.readonly else self._setting_defaults.get(name)
            if default is None:
                raise refusal(
                    UNKNOWN_SETTING,
                    f"Setting {name} is neither a builtin setting nor started with the prefix 'custom_' "
                    "registered for user-defined settings",
                )
            if name in _HTTP_SETTINGS or name.startswith("http_"):
                continue
            if user.readonly:
                if _same_setting_value(value, default):
                    continue
                raise refusal(READONLY, f"Cannot modify '{name}' setting in readonly mode")
            if name != "readonly":
                changes.append((name, value))
        if not user.readonly:
            if "readonly" in options.settings:
                changes.append(("readonly", options.settings["readonly"]))
            elif method == "GET":
                changes.append(("readonly", "2"))  # ClickHouse runs GET requests read-only
        return changes

    @staticmethod
    def _prepare(conn: EngineConnection, database: str | None, changes: list[tuple[str, str]]) -> None:
        if database:
            conn.query_raw(f"USE {quote_identifier(database)}", "TSVRaw")
        for name, value in changes:
            conn.query_raw(f"SET {quote_identifier(name)} = {quote_string(value)}", "TSVRaw")

    def _session_for(self, user: EndpointUser, options: RequestOptions) -> _Session | None:
        assert options.session_id is not None
        now = time.monotonic()
        expired = [k for k, s in self._sessions.items() if not s.busy and s.last_used + s.timeout < now]
        for key in expired:
            self._sessions.pop(key).conn.close()
        session = self._sessions.get((user.name, options.session_id))
        if session is None:
            if options.session_check:
                raise refusal(SESSION_NOT_FOUND, f"Session {options.session_id} not found")
            return None
        if session.busy:
            raise refusal(SESSION_IS_LOCKED, f"Session {options.session_id} is locked by a concurrent client")
        return session

    @asynccontextmanager
    async def _connection(
        self, user: EndpointUser, options: RequestOptions, method: str
    ) -> AsyncIterator[EngineConnection]:
        if self._setting_defaults is None:
            await self._blocking(self._load_catalog)
        changes = self._settings_to_apply(user, options, method)
        session: _Session | None = None
        key = (user.name, options.session_id or "")
        if options.session_id and not (method == "GET" and not user.readonly):
            session = self._session_for(user, options)
            if session is None:
                idle = [s for s in self._sessions.values() if not s.busy]
                if len(self._sessions) >= _MAX_SESSIONS and idle:
                    oldest = min(idle, key=lambda s: s.last_used)
                    self._sessions = {k: s for k, s in self._sessions.items() if s is not oldest}
                    oldest.conn.close()
                conn = await self._blocking(lambda: self.engine.connect(readonly=user.readonly))
                session = _Session(conn, options.session_timeout, time.monotonic())
                self._sessions[key] = session
            session.busy = True
            session.timeout = options.session_timeout
            conn = session.conn
        else:
            conn = await self._blocking(lambda: self.engine.connect(readonly=user.readonly))
        try:
            await self._blocking(self._prepare, conn, options.database, changes)
            yield conn
        finally:
            with anyio.CancelScope(shield=True):
                if session is None:
                    await self._blocking(conn.close)
                else:
                    session.busy = False
                    session.last_used = time.monotonic()
                    if options.close_session:
                        self._sessions.pop(key, None)
                        await self._blocking(conn.close)

    # ---- responses ------------------------------------------------------------------------

    def _headers(self, query_id: str) -> dict[str, str]:
        return {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": self.engine.engine.timezone_name,
            "X-ClickHouse-Server-Display-Name": self.display_name,
        }

    def _ok(
        self,
        request: Request,
        options: RequestOptions,
        query_id: str,
        result: RawResult,
        output_format: str | None,
        started: float,
    ) -> Response:
        headers = self._headers(query_id)
        headers["X-ClickHouse-Summary"] = orjson.dumps(
            {
                "read_rows": str(result.rows_read),
                "read_bytes": str(result.bytes_read),
                "written_rows": str(result.rows_written),
                "written_bytes": str(result.bytes_written),
                "total_rows_to_read": str(result.rows_read),
                "result_rows": str(result.rows_written),
                "result_bytes": str(len(result.data) or result.bytes_written),
                "elapsed_ns": str(int((time.perf_counter() - started) * 1e9)),
            }
        ).decode()
        media_type = "text/plain; charset=UTF-8"
        if output_format is not None:
            headers["X-ClickHouse-Format"] = output_format
            media_type = content_type(output_format)
        body = result.data
        if body and options.flag("enable_http_compression"):
            encoding = response_encoding(request.headers.get("accept-encoding", ""))
            if encoding is not None:
                body = encode_response(body, encoding)
                headers["Content-Encoding"] = encoding
        if options.flag("add_http_cors_header"):
            headers["Access-Control-Allow-Origin"] = "*"
        return Response(body, 200, headers, media_type=media_type)

    def _error(self, exc: WarehouseError, query_id: str) -> Response:
        code = exc.code or UNKNOWN_EXCEPTION
        text = str(exc) if str(exc).startswith("Code: ") else exception_text(code, str(exc), exc.name or None)
        headers = self._headers(query_id)
        headers["X-ClickHouse-Exception-Code"] = str(code)
        if code == REQUIRED_PASSWORD:
            headers["WWW-Authenticate"] = 'Basic realm="ClickHouse", charset="UTF-8"'
        version = f" (version {self._version})" if self._version else ""
        return PlainTextResponse(f"{text}{version}\n", http_status(code), headers)

    # ---- routes ---------------------------------------------------------------------------

    async def ping(self, request: Request) -> Response:
        return PlainTextResponse("Ok.\n")

    async def unknown_path(self, request: Request) -> Response:
        text = f"There is no handle {request.url.path}\n\nUse / or /ping for health checks.\n"
        return PlainTextResponse(text, 404)

    async def root(self, request: Request) -> Response:
        params = dict(request.query_params)
        query_id = params.get("query_id") or str(uuid.uuid4())
        if request.method == "GET" and "query" not in params:
            return PlainTextResponse("Ok.\n")
        try:
            return await self._query(request, params, query_id)
        except WarehouseError as exc:
            return self._error(exc, query_id)
        except Exception as exc:
            logger.exception("ClickHouse HTTP endpoint failed on query %s", query_id)
            return self._error(WarehouseError(f"Internal error: {exc!r}", UNKNOWN_EXCEPTION), query_id)

    async def _query(self, request: Request, params: dict[str, str], query_id: str) -> Response:
        started = time.perf_counter()
        user = self.users.authenticate(request.headers, params)
        chunks: AsyncIterator[bytes] = _no_chunks()
        if request.method == "POST":
            ctype = request.headers.get("content-type", "")
            if ctype.lower().startswith("multipart/form-data"):
                params.update(form_fields(ctype, await request.body()))
            else:
                decoder = BodyDecoder(request.headers.get("content-encoding", ""))
                chunks = _decoded(request.stream(), decoder)
        options = RequestOptions.parse(params, request.headers)
        statement = await read_statement(params.get("query", ""), chunks)
        if isinstance(statement, _InsertData):
            result = await self._insert(user, options, request.method, statement)
            return self._ok(request, options, query_id, result, None, started)
        shape = shape_of(statement.text)
        if shape.statement_count == 0:
            raise refusal(SYNTAX_ERROR, "Empty query")
        if shape.statement_count > 1:
            raise refusal(SYNTAX_ERROR, "Syntax error (Multi-statements are not allowed)")
        check_server_files(shape, user)
        output_format = shape.output_format or options.default_format

        def run(conn: EngineConnection) -> RawResult:
            if user.readonly:
                check_read_only_statement(conn, user, statement.text, shape, options.query_params)
            result = conn.query_raw(statement.text, output_format, options.query_params)
            if not result.data and output_format == "Native" and shape.keyword in ("SELECT", "WITH", "("):
                return self._with_native_header(conn, statement.text, shape.format_span, options, result)
            return result

        if user.readonly and shape.keyword == "INSERT":
            raise refusal(READONLY, f"{user.name}: Cannot execute query in readonly mode")

        async with self._connection(user, options, request.method) as conn:
            result = await self._blocking(run, conn)
        return self._ok(
            request, options, query_id, result, output_format if shape.returns_rows else None, started
        )

    @staticmethod
    def _with_native_header(
        conn: EngineConnection,
        sql: str,
        span: tuple[int, int] | None,
        options: RequestOptions,
        result: RawResult,
    ) -> RawResult:
        try:
            described = conn.query_raw(
                f"DESCRIBE TABLE ({without_span(sql, span)})", "JSONCompactEachRow", options.query_params
            )
        except WarehouseError:
            return result  # no column list then, as the query itself succeeded
        columns = [(row[0], row[1]) for row in map(orjson.loads, described.data.splitlines())]
        return RawResult(
            _native_header(columns),
            result.rows_read,
            result.bytes_read,
            result.rows_written,
            result.bytes_written,
        )

    async def _insert(
        self, user: EndpointUser, options: RequestOptions, method: str, statement: _InsertData
    ) -> RawResult:
        if user.readonly or method == "GET":
            raise refusal(READONLY, f"{user.name}: Cannot execute query in readonly mode")
        check_server_files(shape_of(statement.header), user)
        async with self._connection(user, options, method) as conn:
            stream = await self._blocking(conn.open_insert, statement.header, statement.input_format)
            try:
                pending = bytearray(statement.first)
                if statement.rest is not None:
                    async for chunk in statement.rest:
                        pending += chunk
                        if len(pending) >= _INSERT_CHUNK:
                            await self._blocking(stream.append, bytes(pending))
                            pending.clear()
                await self._blocking(stream.append, bytes(pending))
                return await self._blocking(stream.finish)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self._blocking(stream.cancel)
                raise

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            session.conn.close()


def create_clickhouse_http_app(
    engine: ChdbWarehouse, settings: Settings, *, max_concurrent_queries: int = 8
) -> Starlette:
    """The ClickHouse HTTP interface over ``engine`` as an ASGI app, users from ``settings``."""
    endpoint = ClickHouseHttpEndpoint(engine, EndpointUsers.from_settings(settings), max_concurrent_queries)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await endpoint.close()

    routes = [
        Route("/ping", endpoint.ping, methods=["GET"]),
        Route("/replicas_status", endpoint.ping, methods=["GET"]),
        Route("/", endpoint.root, methods=["GET", "POST"]),
        Route("/{path:path}", endpoint.unknown_path, methods=["GET", "POST", "PUT", "DELETE"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


@dataclass
class RunningServer:
    """A uvicorn server running in a background thread (stop it with ``stop`` or ``with``)."""

    host: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_in_thread(
    app: Any, host: str = "127.0.0.1", port: int = 0, *, startup_timeout: float = 10.0
) -> RunningServer:
    """Serve an ASGI app with uvicorn in a daemon thread; ``port=0`` picks a free port."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and without
    # it every response waits ~40 ms for a delayed ACK (headers and body are separate writes).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", ws="none", loop="asyncio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{host}:{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.01)
    return RunningServer(host, sock.getsockname()[1], server, thread)
