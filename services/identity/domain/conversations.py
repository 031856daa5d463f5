"""Chat conversations keyed by conversation id: who handled them and how the customer rated them.

A conversation counts once however many of its events arrive (or arrive twice). Its rating is the
customer's latest rating by event time, so a re-submitted or revised rating replaces the earlier
one instead of counting twice; ``csat_average`` is the mean over rated conversations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

BOT, HUMAN = 1, 2
HANDLERS = {"bot": BOT, "human": HUMAN}

# (event time, csat 1..5): two ratings of the same instant are ordered by their value.
Rating = tuple[int, int]


@dataclass(slots=True)
class Conversation:
    started_at: int  # earliest event of the conversation we know of
    handled_by: int = 0  # BOT | HUMAN bits: a bot conversation handed to an agent counts as human
    rating: Rating | None = None

    def join(self, other: Conversation) -> bool:
        started_at = min(self.started_at, other.started_at)
        handled_by = self.handled_by | other.handled_by
        rating = self.rating
        if other.rating is not None and (rating is None or other.rating > rating):
            rating = other.rating
        if (started_at, handled_by, rating) == (self.started_at, self.handled_by, self.rating):
            return False
        self.started_at, self.handled_by, self.rating = started_at, handled_by, rating
        return True

    def handler(self) -> str | None:
        return "human" if self.handled_by & HUMAN else "bot" if self.handled_by & BOT else None

    def snapshot(self) -> list[Any]:
        return [self.started_at, self.handled_by, None if self.rating is None else list(self.rating)]


class ChatHistory:
    __slots__ = ("_bot", "_conversations", "_csat_count", "_csat_sum", "_human", "_last_rating")

    def __init__(self) -> None:
        self._conversations: dict[str, Conversation] = {}
        self._bot = self._human = self._csat_sum = self._csat_count = 0
        self._last_rating: Rating | None = None

    def touch(self, conversation_id: str, stamp: int, handled_by: str | None, rating: Rating | None) -> bool:
        update = Conversation(stamp, HANDLERS.get(handled_by or "", 0), rating)
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            self._conversations[conversation_id] = update
            self._count(update, +1)
            return True
        before = Conversation(conversation.started_at, conversation.handled_by, conversation.rating)
        if not conversation.join(update):
            return False
        self._count(before, -1)
        self._count(conversation, +1)
        return True

    def merge(self, other: ChatHistory) -> None:
        for conversation_id, theirs in other._conversations.items():
            mine = self._conversations.get(conversation_id)
            if mine is None:
                self._conversations[conversation_id] = Conversation(
                    theirs.started_at, theirs.handled_by, theirs.rating
                )
            else:
                mine.join(theirs)
        self._rebuild()

    def attributes(self) -> dict[str, Any]:
        return {
            "chat_conversations": len(self._conversations),
            "bot_conversations": self._bot,
            "human_conversations": self._human,
            "csat_count": self._csat_count,
            "csat_average": round(self._csat_sum / self._csat_count, 2) if self._csat_count else None,
            "last_csat": None if self._last_rating is None else self._last_rating[1],
        }

    def snapshot(self) -> dict[str, Any]:
        return {cid: self._conversations[cid].snapshot() for cid in sorted(self._conversations)}

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> ChatHistory:
        history = cls()
        for cid, (started_at, handled_by, rating) in snapshot.items():
            history._conversations[cid] = Conversation(
                started_at, handled_by, None if rating is None else (rating[0], rating[1])
            )
        history._rebuild()
        return history

    def _count(self, conversation: Conversation, sign: int) -> None:
        handler = conversation.handler()
        if handler == "human":
            self._human += sign
        elif handler == "bot":
            self._bot += sign
        if conversation.rating is not None:
            self._csat_sum += sign * conversation.rating[1]
            self._csat_count += sign
            if sign > 0 and (self._last_rating is None or conversation.rating > self._last_rating):
                self._last_rating = conversation.rating

    def _rebuild(self) -> None:
        self._bot = self._human = self._csat_sum = self._csat_count = 0
        self._last_rating = None
        for conversation in self._conversations.values():
            self._count(conversation, +1)
