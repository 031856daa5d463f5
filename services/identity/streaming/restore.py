"""Rebuilding identity state from the warehouse and the observations topic (adapter).

The single-node broker keeps nothing across restarts, so the warehouse is the durable record:
``events`` holds every decided event with its graph ``position`` and ``identity_corrections`` every
operator correction with its own. The identity graph is a deterministic function of that order,
so replaying it through a fresh ``GraphProcessor`` (and ``FoldProcessor``) gives back the same
profile ids, merges, refusals and profiles, and ``ProfileState.apply`` being exact means nothing is
counted twice. New positions continue after the old ones: the run's ``epoch``.

A worker that takes over the observations partition mid-run (another process died or left)
rebuilds the graph the same way up to the epoch, then replays the observations topic itself up to
the offset it resumes from.

Erasures: every replay starts with the suppression set of the table ``suppressions``, so events
of erased persons still in the warehouse (or on the topic) are dropped as live ones are. An
erasure's audit row and the "void" rows the privacy coordinator leaves where it deleted an event
or a correction name nobody: they only use up their position. ``erase`` records on the
observations topic are applied as live.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition

from schemas import topics
from services.core.kafka.batches import split_lines
from services.core.kafka.producer import KAFKA_LOG
from services.core.warehouse.port import Warehouse
from services.identity.domain import IdentifierRules, IdentityGraph, LinkLimits
from services.identity.domain.identifiers import DEFAULT_RULES
from services.identity.streaming.fold_stage import FoldProcessor
from services.identity.streaming.graph_stage import GraphProcessor
from services.identity.streaming.observations import VOID, apply_observation, fold_all
from services.identity.streaming.records import OutRecord, Topic
from services.privacy.hashing import IdentifierHasher

log = logging.getLogger(__name__)

Event = dict[str, Any]
Progress = Callable[[int, int], None]
"""``on_progress(done, total)`` during a replay."""

_EVENT_COLUMNS = (
    "position, message_id, type, event, name, channel, source, anonymous_id, user_id, email, phone, "
    "chat_handle, email_recipient_id, group_id, previous_id, properties, traits, context, timestamp, "
    "original_timestamp, sent_at, received_at, schema_version, identity_keys"
)
_IDENTIFIER_FIELDS = (
    ("anonymousId", 7), ("customerId", 8), ("email", 9), ("phone", 10), ("chatHandle", 11),
    ("emailRecipientId", 12),
)  # fmt: skip
_CHUNK = 50_000


def _time(value: Any) -> str | None:
    if not isinstance(value, datetime):
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_from_row(row: Sequence[Any]) -> Event:
    """The canonical event of an ``events`` row selected with ``_EVENT_COLUMNS`` (after the position)."""
    identifiers = {name: row[index] for name, index in _IDENTIFIER_FIELDS if row[index]}
    event: Event = {
        "schemaVersion": int(row[22]) or 1,
        "messageId": row[1],
        "type": row[2],
        "channel": row[5],
        "source": row[6],
        "identifiers": identifiers,
        "properties": orjson.loads(row[15] or "{}"),
        "traits": orjson.loads(row[16] or "{}"),
        "context": orjson.loads(row[17] or "{}"),
        "timestamp": _time(row[18]),
        "receivedAt": _time(row[21]),
    }
    for name, index in (("event", 3), ("name", 4), ("groupId", 13), ("previousId", 14)):
        if row[index]:
            event[name] = row[index]
    if identifiers.get("anonymousId"):
        event["anonymousId"] = identifiers["anonymousId"]
    if identifiers.get("customerId"):
        event["userId"] = identifiers["customerId"]
    for name, index in (("originalTimestamp", 19), ("sentAt", 20)):
        if row[index] is not None:
            event[name] = _time(row[index])
    if row[23]:
        event["identityKeys"] = list(row[23])  # as resolved: the first is the anchor
    return event


class WarehouseEventStore:
    """``events_of(keys)`` for split rebuilds: the stored events carrying any of the identifiers."""

    def __init__(self, warehouse: Warehouse) -> None:
        self._warehouse = warehouse

    def __call__(self, keys: Sequence[str]) -> list[Event]:
        rows = self._warehouse.query(
            f"SELECT {_EVENT_COLUMNS} FROM {self._warehouse.database}.events "
            "WHERE hasAny(identity_keys, {keys:Array(String)}) "
            "ORDER BY position LIMIT 1 BY message_id",
            {"keys": list(keys)},
        )
        return [event_from_row(row) for row in rows]

    def wait_until_stored(
        self, epoch: int, position: int, timeout: float = 60.0, *, unstored: int = 0
    ) -> bool:
        """Wait until every event decided in ``[epoch, position)`` is in ``events`` (its sink may lag
        behind the graph). Each position is one event or one correction, so the count is exact,
        but for the ``unstored`` positions that leave no row (events of erased persons, dropped)."""
        db = self._warehouse.database
        deadline = time.monotonic() + timeout
        expected = position - epoch - unstored
        while True:
            rows = self._warehouse.query(
                f"SELECT (SELECT uniqExact(position) FROM {db}.events "
                "         WHERE position >= {lo:Int64} AND position < {hi:Int64}) + "
                f"       (SELECT uniqExact(position) FROM {db}.identity_corrections "
                "         WHERE position >= {lo:Int64} AND position < {hi:Int64})",
                {"lo": epoch, "hi": position},
            )
            stored = int(rows[0][0]) if rows else 0
            if stored >= expected:
                return True
            if time.monotonic() > deadline:
                log.error(
                    "split at position %d: %d of %d earlier decisions are in the warehouse after %.0f s; "
                    "rebuilding from what is there", position, stored, expected, timeout,
                )  # fmt: skip
                return False
            time.sleep(0.1)


# -- the warehouse replay ---------------------------------------------------------------------------


def legacy_event_count(warehouse: Warehouse) -> int:
    """Events stored before the identity pipeline existed (no position): they replay first."""
    rows = warehouse.query(f"SELECT count() FROM {warehouse.database}.events WHERE position < 0")
    return int(rows[0][0]) if rows else 0


def next_epoch(warehouse: Warehouse) -> int:
    """The first position of a new run: after every stored decision (and the legacy events)."""
    db = warehouse.database
    rows = warehouse.query(
        f"SELECT greatest((SELECT ifNull(maxOrNull(position), -1) FROM {db}.events), "
        f"(SELECT ifNull(maxOrNull(position), -1) FROM {db}.identity_corrections))"
    )
    highest = int(rows[0][0]) if rows else -1
    return max(highest + 1, legacy_event_count(warehouse))


def record_epoch(warehouse: Warehouse, cluster_id: str, epoch: int) -> None:
    warehouse.command(
        f"INSERT INTO {warehouse.database}.identity_epochs (kafka_cluster, epoch) "
        "VALUES ({cluster:String}, {epoch:Int64})",
        {"cluster": cluster_id, "epoch": epoch},
    )


def read_epoch(warehouse: Warehouse, cluster_id: str) -> int | None:
    rows = warehouse.query(
        f"SELECT argMax(epoch, started_at) FROM {warehouse.database}.identity_epochs "
        "WHERE kafka_cluster = {cluster:String} GROUP BY kafka_cluster",
        {"cluster": cluster_id},
    )
    return int(rows[0][0]) if rows else None


def _stored_observations(warehouse: Warehouse, until: int) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """Stored events and corrections below ``until``, in graph order, each once (a void row wins
    over an event row at its position that a deletion has not removed yet)."""
    db = warehouse.database
    legacy = warehouse.query(
        f"SELECT {_EVENT_COLUMNS} FROM {db}.events WHERE position < 0 "
        "ORDER BY received_at, message_id LIMIT 1 BY message_id"
    )
    for index, row in enumerate(legacy):
        yield index, event_from_row(row)
    corrections = [
        (int(position), _correction(str(action), str(subject), str(reason)))
        for position, action, subject, reason in warehouse.query(
            f"SELECT position, action, subject, reason FROM {db}.identity_corrections FINAL "
            "WHERE position < {until:Int64} ORDER BY position",
            {"until": until},
        )
    ]
    lo = 0
    while lo < until:
        hi = min(until, lo + _CHUNK)
        rows = warehouse.query(
            f"SELECT {_EVENT_COLUMNS} FROM {db}.events "
            "WHERE position >= {lo:Int64} AND position < {hi:Int64} ORDER BY position LIMIT 1 BY position",
            {"lo": lo, "hi": hi},
        )
        mine = [c for c in corrections if lo <= c[0] < hi]
        taken = {position for position, _ in mine}
        chunk: list[tuple[int, Mapping[str, Any]]] = [
            (int(row[0]), event_from_row(row)) for row in rows if int(row[0]) not in taken
        ]
        chunk.extend(mine)
        chunk.sort(key=lambda item: item[0])
        yield from chunk
        lo = hi


def _correction(action: str, subject: str, reason: str) -> dict[str, str]:
    if action not in ("split", "detach"):
        return {"kind": VOID}  # an erasure's audit row or a void row: no decision to replay
    return {"kind": action, **_subject(action, subject), "reason": reason}


def _subject(action: str, subject: str) -> dict[str, str]:
    if action == "split":
        a, _, b = subject.partition(" ")
        return {"a": a, "b": b}
    return {"identifier": subject}


def replay_warehouse(
    warehouse: Warehouse,
    until: int,
    *,
    limits: LinkLimits | None = None,
    rules: IdentifierRules = DEFAULT_RULES,
    fold: FoldProcessor | None = None,
    on_progress: Progress = lambda _done, _total: None,
    hasher: IdentifierHasher | None = None,
    suppressed: Iterable[str] = (),
) -> tuple[GraphProcessor, list[OutRecord]]:
    """The graph (and, given one, the fold stage) as they stood before position ``until``. Returns
    the graph stage and the ``profiles`` records the fold stage emitted on the way. Events carrying
    an identifier whose hash is in ``suppressed`` are dropped (erased persons)."""
    stage = GraphProcessor(
        IdentityGraph(limits), rules=rules, hasher=hasher, suppressed=suppressed, unstored_from=until
    )
    profiles: list[OutRecord] = []
    done = 0
    for position, observation in _stored_observations(warehouse, until):
        records = apply_observation(stage, observation, position)
        if fold is not None:
            profiles.extend(r for r in fold_all(fold, records) if r.topic is Topic.PROFILES)
        done += 1
        if done % 10_000 == 0:
            on_progress(done, until)
    if stage.next_position < until:
        stage.skip(until - 1)  # positions of decisions that left no row (e.g. unreadable records)
    on_progress(done, until)
    return stage, profiles


class GraphRestorer:
    """A graph stage for resuming the observations partition at ``offset``: the warehouse replay
    up to the epoch (``base``), then the observations topic from its start up to ``offset``."""

    def __init__(self, bootstrap: str, epoch: int, base: Callable[[], GraphProcessor]) -> None:
        self._bootstrap = bootstrap
        self._epoch = epoch
        self._base = base

    def __call__(self, offset: int) -> GraphProcessor:
        stage = self._base()
        if offset <= 0:
            return stage
        started = time.monotonic()
        consumer = Consumer({
            "bootstrap.servers": self._bootstrap, "group.id": "cdp-identity-restore",
            "enable.auto.commit": False, "logger": KAFKA_LOG,
        })  # fmt: skip
        decided = 0
        try:
            consumer.assign([TopicPartition(topics.IDENTITY_OBSERVATIONS, 0, 0)])
            next_offset = 0
            deadline = time.monotonic() + 600
            while next_offset < offset:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"could not re-read observations up to offset {offset}")
                for message in consumer.consume(1000, 1.0):
                    at = message.offset()
                    if message.error() is not None or at is None or at != next_offset or at >= offset:
                        continue
                    for line in split_lines(message.value() or b""):
                        apply_observation(stage, load_observation(line))
                        decided += 1
                    next_offset = at + 1
        finally:
            consumer.close()
        log.info(
            "identity graph: replayed %d observations (%d messages) in %.1f s",
            decided, offset, time.monotonic() - started,
        )  # fmt: skip
        return stage


def load_observation(line: bytes) -> dict[str, Any]:
    """One record of an observations batch; unreadable ones become {} (the graph marks them malformed)."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
