"""When a profile was seen, and on which channels the customer is active.

Channel preference counts *active days* (distinct UTC days with an event the customer did), not
events: a day is naturally idempotent, so replays and duplicates cannot inflate it without keeping
every message id, and one long chat or a hundred page views in one visit do not outweigh a customer
who opens the newsletter every week. Days are a bitmap per channel starting at its first active day
(a three-year customer costs under 140 bytes per channel).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.identity.domain.event_time import day_of, iso_or_none, latest

# Events that happen *to* the customer or that reject a channel: they update first/last seen but
# are not engagement, so they count neither as activity nor towards the preferred channel.
NON_ENGAGING_EVENTS = frozenset(
    {
        "Email Delivered",
        "Email Bounced",
        "Email Marked as Spam",
        "Unsubscribed",
        "Message Received",
        "Order Refunded",
        "Order Cancelled",
        "Complaint Resolved",
    }
)

# (event time, message id, channel, source) of the earliest event
FirstTouch = tuple[int, str, str, str]


@dataclass(slots=True)
class ChannelDays:
    base: int  # first active day (days since 1970-01-01); bit i of ``bits`` is day base + i
    bits: int
    last_active: int  # latest engaging event time on this channel

    @classmethod
    def of(cls, stamp: int) -> ChannelDays:
        return cls(day_of(stamp), 1, stamp)

    def join(self, other: ChannelDays) -> bool:
        base = min(self.base, other.base)
        bits = (self.bits << (self.base - base)) | (other.bits << (other.base - base))
        last_active = max(self.last_active, other.last_active)
        if (base, bits, last_active) == (self.base, self.bits, self.last_active):
            return False
        self.base, self.bits, self.last_active = base, bits, last_active
        return True

    @property
    def days(self) -> int:
        return self.bits.bit_count()


class Activity:
    __slots__ = ("_channels", "_first", "_last_seen")

    def __init__(self) -> None:
        self._first: FirstTouch | None = None
        self._last_seen: int | None = None
        self._channels: dict[str, ChannelDays] = {}

    def apply(self, stamp: int, message_id: str, channel: str, source: str, engaging: bool) -> bool:
        changed = False
        touch = (stamp, message_id, channel, source)
        if self._first is None or touch < self._first:
            self._first, changed = touch, True
        if self._last_seen is None or stamp > self._last_seen:
            self._last_seen, changed = stamp, True
        if engaging:
            changed |= self._engage(channel, ChannelDays.of(stamp))
        return changed

    def merge(self, other: Activity) -> None:
        if other._first is not None and (self._first is None or other._first < self._first):
            self._first = other._first
        self._last_seen = latest(self._last_seen, other._last_seen)
        for channel, days in other._channels.items():
            self._engage(channel, ChannelDays(days.base, days.bits, days.last_active))

    def attributes(self) -> dict[str, Any]:
        channels = self._channels
        union: ChannelDays | None = None
        for days in channels.values():
            if union is None:
                union = ChannelDays(days.base, days.bits, days.last_active)
            else:
                union.join(days)
        # Most active days wins; then the most recent activity; then the name, so ties are stable.
        ranked = sorted(channels, key=lambda c: (-channels[c].days, -channels[c].last_active, c))
        first = self._first
        return {
            "first_seen_at": iso_or_none(None if first is None else first[0]),
            "first_seen_channel": None if first is None else first[2],
            "first_seen_source": None if first is None else first[3],
            "last_seen_at": iso_or_none(self._last_seen),
            "last_active_at": iso_or_none(max((d.last_active for d in channels.values()), default=None)),
            "active_days": 0 if union is None else union.days,
            "active_days_by_channel": {c: channels[c].days for c in sorted(channels)},
            "last_active_at_by_channel": {c: iso_or_none(channels[c].last_active) for c in sorted(channels)},
            "preferred_channel": ranked[0] if ranked else None,
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "first": None if self._first is None else list(self._first),
            "last_seen": self._last_seen,
            "channels": {
                c: [d.base, f"{d.bits:x}", d.last_active] for c, d in sorted(self._channels.items())
            },
        }

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> Activity:
        activity = cls()
        first = snapshot["first"]
        activity._first = None if first is None else (first[0], first[1], first[2], first[3])
        activity._last_seen = snapshot["last_seen"]
        activity._channels = {
            c: ChannelDays(base, int(bits, 16), last)
            for c, (base, bits, last) in snapshot["channels"].items()
        }
        return activity

    def _engage(self, channel: str, days: ChannelDays) -> bool:
        current = self._channels.get(channel)
        if current is None:
            self._channels[channel] = days
            return True
        return current.join(days)
