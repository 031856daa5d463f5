"""Live demo traffic: the same people, endlessly, stamped by the caller's clock."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise
from typing import Any

from schemas.catalog import CATALOG
from schemas.events import IncomingMessage
from services.demo.generator import DemoConfig, generate_history, generate_live

CONFIG = DemoConfig(customers=200, days=30, seed=11, end=datetime(2025, 3, 1, tzinfo=UTC))
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _ticking(start: datetime, step: timedelta) -> Iterator[datetime]:
    now = start
    while True:
        yield now
        now += step


def test_live_traffic_is_reproducible_for_the_same_start() -> None:
    first = list(islice(generate_live(CONFIG, START), 500))
    assert first == list(islice(generate_live(CONFIG, START), 500))
    later = list(islice(generate_live(CONFIG, START + timedelta(minutes=1)), 500))
    assert {m["messageId"] for m in first}.isdisjoint(m["messageId"] for m in later)


def test_live_traffic_uses_the_callers_clock_strictly_increasing() -> None:
    # A coarse clock that repeats values: stamps must still increase.
    clock = (START + timedelta(seconds=n // 10) for n in range(10**9))
    messages = list(islice(generate_live(CONFIG, START, clock), 300))
    stamps = [datetime.fromisoformat(m["timestamp"]) for m in messages]
    assert all(a < b for a, b in pairwise(stamps))
    assert stamps[0] == START
    assert stamps[-1] < START + timedelta(seconds=31)


def test_live_traffic_validates_and_covers_every_channel() -> None:
    messages = list(islice(generate_live(CONFIG, START, _ticking(START, timedelta(milliseconds=20))), 4000))
    for message in messages:
        IncomingMessage.model_validate(message)
        if message["type"] == "track" and message["event"] in CATALOG:
            CATALOG[message["event"]].properties.model_validate(message["properties"])
    assert set(Counter(m["context"]["channel"] for m in messages)) == {"shop", "chat", "email"}


def test_live_traffic_is_about_the_same_people_as_the_history() -> None:
    def names(messages: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
        return {
            m["userId"]: (m["traits"]["first_name"], m["traits"]["last_name"])
            for m in messages
            if m["type"] == "identify"
        }

    history = list(generate_history(CONFIG))
    live = list(islice(generate_live(CONFIG, START), 3000))
    in_history, in_live = names(history), names(live)
    both = in_history.keys() & in_live.keys()
    assert len(both) >= 5
    assert all(in_history[user_id] == in_live[user_id] for user_id in both)
    assert set(in_live) <= {f"C{100000 + i}" for i in range(CONFIG.customers)}
    devices = {m["anonymousId"] for m in history if "anonymousId" in m}
    assert len(devices & {m["anonymousId"] for m in live if "anonymousId" in m}) >= 20
    assert {m["messageId"] for m in history}.isdisjoint(m["messageId"] for m in live)
    # No list import in live traffic: the subscribers are already known.
    assert not any(m["properties"].get("source") == "list-import" for m in live if m["type"] == "track")
