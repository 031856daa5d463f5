"""Who may use the ClickHouse-compatible endpoint, and what the read-only user may run.

Two users come from the settings: the BI user (read-only) and the writer. The read-only user's
requests run on chDB connections opened with ``readonly=1``, so the engine itself refuses writes,
DDL, settings changes and most table functions. On top of that, each statement is parsed by the
engine (``EXPLAIN AST``) and refused unless it is a read (SELECT/SHOW/DESCRIBE/EXPLAIN/EXISTS/
USE/SET/CHECK), uses only table functions that read nothing outside the warehouse, and calls no
function reading server files (``file()``). ``INTO OUTFILE``/``FROM INFILE`` write or read files
of the host running chDB, so nobody may use them over HTTP.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from services.core.settings import Settings
from services.core.warehouse.chdb_adapter import EngineConnection
from services.core.warehouse.clickhouse_errors import (
    ACCESS_DENIED,
    AUTHENTICATION_FAILED,
    NAMES,
    READONLY,
    REQUIRED_PASSWORD,
    exception_text,
)
from services.core.warehouse.port import WarehouseError
from services.core.warehouse.sql_text import StatementShape, without_span


def refusal(code: int, message: str) -> WarehouseError:
    """An error raised by the endpoint itself, worded as ClickHouse words it."""
    return WarehouseError(exception_text(code, message), code, NAMES.get(code, ""))


@dataclass(frozen=True, slots=True)
class EndpointUser:
    name: str
    password: str
    readonly: bool


class EndpointUsers:
    """The endpoint's users; credentials come as ClickHouse clients send them.

    A request without credentials (or as ClickHouse's passwordless ``default`` user) is the
    read-only user when that user has no password, so ``curl 'http://127.0.0.1:8123/?query=...'``
    works on a single-node install; otherwise it must authenticate.
    """

    def __init__(self, users: list[EndpointUser]) -> None:
        names = [user.name for user in users]
        if len(set(names)) != len(names):
            raise ValueError(f"endpoint user names must differ, got {names}")
        self._users = {user.name: user for user in users}
        self._anonymous = next((user for user in users if user.readonly and not user.password), None)

    @classmethod
    def from_settings(cls, settings: Settings) -> EndpointUsers:
        return cls(
            [
                EndpointUser(
                    settings.clickhouse_bi_user, settings.clickhouse_bi_password.get_secret_value(), True
                ),
                EndpointUser(
                    settings.clickhouse_writer_user,
                    settings.clickhouse_writer_password.get_secret_value(),
                    False,
                ),
            ]
        )

    def authenticate(self, headers: Mapping[str, str], params: Mapping[str, str]) -> EndpointUser:
        """Basic auth, ``X-ClickHouse-User``/``X-ClickHouse-Key`` headers, or ``user``/``password`` params."""
        name, password = _credentials(headers, params)
        anonymous = name is None or (name == "default" and not password and "default" not in self._users)
        if anonymous and self._anonymous is not None:
            return self._anonymous
        if name is None:
            raise refusal(REQUIRED_PASSWORD, "Authentication required: pass a user and password")
        user = self._users.get(name)
        # Compare even for unknown users, so that timing does not tell which names exist.
        expected = user.password if user is not None else "\0unknown user"
        if not hmac.compare_digest(password.encode(), expected.encode()) or user is None:
            raise refusal(
                AUTHENTICATION_FAILED,
                f"{name}: Authentication failed: password is incorrect, or there is no user with such name",
            )
        return user


def _credentials(headers: Mapping[str, str], params: Mapping[str, str]) -> tuple[str | None, str]:
    found: list[tuple[str, str]] = []
    authorization = headers.get("authorization", "")
    if authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise refusal(AUTHENTICATION_FAILED, "Invalid Basic authorization header") from exc
        name, _, password = decoded.partition(":")
        found.append((name, password))
    if "x-clickhouse-user" in headers or "x-clickhouse-key" in headers:
        found.append((headers.get("x-clickhouse-user", "default"), headers.get("x-clickhouse-key", "")))
    if "user" in params or "password" in params:
        found.append((params.get("user", "default"), params.get("password", "")))
    if len(found) > 1:
        raise refusal(
            AUTHENTICATION_FAILED,
            "Invalid authentication: it is not allowed to use several authentication methods simultaneously",
        )
    if not found:
        return None, ""
    return found[0]


# Table functions that read only numbers, literals or the warehouse's own tables.
_READ_ONLY_TABLE_FUNCTIONS = frozenset(
    {
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "generaterandom",
        "generate_series",
        "generateseries",
        "primes",
        "values",
        "view",
        "viewifpermitted",
        "merge",
        "null",
        "format",
    }
)
# Ordinary functions that read files of the host.
_FILE_FUNCTIONS = frozenset({"file"})
_READ_STATEMENTS = ("Select", "Show", "Describe", "Explain", "Exists", "Use", "Set", "Check")
_AST_LINE = re.compile(r"^( *)(\S+)(?: (\S+))?")


def check_server_files(shape: StatementShape, user: EndpointUser) -> None:
    if shape.touches_server_files:
        raise refusal(
            ACCESS_DENIED,
            f"{user.name}: INTO OUTFILE and FROM INFILE would use files of the server; "
            "they are not allowed over HTTP",
        )


def check_read_only_statement(
    conn: EngineConnection, user: EndpointUser, sql: str, shape: StatementShape, params: dict[str, str]
) -> None:
    """Refuse (READONLY / ACCESS_DENIED) anything but a read of the warehouse by ``user``."""
    check_server_files(shape, user)
    explained = conn.query_raw("EXPLAIN AST " + without_span(sql, shape.format_span), "TSVRaw", params)
    lines = explained.data.decode(errors="replace").splitlines()
    if not lines or not lines[0].startswith(_READ_STATEMENTS):
        raise refusal(READONLY, f"{user.name}: Cannot execute query in readonly mode")
    parents: list[str] = []
    for line in lines:
        match = _AST_LINE.match(line)
        if match is None:
            continue
        depth = len(match.group(1))
        del parents[depth:]
        node, detail = match.group(2), (match.group(3) or "").lower()
        if node == "Function":
            if detail in _FILE_FUNCTIONS and not (parents and parents[-1] == "TableExpression"):
                raise refusal(
                    ACCESS_DENIED,
                    f"{user.name}: Not enough privileges. To execute this query, "
                    "it's necessary to have the grant FILE ON *.*",
                )
            if parents and parents[-1] == "TableExpression" and detail not in _READ_ONLY_TABLE_FUNCTIONS:
                raise refusal(
                    READONLY,
                    f"{user.name}: Cannot execute query in readonly mode: "
                    f"table function {match.group(3)} is not allowed",
                )
        parents.append(node)
