"""The events Kafka acknowledged to ingest (the client got 200) that are not in the warehouse yet.

Single node only: the Tansu broker keeps its topics in memory, so when it dies, every event it had
acknowledged that had not reached ``events`` is lost with it. ``cdp up`` notes the messageId of
every acknowledged event here, and its ``events`` sinks note the ones they wrote; what is left
when the broker dies is looked up in the warehouse once, and the ones not there are named as lost
(``services/runtime.py``). Distributed mode does not track: Apache Kafka keeps what it
acknowledged.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

import orjson

from services.core.topic_sink import is_canonical_event
from services.core.warehouse.port import Warehouse

EARLY_SECONDS = 60.0
"""How long a written id whose acknowledgement was not noted yet is remembered (ingest notes it
when its request resumes, which can be after the sink wrote the event)."""
CHECK_CHUNK = 2_000
"""messageIds per warehouse query (a query parameter: kept well below URL limits)."""


def written_message_ids(rows: Sequence[bytes]) -> list[str]:
    """The messageIds of ``events`` rows as a sink writes them (``{"_raw": record, ...}``)."""
    ids: list[str] = []
    for row in rows:
        try:
            record = orjson.loads(row)["_raw"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        if isinstance(record, dict) and is_canonical_event(record):
            nested = record.get("event")
            ids.append((nested if isinstance(nested, dict) else record)["messageId"])
    return ids


class AckedEvents:
    """messageId -> when Kafka acknowledged it, until an ``events`` sink wrote it.

    ``add``, ``settle`` and ``take`` run on the event loop; ``note_rows`` runs in the sinks'
    threads and only queues. At most ``max_entries`` are kept: beyond that the oldest are dropped
    and counted in ``forgotten`` (a loss report then says that many could not be checked).
    """

    def __init__(self, max_entries: int = 2_000_000) -> None:
        self._acked: dict[str, float] = {}
        self._written: deque[list[str]] = deque()
        self._early: dict[str, float] = {}
        self._max = max_entries
        self.forgotten = 0

    def __len__(self) -> int:
        return len(self._acked)

    def add(self, message_ids: Iterable[str], now: float) -> None:
        acked, early = self._acked, self._early
        for message_id in message_ids:
            if early.pop(message_id, None) is None:
                acked[message_id] = now
        while len(acked) > self._max:
            del acked[next(iter(acked))]
            self.forgotten += 1

    def note_rows(self, rows: Sequence[bytes]) -> None:
        """An ``events`` sink wrote these rows (any thread)."""
        ids = written_message_ids(rows)
        if ids:
            self._written.append(ids)

    def settle(self, now: float) -> None:
        """Forget what the sinks wrote since the last call."""
        acked, early, written = self._acked, self._early, self._written
        while written:
            for message_id in written.popleft():
                if acked.pop(message_id, None) is None:
                    early[message_id] = now
        while early:
            oldest, at = next(iter(early.items()))
            if now - at < EARLY_SECONDS:
                break
            del early[oldest]

    def take(self, now: float) -> tuple[list[str], int]:
        """Every id not written yet and the number forgotten; tracking starts again from nothing."""
        self.settle(now)
        ids, forgotten = list(self._acked), self.forgotten
        self._acked, self._early, self.forgotten = {}, {}, 0
        return ids, forgotten


def stored_message_ids(warehouse: Warehouse, message_ids: Sequence[str]) -> set[str]:
    """The ones of ``message_ids`` that ``events`` holds."""
    sql = (
        f"SELECT DISTINCT message_id FROM {warehouse.database}.events "
        "WHERE message_id IN {ids:Array(String)}"
    )
    found: set[str] = set()
    for start in range(0, len(message_ids), CHECK_CHUNK):
        rows = warehouse.query(sql, {"ids": list(message_ids[start : start + CHECK_CHUNK])})
        found.update(str(row[0]) for row in rows)
    return found
