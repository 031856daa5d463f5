"""Newsletter subscription per list by event time: the customer's latest decision wins.

Subscribed / Double Opt-In Confirmed / Unsubscribed are last-write-wins per ``list_id`` (events
without one share the list ""). An Unsubscribed that names no list leaves every list the profile
knows up to that time, which is how email tools report a global opt-out (blocklist).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.identity.domain.event_time import Stamp, iso_or_none, latest

UNSUBSCRIBED, SUBSCRIBED, CONFIRMED = "unsubscribed", "subscribed", "confirmed"
# (event time, message id, status)
Decision = tuple[int, str, str]


class Subscriptions:
    __slots__ = ("_global_optout", "_last_confirmed", "_lists")

    def __init__(self) -> None:
        self._lists: dict[str, Decision] = {}
        self._global_optout: Stamp | None = None
        self._last_confirmed: int | None = None

    def decide(self, list_id: str, stamp: int, message_id: str, status: str) -> bool:
        changed = self._decide(list_id, (stamp, message_id, status))
        if status == UNSUBSCRIBED and not list_id:
            changed |= self._opt_out((stamp, message_id))
        if status == CONFIRMED and (self._last_confirmed is None or stamp > self._last_confirmed):
            self._last_confirmed, changed = stamp, True
        return changed

    def merge(self, other: Subscriptions) -> None:
        for list_id, decision in other._lists.items():
            self._decide(list_id, decision)
        if other._global_optout is not None:
            self._opt_out(other._global_optout)
        self._last_confirmed = latest(self._last_confirmed, other._last_confirmed)

    def statuses(self) -> dict[str, str]:
        """Each list's effective status: its own latest decision unless a later global opt-out."""
        optout = self._global_optout
        return {
            list_id: UNSUBSCRIBED if optout is not None and optout > decision[:2] else decision[2]
            for list_id, decision in sorted(self._lists.items())
        }

    def attributes(self) -> dict[str, Any]:
        statuses = self.statuses()
        subscribed = [status for status in statuses.values() if status != UNSUBSCRIBED]
        return {
            "email_subscription": SUBSCRIBED if subscribed else UNSUBSCRIBED if statuses else "unknown",
            "email_subscriptions": statuses,
            "email_double_opt_in": CONFIRMED in subscribed,
            "email_double_opt_in_at": iso_or_none(self._last_confirmed),
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "lists": {list_id: list(decision) for list_id, decision in sorted(self._lists.items())},
            "global_optout": None if self._global_optout is None else list(self._global_optout),
            "last_confirmed": self._last_confirmed,
        }

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> Subscriptions:
        subscriptions = cls()
        subscriptions._lists = {key: (d[0], d[1], d[2]) for key, d in snapshot["lists"].items()}
        optout = snapshot["global_optout"]
        subscriptions._global_optout = None if optout is None else (optout[0], optout[1])
        subscriptions._last_confirmed = snapshot["last_confirmed"]
        return subscriptions

    def _decide(self, list_id: str, decision: Decision) -> bool:
        current = self._lists.get(list_id)
        if current is not None and decision <= current:
            return False
        self._lists[list_id] = decision
        return True

    def _opt_out(self, stamp: Stamp) -> bool:
        if self._global_optout is not None and stamp <= self._global_optout:
            return False
        self._global_optout = stamp
        return True
