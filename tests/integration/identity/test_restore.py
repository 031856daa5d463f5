"""The restore of identity state from the warehouse (single-node restarts, graph takeover): stored
events and corrections replayed by position give back the same graph and the same profiles."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from services.core.warehouse.migrations import apply_migrations
from services.core.warehouse.port import Warehouse
from services.identity.domain import Identifier, IdType
from services.identity.streaming.fold_stage import FoldProcessor
from services.identity.streaming.records import OutRecord, Topic
from services.identity.streaming.restore import (
    WarehouseEventStore,
    next_epoch,
    read_epoch,
    record_epoch,
    replay_warehouse,
)
from services.identity.streaming.simulation import Observation, run_sequentially
from tests.integration.identity.test_identity_worker import demo_events

NOW = datetime(2026, 11, 22, tzinfo=UTC)
CLUSTER = "test-cluster"


def _rows(records: list[OutRecord], topic: str) -> bytes:
    return b"\n".join(
        orjson.dumps({"_raw": r.value, "kafka_cluster": CLUSTER, "kafka_partition": 0, "kafka_offset": offset,
                      "kafka_topic": topic})
        for offset, r in enumerate(records)
    )  # fmt: skip


def store(warehouse: Warehouse, outputs: list[OutRecord]) -> None:
    """What the platform's sinks write for these outputs."""
    resolved = [
        r for r in outputs
        if r.topic is Topic.RESOLVED and r.value["kind"] == "event" and "forwardedFrom" not in r.value
    ]  # fmt: skip
    unresolved = [r for r in outputs if r.topic is Topic.UNRESOLVED]
    columns = ("_raw", "kafka_cluster", "kafka_partition", "kafka_offset", "kafka_topic")
    warehouse.insert_json_rows("events", _rows(resolved, "resolved"), columns=columns)
    if unresolved:
        warehouse.insert_json_rows("events", _rows(unresolved, "unresolved"), columns=columns)
    corrections = [r for r in outputs if r.topic is Topic.SPLITS]
    warehouse.insert_json_rows("identity_corrections", _rows(corrections, ""), columns=columns[:4])


def scenario() -> list[Observation]:
    """Demo traffic with an operator correction in the middle: a device cut loose from a customer."""
    events = [orjson.loads(e.to_json()) for e in demo_events()]
    half = len(events) // 2
    first = run_sequentially([("event", e) for e in events[:half]], lambda: NOW)
    device = next(
        identifier
        for pid in first.fold.live
        for identifier in first.graph.identifiers_of_profile(pid)
        if identifier.type is IdType.ANONYMOUS_ID
        and any(i.type is IdType.CUSTOMER_ID for i in first.graph.identifiers_of_profile(pid))
    )
    observations: list[Observation] = [("event", e) for e in events[:half]]
    observations.append(("detach", device))
    observations.extend(("event", e) for e in events[half:])
    return observations


def test_replaying_the_warehouse_restores_graph_and_profiles(warehouse: Warehouse):
    apply_migrations(warehouse)
    observations = scenario()
    reference = run_sequentially(observations, lambda: NOW)
    assert any(r.topic is Topic.SPLITS and r.value["status"] == "split" for r in reference.outputs)
    store(warehouse, reference.outputs)

    epoch = next_epoch(warehouse)
    assert epoch == len(observations)
    record_epoch(warehouse, CLUSTER, epoch)
    assert read_epoch(warehouse, CLUSTER) == epoch

    fold = FoldProcessor(lambda: NOW, events_of=WarehouseEventStore(warehouse))
    stage, _retired = replay_warehouse(warehouse, epoch, fold=fold)
    assert stage.next_position == epoch

    # The same groups under the same profile ids, the same refusals and the same profile states.
    expected_live = reference.fold.live
    assert set(fold.live) == set(expected_live)
    for pid, folded in expected_live.items():
        assert fold.live[pid].state.to_snapshot() == folded.state.to_snapshot(), pid
        assert fold.live[pid].identifiers == folded.identifiers, pid
    for pid in expected_live:
        members = set(reference.graph.identifiers_of_profile(pid))
        assert set(stage.graph.identifiers_of_profile(pid)) == members


def test_event_store_finds_events_by_identifier_and_knows_when_all_are_stored(warehouse: Warehouse):
    apply_migrations(warehouse)
    events = [orjson.loads(e.to_json()) for e in demo_events()[:200]]
    reference = run_sequentially([("event", e) for e in events], lambda: NOW)
    store(warehouse, reference.outputs)
    store_ = WarehouseEventStore(warehouse)
    customer = next(e["identifiers"]["customerId"] for e in events if e["identifiers"].get("customerId"))
    key = Identifier(IdType.CUSTOMER_ID, customer).key
    found = store_([key])
    assert found and all(e["identifiers"].get("customerId") == customer for e in found)
    assert store_.wait_until_stored(0, len(events), timeout=1)
    assert not store_.wait_until_stored(0, len(events) + 5, timeout=0.3)
