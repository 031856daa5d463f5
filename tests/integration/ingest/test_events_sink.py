"""cdp.events -> warehouse ``events`` table, on a real broker and both warehouse adapters."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from schemas import topics
from schemas.topics import PLATFORM_TOPICS
from services.core.kafka.admin import ensure_topics
from services.core.kafka.broker import TansuBroker, free_port
from services.core.metrics import SinkMetrics
from services.core.topic_sink import TopicSink, _Batch, is_canonical_event
from services.core.warehouse.migrations import apply_migrations
from services.core.warehouse.port import Warehouse
from services.ingest.normalise import NormalisedEvent, normalise

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture
def fresh_broker() -> Iterator[TansuBroker]:
    with TansuBroker("127.0.0.1", free_port()) as running:
        ensure_topics(running.bootstrap, PLATFORM_TOPICS, partitions=4, replication=1)
        yield running


@pytest.fixture
def events_table(warehouse: Warehouse) -> Warehouse:
    apply_migrations(warehouse)
    return warehouse


def canonical(raw: dict) -> NormalisedEvent:
    event = normalise(raw, received_at=NOW, default_source="api")
    assert isinstance(event, NormalisedEvent)
    return event


def produce(bootstrap: str, events: list[NormalisedEvent], raw: list[bytes] = ()) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for event in events:
        producer.produce(topics.EVENTS, event.to_json(), event.key)
    for value in raw:
        producer.produce(topics.EVENTS, value, b"poison")
    assert producer.flush(10) == 0


def start_sink(
    broker: TansuBroker, warehouse: Warehouse, sink_type: type[TopicSink] = TopicSink
) -> TopicSink:
    sink = sink_type(broker.bootstrap, broker.cluster_id, warehouse, SinkMetrics.create(CollectorRegistry()),
                     valid=is_canonical_event, flush_seconds=0.2, session_timeout_ms=6000)  # fmt: skip
    sink.start()
    return sink


def rows(warehouse: Warehouse, sql: str, **params: object) -> list[tuple]:
    return warehouse.query(sql.replace("{db}", warehouse.database), params)


def wait_count(warehouse: Warehouse, expected: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        count = rows(warehouse, "SELECT count() FROM {db}.events")[0][0]
        if count >= expected:
            break
        time.sleep(0.2)
    assert count == expected


def test_columns_are_derived_from_the_canonical_record(fresh_broker, events_table):
    run = uuid.uuid4().hex[:8]
    events = [
        canonical({"type": "track", "event": "Order Completed", "userId": "C1", "messageId": f"{run}-o",
                   "timestamp": "2026-11-20T09:30:00.250Z", "context": {"traits": {"email": "a@b.de"}},
                   "properties": {"order_id": "O1", "total": 42.5, "currency": "EUR"}}),
        canonical({"type": "track", "event": "Conversation Rated", "anonymousId": "anon-1", "messageId": f"{run}-c",
                   "properties": {"conversation_id": "k1", "csat": 2, "chat_handle": "@anna"}}),
        canonical({"type": "identify", "userId": "C1", "messageId": f"{run}-i", "traits": {"phone": "+4930123"}}),
    ]  # fmt: skip
    produce(fresh_broker.bootstrap, events)
    sink = start_sink(fresh_broker, events_table)
    try:
        wait_count(events_table, 3)
    finally:
        sink.stop()
    by_id = {
        r[0]: r[1:]
        for r in rows(events_table, "SELECT message_id, channel, event, user_id, email, chat_handle, phone, "
                      "order_id, revenue, currency, timestamp, received_at, properties, kafka_cluster FROM {db}.events")
    }  # fmt: skip
    channel, event, user, email, _, _, order, revenue, currency, ts, received, props, cluster = by_id[
        f"{run}-o"
    ]
    assert (channel, event, user, email, order, revenue, currency) == (
        "shop",
        "Order Completed",
        "C1",
        "a@b.de",
        "O1",
        42.5,
        "EUR",
    )
    assert ts == datetime(2026, 11, 20, 9, 30, 0, 250000, tzinfo=UTC)
    assert received == NOW
    assert '"order_id":"O1"' in props
    assert cluster == fresh_broker.cluster_id
    assert by_id[f"{run}-c"][0] == "chat" and by_id[f"{run}-c"][4] == "@anna" and by_id[f"{run}-c"][7] is None
    assert by_id[f"{run}-i"][5] == "+4930123" and by_id[f"{run}-i"][1] == ""


class CrashAfterInsert(TopicSink):
    """Dies between the warehouse insert and the Kafka commit: the worst moment for duplicates."""

    def _commit(self, batch: _Batch) -> None:
        raise RuntimeError("simulated crash before the offset commit")


def test_crash_after_insert_before_commit_adds_no_duplicates_on_restart(fresh_broker, events_table):
    run = uuid.uuid4().hex[:8]
    events = [canonical({"type": "track", "event": "Product Viewed", "userId": f"U{i % 7}", "messageId": f"{run}-{i}",
                         "properties": {"product_id": f"P{i}"}}) for i in range(300)]  # fmt: skip
    produce(fresh_broker.bootstrap, events)
    crashing = start_sink(fresh_broker, events_table, CrashAfterInsert)
    wait_count(events_table, 300)
    crashing.stop()
    assert not crashing.is_alive()

    # Nothing was committed on Kafka; the restarted sink must resume from the warehouse's offsets.
    more = [
        canonical({"type": "identify", "userId": f"N{i}", "messageId": f"{run}-new-{i}"}) for i in range(20)
    ]
    produce(fresh_broker.bootstrap, more)
    sink = start_sink(fresh_broker, events_table)
    try:
        wait_count(events_table, 320)
        time.sleep(1.0)  # a replay, if any, would arrive now
        wait_count(events_table, 320)
    finally:
        sink.stop()
    [(distinct,)] = rows(events_table, "SELECT uniqExact(message_id) FROM {db}.events")
    assert distinct == 320


def test_unreadable_record_is_skipped_and_the_rest_still_land(fresh_broker, events_table):
    run = uuid.uuid4().hex[:8]
    good = [canonical({"type": "identify", "userId": f"G{i}", "messageId": f"{run}-{i}"}) for i in range(5)]
    produce(fresh_broker.bootstrap, good[:2], raw=[b"not json at all", b'{"no": "message id"}'])
    produce(fresh_broker.bootstrap, good[2:])
    sink = start_sink(fresh_broker, events_table)
    try:
        wait_count(events_table, 5)
    finally:
        sink.stop()
    assert sink.rows_skipped == 2
