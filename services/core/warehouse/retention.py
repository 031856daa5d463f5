"""Retention of raw events: a ClickHouse TTL on the tables that hold event payloads.

``CDP_EVENTS_TTL_DAYS`` (0 = keep forever) applies to the tables that store the raw event as it
arrived (identifiers as sent, properties, traits, context):

- ``events``: by ``received_at`` (when ingest accepted the event);
- ``events_by_anchor``: the profile 360's copy of the payload. It has no ``received_at``; its
  ``timestamp`` is the clock-skew corrected event time, which is never later than the receipt by
  more than the allowed future skew, so a row there expires no later than its ``events`` row
  (earlier for backdated events).

Derived tables (``order_events``, ``order_completion_lines``, the ``*_state`` aggregates,
``customer_value``), the identity decision tables and ``profiles`` are not raw events and keep no
event payload; they are not touched (docs/privacy.md#pii-hygiene-and-retention).

``apply_retention`` is idempotent: it reads the TTL each table has and changes it only when it
differs. A changed TTL is applied to existing rows by ClickHouse in the background (the
``MATERIALIZE TTL`` mutation ``MODIFY TTL`` starts); expired rows then go at the next TTL merge.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from services.core.warehouse.port import Warehouse

log = logging.getLogger("cdp.warehouse.retention")


@dataclass(frozen=True)
class RetainedTable:
    table: str
    column: str  # a DateTime64 column: the row expires this many days after it


RAW_EVENT_TABLES: tuple[RetainedTable, ...] = (
    RetainedTable("events", "received_at"),
    RetainedTable("events_by_anchor", "timestamp"),
)

_TTL_CLAUSE = re.compile(r"\bTTL\s+(.*?)(?:\s+SETTINGS\s+|$)", re.DOTALL)
_DAYS = re.compile(r"^toDateTime\((\w+)\) \+ toIntervalDay\((\d+)\)$")


def ttl_expression(column: str, days: int) -> str:
    # toDateTime: servers before DateTime64 TTL support need a DateTime (or Date) result.
    return f"toDateTime({column}) + INTERVAL {int(days)} DAY"


def current_ttl(warehouse: Warehouse, table: str) -> str | None:
    """The table's TTL expression as ClickHouse shows it, None without one (or without the table)."""
    rows = warehouse.query(
        "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {table:String}",
        {"db": warehouse.database, "table": table},
    )
    if not rows:
        return None
    found = _TTL_CLAUSE.search(str(rows[0][0]))
    return found.group(1).strip() if found else None


def _same(current: str | None, column: str, days: int) -> bool:
    if current is None:
        return days == 0
    parsed = _DAYS.match(current)
    return days > 0 and parsed is not None and parsed.group(1) == column and int(parsed.group(2)) == days


def apply_retention(warehouse: Warehouse, days: int) -> dict[str, str]:
    """Set (``days`` > 0) or remove (0) the TTL of every raw-event table; returns what changed per
    table (``"set 30 days"``, ``"removed"``), empty when every table already had it."""
    if days < 0:
        raise ValueError("events_ttl_days must be 0 (keep) or a number of days")
    changed: dict[str, str] = {}
    db = warehouse.database
    for spec in RAW_EVENT_TABLES:
        if not warehouse.query(
            "SELECT 1 FROM system.tables WHERE database = {db:String} AND name = {table:String}",
            {"db": db, "table": spec.table},
        ):
            continue
        current = current_ttl(warehouse, spec.table)
        if _same(current, spec.column, days):
            continue
        if days == 0:
            warehouse.command(f"ALTER TABLE {db}.{spec.table} REMOVE TTL")
            changed[spec.table] = "removed"
            log.info("retention: removed the TTL of %s.%s (raw events are kept)", db, spec.table)
        else:
            warehouse.command(f"ALTER TABLE {db}.{spec.table} MODIFY TTL {ttl_expression(spec.column, days)}")
            changed[spec.table] = f"set {days} days"
            log.info(
                "retention: %s.%s rows are deleted %d days after %s (was: %s)",
                db, spec.table, days, spec.column, current or "no TTL",
            )  # fmt: skip
    if not changed:
        log.info(
            "retention: raw events %s",
            f"kept {days} days (unchanged)" if days else "kept without a time limit (CDP_EVENTS_TTL_DAYS=0)",
        )
    return changed
