"""Order independence on the real broker: shuffled deliveries of the same events, through the
identity worker on 4 partitions, end in the connected components of the identity graph, under the
same profile ids (events chosen so that no order can trigger a safeguard)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas import topics
from schemas.topics import IDENTITY_TOPICS, PLATFORM_TOPICS
from services.core.kafka.admin import ensure_topics
from services.core.kafka.broker import TansuBroker, free_port
from services.core.kafka.producer import AsyncProducer
from services.identity.domain import IdType, LinkLimits, identifiers_of
from services.identity.streaming.kafka_worker import IdentityWorker
from services.identity.streaming.simulation import person_key
from tests.integration.identity.test_identity_worker import demo_events, read_all
from tests.unit.identity.test_identity_graph_properties import connected_components

NOW = datetime(2026, 11, 22, tzinfo=UTC)
LIMITS = LinkLimits()


def within_limits(component: frozenset[Any]) -> bool:
    counts = Counter(identifier.type for identifier in component)
    return all(count <= LIMITS.of(id_type) for id_type, count in counts.items())


def safe_events() -> list[dict[str, Any]]:
    """Demo events, without those of a person whose identifiers together would break a limit."""
    events = [orjson.loads(e.to_json()) for e in demo_events()]
    component_of = connected_components(identifiers_of(e) for e in events)
    kept = [e for e in events if all(within_limits(component_of[i]) for i in identifiers_of(e))]
    assert len(kept) > 0.8 * len(events)
    return kept


async def _run(bootstrap: str, events: list[dict[str, Any]]) -> None:
    producer = AsyncProducer(bootstrap)
    worker = IdentityWorker(bootstrap, producer, partitions=4, now=lambda: NOW)
    await worker.start()
    await producer.send([(topics.EVENTS, person_key(e).encode(), orjson.dumps(e)) for e in events])
    assert await worker.drain(within=90)
    await worker.stop()
    await asyncio.to_thread(producer.close)


def profiles_after(events: list[dict[str, Any]]) -> dict[str, frozenset[str]]:
    with TansuBroker("127.0.0.1", free_port()) as broker:
        ensure_topics(broker.bootstrap, PLATFORM_TOPICS + IDENTITY_TOPICS, partitions=4, replication=1)
        asyncio.run(_run(broker.bootstrap, events))
        latest: dict[str, dict[str, Any]] = {}
        for key, value in read_all(broker.bootstrap, topics.PROFILES):
            assert key is not None
            latest[key.decode()] = orjson.loads(value)
    return {pid: frozenset(r["identifiers"]) for pid, r in latest.items() if r["live"]}


def test_shuffled_deliveries_give_the_connected_components_under_the_same_ids():
    events = safe_events()
    components = {
        frozenset(i.key for i in component)
        for component in connected_components(identifiers_of(e) for e in events).values()
    }
    assert any(len(c) > 2 for c in components)  # some people have several identifiers
    assert any(IdType.CUSTOMER_ID.value in key for c in components for key in c)
    results = []
    for seed in (1, 2):
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)
        results.append(profiles_after(shuffled))
    for profiles in results:
        assert set(profiles.values()) == components
    assert results[0] == results[1], "profile ids depend on the delivery order"
