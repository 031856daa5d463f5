"""Event time as integer epoch microseconds: exact, totally ordered and JSON-friendly.

ISO strings do not sort correctly across formats (``...:00Z`` vs ``...:00.5Z``), and floats lose
microseconds, so profile state keeps event time as an int and formats it only for output.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
DAY_MICROS = 86_400_000_000

# (event time, message id): the order in which writes win. The message id breaks ties between
# events of the same microsecond so that every worker picks the same winner.
Stamp = tuple[int, str]


def to_micros(value: object) -> int:
    """Epoch microseconds of an ISO-8601 string or a datetime (naive values are taken as UTC)."""
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
    elif isinstance(value, datetime):
        parsed = value
    else:
        raise ValueError(f"event time must be an ISO-8601 string or a datetime, not {type(value).__name__}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed - EPOCH) // MICROSECOND


def to_iso(micros: int) -> str:
    """The same format orjson writes on ``cdp.events``: UTC with a ``Z``, microseconds only if set."""
    return (EPOCH + timedelta(microseconds=micros)).isoformat().replace("+00:00", "Z")


def day_of(micros: int) -> int:
    """The UTC calendar day (days since 1970-01-01) an event time falls on."""
    return micros // DAY_MICROS


def iso_or_none(micros: int | None) -> str | None:
    return None if micros is None else to_iso(micros)


def latest(a: int | None, b: int | None) -> int | None:
    """The later of two optional event times (the join of a "last ..." register)."""
    return b if a is None else a if b is None else max(a, b)


def earliest(a: int | None, b: int | None) -> int | None:
    """The earlier of two optional event times (the join of a "first ..." register)."""
    return b if a is None else a if b is None else min(a, b)
