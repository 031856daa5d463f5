"""Warehouse rows of a profile as JSON-ready values: identities, events, timestamps, JSON text."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TypedDict

import orjson

from services.identity.domain.identifiers import RANK_OF


class IdentityEntry(TypedDict):
    type: str
    value: str


class RecentEvent(TypedDict):
    timestamp: str
    message_id: str
    type: str
    event: str
    name: str
    channel: str
    source: str
    properties: dict[str, Any]
    profile_id: str
    """The profile the event was resolved to when it arrived (an absorbed id for older events)."""


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_object(text: str) -> dict[str, Any]:
    """A JSON object column (traits, attributes, properties); anything else reads as empty."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


_RANK_BY_NAME: dict[str, int] = {id_type.value: rank for id_type, rank in RANK_OF.items()}


def _rank(entry: IdentityEntry) -> tuple[int, str, str]:
    # Best-ranked type first (customer id, email, ...); types this code does not know go last.
    rank = _RANK_BY_NAME.get(entry["type"], len(_RANK_BY_NAME))
    return (rank, entry["type"], entry["value"])


def identity_entries(keys: Iterable[str]) -> list[IdentityEntry]:
    entries: list[IdentityEntry] = []
    for key in keys:
        type_name, _, value = key.partition(":")
        entries.append({"type": type_name, "value": value})
    return sorted(entries, key=_rank)


def recent_event(row: tuple[Any, ...]) -> RecentEvent:
    profile_id, timestamp, message_id, kind, event, name, channel, source, properties = row
    return {
        "timestamp": utc_text(timestamp),
        "message_id": str(message_id),
        "type": str(kind),
        "event": str(event),
        "name": str(name),
        "channel": str(channel),
        "source": str(source),
        "properties": json_object(str(properties)),
        "profile_id": str(profile_id),
    }
