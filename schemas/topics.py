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
    partitions: int | None = None
    """Fixed partition count (e.g. 1 for a total order); None = the platform's setting."""


PLATFORM_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(EVENTS),
    TopicSpec(EVENTS_DLQ),
    TopicSpec(PROFILES, compacted=True),
    TopicSpec(IDENTITY_MERGES),
    TopicSpec(SEGMENT_MEMBERSHIP),
)


# Internal topics of identity resolution (not part of the public contract).
IDENTITY_OBSERVATIONS = "cdp.identity.observations"
IDENTITY_RESOLVED = "cdp.identity.resolved"
IDENTITY_REFUSALS = "cdp.identity.refusals"
IDENTITY_SPLITS = "cdp.identity.splits"
IDENTITY_UNRESOLVED = "cdp.identity.unresolved"
IDENTITY_REDIRECTS = "cdp.identity.redirects"

IDENTITY_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(IDENTITY_OBSERVATIONS, partitions=1),  # one total order of identity decisions
    TopicSpec(IDENTITY_RESOLVED),
    TopicSpec(IDENTITY_REFUSALS),
    TopicSpec(IDENTITY_SPLITS),
    TopicSpec(IDENTITY_UNRESOLVED),
    TopicSpec(IDENTITY_REDIRECTS),
)


# Internal topic of the segment processor: each profile's membership state (its durable state).
SEGMENT_STATE = "cdp.segments.state"
SEGMENT_TOPICS: tuple[TopicSpec, ...] = (TopicSpec(SEGMENT_STATE, compacted=True),)


def segment_feed(segment_id: str) -> str:
    return f"{SEGMENT_FEED_PREFIX}{segment_id}"
