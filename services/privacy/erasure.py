"""Erasure (Art. 17): remove one person from every table and processor, and prove it.

Steps of one request (each recorded in ``privacy_requests``, which holds no personal data):

1. **resolve**: the person's profile ids (also those merged into the profile) and identifiers
   (``subject.py``).
2. **suppress**: their identifier hashes go on the suppression list (table ``suppressions``; this
   process's ingest drops their events from now on, other processes within
   ``CDP_ACCESS_RELOAD_SECONDS``).
3. **processors**: an ``erase`` record on ``cdp.identity.observations`` takes its place in the
   identity processor's total order: the graph forgets the identifiers and drops later events
   carrying them, the fold stage forgets the profiles and publishes an erased record and a
   tombstone per profile id on ``cdp.profiles``, and the segment processor exits their
   memberships (reason ``erased``) and tombstones ``cdp.segments.state``. The coordinator waits
   for those state tombstones: the last processor has then let go of the person.
4. **warehouse**: every table's erasure rule (``tables.py``) counts and deletes the person's rows
   with a synchronous mutation, which rewrites the parts: the rows are gone from disk, not hidden.
   Identity positions of deleted events stay accounted for (void correction rows), so the
   identity processor's split rebuilds keep their exact count.
5. **topics**: tombstones for every profile id on the compacted topics (again, idempotently).
6. **verify**: after the sinks have had time to write what was in flight, the person is resolved
   again and every rule counted again; rows found are deleted and the check repeats. The request
   completes only when a check finds nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from schemas import topics
from services.core.kafka.producer import KAFKA_LOG
from services.core.metrics import PrivacyMetrics
from services.core.warehouse.port import Warehouse
from services.identity.domain.identifiers import Identifier
from services.privacy.hashing import IdentifierHasher
from services.privacy.requests import COMPLETED, FAILED, PrivacyRequest, new_request_id, record
from services.privacy.subject import Subject, resolve_subject
from services.privacy.suppression import SuppressionList
from services.privacy.tables import RULES

log = logging.getLogger(__name__)

COMPACTED_TOPICS = (topics.PROFILES, topics.SEGMENT_STATE)
VERIFY_ROUNDS = 4
_MUTATION = " SETTINGS mutations_sync = 2"
# Positions of deleted rows become "void" identity corrections (no identifiers, no reason).
_VOID_POSITIONS = "SELECT DISTINCT position FROM {db}.{table} WHERE position >= 0 AND ({where})"


class ErasureError(Exception):
    """The erasure could not complete; the message says where it stopped."""


@dataclass(frozen=True, slots=True)
class ErasureConfig:
    bootstrap: str
    timeout_seconds: float = 120.0
    settle_seconds: float = 3.0


def erase_record(request: PrivacyRequest, subject: Subject, hashes: list[str]) -> dict[str, object]:
    """The record for ``cdp.identity.observations`` (see docs/privacy.md): ids and hashes only."""
    return {
        "schemaVersion": 1,
        "kind": "erase",
        "requestId": request.request_id,
        "requestedAt": request.requested_at.astimezone(UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "requestedBy": request.requested_by,
        "profileIds": list(subject.profile_ids),
        "suppress": hashes,
    }


class Eraser:
    """Runs erasures one at a time in a background thread; ``submit`` returns the queued request."""

    def __init__(
        self,
        warehouse: Warehouse,
        hasher: IdentifierHasher,
        suppressions: SuppressionList,
        metrics: PrivacyMetrics,
        config: ErasureConfig,
    ) -> None:
        self._warehouse = warehouse
        self._hasher = hasher
        self._suppressions = suppressions
        self._metrics = metrics
        self._config = config
        self._queue: queue.Queue[tuple[PrivacyRequest, Identifier] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._kafka: Producer | None = None  # created by the erasure thread on first use

    def submit(self, identifier: Identifier, requested_by: str, role: str) -> PrivacyRequest:
        request = PrivacyRequest(
            request_id=new_request_id(),
            kind="erase",
            requested_by=requested_by,
            requested_role=role,
            requested_at=datetime.now(UTC),
            subject_type=str(identifier.type),
            subject_hash=self._hasher.hash(identifier.key),
            step="queued",
        )
        record(self._warehouse, request)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run_queue, name="privacy-erasure", daemon=True)
                self._thread.start()
        self._queue.put((request, identifier))
        return request

    def stop(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
        if self._kafka is not None:
            self._kafka.flush(timeout)

    def _run_queue(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            request, identifier = item
            self.run(request, identifier)

    def run(
        self,
        request: PrivacyRequest,
        identifier: Identifier,
        on_step: Callable[[PrivacyRequest], None] = lambda _: None,
    ) -> PrivacyRequest:
        """Every step, synchronously; returns the completed or failed request (also recorded)."""
        deadline = time.monotonic() + self._config.timeout_seconds
        state = request

        def step(name: str, **changes: object) -> None:
            nonlocal state
            state = state.advanced(step=name, **changes)
            record(self._warehouse, state)
            on_step(state)

        try:
            step("resolve")
            subject = resolve_subject(self._warehouse, identifier)
            step("suppress", profiles=len(subject.profile_ids), identifiers=len(subject.keys))
            hashes = self._suppress(request, subject)
            step("processors")
            self._stop_processors(request, subject, hashes, deadline)
            step("warehouse")
            counts = delete_rows(self._warehouse, subject)
            step("topics", counts=counts)
            self._tombstone(subject.profile_ids)
            step("verify", counts=counts)
            subject, counts = self._verify(request, identifier, subject, counts, deadline)
            state = state.finished(
                COMPLETED,
                step="done",
                counts=counts,
                profiles=len(subject.profile_ids),
                identifiers=len(subject.keys),
            )
        except Exception as exc:  # every failure is recorded and reported
            log.error("erasure %s failed at step %s: %s", request.request_id, state.step, type(exc).__name__)
            state = state.finished(FAILED, error=f"{state.step}: {_describe(exc)}")
        record(self._warehouse, state)
        on_step(state)
        self._metrics.requests.labels("erase", state.status).inc()
        if state.status == COMPLETED and state.duration_seconds is not None:
            self._metrics.erase_duration.observe(state.duration_seconds)
        log.info(
            "erasure %s %s in %.1f s: %d profile ids, %d identifiers, %d rows",
            request.request_id, state.status, state.duration_seconds or 0.0, state.profiles,
            state.identifiers, sum(state.counts.values()),
        )  # fmt: skip
        return state

    # -- steps --------------------------------------------------------------------------------

    def _suppress(self, request: PrivacyRequest, subject: Subject) -> list[str]:
        rows = []
        hashes = []
        for key in subject.keys:
            digest = self._hasher.hash(key)
            hashes.append(digest)
            id_type = key.partition(":")[0]
            rows.append(
                orjson.dumps(
                    {"identifier_hash": digest, "identifier_type": id_type, "request_id": request.request_id}
                )
            )
        self._warehouse.insert_json_rows("suppressions", b"\n".join(rows))
        self._suppressions.add(hashes)
        return hashes

    def _stop_processors(
        self, request: PrivacyRequest, subject: Subject, hashes: list[str], deadline: float
    ) -> None:
        bootstrap = self._config.bootstrap
        starts = _end_offsets(bootstrap, topics.SEGMENT_STATE)
        producer = self._producer()
        value = orjson.dumps(erase_record(request, subject, hashes))
        producer.produce(topics.IDENTITY_OBSERVATIONS, value, partition=0)
        if producer.flush(max(1.0, deadline - time.monotonic())) > 0:
            raise ErasureError("Kafka did not acknowledge the erase record")
        if subject.profile_ids:
            _await_tombstones(bootstrap, topics.SEGMENT_STATE, starts, set(subject.profile_ids), deadline)
        else:
            self._await_correction(request.request_id, deadline)

    def _producer(self) -> Producer:
        """One idempotent producer for every erase record and tombstone of this process."""
        if self._kafka is None:
            config = {"bootstrap.servers": self._config.bootstrap, "enable.idempotence": True}
            self._kafka = Producer({**config, "logger": KAFKA_LOG})
        return self._kafka

    def _await_correction(self, request_id: str, deadline: float) -> None:
        """Nobody found in the warehouse: wait until the identity processor has applied the erase
        (its correction row is stored), in case it knew the person from events still in flight."""
        db = self._warehouse.database
        sql = f"SELECT count() FROM {db}.identity_corrections WHERE request_id = {{id:String}}"
        while time.monotonic() < deadline:
            if int(self._warehouse.query(sql, {"id": request_id})[0][0]) > 0:
                return
            time.sleep(0.2)
        raise ErasureError("the identity processor did not apply the erase record in time (is it running?)")

    def _tombstone(self, profile_ids: tuple[str, ...]) -> None:
        if not profile_ids:
            return
        producer = self._producer()
        for topic in COMPACTED_TOPICS:
            for profile_id in profile_ids:
                producer.produce(topic, key=profile_id.encode(), value=None)
        if producer.flush(10.0) > 0:
            raise ErasureError("Kafka did not acknowledge the tombstones")

    def _verify(
        self,
        request: PrivacyRequest,
        identifier: Identifier,
        subject: Subject,
        counts: dict[str, int],
        deadline: float,
    ) -> tuple[Subject, dict[str, int]]:
        """Re-resolve and re-count until a round finds nothing (sinks may write rows in flight)."""
        for _ in range(VERIFY_ROUNDS):
            time.sleep(min(self._config.settle_seconds, max(0.0, deadline - time.monotonic())))
            again = resolve_subject(self._warehouse, identifier)
            subject = _union(subject, again)
            new_keys = [key for key in again.keys if key not in subject.keys]
            if new_keys:
                self._suppress(request, subject)
            found = delete_rows(self._warehouse, subject)
            if not found:
                return subject, counts
            for table, n in found.items():
                counts[table] = counts.get(table, 0) + n
            self._tombstone(subject.profile_ids)
            if time.monotonic() > deadline:
                break
        residue = count_rows(self._warehouse, subject)
        if residue:
            raise ErasureError(f"rows remain after {VERIFY_ROUNDS} rounds: {residue}")
        return subject, counts


def count_rows(warehouse: Warehouse, subject: Subject) -> dict[str, int]:
    """Rows per table that name the person (tables without any are left out)."""
    db = warehouse.database
    parameters = subject.parameters()
    counts = {}
    for rule in RULES:
        rows = warehouse.query(f"SELECT count() FROM {db}.{rule.table} WHERE {rule.where}", parameters)
        if rows and int(rows[0][0]):
            counts[rule.table] = int(rows[0][0])
    return counts


def delete_rows(warehouse: Warehouse, subject: Subject) -> dict[str, int]:
    """Delete the person's rows from every ruled table (synchronous mutations: the parts are
    rewritten); returns the rows deleted per table."""
    db = warehouse.database
    parameters = subject.parameters()
    counts = count_rows(warehouse, subject)
    voids: set[int] = set()
    for table in ("events", "identity_corrections"):
        if table in counts:
            where = next(rule.where for rule in RULES if rule.table == table)
            sql = _VOID_POSITIONS.format(db=db, table=table, where=where)
            voids.update(int(row[0]) for row in warehouse.query(sql, parameters))
    for rule in RULES:
        if rule.table in counts:
            warehouse.command(
                f"ALTER TABLE {db}.{rule.table} DELETE WHERE {rule.where}{_MUTATION}", parameters
            )
    if voids:
        _void(warehouse, sorted(voids))
    return counts


def _void(warehouse: Warehouse, positions: list[int]) -> None:
    """Keep the identity processor's position count exact: a deleted event or correction leaves a
    void correction at its position (no identifiers, no profile ids)."""
    rows = b"\n".join(
        orjson.dumps({"_raw": orjson.dumps({"action": "void", "position": p, "status": "void"}).decode()})
        for p in positions
    )
    warehouse.insert_json_rows("identity_corrections", rows, columns=["_raw"])


def _union(a: Subject, b: Subject) -> Subject:
    def merged(x: tuple[str, ...], y: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*x, *y)))

    return Subject(
        a.named,
        merged(a.profile_ids, b.profile_ids),
        merged(a.keys, b.keys),
        merged(a.orders, b.orders),
        merged(a.conversations, b.conversations),
        merged(a.complaints, b.complaints),
        found=a.found or b.found,
    )


def _describe(exc: BaseException) -> str:
    # Warehouse errors quote SQL with bound parameters only, never identifiers; keep it short.
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "cdp-privacy-offsets", "logger": KAFKA_LOG}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in metadata.partitions
        }
    finally:
        consumer.close()


def _await_tombstones(
    bootstrap: str, topic: str, starts: dict[int, int], keys: set[str], deadline: float
) -> None:
    """Read ``topic`` from ``starts`` until every key has had a tombstone (or the deadline passed)."""
    waiting = set(keys)
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": "cdp-privacy-await", "enable.auto.commit": False,
        "logger": KAFKA_LOG,
    })  # fmt: skip
    try:
        consumer.assign([TopicPartition(topic, p, offset) for p, offset in starts.items()])
        while waiting and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.2):
                key = message.key()
                if message.error() is None and message.value() is None and key is not None:
                    waiting.discard(key.decode())
    finally:
        consumer.close()
    if waiting:
        raise ErasureError(
            f"the segment processor did not confirm {len(waiting)} of {len(keys)} profile ids in time "
            "(are the identity and segment processors running?)"
        )
