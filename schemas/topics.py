"""Kafka topic names: part of the public contract (see docs/contract.md)."""

from __future__ import annotations

from dataclasses import dataclass

EVENTS = "cdp.events"
EVENTS_DLQ = "cdp.events.dlq"
PROFILES = "cdp.profiles"
IDENTITY_MERGES = "cdp.identity.merges"
SEGMENT_MEMBERSHIP = "cdp.segments.membership"
SEGMENT_FEED_PREFIX = "cdp.segment."


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    compacted: bool = False
    config: tuple[tuple[str, str], ...] = ()


PLATFORM_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(EVENTS),
    TopicSpec(EVENTS_DLQ),
    TopicSpec(PROFILES, compacted=True),
    TopicSpec(IDENTITY_MERGES),
    TopicSpec(SEGMENT_MEMBERSHIP),
)


def segment_feed(segment_id: str) -> str:
    return f"{SEGMENT_FEED_PREFIX}{segment_id}"
