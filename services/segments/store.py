"""Segment definitions in the warehouse (``segment_definitions``): the durable catalog.

Applying validates the documents against the whole catalog first (references, cycles), then writes
one row per new or changed definition; a bad batch writes nothing. The segment processor reads the
catalog from here and picks up changes within seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from services.core.warehouse.port import Warehouse
from services.segments.domain.definition import (
    SegmentCatalog,
    SegmentDefinition,
    StoredSegment,
    parse_definition,
)

_COLUMNS = (
    "segment_id",
    "version",
    "name",
    "content_hash",
    "definition",
    "deleted",
    "updated_at",
    "applied_by",
)


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return stamp.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return str(value)


def read_catalog(warehouse: Warehouse) -> SegmentCatalog:
    db = warehouse.database
    rows = warehouse.query_dicts(
        f"SELECT segment_id, version, content_hash, definition, deleted, updated_at "
        f"FROM {db}.segment_definitions FINAL ORDER BY segment_id"
    )
    stored = [
        StoredSegment(
            # stored definitions were checked when applied: a purpose removed since still loads
            parse_definition(orjson.loads(row["definition"]), purposes=None),
            int(row["version"]), row["content_hash"], _iso(row["updated_at"]),
        )
        for row in rows
        if not row["deleted"]
    ]  # fmt: skip
    return SegmentCatalog(stored)


def apply_definitions(
    warehouse: Warehouse, definitions: Iterable[SegmentDefinition], applied_by: str = ""
) -> list[StoredSegment]:
    """Store the new and changed definitions with their next versions; returns them (unchanged
    definitions are left out). DefinitionError, and nothing written, if the catalog would be
    invalid."""
    now = datetime.now(UTC)
    changes = read_catalog(warehouse).plan(definitions, _iso(now))
    if changes:
        rows = b"\n".join(
            orjson.dumps({
                "segment_id": s.id, "version": s.version, "name": s.definition.name,
                "content_hash": s.content_hash, "definition": orjson.dumps(s.definition.document()).decode(),
                "deleted": 0, "updated_at": s.updated_at.replace("T", " ").rstrip("Z"),
                "applied_by": applied_by,
            })
            for s in changes
        )  # fmt: skip
        warehouse.insert_json_rows("segment_definitions", rows, columns=_COLUMNS)
    return changes


def library_applied(warehouse: Warehouse) -> bool:
    rows = warehouse.query(f"SELECT count() FROM {warehouse.database}.segment_definitions")
    return bool(rows and rows[0][0])


def segment_overview(warehouse: Warehouse) -> list[dict[str, Any]]:
    """Every current segment with its size, version, last change and backfill progress."""
    db = warehouse.database
    catalog = read_catalog(warehouse)
    sizes = dict(
        warehouse.query(
            f"SELECT segment_id, countIf(member) FROM {db}.segment_membership FINAL GROUP BY segment_id"
        )
    )
    activated = dict(
        warehouse.query(
            f"SELECT segment_id, countIf(activated) FROM {db}.segment_membership FINAL GROUP BY segment_id"
        )
    )
    backfills = {
        (row["segment_id"], int(row["version"])): row
        for row in warehouse.query_dicts(
            f"SELECT segment_id, version, sum(evaluated) AS evaluated, sum(total) AS total, "
            f"sum(members) AS members, min(done) AS done "
            f"FROM {db}.segment_backfills FINAL GROUP BY segment_id, version"
        )
    }
    out = []
    for stored in catalog.all():
        backfill = backfills.get((stored.id, stored.version))
        out.append({
            "id": stored.id,
            "name": stored.definition.name,
            "version": stored.version,
            "updated_at": stored.updated_at,
            "members": int(sizes.get(stored.id, 0)),
            "activated": int(activated.get(stored.id, 0)),
            "activation": None if stored.definition.activation is None
            else stored.definition.activation.model_dump(),
            "backfill": None if backfill is None else {
                "evaluated": int(backfill["evaluated"]), "total": int(backfill["total"]),
                "members": int(backfill["members"]), "done": bool(backfill["done"]),
            },
            "definition": stored.definition.document(),
        })  # fmt: skip
    return out


def segment_members(warehouse: Warehouse, segment_id: str, limit: int = 100, offset: int = 0) -> list[str]:
    db = warehouse.database
    rows = warehouse.query(
        f"SELECT profile_id FROM {db}.segment_membership FINAL "
        "WHERE segment_id = {segment:String} AND member ORDER BY profile_id "
        "LIMIT {limit:UInt32} OFFSET {offset:UInt32}",
        {"segment": segment_id, "limit": limit, "offset": offset},
    )
    return [row[0] for row in rows]


def record_backfill(
    warehouse: Warehouse, segment_id: str, version: int, worker: str, evaluated: int, total: int,
    members: int, done: bool,
) -> None:  # fmt: skip
    row = orjson.dumps({
        "segment_id": segment_id, "version": version, "worker": worker, "evaluated": evaluated,
        "total": total, "members": members, "done": int(done),
    })  # fmt: skip
    warehouse.insert_json_rows(
        "segment_backfills",
        row,
        columns=("segment_id", "version", "worker", "evaluated", "total", "members", "done"),
    )
