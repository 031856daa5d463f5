"""The faust adapter of the identity stages: it only moves the pure processors' records.

One ``IdentityWorker`` per process. Every worker forwards its ``cdp.events`` partitions to the
single-partition observations topic; the worker that owns that partition runs the graph stage;
every worker folds the ``cdp.identity.resolved`` partitions it owns. Outputs are produced with the
platform's idempotent producer and awaited before faust acknowledges the inputs (at least once;
the processors make repeats harmless).

* **Batches.** ``cdp.events`` reaches the observations topic through the ``Forwarder`` (a plain
  consumer group), one message per batch; the graph stage sends ``resolved`` records as one message
  per batch and partition. faust's cost is per message, so it is paid per batch, not per event.
* **Positions.** Observations are numbered in the order the graph stage decides them, from
  ``epoch`` (where this run of the broker started numbering, see ``restore``).
* **Graph takeover.** When the graph stage meets an observations offset its state is not at (first
  start, a takeover from a worker that left, a redelivery), it rebuilds the graph for exactly that
  offset (``restore_graph``) instead of deciding against a state that saw other observations.
* **Fold handoff.** The fold stage publishes the profiles a batch changed before the batch is
  acknowledged, so ``cdp.profiles`` always covers every committed ``resolved`` offset. A worker that
  is assigned a ``resolved`` partition loads that partition's profiles from ``cdp.profiles`` (same
  key, same partition count) before folding its records; a partition that moves away is forgotten.
  An id whose latest record there is a tombstone or an ``erased`` record loads as erased.
* **Suppression.** The graph stage drops events of erased persons (``GraphProcessor``); its
  suppression set comes from the warehouse table ``suppressions`` at every graph rebuild and is
  reloaded every ``suppression_seconds`` (hashes added while this worker was down or by another
  coordinator), besides the hashes each ``erase`` record brings.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import faust
import orjson
from confluent_kafka import Consumer, TopicPartition

from schemas import topics
from services.core.failure_log import FailureLog
from services.core.kafka.batches import ndjson_batches, split_lines
from services.core.kafka.faust_app import worker_app
from services.core.kafka.lag import GroupPositions, LagMonitor, LagWatch
from services.core.kafka.producer import KAFKA_LOG, AsyncProducer, PartitionedRecord, Record
from services.core.kafka.read_back import QUIET_SECONDS, read_records, start_offsets
from services.core.log_hygiene import error_summary
from services.core.metrics import IdentityMetrics
from services.identity.domain import IdentifierRules, IdentityGraph, LinkLimits
from services.identity.domain.identifiers import DEFAULT_RULES
from services.identity.streaming.fold_stage import FoldProcessor
from services.identity.streaming.forwarder import Forwarder
from services.identity.streaming.graph_stage import GraphProcessor
from services.identity.streaming.observations import apply_observation
from services.identity.streaming.records import Kind, OutRecord, Topic, is_profile_record
from services.identity.streaming.restore import GraphRestorer, load_observation
from services.identity.streaming.simulation import partition_of
from services.privacy.hashing import IdentifierHasher

log = logging.getLogger(__name__)

TOPIC_NAMES: dict[Topic, str] = {
    Topic.RESOLVED: topics.IDENTITY_RESOLVED,
    Topic.MERGES: topics.IDENTITY_MERGES,
    Topic.PROFILES: topics.PROFILES,
    Topic.REFUSALS: topics.IDENTITY_REFUSALS,
    Topic.SPLITS: topics.IDENTITY_SPLITS,
    Topic.UNRESOLVED: topics.IDENTITY_UNRESOLVED,
    Topic.REDIRECTS: topics.IDENTITY_REDIRECTS,
}
INPUTS = (topics.IDENTITY_OBSERVATIONS, topics.IDENTITY_RESOLVED)


class EventStore(Protocol):
    """What a split rebuild reads: the stored events, once they are all stored."""

    def __call__(self, keys: Sequence[str]) -> list[dict[str, Any]]: ...

    def wait_until_stored(
        self, epoch: int, position: int, timeout: float = 60.0, *, unstored: int = 0
    ) -> bool: ...


def encode(records: Sequence[OutRecord]) -> list[Record]:
    """Keyed messages; a tombstone record goes with a null value."""
    return [
        (TOPIC_NAMES[r.topic], r.key.encode(), None if r.tombstone else orjson.dumps(r.value))
        for r in records
    ]


def encode_batches(
    records: Sequence[OutRecord], partitions: int
) -> tuple[list[PartitionedRecord], list[Record]]:
    """``resolved`` records as batch messages per partition (by the key's partition, as a keyed
    record would go), and every other record as a keyed message of its own."""
    by_partition: dict[int, list[bytes]] = {}
    keyed: list[OutRecord] = []
    for record in records:
        if record.topic is Topic.RESOLVED:
            by_partition.setdefault(partition_of(record.key, partitions), []).append(
                orjson.dumps(record.value)
            )
        else:
            keyed.append(record)
    batches = [
        (topics.IDENTITY_RESOLVED, partition, batch)
        for partition, values in by_partition.items()
        for batch in ndjson_batches(values)
    ]
    return batches, encode(keyed)


def received_age(event: Any) -> float | None:
    """Seconds since ingest accepted ``event`` (a canonical event dict, or anything with its
    ``receivedAt``), if it says."""
    received = event.get("receivedAt") if isinstance(event, dict) else None
    if not isinstance(received, str):
        return None
    try:
        return max(0.0, time.time() - datetime.fromisoformat(received).timestamp())
    except ValueError:
        return None


def read_latest_profiles(bootstrap: str, partitions: set[int]) -> dict[str, dict[str, Any]]:
    """The last ``cdp.profiles`` record per profile id in ``partitions`` (what compaction keeps). A
    tombstone comes back as ``{"profileId": id, "erased": True, "version": ...}`` (the version of
    the record it follows, if still there)."""
    group = "cdp-identity-load"
    starts = start_offsets(bootstrap, [topics.PROFILES], partitions, None, group=group)
    latest: dict[str, dict[str, Any]] = {}
    for record in read_records(bootstrap, starts, group=group, with_keys=True):
        value, key = record["value"], record["key"]
        if value is not None:
            if is_profile_record(value):  # else not the worker's: the segment processor dead-letters it
                latest[value["profileId"]] = value
        elif key is not None:
            before = latest.get(key)
            latest[key] = {"profileId": key, "erased": True, "version": before["version"] if before else 0}
    return latest


class IdentityWorker:
    def __init__(
        self,
        bootstrap: str,
        producer: AsyncProducer,
        *,
        partitions: int,
        app_id: str = "cdp-identity",
        epoch: int = 0,
        graph_stage: GraphProcessor | None = None,
        restore_graph: Callable[[int], GraphProcessor] | None = None,
        event_store: EventStore | None = None,
        limits: LinkLimits | None = None,
        rules: IdentifierRules = DEFAULT_RULES,
        metrics: IdentityMetrics | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        batch: int = 2000,
        linger: float = 0.05,
        session_timeout: float = 6.0,
        hasher: IdentifierHasher | None = None,
        suppressions: Callable[[], set[str]] | None = None,
        suppression_seconds: float = 5.0,
    ) -> None:
        self.graph_stage = graph_stage
        """The graph stage when this worker owns the observations partition (None until then)."""
        self.fold_stage = FoldProcessor(now, events_of=event_store, rules=rules)
        self._restore_graph = restore_graph or GraphRestorer(
            bootstrap, epoch,
            lambda: GraphProcessor(
                IdentityGraph(limits), rules=rules, position=epoch, hasher=hasher,
                suppressed=suppressions() if suppressions is not None else (), unstored_from=epoch,
            ),
        )  # fmt: skip
        self._suppressions = suppressions
        self._suppression_seconds = suppression_seconds
        self._suppression_failures = FailureLog(
            log, "identity graph: reloading the suppression list", "keeping the current one, retrying"
        )
        if hasher is None:
            log.warning(
                "identity worker without a privacy hash key (CDP_PRIVACY_HASH_KEY): events of erased "
                "persons cannot be recognised and dropped"
            )
        self._event_store = event_store
        self._epoch = epoch
        self._bootstrap = bootstrap
        self._producer = producer
        self._partitions = partitions
        self._app_id = app_id
        self._batch = batch
        self._linger = linger
        self._session_timeout = session_timeout
        self._metrics = metrics
        self._app: faust.App | None = None
        self._fold_partitions: set[int] = set()
        self._pending_loads: set[int] = set()
        self._processed: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset
        self._watermarks: Consumer | None = None
        self._commits: Consumer | None = None
        self._clients_lock = threading.Lock()
        self._lag: LagWatch | None = None
        self._graph_offset = 0  # the observations offset the graph stage's state is at
        self._last_activity = time.monotonic()
        self._forwarder = Forwarder(
            bootstrap, f"{app_id}-forward", session_timeout_ms=int(session_timeout * 1000),
            dead_letters=metrics.dlq_messages if metrics is not None else None,
        )  # fmt: skip
        self.observations_decided = 0
        self.records_folded = 0
        self.resolved_sent = 0  # records this worker produced to the resolved topic
        self.graph_restores = 0
        self.profiles_loaded = 0
        self.events_suppressed = 0

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def events_forwarded(self) -> int:
        return self._forwarder.forwarded

    async def start(self) -> None:
        app = worker_app(self._app_id, self._bootstrap, self._partitions, self._session_timeout)
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        observations = app.topic(topics.IDENTITY_OBSERVATIONS, partitions=1, **raw)
        resolved = app.topic(topics.IDENTITY_RESOLVED, partitions=self._partitions, **raw)

        @app.agent(observations)
        async def decide(stream: Any) -> None:  # faust's stub lacks take_events
            async for batch in stream.take_events(self._batch, within=self._linger):
                await self.send(await self._decide(batch))
                self._done(batch)

        @app.agent(resolved)
        async def fold(stream: Any) -> None:
            async for batch in stream.take_events(self._batch, within=self._linger):
                await self.send(await self._fold(batch))
                self._done(batch)

        @app.on_partitions_assigned.connect  # type: ignore[arg-type]
        async def on_assigned(_app: Any, assigned: set[Any], **_kwargs: Any) -> None:
            self._reassign({tp.partition for tp in assigned if tp.topic == topics.IDENTITY_RESOLVED})

        if self._suppressions is not None:

            @app.timer(self._suppression_seconds)  # type: ignore[untyped-decorator]
            async def reload_suppressions() -> None:
                await self._reload_suppressions()

        self._app = app
        if self._metrics is not None:  # the series exist from the start; the lag monitor fills them in
            series = [(self._forwarder.group, topics.EVENTS), *((self._app_id, t) for t in INPUTS)]
            self._lag = LagMonitor.watch(
                self._bootstrap, self._lag_positions, self._metrics.consumer_lag,
                self._metrics.consumer_lag_seconds, series,
            )  # fmt: skip
        self._forwarder.start()  # its group join overlaps faust's start
        await app.start()
        self._last_activity = time.monotonic()

    def is_ready(self) -> bool:
        """Both consumer groups have given this worker its partitions (and it is not rebalancing)."""
        app = self._app
        return bool(app is not None and self._forwarder.assigned.is_set() and app.consumer.assignment())

    async def send(self, records: list[OutRecord]) -> None:
        self.resolved_sent += sum(record.topic is Topic.RESOLVED for record in records)
        if self._metrics is not None:
            self._count(records, self._metrics)
        batches, keyed = encode_batches(records, self._partitions)
        await asyncio.gather(self._producer.send_partitioned(batches), self._producer.send(keyed))

    async def _reload_suppressions(self) -> None:
        """Hashes added to the ``suppressions`` table (by any coordinator, also while this worker
        was down) join the live graph stage's set."""
        stage, load = self.graph_stage, self._suppressions
        if stage is None or load is None:
            return
        try:
            hashes = await asyncio.to_thread(load)
        except Exception as exc:
            self._suppression_failures.failed(error_summary(exc))
            return
        self._suppression_failures.succeeded()
        if self.graph_stage is stage:  # not replaced by a rebuild meanwhile (it loads its own)
            stage.suppress(hashes)

    # -- stages -------------------------------------------------------------------------------------

    async def _decide(self, batch: Sequence[Any]) -> list[OutRecord]:
        out: list[OutRecord] = []
        decided = suppressed = 0
        first_event: Any = None
        for message in batch:
            offset = message.message.offset
            stage = self.graph_stage
            if stage is None or self._graph_offset != offset:
                log.info("identity graph: restoring the graph state for observations offset %d", offset)
                stage = self.graph_stage = await asyncio.to_thread(self._restore_graph, offset)
                self.graph_restores += 1
            before = stage.suppressed_events
            for line in split_lines(message.value):
                record = load_observation(line)
                if first_event is None:
                    first_event = record
                out.extend(apply_observation(stage, record))
                decided += 1
            suppressed += stage.suppressed_events - before
            self._graph_offset = offset + 1
        self.observations_decided += decided
        self.events_suppressed += suppressed
        if self._metrics is not None:
            self._metrics.observations.inc(decided)
            if suppressed:
                self._metrics.events_suppressed.inc(suppressed)
            age = received_age(first_event)
            if age is not None:
                self._metrics.processing_delay.labels("graph").observe(age)
        return out

    async def _fold(self, batch: Sequence[Any]) -> list[OutRecord]:
        if self._pending_loads:
            await asyncio.to_thread(self._load, set(self._pending_loads))
        out: list[OutRecord] = []
        oldest: Any = None
        folded = 0
        for message in batch:
            for line in split_lines(message.value):
                record = orjson.loads(line)
                if record.get("kind") == Kind.SPLIT and self._event_store is not None:
                    await asyncio.to_thread(
                        functools.partial(
                            self._event_store.wait_until_stored, self._epoch, record["position"],
                            unstored=int(record.get("unstored") or 0),
                        )
                    )  # fmt: skip
                out.extend(self.fold_stage.process(record))
                if oldest is None and record.get("kind") == Kind.EVENT:
                    oldest = record.get("event")
                folded += 1
        out.extend(self.fold_stage.flush())
        self.records_folded += folded
        if self._metrics is not None and oldest is not None:
            age = received_age(oldest)
            if age is not None:
                self._metrics.processing_delay.labels("profile").observe(age)
        return out

    # -- partitions ---------------------------------------------------------------------------------

    def _reassign(self, mine: set[int]) -> None:
        gone = self._fold_partitions - mine
        if gone:
            dropped = self.fold_stage.forget(lambda pid: partition_of(pid, self._partitions) not in gone)
            log.info("identity fold: partitions %s moved away (%d profiles dropped)", sorted(gone), dropped)
        self._pending_loads = (self._pending_loads - gone) | (mine - self._fold_partitions)
        self._fold_partitions = set(mine)

    def _load(self, partitions: set[int]) -> None:
        started = time.monotonic()
        latest = read_latest_profiles(self._bootstrap, partitions)
        self.fold_stage.forget(lambda pid: partition_of(pid, self._partitions) not in partitions)
        unloadable = 0
        for record in latest.values():
            try:
                self.fold_stage.load(record)
            except (KeyError, TypeError, ValueError):
                unloadable += 1  # a record the identity worker did not write: never its state
        if unloadable:
            log.warning("identity fold: skipped %d cdp.profiles records that are no profile", unloadable)
        self._pending_loads -= partitions
        self.profiles_loaded += len(latest)
        log.info(
            "identity fold: loaded %d profiles of partitions %s in %.1f s",
            len(latest), sorted(partitions), time.monotonic() - started,
        )  # fmt: skip

    def _done(self, batch: Sequence[Any]) -> None:
        for event in batch:
            message = event.message
            self._processed[(message.topic, message.partition)] = message.offset + 1
        self._last_activity = time.monotonic()

    # -- progress -----------------------------------------------------------------------------------

    def _clients(self) -> tuple[Consumer, Consumer]:
        """Consumers that read the forward group's commits (and watermarks) and the worker group's."""
        with self._clients_lock:
            if self._watermarks is None:
                self._watermarks = Consumer({
                    "bootstrap.servers": self._bootstrap,
                    "group.id": self._forwarder.group,  # only to read the forward group's commits
                    "logger": KAFKA_LOG,
                })  # fmt: skip
            if self._commits is None:
                self._commits = Consumer({
                    "bootstrap.servers": self._bootstrap, "group.id": self._app_id, "logger": KAFKA_LOG,
                })  # fmt: skip
            return self._watermarks, self._commits

    def _positions(self) -> dict[tuple[str, int], int]:
        """The next offset not yet processed on every input partition this worker owns, and on
        every ``cdp.events`` partition the next one the forward group has not forwarded."""
        app = self._app
        if app is None:
            return {}
        watermarks, commits = self._clients()
        owned = [TopicPartition(tp.topic, tp.partition) for tp in app.consumer.assignment()]
        owned = [tp for tp in owned if tp.topic in INPUTS]
        # A partition taken over from another worker starts where the group committed it.
        committed = {(c.topic, c.partition): c.offset for c in commits.committed(owned, timeout=5)}
        positions = {}
        for tp in owned:
            key = (tp.topic, tp.partition)
            positions[key] = max(self._processed.get(key, 0), committed.get(key, 0))
        metadata = watermarks.list_topics(topics.EVENTS, timeout=5).topics[topics.EVENTS]
        events = [TopicPartition(topics.EVENTS, p) for p in metadata.partitions]
        for forwarded in watermarks.committed(events, timeout=5):
            positions[(topics.EVENTS, forwarded.partition)] = max(forwarded.offset, 0)
        return positions

    def _lags(self) -> dict[tuple[str, int], int]:
        """Records not yet processed on every input partition this worker owns, and on every
        ``cdp.events`` partition not yet forwarded by the forward group (a lower bound: some
        brokers report end offsets too low)."""
        positions = self._positions()
        if not positions:
            return {}
        watermarks, _commits = self._clients()
        return {
            key: max(0, watermarks.get_watermark_offsets(TopicPartition(*key), timeout=5)[1] - done)
            for key, done in positions.items()
        }

    def _lag_positions(self) -> list[GroupPositions]:
        """For the lag monitor. The forward group's lag (every ``cdp.events`` partition) is reported
        by the worker that runs the graph stage only, one at a time, so that the series of several
        workers add up like those of the worker group (each its own partitions)."""
        mine: dict[str, dict[int, int]] = {topic: {} for topic in INPUTS}
        forwarded: dict[int, int] = {}
        for (topic, partition), done in self._positions().items():
            if topic == topics.EVENTS:
                forwarded[partition] = done
            else:
                mine[topic][partition] = done
        entries = [GroupPositions(self._app_id, topic, done) for topic, done in mine.items()]
        if mine[topics.IDENTITY_OBSERVATIONS]:
            entries.append(GroupPositions(self._forwarder.group, topics.EVENTS, forwarded))
        return entries

    async def drain(self, within: float = 30.0) -> bool:
        """Wait until everything on the inputs this worker owns is processed (clean shutdown): no
        known lag, and no stage has had anything to do for a moment (end offsets are only a lower
        bound on some brokers, so quiet is what proves the end)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            lags = await asyncio.to_thread(self._lags)
            now = time.monotonic()
            idle = min(now - self._last_activity, now - self._forwarder.last_activity)
            owned = any(topic != topics.EVENTS for topic, _ in lags)
            if owned and not any(lags.values()) and idle >= QUIET_SECONDS:
                return True
            await asyncio.sleep(0.1)
        log.warning("identity worker: inputs not fully processed after %.0f s", within)
        return False

    async def stop(self) -> None:
        if self._lag is not None:
            await asyncio.to_thread(LagMonitor.unwatch, self._bootstrap, self._lag)
            self._lag = None
        await asyncio.to_thread(self._forwarder.stop)
        if self._app is not None:
            await self._app.stop()
            self._app = None
        for consumer in (self._watermarks, self._commits):
            if consumer is not None:
                consumer.close()
        self._watermarks = self._commits = None

    @staticmethod
    def _count(records: Sequence[OutRecord], metrics: IdentityMetrics) -> None:
        for record in records:
            topic = record.topic
            if topic is Topic.RESOLVED or record.tombstone:
                continue
            value = record.value
            if topic is Topic.PROFILES:
                metrics.profiles_published.inc()
                if value.get("live"):
                    metrics.identifiers_per_profile.observe(len(value.get("identifiers") or ()))
            elif topic is Topic.MERGES:
                metrics.merges.inc()
            elif topic is Topic.REFUSALS:
                metrics.refused_links.labels(str(value.get("reason"))).inc()
            elif topic is Topic.SPLITS:
                metrics.corrections.labels(str(value.get("action")), str(value.get("status"))).inc()
            elif topic is Topic.UNRESOLVED:
                metrics.unresolved.labels(str(value.get("reason"))).inc()
