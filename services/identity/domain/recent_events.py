"""The latest occurrences of each track event: what segment rules over time windows count.

Per event name the profile keeps the ``RECENT_PER_EVENT`` latest occurrences as (event time,
message tag, amount). Keeping the N latest of a union is a join (commutative, associative,
idempotent), so the log does not depend on arrival order, a replay changes nothing, and two merged
profiles hold the N latest of both. The message tag is a 32-bit hash of the message id: enough to
tell apart two events of the same microsecond, and far smaller than the id.

A rule can therefore count up to ``RECENT_PER_EVENT`` occurrences of an event in a window exactly;
segment definitions that ask for more are refused when they are applied.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

RECENT_PER_EVENT = 50

# (event time in epoch microseconds, crc32 of the message id, amount in money units or -1)
Occurrence = tuple[int, int, int]
NO_AMOUNT = -1


def message_tag(message_id: str) -> int:
    return zlib.crc32(message_id.encode())


class RecentEvents:
    __slots__ = ("_events",)

    def __init__(self) -> None:
        self._events: dict[str, list[Occurrence]] = {}  # name -> ascending by (time, tag)

    def record(self, name: str, stamp: int, message_id: str, amount: int | None) -> bool:
        entry = (stamp, message_tag(message_id), NO_AMOUNT if amount is None else amount)
        return self._join(name, [entry])

    def merge(self, other: RecentEvents) -> None:
        for name, entries in other._events.items():
            self._join(name, entries)

    def occurrences(self, name: str) -> list[Occurrence]:
        """Ascending by time; at most ``RECENT_PER_EVENT``."""
        return self._events.get(name, [])

    def snapshot(self) -> dict[str, Any]:
        return {name: [list(e) for e in self._events[name]] for name in sorted(self._events)}

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any] | None) -> RecentEvents:
        recent = cls()
        for name, entries in (snapshot or {}).items():
            recent._events[name] = [(e[0], e[1], e[2]) for e in entries]
        return recent

    def _join(self, name: str, entries: list[Occurrence]) -> bool:
        current = self._events.get(name)
        if current is None:
            self._events[name] = sorted(set(entries))[-RECENT_PER_EVENT:]
            return True
        known = set(current)
        fresh = [e for e in entries if e not in known]
        if not fresh:
            return False
        if len(current) >= RECENT_PER_EVENT and max(fresh) < current[0]:
            return False  # older than everything kept: falls off at once
        joined = sorted(known.union(fresh))[-RECENT_PER_EVENT:]
        if joined == current:
            return False
        self._events[name] = joined
        return True
