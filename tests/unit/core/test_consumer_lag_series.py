"""How partition lags become the ``cdp_consumer_lag_*`` series, and the shared metric families."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.core.kafka.lag import GroupPositions, LagWatch, PartitionLag, lag_by_series
from services.core.metrics import (
    IdentityMetrics,
    IngestMetrics,
    SegmentMetrics,
    SinkMetrics,
    consumer_lag_gauge,
    consumer_lag_seconds_gauge,
)

NOW = 1_800_000_000.0


def test_records_add_up_over_partitions_and_seconds_are_those_of_the_oldest_pending_record() -> None:
    positions = [GroupPositions("sink", "t", {0: 10, 1: 5, 2: 7})]
    lags = {
        ("t", 0, 10): PartitionLag(3, int((NOW - 4) * 1000)),
        ("t", 1, 5): PartitionLag(2, int((NOW - 9.5) * 1000)),
        ("t", 2, 7): PartitionLag(0),  # caught up
    }
    assert lag_by_series(positions, lags, NOW) == {("sink", "t"): (5, 9.5)}


def test_a_caught_up_group_shows_zero_and_an_unanswered_partition_is_left_out() -> None:
    positions = [
        GroupPositions("a", "t", {0: 4}),
        GroupPositions("b", "t", {0: 2, 1: 0}),
        GroupPositions("c", "u"),
    ]
    lags = {("t", 0, 4): PartitionLag(0), ("t", 0, 2): PartitionLag(2, int((NOW - 1) * 1000))}
    assert lag_by_series(positions, lags, NOW) == {
        ("a", "t"): (0, 0.0),
        ("b", "t"): (2, 1.0),
        ("c", "u"): (0, 0.0),
    }


def test_pending_records_without_a_create_time_count_as_records_only() -> None:
    positions = [GroupPositions("g", "t", {0: 0})]
    assert lag_by_series(positions, {("t", 0, 0): PartitionLag(7, None)}, NOW) == {("g", "t"): (7, 0.0)}


def test_a_watch_sets_both_gauges_and_drops_the_series_it_no_longer_reports() -> None:
    registry = CollectorRegistry()
    records, seconds = consumer_lag_gauge(registry), consumer_lag_seconds_gauge(registry)
    watch = LagWatch(lambda: [], records, seconds)
    watch.set({("fwd", "cdp.events"): (12, 3.25), ("id", "cdp.identity.resolved"): (0, 0.0)})
    labels = {"group": "fwd", "topic": "cdp.events"}
    assert registry.get_sample_value("cdp_consumer_lag_records", labels) == 12
    assert registry.get_sample_value("cdp_consumer_lag_seconds", labels) == 3.25
    watch.set({("id", "cdp.identity.resolved"): (1, 0.5)})  # the forward group went to another worker
    assert registry.get_sample_value("cdp_consumer_lag_records", labels) is None
    assert registry.get_sample_value("cdp_consumer_lag_seconds", labels) is None
    kept = {"group": "id", "topic": "cdp.identity.resolved"}
    assert registry.get_sample_value("cdp_consumer_lag_records", kept) == 1


def test_one_process_can_hold_a_worker_its_sinks_and_ingest_in_one_registry() -> None:
    registry = CollectorRegistry()
    identity = IdentityMetrics.create(registry)
    segments = SegmentMetrics.create(registry)
    sinks = SinkMetrics.create(registry)
    ingest = IngestMetrics.create(registry)
    assert identity.consumer_lag is sinks.consumer_lag is segments.consumer_lag
    assert identity.consumer_lag_seconds is sinks.consumer_lag_seconds is segments.consumer_lag_seconds
    assert identity.dlq_messages is ingest.dlq_messages
    assert consumer_lag_gauge(CollectorRegistry()) is not identity.consumer_lag
