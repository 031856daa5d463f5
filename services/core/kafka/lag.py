"""Consumer lag in records and in seconds, read from the broker the same way on Tansu and Kafka.

A consumer knows, per partition, the next offset it has not processed yet (``done``). The
``LagProbe`` fetches that offset with a consumer of its own (no group, nothing committed):

* a record there is the oldest one not yet processed: its create time gives the lag in seconds,
  and the fetch response's high watermark gives the lag in records (``high - offset``);
* the end of the partition there means caught up (0 records, 0 seconds).

The high watermark of a fetch response is exact on Tansu and on Apache Kafka, unlike the one a
``ListOffsets`` request returns on Tansu (the start of the last record batch: too low), which is
why lag is measured by fetching and not from ``get_watermark_offsets`` alone.

The ``LagMonitor`` (one per process and broker, one thread) asks every watched consumer for its
positions every ``LAG_INTERVAL_SECONDS`` and sets ``cdp_consumer_lag_records`` and
``cdp_consumer_lag_seconds`` per group and topic. It runs on a thread of its own, so a consumer
that is stuck (a warehouse outage, a blocked loop) still shows its lag growing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, TopicPartition
from prometheus_client import Gauge

from services.core.kafka.producer import KAFKA_LOG

log = logging.getLogger(__name__)

LAG_INTERVAL_SECONDS = 5.0
PROBE_GROUP = "cdp-lag-probe"  # assign() only: it never joins and never commits


@dataclass(frozen=True, slots=True)
class PartitionLag:
    records: int
    oldest_ms: int | None = None
    """Create time (Unix ms) of the oldest record not yet processed; None when caught up or unknown."""


def _probe_config(bootstrap: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": PROBE_GROUP,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        # One record per partition is all a probe needs: small, quick fetches.
        "fetch.wait.max.ms": 10,
        "max.partition.fetch.bytes": 65_536,
        "queued.max.messages.kbytes": 1024,
        "log.connection.close": False,
        "logger": KAFKA_LOG,
    }


class LagProbe:
    """What is pending at given offsets. Thread-safe; ``close`` it when done."""

    def __init__(self, bootstrap: str, timeout: float = 2.0) -> None:
        self._bootstrap = bootstrap
        self._timeout = timeout
        self._consumer: Consumer | None = None
        self._lock = threading.Lock()

    def measure(self, wanted: Iterable[tuple[str, int, int]]) -> dict[tuple[str, int, int], PartitionLag]:
        """``wanted``: (topic, partition, first offset not processed; negative: the beginning).
        A partition the broker did not answer for within the timeout is left out."""
        requests = sorted(set(wanted))
        if not requests:
            return {}
        with self._lock:
            existing = self._partitions()
        rounds: list[dict[tuple[str, int], int]] = []
        for topic, partition, offset in requests:
            if (topic, partition) not in existing:
                continue  # no such partition (yet): nothing to fetch, nothing to wait for
            # One consumer holds a partition once: one partition at two offsets (two groups reading
            # one topic) takes two rounds.
            for batch in rounds:
                if (topic, partition) not in batch:
                    batch[(topic, partition)] = offset
                    break
            else:
                rounds.append({(topic, partition): offset})
        results: dict[tuple[str, int, int], PartitionLag] = {}
        with self._lock:
            for batch in rounds:
                for (topic, partition), lag in self._fetch(batch).items():
                    results[(topic, partition, batch[(topic, partition)])] = lag
        return results

    def partitions(self, topic: str) -> list[int]:
        """The partitions of ``topic`` (none when it does not exist)."""
        with self._lock:
            return sorted(p for name, p in self._partitions() if name == topic)

    def _client(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(_probe_config(self._bootstrap))
        return self._consumer

    def _partitions(self) -> set[tuple[str, int]]:
        topics = self._client().list_topics(timeout=self._timeout).topics
        return {(name, p) for name, topic in topics.items() for p in topic.partitions}

    def _fetch(self, offsets: Mapping[tuple[str, int], int]) -> dict[tuple[str, int], PartitionLag]:
        consumer = self._client()
        consumer.assign(
            [TopicPartition(t, p, o if o >= 0 else OFFSET_BEGINNING) for (t, p), o in offsets.items()]
        )
        caught_up: set[tuple[str, int]] = set()
        failed: set[tuple[str, int]] = set()  # no answer for this partition this time (unknown topic...)
        first: dict[tuple[str, int], tuple[int, int | None]] = {}  # offset and create time of the record
        deadline = time.monotonic() + self._timeout
        try:
            while len(caught_up) + len(failed) + len(first) < len(offsets) and time.monotonic() < deadline:
                for message in consumer.consume(len(offsets), 0.05):
                    key = (str(message.topic()), int(message.partition() or 0))
                    if key not in offsets or key in caught_up or key in failed or key in first:
                        continue
                    error = message.error()
                    if error is None:
                        kind, created = message.timestamp()
                        known = kind != TIMESTAMP_NOT_AVAILABLE and created > 0
                        first[key] = (int(message.offset() or 0), created if known else None)
                    elif error.code() == KafkaError._PARTITION_EOF:
                        caught_up.add(key)
                    else:
                        failed.add(key)
            found = {key: PartitionLag(0) for key in caught_up}
            for key, (offset, oldest_ms) in first.items():
                found[key] = PartitionLag(max(1, self._high_watermark(consumer, key) - offset), oldest_ms)
        finally:
            consumer.unassign()
        return found

    def _high_watermark(self, consumer: Consumer, key: tuple[str, int]) -> int:
        """The high watermark of the last fetch response (exact on Tansu too), else ListOffsets'."""
        tp = TopicPartition(*key)
        _low, high = consumer.get_watermark_offsets(tp, cached=True)
        if high is None or high < 0:
            _low, high = consumer.get_watermark_offsets(tp, timeout=self._timeout, cached=False)
        return int(high)

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None


