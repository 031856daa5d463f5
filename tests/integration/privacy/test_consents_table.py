"""The ``consents`` history (schemas/ddl/009_consents.sql) and its views, on both warehouse adapters.

Every test runs with the events arriving after the migration (small inserts, as the sink writes
them: the materialized view fills the table) and with the events stored before it (the migration's
INSERT fills it). A repeated row of one event must not double the history.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.core.warehouse.migrations import apply_migrations, default_ddl_dir
from services.core.warehouse.port import Warehouse
from tests.integration.analytics.stored_events import EventLog, rows, store

Load = Callable[[EventLog], Warehouse]


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def add(
    log: EventLog, pid: str, name: str, when: datetime, properties: dict[str, Any], *, source: str,
    context: dict[str, Any] | None = None, message_id: str | None = None, event_type: str = "track",
) -> str:  # fmt: skip
    message_id = log.track(pid, name, when, "email", message_id=message_id, **properties)
    record = log.events[-1][1]
    record.update(source=source, context=context or {}, type=event_type, receivedAt=when.isoformat())
    return message_id


@pytest.fixture(params=["events-after-migration", "events-before-consents"])
def load(request: pytest.FixtureRequest, warehouse: Warehouse, tmp_path: Path) -> Load:
    def run(log: EventLog) -> Warehouse:
        if request.param == "events-after-migration":
            apply_migrations(warehouse)
            store(warehouse, log, chunk=2)
        else:
            earlier = tmp_path / "ddl"
            earlier.mkdir()
            for path in default_ddl_dir().glob("*.sql"):
                if path.name < "009":
                    shutil.copy(path, earlier / path.name)
            apply_migrations(warehouse, earlier)
            store(warehouse, log)
            apply_migrations(warehouse)  # 009 fills consents from the stored events
        return warehouse

    return run


def consent_log() -> EventLog:
    log = EventLog()
    add(log, "alice", "Subscribed", at(1), {"list_id": "newsletter", "legal_text_version": "nl-1"},
        source="sendgrid", context={"source": "sendgrid"}, message_id="a1")  # fmt: skip
    add(log, "alice", "Double Opt-In Confirmed", at(1, 1), {"list_id": "newsletter"}, source="webhook-email",
        message_id="a2")  # fmt: skip
    add(log, "alice", "Consent Updated", at(2),
        {"purpose": "personalisation", "status": "granted", "legal_text_version": "p-2", "reason": "phone"},
        source="admin-api", message_id="a3")  # fmt: skip
    add(log, "alice", "Consent Updated", at(3), {"purpose": "personalisation", "status": "withdrawn"},
        source="api", message_id="a4")  # fmt: skip
    # a tracking client claiming the admin API's source stays an event
    add(log, "alice", "Consent Updated", at(4),
        {"purpose": "analytics", "status": "granted", "legal_text_version": "c-1", "double_opt_in": True},
        source="admin-api", context={"source": "admin-api"}, message_id="a5")  # fmt: skip
    add(log, "bob", "Subscribed", at(1), {"double_opt_in": True, "legal_text_version": "nl-1"}, source="web",
        context={"source": "web"}, message_id="b1")  # fmt: skip
    for _ in range(2):  # the same event stored twice (a repeated batch)
        add(log, "bob", "Unsubscribed", at(5), {"reason": "too many"}, source="sendgrid", message_id="b2")
    # carol merged into alice later: her decision belongs to alice now
    add(log, "carol", "Consent Updated", at(6), {"purpose": "analytics", "status": "denied"}, source="api",
        message_id="c1")  # fmt: skip
    # not consent decisions
    add(log, "alice", "Consent Updated", at(7), {"purpose": "analytics", "status": "maybe"}, source="api")
    add(log, "alice", "Email Opened", at(7), {"email_id": "e1"}, source="sendgrid")
    log.merge("p_carol", "p_alice")
    return log


def prefixed(log: EventLog) -> EventLog:
    """Profile ids as the platform writes them (``p_...``), keys as ``customer_id:<name>``."""
    log.events = [(f"p_{pid}", event) for pid, event in log.events]
    return log


def test_history_one_row_per_decision_with_source_and_fields(load: Load) -> None:
    warehouse = load(prefixed(consent_log()))
    found = rows(warehouse, "SELECT * FROM {db}.consents FINAL ORDER BY message_id")
    by_id = {r["message_id"]: r for r in found}
    assert sorted(by_id) == ["a1", "a2", "a3", "a4", "a5", "b1", "b2", "c1"]
    assert len(found) == 8  # b2 stored twice, once in the history
    pick = {m: (r["purpose"], r["status"], r["double_opt_in"], r["legal_text_version"], r["source"])
            for m, r in by_id.items()}  # fmt: skip
    assert pick == {
        "a1": ("email_marketing", "granted", 0, "nl-1", "webhook"),
        "a2": ("email_marketing", "granted", 1, "", "webhook"),
        "a3": ("personalisation", "granted", 0, "p-2", "api"),
        "a4": ("personalisation", "withdrawn", 0, "", "event"),
        "a5": ("analytics", "granted", 1, "c-1", "event"),
        "b1": ("email_marketing", "granted", 1, "nl-1", "event"),
        "b2": ("email_marketing", "withdrawn", 0, "", "webhook"),
        "c1": ("analytics", "denied", 0, "", "event"),
    }
    a1, a3 = by_id["a1"], by_id["a3"]
    assert (a1["profile_id"], a1["anchor"], a1["identity_keys"], a1["list_id"], a1["event_source"]) == (
        "p_alice", "customer_id:p_alice", ["customer_id:p_alice"], "newsletter", "sendgrid",
    )  # fmt: skip
    assert (a3["reason"], a3["event"]) == ("phone", "Consent Updated")
    history = rows(
        warehouse, "SELECT message_id, current_profile_id FROM {db}.consent_history ORDER BY message_id"
    )
    assert len(history) == 8
    assert {r["message_id"]: r["current_profile_id"] for r in history}["c1"] == "p_alice"
    # found by any identifier of the event
    keyed = rows(
        warehouse,
        "SELECT count() AS n FROM {db}.consents FINAL WHERE has(identity_keys, 'customer_id:p_bob')",
    )
    assert keyed[0]["n"] == 2


def test_current_consent_per_profile_and_purpose(load: Load) -> None:
    warehouse = load(prefixed(consent_log()))
    latest = {
        (r["profile_id"], r["purpose"]): r
        for r in rows(warehouse, "SELECT * FROM {db}.consents_latest ORDER BY profile_id, purpose")
    }
    assert set(latest) == {("p_alice", "email_marketing"), ("p_alice", "personalisation"),
                           ("p_alice", "analytics"), ("p_bob", "email_marketing")}  # fmt: skip
    view = {k: (r["status"], bool(r["granted"]), bool(r["double_opt_in"]), r["source"], r["decisions"])
            for k, r in latest.items()}  # fmt: skip
    assert view == {
        ("p_alice", "email_marketing"): ("granted", True, True, "webhook", 2),
        ("p_alice", "personalisation"): ("withdrawn", False, False, "event", 2),
        ("p_alice", "analytics"): ("denied", False, False, "event", 2),  # carol's later denial, merged
        ("p_bob", "email_marketing"): ("withdrawn", False, False, "webhook", 2),
    }
    assert latest[("p_alice", "email_marketing")]["legal_text_version"] == "nl-1"  # DOI names no text
    assert latest[("p_alice", "personalisation")]["legal_text_version"] == ""
    doi_at = latest[("p_alice", "email_marketing")]["double_opt_in_at"]
    assert (doi_at.replace(tzinfo=UTC) if doi_at.tzinfo is None else doi_at.astimezone(UTC)) == at(1, 1)
