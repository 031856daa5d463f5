"""Seeded, reproducible demo traffic: Segment-spec messages of a German online shop.

Pure: no I/O, no wall clock, no global random state. The same ``DemoConfig`` always yields the same
messages (ids included), streamed in event-time order with bounded memory.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.demo.conversations import ChatDesk
from services.demo.email_tool import EmailTool
from services.demo.population import NEVER, Person, build_population
from services.demo.seasonality import DAY
from services.demo.shop import Shop
from services.demo.simulation import Simulation

Message = dict[str, Any]
_ESTIMATE_SAMPLE = 500


@dataclass(frozen=True, slots=True)
class DemoConfig:
    customers: int
    days: int
    seed: int
    end: datetime

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise ValueError("customers must be at least 1")
        if self.days < 1:
            raise ValueError("days must be at least 1")
        if self.end.tzinfo is None:
            raise ValueError("end must be timezone-aware (e.g. datetime.now(UTC))")
        object.__setattr__(self, "end", self.end.astimezone(UTC))

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)


def _fingerprint(*parts: object) -> str:
    # Ids carry the run's fingerprint: a replay of the same config is de-duplicated by the
    # platform, a different window or seed never collides with it.
    return hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=5).hexdigest()


def _iso(ms: int) -> str:
    stamp = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
    return stamp.isoformat(timespec="milliseconds")[:-6] + "Z"


def _world(
    people: list[Person], rng: random.Random, start: float, end: float, tag: str, *, history: bool
) -> Simulation:
    sim = Simulation(rng=rng, start=start, end=end, id_tag=tag)
    email = EmailTool(sim)
    shop = Shop(sim, ChatDesk(sim), email)
    span = (end - start) if end != NEVER else 30 * DAY
    for person in people:
        if person.switches_email:
            person.email_switch_at = start + rng.uniform(0.1, 0.7) * span
        shop.welcome(person)
    email.open_list(people, import_events=history)
    return sim


def generate_history(config: DemoConfig) -> Iterator[Message]:
    """Every message of ``config.days`` days up to ``config.end``, in event-time order."""
    tag = _fingerprint(config.seed, config.customers, config.days, config.end.isoformat())
    rng = random.Random(f"cdp-demo:{config.seed}:history")
    people = build_population(config.customers, config.seed)
    sim = _world(people, rng, config.start.timestamp(), config.end.timestamp(), tag[:6], history=True)
    for n, (t, message) in enumerate(sim.run()):
        message["messageId"] = f"demo-{tag}-{n:08d}"
        message["timestamp"] = _iso(round(t * 1000))
        yield message


def generate_live(
    config: DemoConfig, start: datetime, clock: Iterable[datetime] | None = None
) -> Iterator[Message]:
    """Endless traffic of the same people from ``start`` on (``config.end`` and ``days`` are not used).

    Without ``clock`` the messages carry simulated time at the shop's natural pace. With a clock,
    each message is stamped with the clock's next value instead (kept strictly increasing), so a
    caller that consumes at N events/s plays the shop fast-forward in real time.
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    tag = _fingerprint(config.seed, config.customers, "live", start.astimezone(UTC).isoformat())
    rng = random.Random(f"cdp-demo:{config.seed}:live:{start.astimezone(UTC).isoformat()}")
    people = build_population(config.customers, config.seed)
    sim = _world(people, rng, start.timestamp(), NEVER, tag[:6], history=False)
    times = iter(clock) if clock is not None else None
    last_ms = -1
    for n, (t, message) in enumerate(sim.run()):
        ms = round(t * 1000)
        if times is not None:
            # Strictly increasing (whole milliseconds) even when the clock repeats a value: event
            # time is what orders a person's events downstream.
            ms = max(round(next(times).timestamp() * 1000), last_ms + 1)
            last_ms = ms
        message["messageId"] = f"demo-{tag}-{n:08d}"
        message["timestamp"] = _iso(ms)
        yield message


def estimate_total(config: DemoConfig) -> int:
    """About how many messages ``generate_history(config)`` yields, from a sample of the people."""
    sample = min(config.customers, _ESTIMATE_SAMPLE)
    counted = sum(1 for _ in generate_history(DemoConfig(sample, config.days, config.seed, config.end)))
    return round(counted * config.customers / sample)
