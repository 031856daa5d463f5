"""The admin audit log: one row per admin API call, allowed or refused, in ``cdp.admin_audit``.

A record names the principal and role, the method, the route *template* (never the concrete path or
query string, which can hold an email address), the status and the outcome. Records are queued
without blocking the request and written in batches by a background thread about once a second;
``close`` writes what is left at shutdown. A failing warehouse never fails a request: the batch is
kept and retried, and beyond ``max_pending`` records the oldest are dropped and counted.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import orjson

from services.core.warehouse.port import Warehouse

log = logging.getLogger(__name__)

TABLE = "admin_audit"
OUTCOMES = ("allowed", "unauthenticated", "forbidden")
COLUMNS = ("at", "request_id", "principal", "role", "token_id", "method", "route", "status", "outcome")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: float  # unix seconds
    request_id: str
    principal: str  # empty when unauthenticated
    role: str
    token_id: str
    method: str
    route: str  # the route template, e.g. /api/v1/profiles/{profile_id}
    status: int
    outcome: str  # allowed, unauthenticated or forbidden

    def row(self) -> dict[str, object]:
        row = asdict(self)
        row["at"] = _datetime_text(self.at)
        return row


AuditSink = Callable[[AuditEntry], None]


def _datetime_text(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class AuditLog:
    """Queue audit entries (``log(entry)``, never blocking) and write them in batches."""

    def __init__(
        self,
        warehouse: Warehouse,
        *,
        flush_seconds: float = 1.0,
        max_batch: int = 5000,
        max_pending: int = 100_000,
    ) -> None:
        self._warehouse = warehouse
        self._flush_seconds = flush_seconds
        self._max_batch = max_batch
        self._pending: collections.deque[AuditEntry] = collections.deque()
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.written = 0

    def __call__(self, entry: AuditEntry) -> None:
        with self._lock:
            if len(self._pending) >= self._max_pending:
                self._pending.popleft()
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 10_000 == 0:
                    log.error("admin audit: the warehouse is behind, %d audit records dropped", self.dropped)
            self._pending.append(entry)
            if len(self._pending) >= self._max_batch:
                self._wake.set()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="admin-audit", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            self.flush()

    def flush(self) -> int:
        """Write every queued record now; the number written (0 when the warehouse failed)."""
        with self._write_lock:
            written = 0
            while True:
                with self._lock:
                    batch = [self._pending.popleft() for _ in range(min(self._max_batch, len(self._pending)))]
                if not batch:
                    return written
                rows = b"\n".join(orjson.dumps(entry.row()) for entry in batch)
                try:
                    self._warehouse.insert_json_rows(TABLE, rows, columns=COLUMNS)
                except Exception as exc:
                    with self._lock:  # keep them for the next attempt, in order
                        self._pending.extendleft(reversed(batch))
                    log.warning("admin audit: writing %d records failed (%s); retrying", len(batch), exc)
                    return written
                written += len(batch)
                self.written += len(batch)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the writer and write what is left (at shutdown, before the warehouse closes)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            if not self.flush():
                time.sleep(0.1)
        if self.pending:
            log.error("admin audit: %d records could not be written at shutdown", self.pending)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)


def read_audit(warehouse: Warehouse, limit: int) -> list[dict[str, object]]:
    """The newest ``limit`` audit records, newest first (``at`` as ISO 8601 with milliseconds)."""
    rows = warehouse.query_dicts(
        "SELECT toUnixTimestamp64Milli(at) AS at_ms, request_id, principal, role, token_id, method, route, "
        f"status, outcome FROM {warehouse.database}.{TABLE} "
        "ORDER BY at DESC, request_id DESC LIMIT {limit:UInt32}",
        {"limit": limit},
    )
    return [{"at": _iso_ms(int(str(row.pop("at_ms")))), **row} for row in rows]


def _iso_ms(milliseconds: int) -> str:
    moment = datetime.fromtimestamp(milliseconds / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{milliseconds % 1000:03d}Z"
