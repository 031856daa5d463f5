"""ClickHouse error codes, their HTTP statuses and the ``Code: N. DB::Exception: ...`` text.

The status table follows ClickHouse's ``src/Server/HTTP/exceptionCodeToHTTPStatus.cpp`` with one
deliberate change: READONLY (164) is answered with 403 instead of ClickHouse's default 500,
because a refused write is the client's fault and 5xx invites retries.
"""

from __future__ import annotations

import re

from services.core.warehouse.port import WarehouseError

CANNOT_PARSE_TEXT = 6
BAD_ARGUMENTS = 36
NOT_IMPLEMENTED = 48
SYNTAX_ERROR = 62
UNKNOWN_FORMAT = 73
UNKNOWN_DATABASE = 81
UNKNOWN_SETTING = 115
READONLY = 164
REQUIRED_PASSWORD = 194
CANNOT_DECOMPRESS = 271
SESSION_NOT_FOUND = 372
SESSION_IS_LOCKED = 373
INVALID_SESSION_TIMEOUT = 374
ACCESS_DENIED = 497
AUTHENTICATION_FAILED = 516
UNKNOWN_EXCEPTION = 1002

NAMES: dict[int, str] = {
    CANNOT_PARSE_TEXT: "CANNOT_PARSE_TEXT",
    BAD_ARGUMENTS: "BAD_ARGUMENTS",
    NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
    SYNTAX_ERROR: "SYNTAX_ERROR",
    UNKNOWN_FORMAT: "UNKNOWN_FORMAT",
    UNKNOWN_DATABASE: "UNKNOWN_DATABASE",
    UNKNOWN_SETTING: "UNKNOWN_SETTING",
    READONLY: "READONLY",
    REQUIRED_PASSWORD: "REQUIRED_PASSWORD",
    CANNOT_DECOMPRESS: "CANNOT_DECOMPRESS",
    SESSION_NOT_FOUND: "SESSION_NOT_FOUND",
    SESSION_IS_LOCKED: "SESSION_IS_LOCKED",
    INVALID_SESSION_TIMEOUT: "INVALID_SESSION_TIMEOUT",
    ACCESS_DENIED: "ACCESS_DENIED",
    AUTHENTICATION_FAILED: "AUTHENTICATION_FAILED",
    UNKNOWN_EXCEPTION: "UNKNOWN_EXCEPTION",
}

_STATUS_401 = frozenset({194})
_STATUS_403 = frozenset({192, 193, 516, 512, 497, READONLY})
_STATUS_400 = frozenset(
    {
        36,
        427,
        6,
        25,
        26,
        38,
        41,
        72,
        441,
        675,
        676,
        27,
        376,
        15,
        44,
        37,
        123,
        8,
        167,
        168,
        223,
        62,
        117,
        53,
        321,
    }
)
_STATUS_404 = frozenset({60, 46, 47, 50, 56, 81, 115, 152, 63, 73, 336, 78, 511})
_STATUS_OTHER = {229: 413, 48: 501, 209: 503, 76: 503, 381: 411, 159: 408, 439: 503, 779: 415}


def http_status(code: int) -> int:
    if code in _STATUS_401:
        return 401
    if code in _STATUS_403:
        return 403
    if code in _STATUS_400:
        return 400
    if code in _STATUS_404:
        return 404
    return _STATUS_OTHER.get(code, 500)


_CODE_RE = re.compile(r"Code: (\d+)\. ")
_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)")
_VERSION_RE = re.compile(r"\s*\(version [^()]*(?:\([^()]*\))?[^()]*\)\.?")


def exception_text(code: int, message: str, name: str | None = None) -> str:
    """``Code: 164. DB::Exception: <message>. (READONLY)`` for errors raised outside the engine."""
    name = name or NAMES.get(code, "UNKNOWN_EXCEPTION")
    message = message.rstrip(".")
    return f"Code: {code}. DB::Exception: {message}. ({name})"


def from_engine_message(raw: str) -> WarehouseError:
    """A WarehouseError from an engine message, with the nesting chDB adds taken out.

    chDB sometimes wraps one exception several times ("Code: 73. DB::Exception: Code: 73.
    DB::Exception: ... (UNKNOWN_FORMAT) (version ...). (UNKNOWN_FORMAT)"); the result keeps
    one "Code: N. DB::Exception:" prefix and one "(NAME)" suffix, like a server would send.
    """
    match = _CODE_RE.search(raw)
    if match is None:
        return WarehouseError(
            raw.strip() or "unknown engine error", UNKNOWN_EXCEPTION, NAMES[UNKNOWN_EXCEPTION]
        )
    code = int(match.group(1))
    prefix = f"Code: {code}. DB::Exception: "
    text = raw[match.start() :].strip()
    while text.startswith(prefix + prefix):
        text = text[len(prefix) :]
    text = _VERSION_RE.sub("", text)
    names = _NAME_RE.findall(text)
    name = names[-1] if names else NAMES.get(code, "")
    if name:
        marker = f"({name})"
        first = text.find(marker)
        if first >= 0:
            text = text[: first + len(marker)]
    return WarehouseError(text, code, name)
