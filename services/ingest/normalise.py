"""From a client's Segment-spec call to a canonical event, or to a rejection with field paths.

Pure code: no I/O, no clock (the caller passes ``received_at``).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.base import SCHEMA_VERSION, Channel
from schemas.catalog import CATALOG
from schemas.events import CanonicalEvent, IncomingMessage
from schemas.privacy import PURPOSES_CONTEXT
from services.ingest.auth import KeyUse

_CHANNELS = {channel.value: channel for channel in Channel}
# Set by ingest from the request's write key (docs/access.md#write-keys), never taken from a client.
WRITE_KEY_CONTEXT = frozenset({"writeKeySource", "writeKeyId"})
ORDER_FOLLOW_UPS = frozenset({"Order Refunded", "Order Cancelled"})


@dataclass(frozen=True, slots=True)
class FieldError:
    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


@dataclass(frozen=True, slots=True)
class NormalisedEvent:
    """A valid event: ``record`` is the canonical event as it goes on ``cdp.events``.

    The record is built as a plain dict (the hot path of ingest); ``model()`` gives the same event
    as the ``CanonicalEvent`` model, whose JSON Schema documents it.
    """

    message_id: str
    channel: str
    key: bytes
    record: dict[str, Any]

    def to_json(self) -> bytes:
        return orjson.dumps(self.record, option=orjson.OPT_UTC_Z)

    def model(self) -> CanonicalEvent:
        return CanonicalEvent.model_validate(self.record)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input was refused; ``reason`` is a short machine-readable code."""

    reason: str
    errors: tuple[FieldError, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        return (
            "; ".join(f"{e.path}: {e.message}" if e.path else e.message for e in self.errors) or self.reason
        )


def _join_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def validation_errors(exc: ValidationError, prefix: str = "") -> tuple[FieldError, ...]:
    return tuple(FieldError(_join_path(prefix, tuple(err["loc"])), err["msg"]) for err in exc.errors())


def _first(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str):
            value = value.strip()
            if value:
                return value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    return None


def extract_identifiers(msg: IncomingMessage) -> dict[str, str]:
    """Every identifier the call carries (wire names), from where the Segment spec and channels put them."""
    props, traits, ctx_traits = msg.properties, msg.traits, msg.context.traits
    found = {
        "anonymousId": msg.anonymous_id,
        "customerId": msg.user_id,
        "email": _first(traits.get("email"), ctx_traits.get("email"), props.get("email")),
        "phone": _first(traits.get("phone"), ctx_traits.get("phone"), props.get("phone")),
        "chatHandle": _first(
            props.get("chat_handle"), traits.get("chat_handle"), ctx_traits.get("chat_handle")
        ),
        "emailRecipientId": _first(
            props.get("recipient_id"), traits.get("recipient_id"), ctx_traits.get("recipient_id")
        ),
    }
    return {name: value for name, value in found.items() if value is not None}


def corrected_timestamp(
    msg: IncomingMessage, received_at: datetime, batch_sent_at: datetime | None
) -> datetime:
    """Segment's clock-skew correction: the device clock may be wrong, the distance sent->event is not."""
    original = msg.original_timestamp or msg.timestamp
    sent_at = msg.sent_at or batch_sent_at
    if original is None:
        return received_at
    if sent_at is None:
        return original
    return received_at - (sent_at - original)


def _order_follow_up(msg: IncomingMessage) -> bool:
    """Refunds and cancellations may name only the order (Shopify refunds do): the order knows its buyer."""
    return msg.event in ORDER_FOLLOW_UPS and bool(_first(msg.properties.get("order_id")))


def _channel(msg: IncomingMessage) -> Channel:
    spec = CATALOG.get(msg.event or "") if msg.type == "track" else None
    if spec is not None and spec.channel is not None:
        return spec.channel
    return _CHANNELS.get((msg.context.channel or "").lower(), Channel.SHOP)


def _message_id(raw: Mapping[str, Any], msg: IncomingMessage) -> str:
    if msg.message_id:
        return msg.message_id
    if msg.timestamp is None and msg.original_timestamp is None:
        return f"cdp-{uuid.uuid4()}"
    # A client that sends no messageId but retries the same timed call still gets de-duplicated.
    stable = {k: v for k, v in raw.items() if k not in ("sentAt", "receivedAt")}
    return (
        "cdp-"
        + hashlib.blake2b(orjson.dumps(stable, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()
    )


def normalise(
    raw: Any,
    *,
    received_at: datetime,
    default_source: str,
    batch_sent_at: datetime | None = None,
    batch_context: Mapping[str, Any] | None = None,
    max_future_skew: timedelta = timedelta(days=1),
    path: str = "",
    consent_purposes: Collection[str] | None = None,
    write_key: KeyUse | None = None,
) -> NormalisedEvent | Rejection:
    """Validate one call and turn it into the canonical event that goes on ``cdp.events``.

    ``consent_purposes`` are the configured purposes a Consent Updated may name (default: the
    default purposes)."""
    if not isinstance(raw, Mapping):
        return Rejection("invalid_event", (FieldError(path, "an event must be a JSON object"),))
    if batch_context and isinstance(raw.get("context"), Mapping | None):
        raw = {**raw, "context": {**batch_context, **(raw.get("context") or {})}}
    try:
        msg = IncomingMessage.model_validate(raw)
    except ValidationError as exc:
        return Rejection("invalid_event", validation_errors(exc, path))

    identifiers = extract_identifiers(msg)
    if not identifiers and not _order_follow_up(msg):
        return Rejection(
            "missing_identifier",
            (
                FieldError(
                    path or "$",
                    "an event needs at least one identifier: userId, anonymousId, traits.email, "
                    "traits.phone, properties.chat_handle or properties.recipient_id",
                ),
            ),
        )

    properties = msg.properties
    spec = CATALOG.get(msg.event or "") if msg.type == "track" else None
    if spec is not None:
        try:
            typed = spec.properties.model_validate(properties, context={PURPOSES_CONTEXT: consent_purposes})
        except ValidationError as exc:
            return Rejection("invalid_properties", validation_errors(exc, _join_path(path, ("properties",))))
        properties = typed.model_dump(mode="json", exclude_none=True)
        order_revenue = getattr(typed, "order_revenue", None)
        if order_revenue is not None:
            properties["revenue"] = order_revenue

    timestamp = corrected_timestamp(msg, received_at, batch_sent_at)
    if timestamp - received_at > max_future_skew:
        return Rejection(
            "timestamp_in_future",
            (
                FieldError(
                    _join_path(path, ("timestamp",)), f"event time {timestamp.isoformat()} is in the future"
                ),
            ),
        )

    record: dict[str, Any] = {
        "schemaVersion": SCHEMA_VERSION,
        "messageId": _message_id(raw, msg),
        "type": msg.type,
        "event": msg.event if msg.type == "track" else None,
        "name": msg.name,
        "channel": _channel(msg).value,
        "source": msg.context.source or default_source,
        "anonymousId": msg.anonymous_id,
        "userId": msg.user_id,
        "identifiers": identifiers,
        "properties": properties,
        "traits": msg.traits,
        "context": _stamped_context(raw.get("context"), write_key),
        "groupId": msg.group_id,
        "previousId": msg.previous_id,
        "timestamp": timestamp,
        "originalTimestamp": msg.original_timestamp or msg.timestamp,
        "sentAt": msg.sent_at or batch_sent_at,
        "receivedAt": received_at,
    }
    record = {name: value for name, value in record.items() if value is not None}
    return NormalisedEvent(record["messageId"], record["channel"], _partition_key(record), record)


def _stamped_context(context: Mapping[str, Any] | None, write_key: KeyUse | None) -> dict[str, Any]:
    """The client's context with the write key's source and id (``writeKeySource``, ``writeKeyId``)
    set by the platform: a client's own values for them are dropped, never trusted."""
    stamped = {name: value for name, value in (context or {}).items() if name not in WRITE_KEY_CONTEXT}
    if write_key is not None:
        stamped["writeKeySource"] = write_key.source
        stamped["writeKeyId"] = write_key.key_id
    return stamped


def _partition_key(record: Mapping[str, Any]) -> bytes:
    """Key on the most stable person id the event has, so one person's events stay in order."""
    ids = record["identifiers"]
    key = (
        ids.get("customerId") or ids.get("anonymousId") or ids.get("email") or ids.get("emailRecipientId")
        or ids.get("chatHandle") or ids.get("phone") or _first(record["properties"].get("order_id"))
        or record["messageId"]
    )  # fmt: skip
    return str(key).encode()
