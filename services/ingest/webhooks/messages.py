"""Segment-spec message dicts (camelCase wire format) as the ingest pipeline accepts them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson

from schemas.base import Channel
from services.ingest.webhooks.base import Message

_MESSAGE_ID_NAMESPACE = uuid.UUID("5b0f3c1e-8a7d-4f3e-9c52-6d1e2a7b9f40")


def stable_message_id(provider: str, *parts: str) -> str:
    """The same provider ids always give the same messageId, so provider retries are de-duplicated."""
    key = orjson.dumps([provider, *parts]).decode()
    return f"{provider}-{uuid.uuid5(_MESSAGE_ID_NAMESPACE, key)}"


def compact(values: dict[str, Any]) -> dict[str, Any]:
    """Drop absent values so the catalog models apply their defaults."""
    return {key: value for key, value in values.items() if value is not None}


def _context(provider: str, channel: Channel, traits: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = {"channel": channel.value, "source": provider}
    if traits:
        context["traits"] = traits
    return context


def track_message(
    *,
    provider: str,
    channel: Channel,
    event: str,
    message_id: str,
    timestamp: datetime,
    properties: dict[str, Any],
    user_id: str | None = None,
    traits: dict[str, Any] | None = None,
) -> Message:
    """A track call; who did it (email, phone) goes in ``context.traits`` as the Segment spec says."""
    message: Message = {
        "type": "track",
        "event": event,
        "messageId": message_id,
        "timestamp": timestamp.isoformat(),
        "properties": compact(properties),
        "context": _context(provider, channel, compact(traits or {})),
    }
    if user_id is not None:
        message["userId"] = user_id
    return message


def identify_message(
    *,
    provider: str,
    channel: Channel,
    message_id: str,
    timestamp: datetime,
    traits: dict[str, Any],
    user_id: str | None = None,
) -> Message:
    message: Message = {
        "type": "identify",
        "messageId": message_id,
        "timestamp": timestamp.isoformat(),
        "traits": compact(traits),
        "context": _context(provider, channel, {}),
    }
    if user_id is not None:
        message["userId"] = user_id
    return message
