"""The warehouse replay after an erasure: the suppression list applies to stored events still there,
and the erasure's audit row and the coordinator's void rows only use up their positions."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from services.core.warehouse.migrations import apply_migrations
from services.core.warehouse.port import Warehouse
from services.identity.domain import IdentityGraph
from services.identity.streaming.fold_stage import FoldProcessor
from services.identity.streaming.graph_stage import GraphProcessor
from services.identity.streaming.observations import apply_observation
from services.identity.streaming.records import OutRecord
from services.identity.streaming.restore import next_epoch, replay_warehouse
from services.privacy.hashing import IdentifierHasher
from services.privacy.suppression import stored_hashes
from tests.integration.identity.test_restore import store
from tests.unit.identity.graph_fixtures import customer, email, founded_id
from tests.unit.identity.profile_events import order_completed, page

NOW = datetime(2026, 11, 22, tzinfo=UTC)
HASHER = IdentifierHasher("restore-key")


def test_a_replay_after_an_erasure_restores_nobody_of_the_erased_person(warehouse: Warehouse) -> None:
    apply_migrations(warehouse)
    anna_keys = ["customer_id:KA", "email:anna@example.de"]
    stage = GraphProcessor(IdentityGraph(), hasher=HASHER)
    outputs: list[OutRecord] = []
    events = [
        {**page(0, message_id="a1"), "identifiers": {"customerId": "KA", "email": "anna@example.de"}},
        {**order_completed("OB", 10.0, 1, message_id="b1"), "identifiers": {"customerId": "KB"}},
        {**page(2, message_id="a2"), "identifiers": {"customerId": "KA"}},
    ]
    for event in events:
        outputs.extend(apply_observation(stage, event))
    erase = {"kind": "erase", "requestId": "req-9", "profileIds": [founded_id(customer("KA"))],
             "suppress": HASHER.hashes(anna_keys)}  # fmt: skip
    outputs.extend(apply_observation(stage, erase))
    outputs.extend(
        apply_observation(stage, {**page(3, message_id="a3"), "identifiers": {"customerId": "KA"}})
    )
    outputs.extend(
        apply_observation(stage, {**page(4, message_id="b2"), "identifiers": {"customerId": "KB"}})
    )
    store(warehouse, outputs)
    # The coordinator: the suppression list, and a void row where it deleted Anna's first event
    # (its second one is still there: a deletion not done yet).
    rows = b"\n".join(
        orjson.dumps({"identifier_hash": h, "identifier_type": k.split(":")[0], "request_id": "req-9"})
        for h, k in zip(HASHER.hashes(anna_keys), anna_keys, strict=True)
    )
    warehouse.insert_json_rows("suppressions", rows)
    warehouse.command(
        f"ALTER TABLE {warehouse.database}.events DELETE WHERE position = 0 SETTINGS mutations_sync = 2"
    )
    void = orjson.dumps({"_raw": orjson.dumps({"action": "void", "position": 0, "status": "void"}).decode()})
    warehouse.insert_json_rows("identity_corrections", void, columns=["_raw"])

    epoch = next_epoch(warehouse)
    assert epoch == 6  # 3 events, the erase, a dropped event (no row), Ben's event
    fold = FoldProcessor(lambda: NOW)
    replayed, _profiles = replay_warehouse(
        warehouse, epoch, fold=fold, hasher=HASHER, suppressed=stored_hashes(warehouse)
    )
    assert replayed.next_position == epoch
    graph = replayed.graph
    assert graph.profile_of(customer("KA")) is None and graph.profile_of(email("anna@example.de")) is None
    live = {r.key for r in fold.flush()}
    assert live == {founded_id(customer("KB"))}
    assert replayed.suppressed_events == 1  # Anna's event whose row was not deleted yet
