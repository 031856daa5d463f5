"""Zendesk webhooks (chat channel) subscribed to Zendesk events, HMAC-signed with a timestamp.

Mapped: ``ticket.created`` (Conversation Started, plus Complaint Opened for complaint tags),
``ticket.tags_changed`` (Complaint Opened), ``ticket.status_changed`` (Complaint Resolved on
solved/closed, Complaint Opened on reopening) and ``user.created`` (identify: email <-> requester
id). Other event types are skipped. Satisfaction ratings are not mapped: Zendesk's event
reference documents no payload for them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from schemas.base import Channel
from services.ingest.webhooks.base import (
    Clock,
    MappedPayload,
    Message,
    PayloadError,
    SignatureError,
    SkippedEvent,
    lower_keys,
    utc_now,
)
from services.ingest.webhooks.payload import JsonNode, parse_json
from services.ingest.webhooks.signing import (
    base64_signature,
    check_fresh,
    check_hmac_sha256,
    require_secret,
    required_header,
)
from services.ingest.webhooks.zendesk_events import (
    EVENT_PREFIX,
    ticket_created,
    ticket_status_changed,
    ticket_tags_changed,
    user_created,
)

SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"
WEBHOOK_ID_HEADER = "X-Zendesk-Webhook-Id"
DEFAULT_COMPLAINT_TAGS = frozenset({"complaint", "beschwerde", "reklamation"})


@dataclass(frozen=True, slots=True)
class ZendeskProvider:
    name: str = "zendesk"
    channel: Channel = Channel.CHAT
    secret_setting: str = "zendesk_webhook_secret"
    tolerance: timedelta = timedelta(minutes=10)
    clock: Clock = field(default=utc_now, repr=False)
    complaint_tags: frozenset[str] = DEFAULT_COMPLAINT_TAGS

    def detect(self, headers: Mapping[str, str], body: bytes) -> bool:
        names = lower_keys(headers)
        if SIGNATURE_HEADER.lower() in names or WEBHOOK_ID_HEADER.lower() in names:
            return True
        return f'"{EVENT_PREFIX}'.encode() in body

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str) -> None:
        """``X-Zendesk-Webhook-Signature`` = base64(HMAC-SHA256(signing secret, timestamp + body))."""
        key = require_secret(secret, "Zendesk")
        names = lower_keys(headers)
        signature = base64_signature(required_header(names, SIGNATURE_HEADER), SIGNATURE_HEADER)
        timestamp = required_header(names, TIMESTAMP_HEADER)
        check_hmac_sha256(key, timestamp.encode() + body, signature, SIGNATURE_HEADER)
        check_fresh(_signed_at(timestamp), self.clock(), self.tolerance, TIMESTAMP_HEADER)

    def map_payload(self, headers: Mapping[str, str], body: bytes) -> MappedPayload:
        root = parse_json(body)
        event_type = root.field("type").text()
        if not event_type.startswith(EVENT_PREFIX):
            raise PayloadError("type", f"expected a Zendesk event type {EVENT_PREFIX}..., got {event_type!r}")
        handler = self._handlers().get(event_type.removeprefix(EVENT_PREFIX))
        messages = handler(root) if handler else []
        if messages:
            return MappedPayload(messages=messages)
        reason = "not a complaint or customer change" if handler else "event type has no CDP meaning"
        return MappedPayload(skipped=[SkippedEvent("$", event_type, reason)])

    def to_messages(self, headers: Mapping[str, str], body: bytes) -> list[Message]:
        return self.map_payload(headers, body).messages

    def _handlers(self) -> dict[str, Callable[[JsonNode], list[Message]]]:
        tags = {tag.lower() for tag in self.complaint_tags}
        return {
            "ticket.created": lambda payload: ticket_created(payload, tags),
            "ticket.tags_changed": lambda payload: ticket_tags_changed(payload, tags),
            "ticket.status_changed": lambda payload: ticket_status_changed(payload, tags),
            "user.created": user_created,
        }


def _signed_at(value: str) -> datetime:
    """Zendesk sends an ISO 8601 time (``2024-04-17T17:18:10Z``); unix seconds are accepted too."""
    try:
        parsed = datetime.fromtimestamp(int(value), UTC) if value.isdigit() else datetime.fromisoformat(value)
    except (ValueError, OverflowError, OSError):
        raise SignatureError(f"header {TIMESTAMP_HEADER} is not a timestamp") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
