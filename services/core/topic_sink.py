"""Moves a topic into a warehouse table in large batches, exactly once in effect
(``cdp.events`` -> ``events``, ``cdp.profiles`` -> ``profiles``, ...).

At-least-once from Kafka (offsets are committed only after the insert), exactly-once in the
table: every row records its Kafka cluster, partition and offset, the sink resumes after the
highest offset the table holds, and each insert carries a deduplication token for its offset
ranges, so a retried insert adds nothing.

The sink does no per-record work beyond wrapping the record's bytes: ClickHouse derives the
table's columns from the JSON at insert time (an EPHEMERAL ``_raw`` column, see schemas/ddl/).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from schemas import topics
from services.core.failure_log import FailureLog
from services.core.kafka.lag import GroupPositions, LagMonitor, LagWatch
from services.core.kafka.producer import KAFKA_LOG
from services.core.log_hygiene import error_summary
from services.core.metrics import SinkMetrics
from services.core.warehouse.port import Warehouse, WarehouseError, WarehouseUnavailable

log = logging.getLogger(__name__)


INSERT_COLUMNS = ("_raw", "kafka_cluster", "kafka_partition", "kafka_offset")
RECENT_MESSAGE_IDS = 100_000
"""messageIds a sink with ``message_id_of`` remembers (about 10 MB) to recognise a repeated event."""
TOPIC_INSERT_COLUMNS = (*INSERT_COLUMNS, "kafka_topic")


@dataclass(slots=True)
class _Batch:
    rows: list[bytes] = field(default_factory=list)
    ranges: dict[int, list[int]] = field(default_factory=dict)  # partition -> [first, last]
    oldest_ms: int = 0  # Kafka create time of the oldest record: when ingest accepted it
    started: float = 0.0

    def add(self, partition: int, offset: int, row: bytes | None, created_ms: int) -> None:
        """``row`` None: a record that is no row (skipped), whose offset must still be committed."""
        if not self.ranges:
            self.started = time.monotonic()
        if row is not None:
            self.rows.append(row)
        span = self.ranges.setdefault(partition, [offset, offset])
        span[1] = offset
        if created_ms > 0 and (self.oldest_ms == 0 or created_ms < self.oldest_ms):
            self.oldest_ms = created_ms

    def token(self, cluster: str, table: str) -> str:
        spans = ",".join(f"{p}:{a}-{b}" for p, (a, b) in sorted(self.ranges.items()))
        return hashlib.sha256(f"{cluster}|{table}|{spans}".encode()).hexdigest()


def consumer_config(bootstrap: str, group: str, session_timeout_ms: int) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": session_timeout_ms,
        "heartbeat.interval.ms": max(500, session_timeout_ms // 3),
        "isolation.level": "read_committed",
        "fetch.wait.max.ms": 100,
        "log.connection.close": False,
        "logger": KAFKA_LOG,
    }


class TopicSink:
    """``topic`` -> ``table``. Records for which ``skip(value)`` is true are not rows (control records,
    an erased profile's last record). A tombstone (null value) is never a row.

    ``explode``: a message holds several records (a batch, see ``services/core/kafka/batches.py``);
    each record is a row (all rows of one message go into the same insert).
    ``topic_column``: the table is written from several topics and records each row's topic in
    ``kafka_topic``; positions are then per topic. ``resume_table``: where the lineage columns can
    be read when ``table`` cannot be queried (a Null landing table feeding a materialized view).
    ``position_of`` and ``message_id_of``: the records are decisions of the identity graph, with
    positions increasing on each partition and a messageId each; a record at or below the highest
    position of its partition (stored or in the batch), or with a messageId among the latest
    ``RECENT_MESSAGE_IDS`` ones, is a repeat that a restarted worker produced again, and no row.
    """

    def __init__(
        self,
        bootstrap: str,
        cluster_id: str,
        warehouse: Warehouse,
        metrics: SinkMetrics,
        *,
        topic: str = topics.EVENTS,
        table: str = "events",
        group: str | None = None,
        skip: Callable[[bytes], bool] | None = None,
        valid: Callable[[dict[str, Any]], bool] | None = None,
        batch_rows: int = 50_000,
        flush_seconds: float = 1.0,
        session_timeout_ms: int = 6000,
        topic_column: bool = False,
        resume_table: str | None = None,
        explode: Callable[[bytes], list[bytes]] | None = None,
        position_of: Callable[[bytes], int | None] | None = None,
        message_id_of: Callable[[bytes], bytes | None] | None = None,
    ) -> None:
        self.topic = topic
        self._topic_column = topic_column
        self._resume_table = resume_table or table
        self._columns = TOPIC_INSERT_COLUMNS if topic_column else INSERT_COLUMNS
        self._explode = explode
        self._position_of = position_of
        self._positions: dict[int, int] = {}  # partition -> highest position stored or in the batch
        self._message_id_of = message_id_of
        self._recent: dict[bytes, None] = {}  # the latest messageIds written, oldest first
        self._topic_json = orjson.dumps(topic)
        self.table = table
        self._skip = skip
        self._valid = valid
        group = group or f"cdp-warehouse-{table}"
        self._warehouse = warehouse
        self._metrics = metrics
        self._cluster = cluster_id
        self._group = group
        self._batch_rows = batch_rows
        self._flush_seconds = flush_seconds
        self._bootstrap = bootstrap
        self._consumer = Consumer(consumer_config(bootstrap, group, session_timeout_ms))
        self._written: dict[int, int] = {}  # partition -> next offset not yet in the warehouse
        self._lag: LagWatch | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._assigned = threading.Event()
        self._drain_deadline = 0.0
        self._batch = _Batch()
        self._cluster_json = orjson.dumps(cluster_id)
        self.rows_written = 0
        self.rows_skipped = 0
        self.rows_repeated = 0
        self.on_written: Callable[[list[bytes]], None] | None = None
        """Called in the sink's thread with each batch's rows once the insert succeeded (rows it set
        aside as unreadable included): ``cdp up`` learns which acknowledged events are stored."""
        self._failures = FailureLog(
            log, f"warehouse insert into {table}",
            f"retrying with back-off (up to 5 s) until it succeeds; the records wait on {topic}",
        )  # fmt: skip

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._thread = threading.Thread(target=self._run, name=f"sink-{self.table}", daemon=True)
        self._thread.start()
        self._lag = LagMonitor.watch(
            self._bootstrap, self._lag_positions, self._metrics.consumer_lag,
            self._metrics.consumer_lag_seconds, series=[(self._group, self.topic)],
        )  # fmt: skip

    def wait_assigned(self, timeout: float) -> bool:
        return self._assigned.wait(timeout)

    def stop(self, drain_timeout: float = 10.0) -> None:
        """Write what has been consumed, commit, leave the group. With a drain timeout, first
        catch up with everything already on the topic (clean shutdown loses nothing)."""
        self._drain_deadline = time.monotonic() + drain_timeout
        self._stop.set()
        if self._thread is not None:
            self._thread.join(drain_timeout + 30)
        if self._lag is not None:
            LagMonitor.unwatch(self._bootstrap, self._lag)
            self._lag = None

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- positions ---------------------------------------------------------------------------
    def _resume_offsets(self) -> dict[int, int]:
        by_topic = " AND kafka_topic = {topic:String}" if self._topic_column else ""
        rows = self._warehouse.query(
            f"SELECT kafka_partition, max(kafka_offset) FROM {self._warehouse.database}.{self._resume_table} "
            f"WHERE kafka_cluster = {{cluster:String}}{by_topic} GROUP BY kafka_partition",
            {"cluster": self._cluster, "topic": self.topic}
            if self._topic_column
            else {"cluster": self._cluster},
        )
        return {int(partition): int(offset) + 1 for partition, offset in rows}

    def _stored_positions(self) -> dict[int, int]:
        """Per partition, the highest ``position`` of this topic's rows (see ``position_of``)."""
        rows = self._warehouse.query(
            f"SELECT kafka_partition, max(position) FROM {self._warehouse.database}.{self._resume_table} "
            "WHERE kafka_cluster = {cluster:String} AND kafka_topic = {topic:String} "
            "GROUP BY kafka_partition",
            {"cluster": self._cluster, "topic": self.topic},
        )
        return {int(partition): int(position) for partition, position in rows}

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            stored = self._resume_offsets()
            self._positions = self._stored_positions() if self._position_of is not None else {}
        except WarehouseError:
            log.exception("cannot read resume offsets from the warehouse; using committed offsets")
            stored = {}
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=10)}
        for tp in partitions:
            offset = max(stored.get(tp.partition, -1), committed.get(tp.partition, -1))
            tp.offset = offset if offset >= 0 else OFFSET_BEGINNING
            self._written[tp.partition] = tp.offset
        consumer.assign(partitions)
        self._assigned.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Write and commit what was read before another member takes these partitions over.
        if self._batch.ranges:
            self._write(self._batch)
            self._batch = _Batch()
        for tp in partitions:
            self._written.pop(tp.partition, None)
        consumer.unassign()

    # --- loop --------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                stopping = self._stop.is_set()
                messages = self._consumer.consume(min(self._batch_rows, 10_000), 0.1 if stopping else 0.2)
                batch = self._batch  # on_revoke (called inside consume) may have written and replaced it
                for message in messages:
                    self._add(batch, message)
                due = batch.ranges and (
                    len(batch.rows) >= self._batch_rows
                    or time.monotonic() - batch.started >= self._flush_seconds
                )
                if due or (stopping and batch.ranges):
                    self._write(batch)
                    self._batch = _Batch()
                if stopping and (not messages or time.monotonic() > self._drain_deadline):
                    break
        except Exception:
            log.exception(
                "the %s sink stopped on an unexpected error; uncommitted records will be re-read", self.table
            )
            self._batch = _Batch()  # not committed: closing must not write it again
        finally:
            self._consumer.close()

    def _add(self, batch: _Batch, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error on %s: %s", self.topic, error.str())
            return
        value, partition, offset = message.value(), message.partition(), message.offset()
        if partition is None or offset is None:
            return
        if value is None:  # a tombstone (an erased profile) is never a row; its offset is committed
            batch.add(partition, offset, None, 0)
            return
        records = self._explode(value) if self._explode is not None else [value]
        created = message.timestamp()[1]
        added = False
        for record in records:
            if self._skip is not None and self._skip(record):
                continue
            if self._position_of is not None and self._repeated(partition, record):
                self.rows_repeated += 1
                self._metrics.rows_repeated.labels(self.table).inc()
                continue
            row = b'{"_raw":%s,"kafka_cluster":%s,"kafka_partition":%d,"kafka_offset":%d%s}' % (
                record, self._cluster_json, partition, offset,
                b',"kafka_topic":%s' % self._topic_json if self._topic_column else b"",
            )  # fmt: skip
            batch.add(partition, offset, row, created)
            added = True
        if not added:
            batch.add(partition, offset, None, 0)  # no row, but its offset must be committed

    def _repeated(self, partition: int, record: bytes) -> bool:
        """A record a restarted upstream worker produced again (see ``position_of``): the graph
        decided the same observation again (same position), or the forwarder passed the same event
        again (same messageId, a new position)."""
        assert self._position_of is not None
        position = self._position_of(record)
        if position is not None:
            if position <= self._positions.get(partition, -1):
                return True
            self._positions[partition] = position
        message_id = self._message_id_of(record) if self._message_id_of is not None else None
        if message_id is not None:
            if message_id in self._recent:
                return True
            self._recent[message_id] = None
            if len(self._recent) > RECENT_MESSAGE_IDS:
                del self._recent[next(iter(self._recent))]
        return False

    def _write(self, batch: _Batch) -> None:
        started = time.perf_counter()
        written = self._insert(batch.rows, batch.token(self._cluster, self.table))
        if self.on_written is not None:
            self.on_written(batch.rows)
        self._metrics.insert_duration.labels(self.table).observe(time.perf_counter() - started)
        self._metrics.rows_written.labels(self.table).inc(written)
        self._metrics.batch_rows.labels(self.table).observe(written)
        if batch.oldest_ms:
            self._metrics.event_age.labels(self.table).observe(max(0.0, time.time() - batch.oldest_ms / 1000))
        self.rows_written += written
        self._commit(batch)

    def _commit(self, batch: _Batch) -> None:
        offsets = [TopicPartition(self.topic, p, last + 1) for p, (_first, last) in batch.ranges.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Harmless: the rows are in the warehouse, and a sink resumes after the positions stored
            # there (the single-node broker died, or the group coordinator moved).
            log.warning(
                "the %s sink could not commit on %s (%s); its rows are stored", self.table, self.topic, exc
            )
        for tp in offsets:
            self._written[tp.partition] = tp.offset

    def _insert(self, rows: list[bytes], token: str) -> int:
        """Insert until it succeeds (backing off), setting aside records the table cannot read.

        While the warehouse fails, records wait on Kafka (the lag grows, and is still reported);
        the log says when the failures start, at most once a minute that they go on, and when
        they end: a few lines per outage, however long."""
        delay = 0.2
        while rows:
            try:
                self._warehouse.insert_json_rows(
                    self.table, b"\n".join(rows), columns=self._columns, dedup_token=token
                )
                self._failures.succeeded()
                break
            except WarehouseError as exc:
                kind = "unavailable" if isinstance(exc, WarehouseUnavailable) else "rejected"
                self._metrics.insert_errors.labels(self.table, kind).inc()
                unreadable = (
                    0 if isinstance(exc, WarehouseUnavailable) else sum(not self._readable(r) for r in rows)
                )
                if unreadable:
                    # A record the warehouse cannot read must not block everything behind it.
                    log.error("skipping %d unreadable records on %s", unreadable, self.topic)
                    self.rows_skipped += unreadable
                    self._metrics.rows_skipped.labels(self.table).inc(unreadable)
                    rows = [row for row in rows if self._readable(row)]
                    continue
                if self._stop.is_set() and time.monotonic() > self._drain_deadline:
                    log.error(
                        "giving up on %d rows at shutdown (they stay on Kafka): %s",
                        len(rows),
                        error_summary(exc),
                    )
                    raise
                self._failures.failed(error_summary(exc))
                time.sleep(delay)  # the lag monitor's thread goes on reporting the growing lag
                delay = min(delay * 2, 5.0)
        return len(rows)

    def _readable(self, row: bytes) -> bool:
        try:
            record = orjson.loads(row)["_raw"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return False
        return isinstance(record, dict) and (self._valid is None or self._valid(record))

    def _lag_positions(self) -> list[GroupPositions]:
        """For the lag monitor (its thread): what is not in the warehouse yet starts at ``_written``."""
        return [GroupPositions(self._group, self.topic, dict(self._written))]


def is_canonical_event(record: dict[str, Any]) -> bool:
    """An ``events`` row needs at least a messageId and an event time (bare, or nested as resolved)."""
    nested = record.get("event")
    event = nested if isinstance(nested, dict) else record
    return isinstance(event.get("messageId"), str) and "timestamp" in event
