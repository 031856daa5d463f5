"""Consumer lag and dead-letter depth read from the real broker (Tansu), where a ``ListOffsets``
request reports the start of the last record batch and only a fetch tells where a partition ends."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from schemas.topics import TopicSpec
from services.core.kafka.admin import ensure_topics
from services.core.kafka.broker import TansuBroker
from services.core.kafka.lag import GroupPositions, LagMonitor, LagProbe, LagWatch
from services.core.metrics import IngestMetrics, consumer_lag_gauge, consumer_lag_seconds_gauge
from services.ingest.dead_letter_depth import DeadLetterDepth

pytestmark = pytest.mark.integration


def fresh_topic(broker: TansuBroker, partitions: int = 2) -> str:
    name = f"lag-{uuid.uuid4().hex[:8]}"
    ensure_topics(broker.bootstrap, [TopicSpec(name)], partitions, 1)
    return name


def produce_one_batch(broker: TansuBroker, topic: str, count: int, partition: int = 0) -> float:
    """``count`` records in one record batch; returns the time they were produced."""
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap, "linger.ms": 200, "batch.num.messages": 10_000}
    )
    produced = time.time()
    for i in range(count):
        producer.produce(topic, b"r%d" % i, partition=partition)
    assert producer.flush(10) == 0
    return produced


@pytest.fixture
def probe(broker: TansuBroker) -> Iterator[LagProbe]:
    handle = LagProbe(broker.bootstrap)
    yield handle
    handle.close()


def test_the_probe_counts_every_record_of_a_batch_and_dates_the_oldest(
    broker: TansuBroker, probe: LagProbe
) -> None:
    topic = fresh_topic(broker)
    produced = produce_one_batch(broker, topic, 100)
    time.sleep(0.3)
    lags = probe.measure(
        [(topic, 0, 0), (topic, 0, 40), (topic, 0, 100), (topic, 1, -1001), ("no-such-topic", 0, 0)]
    )
    assert lags.keys() == {(topic, 0, 0), (topic, 0, 40), (topic, 0, 100), (topic, 1, -1001)}
    assert (lags[(topic, 0, 0)].records, lags[(topic, 0, 40)].records) == (100, 60)
    assert (lags[(topic, 0, 100)].records, lags[(topic, 1, -1001)].records) == (0, 0)
    oldest = lags[(topic, 0, 0)].oldest_ms
    assert oldest is not None and produced - 1 <= oldest / 1000 <= time.time() - 0.3
    assert lags[(topic, 0, 100)].oldest_ms is None


def test_the_monitor_sets_records_and_seconds_per_group_and_zero_once_caught_up(
    broker: TansuBroker, probe: LagProbe
) -> None:
    topic = fresh_topic(broker)
    produce_one_batch(broker, topic, 30, partition=1)
    registry = CollectorRegistry()
    done = {0: 0, 1: 0}
    watch = LagWatch(
        lambda: [GroupPositions("g", topic, dict(done))],
        consumer_lag_gauge(registry),
        consumer_lag_seconds_gauge(registry),
    )
    time.sleep(1.1)
    LagMonitor.measure(probe, [watch])
    labels = {"group": "g", "topic": topic}
    assert registry.get_sample_value("cdp_consumer_lag_records", labels) == 30
    seconds = registry.get_sample_value("cdp_consumer_lag_seconds", labels)
    assert seconds is not None and seconds >= 1.0
    done[1] = 30
    LagMonitor.measure(probe, [watch])
    assert registry.get_sample_value("cdp_consumer_lag_records", labels) == 0
    assert registry.get_sample_value("cdp_consumer_lag_seconds", labels) == 0


def test_the_monitor_thread_reports_a_watched_consumer_until_it_is_unwatched(
    broker: TansuBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LagMonitor, "interval", 0.1)
    topic = fresh_topic(broker)
    produce_one_batch(broker, topic, 5)
    registry = CollectorRegistry()
    records, seconds = consumer_lag_gauge(registry), consumer_lag_seconds_gauge(registry)
    calls: list[float] = []

    def positions() -> list[GroupPositions]:
        calls.append(time.monotonic())
        return [GroupPositions("g", topic, {0: 0})]

    labels = {"group": "g", "topic": topic}
    watch = LagMonitor.watch(broker.bootstrap, positions, records, seconds, [("g", topic)])
    try:
        assert registry.get_sample_value("cdp_consumer_lag_records", labels) == 0  # until measured
        deadline = time.monotonic() + 20
        while registry.get_sample_value("cdp_consumer_lag_records", labels) != 5:
            assert time.monotonic() < deadline, "the monitor's thread never measured the watch"
            time.sleep(0.05)
    finally:
        LagMonitor.unwatch(broker.bootstrap, watch)
    asked = len(calls)
    time.sleep(0.5)
    assert len(calls) == asked, "measured after unwatch returned"
    LagMonitor.unwatch(broker.bootstrap, watch)  # a second time: nothing happens


def test_dead_letter_depth_counts_a_batch_written_at_once(broker: TansuBroker) -> None:
    topic = fresh_topic(broker, partitions=3)
    registry = CollectorRegistry()
    gauge = IngestMetrics.create(registry).dlq_depth
    depth = DeadLetterDepth(broker.bootstrap, topic=topic, min_interval=0.0).bind(gauge)
    try:
        assert registry.get_sample_value("cdp_dlq_depth_records") == 0
        produce_one_batch(broker, topic, 25, partition=2)
        produce_one_batch(broker, topic, 1, partition=0)
        assert registry.get_sample_value("cdp_dlq_depth_records") == 26
    finally:
        depth.close()
