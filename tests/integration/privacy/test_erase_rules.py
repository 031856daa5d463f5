"""The erasure's table rules against the real warehouse (both adapters): every table of the
migrated database is either ruled or exempt with a reason, every rule's statements run, a rule
deletes exactly the person's rows, and the export reads what the erasure would delete."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from services.core.warehouse.migrations import apply_migrations
from services.core.warehouse.port import Warehouse
from services.identity.domain.identifiers import Identifier, IdType
from services.privacy.erasure import ErasureConfig, count_rows, delete_rows
from services.privacy.export import export_subject
from services.privacy.subject import Subject, resolve_subject
from services.privacy.tables import EXEMPT, RULES

pytestmark = pytest.mark.integration

ERIKA = Identifier(IdType.EMAIL, "erika@example.de")
ERIKA_ANON = Identifier(IdType.ANONYMOUS_ID, "a-erika")
BERT = Identifier(IdType.EMAIL, "bert@example.org")


def _event(message_id: str, profile_id: str, keys: list[str], position: int, order_id: str = "") -> bytes:
    event = {
        "schemaVersion": 1, "messageId": message_id, "type": "track",
        "event": "Order Completed" if order_id else "Product Viewed", "channel": "shop", "source": "test",
        "identifiers": {"email": keys[0].partition(":")[2]} if keys[0].startswith("email:") else {},
        "properties": {"order_id": order_id, "revenue": 10.0, "currency": "EUR"} if order_id else {},
        "traits": {}, "context": {}, "timestamp": "2026-11-20T10:00:00Z", "receivedAt": "2026-11-20T10:00:01Z",
    }  # fmt: skip
    record = {"profileId": profile_id, "position": position, "identifiers": keys, "event": event}
    return orjson.dumps({"_raw": orjson.dumps(record).decode()})


def _store(warehouse: Warehouse) -> None:
    """Erika: profile p_e2 absorbed into p_e1 (two identifiers, three events, one order); Bert: p_b."""
    warehouse.insert_json_rows("events", b"\n".join([
        _event("m1", "p_e1", [ERIKA.key], 0, order_id="o-erika"),
        _event("m2", "p_e2", [ERIKA_ANON.key], 1),
        _event("m3", "p_e1", [ERIKA.key, ERIKA_ANON.key], 2),
        _event("m4", "p_b", [BERT.key], 3, order_id="o-bert"),
    ]), columns=["_raw"])  # fmt: skip
    assignments = [("p_e1", [ERIKA.key, ERIKA_ANON.key], 2), ("p_b", [BERT.key], 3)]
    warehouse.insert_json_rows("identity_assignments", b"\n".join(
        orjson.dumps({"_raw": orjson.dumps({"profileId": p, "position": pos, "identifiers": ids}).decode()})
        for p, ids, pos in assignments
    ), columns=["_raw"])  # fmt: skip
    warehouse.insert_json_rows("profile_redirects", orjson.dumps(
        {"_raw": orjson.dumps({"absorbed": "p_e2", "survivor": "p_e1", "version": 2}).decode()}
    ), columns=["_raw"])  # fmt: skip
    warehouse.insert_json_rows("identity_merges", orjson.dumps({"_raw": orjson.dumps({
        "survivor": "p_e1", "absorbed": "p_e2", "linkA": ERIKA.key, "linkB": ERIKA_ANON.key,
    }).decode()}), columns=["_raw"])  # fmt: skip


@pytest.fixture
def migrated(warehouse: Warehouse) -> Warehouse:
    apply_migrations(warehouse)
    return warehouse


def test_every_table_is_ruled_or_exempt(migrated: Warehouse) -> None:
    rows = migrated.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND engine NOT LIKE '%View'",
        {"db": migrated.database},
    )
    tables = {str(row[0]) for row in rows}
    ruled = {rule.table for rule in RULES}
    assert not ruled & EXEMPT.keys()
    unknown = tables - ruled - EXEMPT.keys()
    assert not unknown, f"tables without an erasure rule or an exemption: {sorted(unknown)}"
    assert ruled | EXEMPT.keys() <= tables, "rules or exemptions for tables that do not exist"


def test_rules_find_and_delete_only_the_person(migrated: Warehouse) -> None:
    _store(migrated)
    subject = resolve_subject(migrated, ERIKA_ANON)
    assert subject.current_profile_id == "p_e1"
    assert set(subject.profile_ids) == {"p_e1", "p_e2"}
    assert set(subject.keys) == {ERIKA.key, ERIKA_ANON.key}
    assert subject.orders == ("o-erika",)

    exported = export_subject(migrated, subject)
    assert {e["message_id"] for e in exported["events"]} == {"m1", "m2", "m3"}
    assert {i["identifier"] for i in exported["identities"]} == {ERIKA.key, ERIKA_ANON.key}
    assert len(exported["merge_history"]) == 1
    assert [o["order_id"] for o in exported["order_events"]] == ["o-erika"]

    db = migrated.database
    counts = delete_rows(migrated, subject)
    assert counts["events"] == 3 and counts["identities"] == 2 and counts["order_events"] == 1, counts
    assert count_rows(migrated, subject) == {}
    # Bert is untouched; the deleted positions are accounted for by void corrections.
    assert migrated.query(f"SELECT message_id FROM {db}.events") == [("m4",)]
    voids = migrated.query(
        f"SELECT position FROM {db}.identity_corrections WHERE action = 'void' ORDER BY position"
    )
    assert voids == [(0,), (1,), (2,)]
    assert resolve_subject(migrated, BERT).profile_ids == ("p_b",)
    assert not resolve_subject(migrated, ERIKA).found


def test_an_unknown_person_resolves_to_their_identifier_only(migrated: Warehouse) -> None:
    subject = resolve_subject(migrated, ERIKA)
    assert subject == Subject(ERIKA, (), (ERIKA.key,), found=False)
    exported = export_subject(migrated, subject)
    assert all(rows == [] for rows in exported.values() if isinstance(rows, list))
    assert datetime.fromisoformat(exported["generated_at"].replace("Z", "+00:00")) <= datetime.now(UTC)
    assert ErasureConfig("x").timeout_seconds > 0
