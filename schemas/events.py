"""The event envelope: what clients send (Segment spec) and what the platform puts on ``cdp.events``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Field, field_validator, model_validator

from schemas.base import SCHEMA_VERSION, Channel, WireModel

EventType = Literal["track", "identify", "page", "screen", "group", "alias"]
EVENT_TYPES: tuple[EventType, ...] = ("track", "identify", "page", "screen", "group", "alias")


def _id_to_str(value: Any) -> Any:
    """Segment SDKs send numeric ids as numbers; ids are strings everywhere downstream."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else str(value)
    return value


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Identifier = Annotated[str, BeforeValidator(_id_to_str), Field(min_length=1, max_length=512)]


class Context(WireModel):
    """Segment's context object. ``channel``/``source`` say where the event came from."""

    model_config = WireModel.model_config | {"extra": "allow"}

    channel: str | None = Field(None, description="shop, chat or email (other values are kept as given)")
    source: str | None = Field(None, description="The system that sent the event: web, ios, shopify, ...")
    ip: str | None = None
    user_agent: str | None = None
    locale: str | None = None
    traits: dict[str, Any] = Field(default_factory=dict)


class IncomingMessage(WireModel):
    """One Segment-spec call as a client sends it (tracking API, batch item or webhook mapping)."""

    model_config = WireModel.model_config | {"extra": "ignore"}

    type: EventType
    message_id: str | None = Field(None, min_length=1, max_length=256)
    anonymous_id: Identifier | None = None
    user_id: Identifier | None = None
    event: str | None = Field(None, min_length=1, max_length=256)
    name: str | None = Field(None, max_length=256)
    category: str | None = Field(None, max_length=256)
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] = Field(default_factory=dict)
    context: Context = Field(default_factory=Context)
    group_id: Identifier | None = None
    previous_id: Identifier | None = None
    timestamp: datetime | None = None
    original_timestamp: datetime | None = None
    sent_at: datetime | None = None
    integrations: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timestamp", "original_timestamp", "sent_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return _as_utc(value)

    @model_validator(mode="after")
    def _required_per_type(self) -> Self:
        if self.type == "track" and not self.event:
            raise ValueError("a track call needs 'event' (the event name)")
        if self.type == "group" and not self.group_id:
            raise ValueError("a group call needs 'groupId'")
        if self.type == "alias" and not (self.previous_id and self.user_id):
            raise ValueError("an alias call needs 'previousId' and 'userId'")
        return self


class Identifiers(WireModel):
    """Every identifier an event carries, as sent (normalisation happens in identity resolution)."""

    anonymous_id: str | None = None
    customer_id: str | None = None
    email: str | None = None
    phone: str | None = None
    chat_handle: str | None = None
    email_recipient_id: str | None = None

    def any(self) -> bool:
        return any(v is not None for v in self.model_dump().values())


class CanonicalEvent(WireModel):
    """A validated, normalised event: the value of every record on ``cdp.events``.

    ``timestamp`` is the event time corrected for client clock skew the way Segment does it:
    ``receivedAt - (sentAt - originalTimestamp)`` when the client says when it sent the call.
    """

    schema_version: int = SCHEMA_VERSION
    message_id: str
    type: EventType
    event: str | None = None
    name: str | None = None
    channel: Channel
    source: str
    anonymous_id: str | None = None
    user_id: str | None = None
    identifiers: Identifiers
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    group_id: str | None = None
    previous_id: str | None = None
    timestamp: datetime
    original_timestamp: datetime | None = None
    sent_at: datetime | None = None
    received_at: datetime


class DeadLetter(WireModel):
    """A rejected input on ``cdp.events.dlq``: the raw payload and why it was refused."""

    schema_version: int = SCHEMA_VERSION
    reason: str = Field(
        description="Machine-readable reason, e.g. invalid_event, malformed_json, bad_signature"
    )
    errors: list[dict[str, Any]] = Field(default_factory=list, description="Field path and message per error")
    source: str
    endpoint: str
    received_at: datetime
    payload: str = Field(description="The raw body (or the offending item), as text, truncated at 1 MiB")
    payload_truncated: bool = False
