"""Drops repeated messageIds inside a time window (Segment and SDK retries re-send them)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable


class MessageIdWindow:
    """Remembers messageIds for ``window_seconds`` (at most ``max_entries``, oldest forgotten first).

    ``claim`` marks an id as taken before its event is produced; ``release`` gives it back when
    producing failed, so the client's retry is not mistaken for a duplicate.
    """

    def __init__(self, window_seconds: float, max_entries: int) -> None:
        self._window = window_seconds
        self._max = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def claim(self, message_id: str, now: float) -> bool:
        """True if the id is new (and is now remembered), False if it is a duplicate."""
        if self._window <= 0:
            return True
        self._expire(now)
        if message_id in self._seen:
            return False
        self._seen[message_id] = now
        if len(self._seen) > self._max:
            self._seen.popitem(last=False)
        return True

    def release(self, message_ids: Iterable[str]) -> None:
        for message_id in message_ids:
            self._seen.pop(message_id, None)

    def preload(self, entries: Iterable[tuple[str, float]], now: float) -> int:
        """Remember ids already accepted before a restart (oldest first); returns how many were kept."""
        kept = 0
        for message_id, seen_at in sorted(entries, key=lambda item: item[1]):
            if now - seen_at < self._window:
                self._seen[message_id] = seen_at
                kept += 1
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)
        return kept

    def _expire(self, now: float) -> None:
        seen = self._seen
        horizon = now - self._window
        while seen:
            oldest_id, seen_at = next(iter(seen.items()))
            if seen_at > horizon:
                break
            del seen[oldest_id]
