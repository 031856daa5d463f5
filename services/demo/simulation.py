"""The demo shop's clock: one heap of pending messages and behaviour triggers, popped in time order.

Behaviours push the messages of an episode (a visit, a conversation, a newsletter delivery) when it
starts, and a trigger for the next episode. So memory grows with the number of people and of
episodes in flight, never with the length of the history.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator
from enum import IntEnum
from typing import Any

from services.demo.population import Person

Message = dict[str, Any]


class Trigger(IntEnum):
    MESSAGE = 0
    VISIT = 1  # a person's next visit to the shop (schedules the one after)
    EMAIL_VISIT = 2  # a visit after a click in an email
    CAMPAIGN = 3  # the next newsletter goes out


Handler = Callable[[float, Person | None, Any], None]
_Entry = tuple[float, int, Trigger, Person | None, Any]


class Simulation:
    def __init__(self, *, rng: random.Random, start: float, end: float, id_tag: str) -> None:
        self.rng = rng
        self.start = start
        self.end = end
        self.id_tag = id_tag
        self.handlers: dict[Trigger, Handler] = {}
        self._heap: list[_Entry] = []
        self._seq = 0
        self._counters: dict[str, int] = {}

    def emit(self, t: float, message: Message) -> None:
        if t < self.end:
            self._push(t, Trigger.MESSAGE, None, message)

    def schedule(self, t: float, trigger: Trigger, person: Person | None = None, arg: Any = None) -> None:
        if t < self.end:
            self._push(t, trigger, person, arg)

    def new_id(self, kind: str) -> str:
        """Order, checkout, conversation ... ids: unique per run, so two demo runs never collide."""
        n = self._counters.get(kind, 0) + 1
        self._counters[kind] = n
        return f"{kind}-{self.id_tag}-{n:06d}"

    def run(self) -> Iterator[tuple[float, Message]]:
        heap, handlers = self._heap, self.handlers
        while heap:
            t, _, trigger, person, arg = heapq.heappop(heap)
            if trigger is Trigger.MESSAGE:
                yield t, arg
            else:
                handlers[trigger](t, person, arg)

    def _push(self, t: float, trigger: Trigger, person: Person | None, arg: Any) -> None:
        # The sequence number breaks ties so equal times keep push order and tuples never compare
        # people or dicts.
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, trigger, person, arg))
