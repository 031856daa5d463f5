"""Erasure through the real stream processors (real Tansu broker, chDB for the segment catalog):
an ``erase`` record on the observations topic ends every profile id of the person with an erased
record and a tombstone on ``cdp.profiles``, exits their segment with reason ``erased`` and
tombstones ``cdp.segments.state``; another person is untouched, and later events carrying the
erased person's identifiers are dropped while other events flow."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from schemas import topics
from schemas.topics import IDENTITY_TOPICS, PLATFORM_TOPICS, SEGMENT_TOPICS
from services.core.kafka.admin import ensure_topics
from services.core.kafka.batches import split_lines
from services.core.kafka.broker import TansuBroker, free_port
from services.core.kafka.producer import AsyncProducer
from services.core.warehouse.chdb_adapter import ChdbWarehouse
from services.core.warehouse.migrations import apply_migrations
from services.identity.domain import Identifier, IdentityGraph, IdType
from services.identity.streaming.kafka_worker import IdentityWorker
from services.privacy.hashing import IdentifierHasher
from services.segments.domain.definition import load_documents
from services.segments.store import apply_definitions
from services.segments.streaming.kafka_worker import SegmentWorker
from tests.unit.identity.graph_fixtures import prov

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
HASHER = IdentifierHasher("integration-key")
BUYERS = """
- id: buyers
  name: Ordered at least once
  rule: {attribute: orders_count, op: ">=", value: 1}
"""
ANNA_EMAIL = "anna.erase@example.de"


@pytest.fixture
def erasure_broker() -> Iterator[TansuBroker]:
    with TansuBroker("127.0.0.1", free_port()) as running:
        ensure_topics(
            running.bootstrap, PLATFORM_TOPICS + IDENTITY_TOPICS + SEGMENT_TOPICS, partitions=4, replication=1
        )
        yield running


def profile_id(id_type: IdType, value: str) -> str:
    found = IdentityGraph().observe([Identifier(id_type, value)], prov()).profile_id
    assert found is not None
    return found


def canonical(message_id: str, ids: dict[str, str], name: str, **properties: Any) -> dict[str, Any]:
    return {
        "schemaVersion": 1, "messageId": message_id, "type": "track", "event": name, "channel": "shop",
        "source": "web", "identifiers": ids, "properties": properties, "traits": {}, "context": {},
        "timestamp": "2026-11-22T11:00:00Z", "receivedAt": "2026-11-22T11:00:01Z",
    }  # fmt: skip


def read_keyed(bootstrap: str, topic: str, quiet: float = 1.5) -> list[tuple[str | None, bytes | None]]:
    """(key, value) of every message of ``topic`` in partition and offset order; batch messages are
    split into their records. Read until the topic stays quiet."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4()}",
                         "enable.auto.commit": False})  # fmt: skip
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
    found: list[tuple[int, int, str | None, bytes | None]] = []
    last, deadline = time.monotonic(), time.monotonic() + 60
    while time.monotonic() - last < quiet and time.monotonic() < deadline:
        messages = consumer.consume(1000, 0.3)
        for message in messages:
            if message.error() is None:
                key = message.key()
                found.append((message.partition(), message.offset(), key.decode() if key else None,
                              message.value()))  # fmt: skip
        if messages:
            last = time.monotonic()
    consumer.close()
    found.sort(key=lambda r: (r[0], r[1]))
    batched = topic in (topics.IDENTITY_OBSERVATIONS, topics.IDENTITY_RESOLVED)
    return [
        (key, line)
        for _, _, key, value in found
        for line in (split_lines(value) if batched and value else [value])
    ]


