"""The identity stages through faust on the real broker: demo traffic on 4 partitions gives the
same profiles as one worker folding the same observations in order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from schemas import topics
from schemas.topics import IDENTITY_TOPICS, PLATFORM_TOPICS
from services.core.kafka.admin import ensure_topics
from services.core.kafka.batches import split_lines
from services.core.kafka.broker import TansuBroker, free_port
from services.core.kafka.producer import AsyncProducer
from services.demo.generator import DemoConfig, generate_history
from services.identity.streaming.kafka_worker import IdentityWorker
from services.identity.streaming.simulation import run_sequentially
from services.ingest.normalise import NormalisedEvent, normalise

NOW = datetime(2026, 11, 22, tzinfo=UTC)


@pytest.fixture
def identity_broker() -> Iterator[TansuBroker]:
    with TansuBroker("127.0.0.1", free_port()) as running:
        ensure_topics(running.bootstrap, PLATFORM_TOPICS + IDENTITY_TOPICS, partitions=4, replication=1)
        yield running


def demo_events() -> list[NormalisedEvent]:
    out = []
    for raw in generate_history(DemoConfig(customers=40, days=20, seed=5, end=NOW)):
        event = normalise(raw, received_at=NOW, default_source="demo")
        assert isinstance(event, NormalisedEvent)
        out.append(event)
    return out


def read_all(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes]]:
    """Every record of ``topic`` in partition and offset order, batch messages split into records.
    Read until the topic stays quiet: Tansu reports end offsets too low (its last batch's start)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{topic}-{time.monotonic_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})  # fmt: skip
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
    records: list[tuple[int, int, bytes | None, bytes]] = []
    quiet_since, deadline = time.monotonic(), time.monotonic() + 60
    while time.monotonic() - quiet_since < 1.5 and time.monotonic() < deadline:
        messages = consumer.consume(1000, 0.3)
        for message in messages:
            if message.error() is None:
                records.append((message.partition(), message.offset(), message.key(), message.value()))
        if messages:
            quiet_since = time.monotonic()
    consumer.close()
    records.sort(key=lambda r: (r[0], r[1]))
    batched = topic in (topics.IDENTITY_OBSERVATIONS, topics.IDENTITY_RESOLVED)
    return [
        (key, line) for _, _, key, value in records for line in (split_lines(value) if batched else [value])
    ]


async def run_worker(bootstrap: str, events: list[NormalisedEvent]) -> IdentityWorker:
    producer = AsyncProducer(bootstrap)
    worker = IdentityWorker(bootstrap, producer, partitions=4, now=lambda: NOW)
    await worker.start()
    await producer.send([(topics.EVENTS, e.key, e.to_json()) for e in events])
    # Every observation decided and every resolved record (events, merges, transfers) folded.
    assert await worker.drain(within=90)
    assert worker.observations_decided == len(events)
    await worker.stop()
    await asyncio.to_thread(producer.close)
    return worker


def test_profiles_through_kafka_equal_one_worker_folding_in_order(identity_broker: TansuBroker):
    events = demo_events()
    worker = asyncio.run(run_worker(identity_broker.bootstrap, events))
    assert worker.observations_decided == len(events)

    # The reference: one worker, the same observation order (the observations topic's).
    observations = [
        ("event", orjson.loads(value))
        for _, value in read_all(identity_broker.bootstrap, topics.IDENTITY_OBSERVATIONS)
    ]
    assert len(observations) == len(events)
    reference = run_sequentially(observations, lambda: NOW)

    latest: dict[str, dict] = {}
    for key, value in read_all(identity_broker.bootstrap, topics.PROFILES):
        assert key is not None
        latest[key.decode()] = orjson.loads(value)
    live = {pid: record for pid, record in latest.items() if record["live"]}
    expected = reference.fold.live
    assert set(live) == set(expected)
    assert len(live) > 10
    for pid, folded in expected.items():
        assert live[pid]["snapshot"] == orjson.loads(orjson.dumps(folded.state.to_snapshot())), pid
        assert set(live[pid]["identifiers"]) == folded.identifiers
