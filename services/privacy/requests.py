"""The privacy audit: one ``privacy_requests`` row per request and state change (newest wins).

It says who asked (principal and role), when, what (kind, the identifier type and its keyed hash,
how many profiles and identifiers, rows removed per table) and the outcome. It never holds an
identifier, a name or any other personal data, so it can outlive the erasure it documents.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from services.core.warehouse.port import Warehouse

RUNNING, COMPLETED, FAILED = "running", "completed", "failed"

COLUMNS = (
    "request_id, kind, status, requested_by, requested_role, requested_at, completed_at, duration_seconds, "
    "subject_type, subject_hash, profiles, identifiers, step, counts, error, updated_at"
)


def new_request_id() -> str:
    return uuid.uuid4().hex


def _utc(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


@dataclass(frozen=True, slots=True)
class PrivacyRequest:
    request_id: str
    kind: str  # export | erase
    requested_by: str
    requested_role: str
    requested_at: datetime
    subject_type: str
    subject_hash: str
    status: str = RUNNING
    step: str = ""
    profiles: int = 0
    identifiers: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    completed_at: datetime | None = None
    duration_seconds: float | None = None
    error: str = ""

    def advanced(self, **changes: Any) -> PrivacyRequest:
        return replace(self, **changes)

    def finished(self, status: str, *, error: str = "", **changes: Any) -> PrivacyRequest:
        done = datetime.now(UTC)
        seconds = (done - self.requested_at).total_seconds()
        return replace(
            self, status=status, completed_at=done, duration_seconds=seconds, error=error, **changes
        )

    def row(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "kind": self.kind,
            "status": self.status,
            "requested_by": self.requested_by,
            "requested_role": self.requested_role,
            "requested_at": _utc(self.requested_at),
            "completed_at": _utc(self.completed_at),
            "duration_seconds": self.duration_seconds,
            "subject_type": self.subject_type,
            "subject_hash": self.subject_hash,
            "profiles": self.profiles,
            "identifiers": self.identifiers,
            "step": self.step,
            "counts": self.counts,
            "error": self.error,
            "updated_at": _utc(datetime.now(UTC)),
        }

    def as_json(self) -> dict[str, Any]:
        """The API's view: the row with ISO times."""
        row = self.row()
        for name in ("requested_at", "completed_at"):
            value = getattr(self, name)
            row[name] = None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        row.pop("updated_at")
        return row


def record(warehouse: Warehouse, request: PrivacyRequest) -> None:
    warehouse.insert_json_rows("privacy_requests", orjson.dumps(request.row()))


def _from_row(row: dict[str, Any]) -> PrivacyRequest:
    return PrivacyRequest(
        request_id=row["request_id"],
        kind=row["kind"],
        requested_by=row["requested_by"],
        requested_role=row["requested_role"],
        requested_at=row["requested_at"],
        subject_type=row["subject_type"],
        subject_hash=row["subject_hash"],
        status=row["status"],
        step=row["step"],
        profiles=int(row["profiles"]),
        identifiers=int(row["identifiers"]),
        counts={str(k): int(v) for k, v in (row["counts"] or {}).items()},
        completed_at=row["completed_at"],
        duration_seconds=row["duration_seconds"],
        error=row["error"],
    )


def read_request(warehouse: Warehouse, request_id: str) -> PrivacyRequest | None:
    rows = warehouse.query_dicts(
        f"SELECT {COLUMNS} FROM {warehouse.database}.privacy_requests FINAL WHERE request_id = {{id:String}}",
        {"id": request_id},
    )
    return _from_row(rows[0]) if rows else None


def list_requests(warehouse: Warehouse, limit: int = 100, kind: str | None = None) -> list[PrivacyRequest]:
    where = "WHERE kind = {kind:String}" if kind else ""
    rows = warehouse.query_dicts(
        f"SELECT {COLUMNS} FROM {warehouse.database}.privacy_requests FINAL {where} "
        "ORDER BY requested_at DESC LIMIT {limit:UInt32}",
        {"limit": limit, **({"kind": kind} if kind else {})},
    )
    return [_from_row(row) for row in rows]


def interrupt_running(warehouse: Warehouse, older_than: timedelta | None = None) -> list[str]:
    """Erasures that a stop interrupted are marked failed at the next start (re-run them).

    ``older_than``: only those requested longer ago than that (several replicas share the table:
    a younger one may be running in another replica, which fails it itself at its timeout)."""
    cutoff = None if older_than is None else datetime.now(UTC) - older_than
    interrupted = [
        r for r in list_requests(warehouse, 1000)
        if r.status == RUNNING and (cutoff is None or _aware(r.requested_at) < cutoff)
    ]  # fmt: skip
    for request in interrupted:
        record(warehouse, request.finished(FAILED, error="interrupted by a platform stop; run it again"))
    return [request.request_id for request in interrupted]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