async def wait_until(check: Callable[[], bool], what: str, within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


def latest_profiles(bootstrap: str) -> dict[str, list[bytes | None]]:
    by_key: dict[str, list[bytes | None]] = {}
    for key, value in read_keyed(bootstrap, topics.PROFILES):
        assert key is not None
        by_key.setdefault(key, []).append(value)
    return by_key


def memberships(bootstrap: str) -> list[dict[str, Any]]:
    return [orjson.loads(v) for _, v in read_keyed(bootstrap, topics.SEGMENT_MEMBERSHIP) if v]


async def scenario(bootstrap: str, warehouse: ChdbWarehouse) -> None:
    anna, anna_device = profile_id(IdType.CUSTOMER_ID, "KA"), profile_id(IdType.ANONYMOUS_ID, "dev-a")
    ben = profile_id(IdType.CUSTOMER_ID, "KB")
    suppressions: set[str] = set()
    producer = AsyncProducer(bootstrap)
    identity = IdentityWorker(
        bootstrap, producer, partitions=4, now=lambda: NOW, hasher=HASHER,
        suppressions=lambda: set(suppressions), suppression_seconds=1.0,
    )  # fmt: skip
    segments = SegmentWorker(bootstrap, warehouse, partitions=4, sweep_seconds=0.5, catalog_seconds=1.0)
    await identity.start()
    await segments.start()
    try:

        async def send(*events: dict[str, Any]) -> None:
            await producer.send([
                (topics.EVENTS, str(next(iter(e["identifiers"].values()))).encode(), orjson.dumps(e))
                for e in events
            ])  # fmt: skip

        # Anna browses anonymously (a profile of its own), then orders: the device's profile is
        # merged into her account's. Ben orders too.
        await send(canonical("a1", {"anonymousId": "dev-a"}, "Product Viewed", product_id="P1"))
        await wait_until(lambda: anna_device in latest_profiles(bootstrap), "Anna's device profile")
        await send(
            canonical("a2", {"customerId": "KA", "email": ANNA_EMAIL, "anonymousId": "dev-a"},
                      "Order Completed", order_id="OA", revenue=30.0, currency="EUR"),
            canonical("b1", {"customerId": "KB"}, "Order Completed", order_id="OB", revenue=20.0,
                      currency="EUR"),
        )  # fmt: skip

        def both_entered() -> bool:
            entered = {m["profileId"] for m in memberships(bootstrap) if m["action"] == "entered"}
            return {anna, ben} <= entered

        await wait_until(both_entered, "both customers entering the segment")
        profiles = latest_profiles(bootstrap)
        assert orjson.loads(profiles[anna_device][-1] or b"{}")["mergedInto"] == anna

        # The coordinator: hashes on the suppression list, then the erase record on partition 0.
        keys = ["customer_id:KA", f"email:{ANNA_EMAIL}", "anonymous_id:dev-a"]
        hashes = HASHER.hashes(keys)
        suppressions.update(hashes)
        erase = {
            "schemaVersion": 1, "kind": "erase", "requestId": uuid.uuid4().hex,
            "requestedAt": "2026-11-23T10:00:00.000Z", "requestedBy": "dpo",
            "profileIds": [anna, anna_device], "suppress": hashes,
        }  # fmt: skip
        raw = Producer({"bootstrap.servers": bootstrap})
        raw.produce(topics.IDENTITY_OBSERVATIONS, orjson.dumps(erase), partition=0)
        assert raw.flush(10) == 0

        def state_tombstones() -> set[str]:
            return {k for k, v in read_keyed(bootstrap, topics.SEGMENT_STATE) if k and v is None}

        await wait_until(lambda: {anna, anna_device} <= state_tombstones(), "the segment state tombstones")

        # cdp.profiles: each of Anna's ids ends with an erased record (no personal data), then a
        # tombstone. Ben's profile is live and untouched.
        profiles = latest_profiles(bootstrap)
        for pid in (anna, anna_device):
            *_, last_record, tombstone = profiles[pid]
            assert tombstone is None, pid
            record = orjson.loads(last_record or b"{}")
            assert (record["erased"], record["live"], record["identifiers"], record["traits"]) == (
                True, False, [], {},
            )  # fmt: skip
            assert record["attributes"] == {} and record["snapshot"] is None
        ben_record = orjson.loads(profiles[ben][-1] or b"{}")
        assert ben_record["live"] and "erased" not in ben_record
        # The segment: Anna exits with reason erased, Ben stays.
        exits = [m for m in memberships(bootstrap) if m["action"] == "exited"]
        assert [(m["profileId"], m["reason"], m["segmentId"]) for m in exits] == [(anna, "erased", "buyers")]
        assert exits[0]["traits"] == {}

        # Later: an event with Anna's email (and a new device) is dropped; Ben's next event flows.
        await send(canonical("a3", {"email": ANNA_EMAIL, "anonymousId": "dev-new"}, "Product Viewed"))
        await send(canonical("b2", {"customerId": "KB"}, "Order Completed", order_id="OB2", revenue=5.0,
                             currency="EUR"))  # fmt: skip

        def ben_flowed() -> bool:
            return any(
                orjson.loads(v)["attributes"].get("orders_count") == 2
                for k, v in read_keyed(bootstrap, topics.PROFILES)
                if k == ben and v
            )

        await wait_until(ben_flowed, "Ben's second order in his profile")
        assert await identity.drain(within=60)
        assert identity.events_suppressed == 1
        resolved = read_keyed(bootstrap, topics.IDENTITY_RESOLVED)
        unresolved = read_keyed(bootstrap, topics.IDENTITY_UNRESOLVED)
        for _key, value in [*resolved, *unresolved]:
            assert value is not None
            assert b'"messageId":"a3"' not in value and b"dev-new" not in value
        assert not [v for _k, v in unresolved if v and ANNA_EMAIL.encode() in v]
        assert any(b'"messageId":"b2"' in (value or b"") for _key, value in resolved)
    finally:
        await segments.stop()
        await identity.stop()
        await asyncio.to_thread(producer.close)


def test_an_erase_record_clears_the_person_from_every_stream_processor(
    erasure_broker: TansuBroker, chdb_engine: ChdbWarehouse, database: str
) -> None:
    warehouse = ChdbWarehouse.for_path(chdb_engine.data_dir, database)
    try:
        apply_migrations(warehouse)
        apply_definitions(warehouse, load_documents(BUYERS))
        asyncio.run(scenario(erasure_broker.bootstrap, warehouse))
    finally:
        warehouse.close()
