"""Why two identifiers were linked: the event that saw them together and the rule that applied."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class LinkRule(StrEnum):
    """The rule that made identifiers on one event count as one person."""

    SAME_EVENT = "same_event"
    """Seen on one event: an order with customer id and email, a chat with handle and email, ..."""
    IDENTIFY = "identify"
    """An identify call: the device's anonymous id meets the customer id and the account's traits."""
    ALIAS = "alias"
    """An alias call: previousId is declared to be the same person as userId."""
    OPERATOR = "operator"
    """Linked by hand (admin API)."""


_RULE_OF_TYPE: Mapping[str, LinkRule] = {"identify": LinkRule.IDENTIFY, "alias": LinkRule.ALIAS}


@dataclass(frozen=True, slots=True)
class Provenance:
    """The event behind a link. ``event`` is the track event's name, or the call type otherwise."""

    message_id: str
    event: str
    timestamp: datetime
    rule: LinkRule

    def __post_init__(self) -> None:
        # Stored as UTC microseconds: a naive timestamp is taken to be UTC, as on ``cdp.events``.
        if self.timestamp.tzinfo is None:
            object.__setattr__(self, "timestamp", self.timestamp.replace(tzinfo=UTC))


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    raise ValueError(f"not a timestamp: {value!r}")


def provenance_of(event: Mapping[str, Any]) -> Provenance:
    """The provenance of the links a canonical event (camelCase, as on ``cdp.events``) makes.

    A canonical event always has ``messageId``, ``type`` and ``timestamp``; a mapping without them
    is not a canonical event and raises ``KeyError``/``ValueError``.
    """
    event_type = str(event["type"])
    return Provenance(
        message_id=str(event["messageId"]),
        event=str(event.get("event") or event_type),
        timestamp=_timestamp(event["timestamp"]),
        rule=_RULE_OF_TYPE.get(event_type, LinkRule.SAME_EVENT),
    )
