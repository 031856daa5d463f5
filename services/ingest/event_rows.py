"""Canonical event JSON (a ``cdp.events`` record) -> one row of the warehouse ``events`` table."""

from __future__ import annotations

from typing import Any

import orjson

EVENT_COLUMNS = (
    "message_id", "type", "event", "name", "channel", "source", "anonymous_id", "user_id", "email", "phone",
    "chat_handle", "email_recipient_id", "group_id", "previous_id", "order_id", "revenue", "currency",
    "properties", "traits", "context", "timestamp", "original_timestamp", "sent_at", "received_at",
    "schema_version", "kafka_cluster", "kafka_partition", "kafka_offset",
)  # fmt: skip

ORDER_EVENTS = frozenset({"Order Completed", "Order Refunded", "Order Cancelled", "Checkout Started"})


def clickhouse_time(iso: str | None) -> str | None:
    """'2026-11-22T10:00:00.123000Z' -> '2026-11-22 10:00:00.123' (what DateTime64(3) parses)."""
    if iso is None:
        return None
    text = iso.removesuffix("Z").removesuffix("+00:00")
    return text[:10] + " " + text[11:23]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def event_row(event: dict[str, Any], cluster: str, partition: int, offset: int) -> dict[str, Any]:
    ids = event.get("identifiers") or {}
    props = event.get("properties") or {}
    is_order = event.get("event") in ORDER_EVENTS
    revenue = props.get("revenue") if is_order else None
    return {
        "message_id": event["messageId"],
        "type": event["type"],
        "event": _text(event.get("event")),
        "name": _text(event.get("name")),
        "channel": event["channel"],
        "source": event["source"],
        "anonymous_id": _text(ids.get("anonymousId")),
        "user_id": _text(ids.get("customerId")),
        "email": _text(ids.get("email")),
        "phone": _text(ids.get("phone")),
        "chat_handle": _text(ids.get("chatHandle")),
        "email_recipient_id": _text(ids.get("emailRecipientId")),
        "group_id": _text(event.get("groupId")),
        "previous_id": _text(event.get("previousId")),
        "order_id": _text(props.get("order_id")) if is_order else "",
        "revenue": revenue if isinstance(revenue, int | float) else None,
        "currency": _text(props.get("currency")) if is_order else "",
        "properties": orjson.dumps(props).decode(),
        "traits": orjson.dumps(event.get("traits") or {}).decode(),
        "context": orjson.dumps(event.get("context") or {}).decode(),
        "timestamp": clickhouse_time(event["timestamp"]),
        "original_timestamp": clickhouse_time(event.get("originalTimestamp")),
        "sent_at": clickhouse_time(event.get("sentAt")),
        "received_at": clickhouse_time(event["receivedAt"]),
        "schema_version": event.get("schemaVersion", 1),
        "kafka_cluster": cluster,
        "kafka_partition": partition,
        "kafka_offset": offset,
    }
