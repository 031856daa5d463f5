"""The faust adapter of the segment processor: ``cdp.profiles`` in, transitions out, exactly once.

* **Input.** A faust agent reads ``cdp.profiles`` (keyed by profile id) in batches; every newer
  profile version is evaluated against every segment.
* **Outputs.** The transitions of a batch (``cdp.segments.membership`` and the feeds
  ``cdp.segment.<id>``) and the changed profiles' state records (``cdp.segments.state``, compacted)
  are produced with the idempotent producer and acknowledged before faust commits the batch.
* **Exactly one transition per change, across crashes.** Every transition carries its number
  (``seq``) per segment, profile and feed. A worker assigned a partition restores its state from the
  warehouse (``segment_membership``: what survived a broker that keeps nothing), the state topic
  (newer) and the tail of the transition topics (a crash can publish a batch's transitions without
  its state records), keeping the highest number for each flag; then it loads, per profile, the
  latest ``cdp.profiles`` record before the group's committed offset and evaluates it once (what
  time changed while nobody watched); later versions reach the agent in order.
  A redelivered profile version at or below the one a state reflects is skipped, and a transition
  already published is never decided again, so none is published twice and none is lost.
  (Kafka transactions would do the same on Apache Kafka, but Tansu makes a killed producer's open
  transaction visible instead of aborting it; this design is correct on both.)
* **Erasure.** An ``erased`` profile record exits every membership (reason ``erased``) and ends
  with a tombstone of the profile's state on ``cdp.segments.state``; a tombstone on
  ``cdp.profiles`` forgets the profile. A restore reads tombstones too: an id whose latest state
  record is a tombstone gets no state (neither from the warehouse rows nor from the transition
  tail), and an id whose latest profile record is a tombstone is not evaluated.
* **Time.** A sweep every ``sweep_seconds`` evaluates the profiles whose recheck instant has come.
* **Definitions** are polled from the warehouse; a new or changed segment is evaluated over every
  profile in chunks (backfill), with progress in ``segment_backfills`` and the metrics.
* **Subscribers never slow the pipeline**: every topic is a Kafka log; a slow or dead consumer
  only falls behind on its own offsets.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import faust
import orjson
from confluent_kafka import Consumer, TopicPartition

from schemas import topics
from schemas.topics import TopicSpec
from services.analytics.store import latest_refresh_id, values_of_partitions
from services.core.failure_log import FailureLog
from services.core.kafka.admin import ensure_topics
from services.core.kafka.dead_letters import topic_dead_letter
from services.core.kafka.faust_app import worker_app
from services.core.kafka.lag import GroupPositions, LagMonitor, LagWatch
from services.core.kafka.producer import KAFKA_LOG, AsyncProducer
from services.core.kafka.read_back import QUIET_SECONDS, read_records, start_offsets
from services.core.log_hygiene import error_summary
from services.core.metrics import SegmentMetrics
from services.core.warehouse.port import Warehouse
from services.identity.streaming.kafka_worker import received_age
from services.identity.streaming.records import is_profile_record
from services.identity.streaming.simulation import partition_of
from services.segments.domain.definition import SegmentCatalog
from services.segments.domain.membership import Reason
from services.segments.store import read_catalog, record_backfill
from services.segments.streaming.processor import (
    Output,
    SegmentProcessor,
    state_from_rows,
    transition_value,
)

log = logging.getLogger(__name__)

SEGMENTS_APP_ID = "cdp-segments"
LOAD_GROUP = f"{SEGMENTS_APP_ID}-load"  # names the restore reads; it never commits
BACKFILL_CHUNK = 2000
# Transitions re-read at a restart, per partition and topic, beyond what the state topic says: more
# than one batch can publish (batch size x segments x 2 flags).
TRANSITION_TAIL = 100_000
MALFORMED_JSON = "malformed_json"
INVALID_PROFILE = "invalid_profile"


def now_micros() -> int:
    return time.time_ns() // 1000


class SegmentWorker:
    def __init__(
        self,
        bootstrap: str,
        warehouse: Warehouse,
        *,
        partitions: int,
        replication: int = 1,
        app_id: str = SEGMENTS_APP_ID,
        worker_id: str = "0",
        metrics: SegmentMetrics | None = None,
        now: Callable[[], int] = now_micros,
        batch: int = 2000,
        linger: float = 0.02,
        sweep_seconds: float = 0.5,
        catalog_seconds: float = 2.0,
        session_timeout: float = 6.0,
    ) -> None:
        self.processor = SegmentProcessor(SegmentCatalog(), now)
        self._bootstrap = bootstrap
        self._warehouse = warehouse
        self._partitions = partitions
        self._replication = replication
        self._app_id = app_id
        self._worker_id = worker_id
        self._metrics = metrics
        self._now = now
        self._batch = batch
        self._linger = linger
        self._sweep_seconds = sweep_seconds
        self._catalog_seconds = catalog_seconds
        self._session_timeout = session_timeout
        self._lock = asyncio.Lock()
        self._app: faust.App | None = None
        self._producer: AsyncProducer | None = None
        self._owned: set[int] = set()
        self._pending_loads: set[int] = set()
        self._feeds: set[str] = set()
        self._processed: dict[int, int] = {}  # cdp.profiles partition -> next offset
        self._values_refresh = 0  # the customer value refresh whose attributes the profiles hold
        self._last_activity = time.monotonic()
        self._watermarks: Consumer | None = None
        self._watermarks_lock = threading.Lock()
        self._lag_watch: LagWatch | None = None
        self._evaluations_reported = 0
        self._catalog_failures = FailureLog(
            log, "segments: reading the segment definitions", "keeping the current ones, retrying"
        )
        self._values_failures = FailureLog(
            log, "segments: reading the customer value refreshes", "keeping the current values, retrying"
        )
        self.transitions_published = 0
        self.dead_lettered = 0
        self.profiles_loaded = 0
        self.catalog_loaded = asyncio.Event()

    # -- life cycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self._producer = AsyncProducer(self._bootstrap, **{"linger.ms": 2})
        await self._refresh_catalog()
        try:
            # Partitions load the values of this refresh before their profiles are evaluated.
            latest = await asyncio.to_thread(latest_refresh_id, self._warehouse)
            self._values_refresh = latest or 0
        except Exception:
            log.warning("segments: cannot read the customer value refreshes", exc_info=True)
        app = worker_app(self._app_id, self._bootstrap, self._partitions, self._session_timeout)
        profiles = app.topic(topics.PROFILES, partitions=self._partitions, key_serializer="raw",
                             value_serializer="raw")  # fmt: skip

        @app.agent(profiles)
        async def evaluate(stream: Any) -> None:  # faust's stub lacks take_events
            async for batch in stream.take_events(self._batch, within=self._linger):
                async with self._lock:
                    await self._load_pending()
                    outputs = []
                    letters: list[tuple[str, bytes]] = []
                    for event in batch:
                        value = event.value
                        if value:
                            output = self._evaluate(event.message, bytes(value), letters)
                            if output is not None:
                                outputs.append(output)
                        elif event.key:  # a tombstone: the profile was erased
                            self.processor.deleted(bytes(event.key).decode())
                    await self._publish(outputs)
                    await self._dead_letter(letters)
                for event in batch:
                    message = event.message
                    self._processed[message.partition] = message.offset + 1
                self._last_activity = time.monotonic()

        @app.on_partitions_assigned.connect  # type: ignore[arg-type]
        async def on_assigned(_app: Any, assigned: set[Any], **_kwargs: Any) -> None:
            self._reassign({tp.partition for tp in assigned if tp.topic == topics.PROFILES})

        @app.timer(self._sweep_seconds)  # type: ignore[untyped-decorator]
        async def sweep() -> None:
            await self.sweep()

        @app.timer(self._catalog_seconds)  # type: ignore[untyped-decorator]
        async def follow_definitions() -> None:
            await self._refresh_catalog()
            await self._refresh_values()

        @app.timer(5.0)  # type: ignore[untyped-decorator]
        async def report() -> None:
            self._update_sizes()

        self._app = app
        if self._metrics is not None:  # the lag monitor's thread measures the lag
            self._lag_watch = LagMonitor.watch(
                self._bootstrap, self._lag_positions, self._metrics.consumer_lag,
                self._metrics.consumer_lag_seconds, [(self._app_id, topics.PROFILES)],
            )  # fmt: skip
        await app.start()

    def is_ready(self) -> bool:
        app = self._app
        return bool(app is not None and app.consumer.assignment() and not self._pending_loads)

    async def drain(self, within: float = 30.0) -> bool:
        """Wait until every profile version on the owned partitions is evaluated and published."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            lag = await asyncio.to_thread(self._lag)
            if (
                lag == 0
                and time.monotonic() - self._last_activity >= QUIET_SECONDS
                and not self._pending_loads
            ):
                return True
            await asyncio.sleep(0.1)
        log.warning("segments worker: inputs not fully processed after %.0f s", within)
        return False

    async def stop(self) -> None:
        if self._lag_watch is not None:
            await asyncio.to_thread(LagMonitor.unwatch, self._bootstrap, self._lag_watch)
            self._lag_watch = None
        if self._app is not None:
            await self._app.stop()
            self._app = None
        if self._producer is not None:
            await asyncio.to_thread(self._producer.close)
            self._producer = None
        if self._watermarks is not None:
            self._watermarks.close()
            self._watermarks = None

    # -- time and definitions -----------------------------------------------------------------------

    async def sweep(self) -> None:
        """Evaluate every profile whose recheck instant has come (time-based transitions)."""
        async with self._lock:
            await self._load_pending()
            now = self._now()
            outputs = []
            for profile_id, due in self.processor.due(now):
                output = self.processor.reevaluate(profile_id, Reason.TIME, due)
                if self._metrics is not None:
                    self._metrics.timer_delay.observe(max(0.0, (now - due) / 1e6))
                if output is not None:
                    outputs.append(output)
            await self._publish(outputs)
        self._update_sizes()

    async def _refresh_catalog(self) -> None:
        try:
            catalog = await asyncio.to_thread(read_catalog, self._warehouse)
        except Exception as exc:
            self._catalog_failures.failed(error_summary(exc))
            return
        self._catalog_failures.succeeded()
        current = self.processor.catalog
        if [(s.id, s.version) for s in catalog.all()] == [(s.id, s.version) for s in current.all()]:
            self.catalog_loaded.set()
            return
        async with self._lock:
            await self._ensure_feeds(catalog)
            changed = self.processor.set_catalog(catalog)
            log.info("segments: definitions changed: %s", ", ".join(changed))
            await self._backfill(changed)
        self.catalog_loaded.set()
        self._update_sizes()

    async def _refresh_values(self) -> None:
        """After a customer value refresh: its attributes join the profiles held here."""
        try:
            latest = await asyncio.to_thread(latest_refresh_id, self._warehouse)
        except Exception as exc:
            self._values_failures.failed(error_summary(exc))
            return
        self._values_failures.succeeded()
        if latest is None or latest <= self._values_refresh:
            return
        async with self._lock:
            await self._load_pending()
            owned = set(self._owned)
            rows = await asyncio.to_thread(
                values_of_partitions, self._warehouse, latest, self._partitions, owned
            )
            outputs = self._apply_values(rows, owned)
            for start in range(0, len(outputs), BACKFILL_CHUNK):
                await self._publish(outputs[start : start + BACKFILL_CHUNK])
                await asyncio.sleep(0)
            self._values_refresh = latest
            log.info(
                "segments: customer value refresh %s: %d profiles, %d re-evaluated with transitions",
                latest, len(rows), len(outputs),
            )  # fmt: skip
        self._update_sizes()

    def _apply_values(self, rows: list[tuple[str, str]], partitions: set[int]) -> list[Output]:
        fresh = {pid: attributes.encode() for pid, attributes in rows}
        outputs = []
        gone = [
            pid
            for pid in self.processor.valued()
            if pid not in fresh and partition_of(pid, self._partitions) in partitions
        ]
        for profile_id in gone:
            if (output := self.processor.values(profile_id, None)) is not None:
                outputs.append(output)
        for profile_id, attributes in fresh.items():
            if (output := self.processor.values(profile_id, attributes)) is not None:
                outputs.append(output)
        return outputs

    async def _backfill(self, changed: list[str]) -> None:
        """Evaluate every known profile after ``changed`` segments appeared or changed (lock held)."""
        ids = self.processor.profile_ids()
        catalog = self.processor.catalog
        versions = {sid: s.version for sid in changed if (s := catalog.get(sid)) is not None}
        total = len(ids)
        for start in range(0, max(total, 1), BACKFILL_CHUNK):
            chunk = ids[start : start + BACKFILL_CHUNK]
            outputs = [
                o for pid in chunk if (o := self.processor.reevaluate(pid, Reason.BACKFILL)) is not None
            ]
            await self._publish(outputs)
            done = min(total, start + len(chunk))
            if self._metrics is not None:
                for sid in versions:
                    self._metrics.backfill_profiles.labels(sid).inc(len(chunk))
                    self._metrics.backfill_remaining.labels(sid).set(total - done)
            sizes = self.processor.members()
            for sid, version in versions.items():
                await asyncio.to_thread(
                    record_backfill, self._warehouse, sid, version, self._worker_id, done, total,
                    sizes.get(sid, 0), done >= total,
                )  # fmt: skip
            await asyncio.sleep(0)  # let the agent's fetches and the timers breathe

    async def _ensure_feeds(self, catalog: SegmentCatalog) -> None:
        missing = [
            topics.segment_feed(sid) for sid in catalog.order if topics.segment_feed(sid) not in self._feeds
        ]
        if missing:
            specs = [TopicSpec(name) for name in missing]
            await asyncio.to_thread(
                ensure_topics, self._bootstrap, specs, self._partitions, self._replication
            )
            self._feeds.update(missing)

    # -- partitions ---------------------------------------------------------------------------------

    def _reassign(self, mine: set[int]) -> None:
        gone = self._owned - mine
        if gone:
            dropped = self.processor.forget(lambda pid: partition_of(pid, self._partitions) not in gone)
            log.info("segments: partitions %s moved away (%d profiles dropped)", sorted(gone), dropped)
        self._pending_loads = (self._pending_loads - gone) | (mine - self._owned)
        self._owned = set(mine)

    async def _load_pending(self) -> None:
        """Load state and profiles of newly assigned partitions (lock held)."""
        if not self._pending_loads:
            return
        partitions = set(self._pending_loads)
        started = time.monotonic()
        states, transitions, latest = await asyncio.to_thread(self._read_partitions, partitions)
        for record in states:
            if record.get("tombstone"):
                self.processor.load_tombstone(record["profileId"])
            else:
                self.processor.load_state(record)
        for record in transitions:
            self.processor.load_transition(record)
        if self._values_refresh:
            rows = await asyncio.to_thread(
                values_of_partitions, self._warehouse, self._values_refresh, self._partitions, partitions
            )
            self._apply_values(rows, partitions)  # before the profiles: nothing to evaluate yet
        outputs = []
        for record in latest:
            if record.get("tombstone"):
                self.processor.deleted(record["profileId"])
            elif (output := self.processor.profile(record, replay=True)) is not None:
                outputs.append(output)
        await self._publish(outputs)
        self._pending_loads -= partitions
        self.profiles_loaded += len(latest)
        log.info(
            "segments: loaded %d states, %d recent transitions and %d profiles of partitions %s in %.1f s "
            "(%d transitions since)",
            len(states), len(transitions), len(latest), sorted(partitions), time.monotonic() - started,
            sum(len(o.transitions) for o in outputs),
        )  # fmt: skip
        self._update_sizes()

    def _read_partitions(
        self, partitions: set[int]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        db = self._warehouse.database
        # CRC32 % partitions is partition_of (the Kafka client's partitioner) in SQL.
        mine = self._warehouse.query_dicts(
            f"SELECT segment_id, profile_id, member, activated, seq, activation_seq, segment_version, "
            f"profile_version FROM {db}.segment_membership FINAL "
            "WHERE CRC32(profile_id) % {count:UInt32} IN {mine:Array(UInt32)}",
            {"count": self._partitions, "mine": sorted(partitions)},
        )
        state_starts = start_offsets(
            self._bootstrap, [topics.SEGMENT_STATE], partitions, None, group=LOAD_GROUP
        )
        states = [
            *state_from_rows(mine).values(),
            *(
                record["value"] or {"profileId": record["key"], "tombstone": True}
                for record in read_records(self._bootstrap, state_starts, group=LOAD_GROUP, with_keys=True)
                if record["value"] is not None or record["key"] is not None
            ),
        ]
        outputs = [
            topics.SEGMENT_MEMBERSHIP,
            *(topics.segment_feed(sid) for sid in self.processor.catalog.order),
        ]
        tails = start_offsets(self._bootstrap, outputs, partitions, TRANSITION_TAIL, group=LOAD_GROUP)
        transitions = read_records(self._bootstrap, tails, group=LOAD_GROUP)
        latest = self._processed_profiles(partitions)
        return states, transitions, latest

    def _processed_profiles(self, partitions: set[int]) -> list[dict[str, Any]]:
        """The latest ``cdp.profiles`` record per profile *before* the group's committed offsets:
        what the previous owner already evaluated. Later records reach the agent in order, so every
        intermediate version is evaluated, as it would have been without the restart. A tombstone
        comes back as ``{"profileId": id, "tombstone": True}``."""
        consumer = Consumer(
            {"bootstrap.servers": self._bootstrap, "group.id": self._app_id, "logger": KAFKA_LOG}
        )
        try:
            wanted = [TopicPartition(topics.PROFILES, p) for p in partitions]
            bounds = {
                tp.partition: tp.offset for tp in consumer.committed(wanted, timeout=10) if tp.offset > 0
            }
        finally:
            consumer.close()
        latest: dict[str, dict[str, Any]] = {}
        starts = {(topics.PROFILES, p): 0 for p in bounds}
        for record in read_records(self._bootstrap, starts, group=LOAD_GROUP, with_keys=True):
            partition, offset, value, key = (
                record["partition"],
                record["offset"],
                record["value"],
                record["key"],
            )
            if offset >= bounds[partition]:
                continue
            if value is not None:
                if is_profile_record(value):  # else dead-lettered when it was first met
                    latest[value["profileId"]] = value
            elif key is not None:
                latest[key] = {"profileId": key, "tombstone": True}
        return list(latest.values())

    def _evaluate(self, message: Any, value: bytes, letters: list[tuple[str, bytes]]) -> Output | None:
        """Evaluate one ``cdp.profiles`` value; one that is no profile (written to the topic by
        something other than the identity worker) is added to ``letters`` instead."""
        try:
            record = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            letters.append(self._letter(message, value, MALFORMED_JSON, f"not JSON: {exc}"))
            return None
        if not is_profile_record(record):
            letters.append(self._letter(message, value, INVALID_PROFILE, "no profileId and integer version"))
            return None
        try:
            return self.processor.profile(record)
        except (KeyError, TypeError, ValueError) as exc:
            letters.append(self._letter(message, value, INVALID_PROFILE, f"{type(exc).__name__}: {exc}"))
            return None

    @staticmethod
    def _letter(message: Any, value: bytes, reason: str, detail: str) -> tuple[str, bytes]:
        letter = topic_dead_letter(
            value, reason, detail, topic=topics.PROFILES, partition=message.partition, offset=message.offset
        )
        return reason, letter

    async def _dead_letter(self, letters: list[tuple[str, bytes]]) -> None:
        """Write ``letters`` to ``cdp.events.dlq`` before the batch is committed (at least once)."""
        if not letters:
            return
        assert self._producer is not None
        await self._producer.send([(topics.EVENTS_DLQ, None, letter) for _, letter in letters])
        self.dead_lettered += len(letters)
        reasons: dict[str, int] = {}
        for reason, _ in letters:
            reasons[reason] = reasons.get(reason, 0) + 1
        for reason, count in reasons.items():
            if self._metrics is not None:
                self._metrics.dlq_messages.labels(reason).inc(count)
            log.warning(
                "segments: %d records on %s are no profile (%s): written to %s",
                count, topics.PROFILES, reason, topics.EVENTS_DLQ,
            )  # fmt: skip

    # -- output -------------------------------------------------------------------------------------

    async def _publish(self, outputs: list[Output]) -> None:
        if not outputs:
            return
        records: list[tuple[str, bytes | None, bytes | None]] = []
        for output in outputs:
            key = output.profile_id.encode()
            for transition in output.transitions:
                value = orjson.dumps(transition_value(transition, output))
                topic = (
                    topics.segment_feed(transition.segment_id)
                    if transition.activation
                    else topics.SEGMENT_MEMBERSHIP
                )
                records.append((topic, key, value))
            state = None if output.state is None else orjson.dumps(output.state)
            records.append((topics.SEGMENT_STATE, key, state))  # None: the state's tombstone
        assert self._producer is not None
        await self._producer.send(records)
        self.transitions_published += sum(len(o.transitions) for o in outputs)
        if self._metrics is not None:
            self._count(outputs, self._metrics)

    def _count(self, outputs: list[Output], metrics: SegmentMetrics) -> None:
        for output in outputs:
            for t in output.transitions:
                feed = "activation" if t.activation else "membership"
                metrics.transitions.labels(t.segment_id, t.action, t.reason, feed).inc()
            age = received_age(output.cause)
            if age is not None:
                metrics.transition_latency.observe(age)

    def _update_sizes(self) -> None:
        if self._metrics is None:
            return
        for sid, count in self.processor.members().items():
            self._metrics.members.labels(sid).set(count)
        evaluated = self.processor.evaluations
        self._metrics.evaluations.inc(evaluated - self._evaluations_reported)
        self._evaluations_reported = evaluated

    # -- lag ----------------------------------------------------------------------------------------

    def _positions(self) -> dict[int, int]:
        """The next ``cdp.profiles`` offset not yet evaluated, per partition this worker owns."""
        app = self._app
        if app is None:
            return {}
        with self._watermarks_lock:
            if self._watermarks is None:
                self._watermarks = Consumer({
                    "bootstrap.servers": self._bootstrap, "group.id": self._app_id, "logger": KAFKA_LOG,
                })  # fmt: skip
            watermarks = self._watermarks
        owned = [TopicPartition(tp.topic, tp.partition) for tp in app.consumer.assignment()]
        owned = [tp for tp in owned if tp.topic == topics.PROFILES]
        committed = {c.partition: c.offset for c in watermarks.committed(owned, timeout=5)}
        return {
            tp.partition: max(self._processed.get(tp.partition, 0), committed.get(tp.partition, 0))
            for tp in owned
        }

    def _lag(self) -> int:
        """Records not yet evaluated (a lower bound: some brokers report end offsets too low)."""
        positions = self._positions()
        if not positions or self._watermarks is None:
            return 0
        watermarks = self._watermarks
        return sum(
            max(0, watermarks.get_watermark_offsets(TopicPartition(topics.PROFILES, p), timeout=5)[1] - done)
            for p, done in positions.items()
        )

    def _lag_positions(self) -> list[GroupPositions]:
        return [GroupPositions(self._app_id, topics.PROFILES, self._positions())]
