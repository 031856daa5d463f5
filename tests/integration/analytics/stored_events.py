"""Events stored the way the platform's sinks store them, for analytics tests.

``EventLog`` builds canonical track events; ``store`` writes them as ``cdp.identity.resolved``
records (profile id, anchor) into ``events``, so every materialized view sees them as it would in
production, and merges into ``profile_redirects``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from services.core.warehouse.port import Warehouse

_ids = itertools.count(1)


@dataclass
class EventLog:
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (profile id, event)
    redirects: list[dict[str, Any]] = field(default_factory=list)

    def track(
        self,
        profile_id: str,
        event: str,
        at: datetime,
        channel: str,
        message_id: str | None = None,
        **properties: Any,
    ) -> str:
        message_id = message_id or f"m-{next(_ids)}"
        self.events.append((profile_id, {
            "schemaVersion": 1, "messageId": message_id, "type": "track", "event": event,
            "channel": channel, "source": "test",
            "identifiers": {"customerId": profile_id},
            "userId": profile_id,
            "properties": properties, "traits": {}, "context": {},
            "timestamp": at.isoformat(), "receivedAt": at.isoformat(),
        }))  # fmt: skip
        return message_id

    def order(self, profile_id: str, order_id: str, at: datetime, revenue: float | None, **more: Any) -> str:
        props: dict[str, Any] = {"order_id": order_id, "currency": "EUR", **more}
        if revenue is not None:
            props["revenue"] = revenue
        return self.track(profile_id, "Order Completed", at, "shop", **props)

    def merge(self, absorbed: str, survivor: str) -> None:
        self.redirects.append(
            {"absorbed": absorbed, "survivor": survivor, "version": len(self.redirects) + 1}
        )


def insert_records(
    warehouse: Warehouse, table: str, records: Sequence[Any], topic: str | None = None
) -> None:
    """``records`` into ``table`` the way a topic sink writes them (``_raw`` plus Kafka position)."""
    rows = []
    for offset, record in enumerate(records):
        row: dict[str, Any] = {"_raw": orjson.dumps(record).decode(), "kafka_cluster": "test",
                               "kafka_partition": 0, "kafka_offset": offset}  # fmt: skip
        if topic is not None:
            row["kafka_topic"] = topic
        rows.append(orjson.dumps(row))
    if rows:
        warehouse.insert_json_rows(table, b"\n".join(rows), columns=list(orjson.loads(rows[0])))


def store(warehouse: Warehouse, log: EventLog, chunk: int = 50_000) -> None:
    records = [
        {"schemaVersion": 1, "kind": "event", "profileId": pid, "position": position,
         "identifiers": [f"customer_id:{pid}"], "event": event}
        for position, (pid, event) in enumerate(log.events, start=1)
    ]  # fmt: skip
    for start in range(0, len(records), chunk):
        insert_records(warehouse, "events", records[start : start + chunk], "cdp.identity.resolved")
    insert_records(warehouse, "profile_redirects", log.redirects)


def rows(warehouse: Warehouse, sql: str) -> list[dict[str, Any]]:
    return warehouse.query_dicts(sql.replace("{db}", warehouse.database))


def column(records: Iterable[dict[str, Any]], name: str) -> list[Any]:
    return [r[name] for r in records]
