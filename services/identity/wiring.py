"""How the platform runs identity resolution: the startup restore, the worker and the sinks that
move its topics into the warehouse. ``services/runtime.py`` (``cdp up``) and ``cdp run identity``
both build on this."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas import topics
from services.core.kafka.batches import split_lines
from services.core.kafka.producer import AsyncProducer, Record
from services.core.metrics import IdentityMetrics, SinkMetrics
from services.core.settings import Settings
from services.core.topic_sink import TopicSink, is_canonical_event
from services.core.warehouse.port import Warehouse
from services.identity.config import identifier_rules, link_limits
from services.identity.streaming.fold_stage import FoldProcessor
from services.identity.streaming.graph_stage import GraphProcessor
from services.identity.streaming.kafka_worker import IdentityWorker, encode
from services.identity.streaming.records import (
    OutRecord,
    is_erased_profile,
    stored_message_id,
    stored_position,
)
from services.identity.streaming.restore import (
    GraphRestorer,
    WarehouseEventStore,
    next_epoch,
    read_epoch,
    record_epoch,
    replay_warehouse,
)
from services.privacy.suppression import settings_hasher, stored_hashes

log = logging.getLogger(__name__)

IDENTITY_APP_ID = "cdp-identity"


@dataclass
class RestoredIdentity:
    epoch: int
    profiles: list[Record]
    """The latest record of every profile id, to republish on the (empty) broker's ``cdp.profiles``."""
    observations: int
    seconds: float


def restore_identity(
    warehouse: Warehouse,
    settings: Settings,
    on_progress: Callable[[int, int], None] = lambda _done, _total: None,
) -> RestoredIdentity:
    """Replay the stored decisions: the graph to continue with, and every profile as it stood."""
    started = time.monotonic()
    epoch = next_epoch(warehouse)
    rules = identifier_rules(settings)
    fold = FoldProcessor(lambda: datetime.now(UTC), events_of=WarehouseEventStore(warehouse), rules=rules)
    done = [0]

    def progress(count: int, total: int) -> None:
        done[0] = count
        on_progress(count, total)

    _stage, retired = replay_warehouse(
        warehouse, epoch, limits=link_limits(settings), rules=rules, fold=fold, on_progress=progress,
        hasher=settings_hasher(settings), suppressed=stored_hashes(warehouse),
    )  # fmt: skip
    latest: dict[str, OutRecord] = {}
    for record in (*retired, *fold.flush()):
        latest[record.key] = record
    for key in [key for key, record in latest.items() if record.tombstone or record.value.get("erased")]:
        del latest[key]  # an erased profile is not published again
    versions = f"SELECT profile_id, max(version) FROM {warehouse.database}.profiles GROUP BY profile_id"
    stored = dict(warehouse.query(versions))
    for key, record in latest.items():
        # Above every stored version: the table and the compacted topic keep this one.
        record.value["version"] = max(int(record.value["version"]), int(stored.get(key, 0)) + 1)
    return RestoredIdentity(epoch, encode(list(latest.values())), done[0], time.monotonic() - started)


async def publish_restored(producer: AsyncProducer, restored: RestoredIdentity, chunk: int = 20_000) -> None:
    for start in range(0, len(restored.profiles), chunk):
        await producer.send(restored.profiles[start : start + chunk])


def identity_worker(
    bootstrap: str,
    producer: AsyncProducer,
    warehouse: Warehouse,
    settings: Settings,
    epoch: int,
    metrics: IdentityMetrics | None,
    app_id: str = IDENTITY_APP_ID,
) -> IdentityWorker:
    limits, rules = link_limits(settings), identifier_rules(settings)
    hasher = settings_hasher(settings)

    def suppressions() -> set[str]:
        return stored_hashes(warehouse)

    def base() -> GraphProcessor:
        # The suppression list first: events of erased persons are dropped in the replay too.
        stage, _ = replay_warehouse(
            warehouse, epoch, limits=limits, rules=rules, hasher=hasher, suppressed=suppressions()
        )
        return stage

    return IdentityWorker(
        bootstrap, producer, partitions=settings.topic_partitions, app_id=app_id, epoch=epoch,
        restore_graph=GraphRestorer(bootstrap, epoch, base),
        event_store=WarehouseEventStore(warehouse), limits=limits, rules=rules, metrics=metrics,
        session_timeout=settings.kafka_session_timeout_ms / 1000, hasher=hasher,
        suppressions=suppressions, suppression_seconds=settings.access_reload_seconds,
    )  # fmt: skip


# Records on ``resolved`` are written by orjson from dicts that start with schemaVersion and kind
# (records.py), and a forwarded copy ends with its ``forwardedFrom``: prefixes tell them apart
# without parsing the record.
_EVENT = b'{"schemaVersion":1,"kind":"event"'
_ASSIGNING = (_EVENT, b'{"schemaVersion":1,"kind":"transfer"', b'{"schemaVersion":1,"kind":"split"')
_FORWARDED = b',"forwardedFrom":"'


def _not_a_stored_event(value: bytes) -> bool:
    """Only the graph's own event records are rows (not control records, not forwarded copies)."""
    return not value.startswith(_EVENT) or value.rfind(_FORWARDED, max(0, len(value) - 128)) >= 0


def _assigns_no_identifiers(value: bytes) -> bool:
    return not value.startswith(_ASSIGNING)


def identity_sinks(
    bootstrap: str, cluster: str, warehouse: Warehouse, metrics: SinkMetrics, settings: Settings
) -> list[TopicSink]:
    """Every identity topic into its table, exactly once in effect (see ``TopicSink``)."""
    common: dict[str, Any] = {
        "batch_rows": settings.sink_batch_rows,
        "flush_seconds": settings.sink_flush_seconds,
        "session_timeout_ms": settings.kafka_session_timeout_ms,
    }

    def sink(topic: str, table: str, group: str | None = None, **options: Any) -> TopicSink:
        return TopicSink(
            bootstrap, cluster, warehouse, metrics, topic=topic, table=table, group=group, **options, **common
        )

    return [
        sink(topics.IDENTITY_RESOLVED, "events", "cdp-warehouse-events-resolved", topic_column=True,
             explode=split_lines, skip=_not_a_stored_event, valid=is_canonical_event,
             position_of=stored_position, message_id_of=stored_message_id),
        sink(topics.IDENTITY_UNRESOLVED, "events", "cdp-warehouse-events-unresolved", topic_column=True,
             valid=is_canonical_event, position_of=stored_position, message_id_of=stored_message_id),
        sink(topics.IDENTITY_RESOLVED, "identity_assignments", resume_table="identities",
             explode=split_lines, skip=_assigns_no_identifiers),
        sink(topics.PROFILES, "profiles", skip=is_erased_profile),
        sink(topics.IDENTITY_MERGES, "identity_merges"),
        sink(topics.IDENTITY_REFUSALS, "identity_refusals"),
        sink(topics.IDENTITY_SPLITS, "identity_corrections"),
        sink(topics.IDENTITY_REDIRECTS, "profile_redirects"),
    ]  # fmt: skip


__all__ = [
    "IDENTITY_APP_ID",
    "RestoredIdentity",
    "identity_sinks",
    "identity_worker",
    "publish_restored",
    "read_epoch",
    "record_epoch",
    "restore_identity",
]