@dataclass(frozen=True, slots=True)
class GroupPositions:
    """Where ``group`` stands on ``topic``: the next offset not yet processed, per partition this
    process reads (negative: nothing processed, from the beginning). No partitions: lag 0."""

    group: str
    topic: str
    done: Mapping[int, int] = field(default_factory=dict)


def lag_by_series(
    positions: Sequence[GroupPositions], lags: Mapping[tuple[str, int, int], PartitionLag], now: float
) -> dict[tuple[str, str], tuple[int, float]]:
    """(records, seconds) per (group, topic): the records summed over the partitions, the seconds
    of the oldest record not yet processed (0 when caught up)."""
    series: dict[tuple[str, str], tuple[int, float]] = {}
    for entry in positions:
        records, seconds = series.get((entry.group, entry.topic), (0, 0.0))
        for partition, done in entry.done.items():
            lag = lags.get((entry.topic, partition, done))
            if lag is None:
                continue
            records += lag.records
            if lag.records and lag.oldest_ms is not None:
                seconds = max(seconds, now - lag.oldest_ms / 1000)
        series[(entry.group, entry.topic)] = (records, seconds)
    return series


@dataclass(eq=False)
class LagWatch:
    """One watched consumer: ``positions`` is called on the monitor's thread."""

    positions: Callable[[], Sequence[GroupPositions]]
    records: Gauge
    seconds: Gauge
    reported: set[tuple[str, str]] = field(default_factory=set)

    def set(self, values: Mapping[tuple[str, str], tuple[int, float]]) -> None:
        for (group, topic), (records, seconds) in values.items():
            self.records.labels(group, topic).set(records)
            self.seconds.labels(group, topic).set(round(seconds, 3))
        for group, topic in self.reported - set(values):
            # A series this process no longer reports (the partitions moved to another process).
            for gauge in (self.records, self.seconds):
                with contextlib.suppress(KeyError):
                    gauge.remove(group, topic)
        self.reported = set(values)


class LagMonitor:
    """Measures the lag of every watched consumer of one broker, on one thread per process."""

    interval: ClassVar[float] = LAG_INTERVAL_SECONDS
    _monitors: ClassVar[dict[str, LagMonitor]] = {}
    _monitors_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._watches: list[LagWatch] = []
        self._wake = threading.Event()
        self._measuring = threading.Lock()
        self._thread: threading.Thread | None = None

    @classmethod
    def watch(
        cls,
        bootstrap: str,
        positions: Callable[[], Sequence[GroupPositions]],
        records: Gauge,
        seconds: Gauge,
        series: Iterable[tuple[str, str]] = (),
    ) -> LagWatch:
        """Watch a consumer until ``unwatch``; ``series`` (group, topic) show 0 until measured."""
        watch = LagWatch(positions, records, seconds)
        watch.set(dict.fromkeys(series, (0, 0.0)))
        with cls._monitors_lock:
            monitor = cls._monitors.get(bootstrap)
            if monitor is None:
                monitor = cls._monitors[bootstrap] = LagMonitor(bootstrap)
            monitor._watches.append(watch)
            if monitor._thread is None:
                monitor._thread = threading.Thread(target=monitor._run, name="consumer-lag", daemon=True)
                monitor._thread.start()
        return watch

    @classmethod
    def unwatch(cls, bootstrap: str, watch: LagWatch) -> None:
        """Stop measuring ``watch``. Returns once no measurement uses it any more (its consumer may
        close its resources then); the last one stops the monitor's thread."""
        with cls._monitors_lock:
            monitor = cls._monitors.get(bootstrap)
            if monitor is None or watch not in monitor._watches:
                return
            monitor._watches.remove(watch)
            thread = None
            if not monitor._watches:
                del cls._monitors[bootstrap]
                thread, monitor._thread = monitor._thread, None
                monitor._wake.set()
        with monitor._measuring:  # a measurement under way has finished (never called on its thread)
            pass
        if thread is not None:
            thread.join(10)

    def _run(self) -> None:
        probe = LagProbe(self._bootstrap)
        try:
            while not self._wake.wait(self.interval):
                with self._measuring:
                    with self._monitors_lock:
                        watches = list(self._watches)
                    self.measure(probe, watches)
        finally:
            probe.close()

    @staticmethod
    def measure(probe: LagProbe, watches: Sequence[LagWatch]) -> None:
        """One measurement of every watch (each one's failure is its own: lag is informational)."""
        asked: list[tuple[LagWatch, Sequence[GroupPositions]]] = []
        for watch in watches:
            try:
                asked.append((watch, watch.positions()))
            except Exception:
                log.debug("consumer lag: cannot read a consumer's positions", exc_info=True)
        wanted = [
            (entry.topic, partition, done)
            for _watch, positions in asked
            for entry in positions
            for partition, done in entry.done.items()
        ]
        try:
            lags = probe.measure(wanted)
        except Exception:
            log.debug("consumer lag: the probe failed", exc_info=True)
            return
        now = time.time()
        for watch, positions in asked:
            watch.set(lag_by_series(positions, lags, now))
