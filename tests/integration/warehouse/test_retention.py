"""Raw-event retention (``CDP_EVENTS_TTL_DAYS``) on both adapters: expired rows go, newer stay."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from services.core.settings import Settings
from services.core.warehouse.http_endpoint import RunningServer
from services.core.warehouse.migrations import apply_migrations
from services.core.warehouse.port import Warehouse
from services.core.warehouse.retention import RAW_EVENT_TABLES, apply_retention, current_ttl
from services.runtime import _open_warehouse
from tests.integration.analytics.stored_events import EventLog, store
from tests.integration.warehouse_fixtures import WRITER_PASSWORD, WRITER_USER


def _stored(warehouse: Warehouse) -> dict[str, set[str]]:
    db = warehouse.database
    return {
        "events": {str(r[0]) for r in warehouse.query(f"SELECT message_id FROM {db}.events")},
        "events_by_anchor": {
            str(r[0]) for r in warehouse.query(f"SELECT message_id FROM {db}.events_by_anchor")
        },
    }


def _expire(warehouse: Warehouse) -> None:
    """Run the TTL now instead of at ClickHouse's next TTL merge."""
    for spec in RAW_EVENT_TABLES:
        warehouse.command(f"OPTIMIZE TABLE {warehouse.database}.{spec.table} FINAL")


def _log(now: datetime) -> tuple[EventLog, dict[str, str]]:
    log = EventLog()
    ids = {
        "old": log.track("C1", "Product Viewed", now - timedelta(days=40), "shop"),
        "edge": log.track("C1", "Product Viewed", now - timedelta(days=29), "shop"),
        "new": log.track(
            "C2", "Order Completed", now - timedelta(hours=1), "shop", order_id="O-1", revenue=10.0
        ),
    }
    return log, ids


def test_ttl_deletes_raw_events_older_than_the_setting(warehouse: Warehouse) -> None:
    apply_migrations(warehouse)
    log, ids = _log(datetime.now(UTC))
    store(warehouse, log)
    assert _stored(warehouse) == {"events": set(ids.values()), "events_by_anchor": set(ids.values())}

    changed = apply_retention(warehouse, 30)

    assert changed == {"events": "set 30 days", "events_by_anchor": "set 30 days"}
    assert current_ttl(warehouse, "events") == "toDateTime(received_at) + toIntervalDay(30)"
    assert current_ttl(warehouse, "events_by_anchor") == "toDateTime(timestamp) + toIntervalDay(30)"
    _expire(warehouse)
    kept = {ids["edge"], ids["new"]}
    assert _stored(warehouse) == {"events": kept, "events_by_anchor": kept}
    # Derived tables are not raw events: the expired order history stays for BI.
    orders = warehouse.query(f"SELECT order_id FROM {warehouse.database}.order_events")
    assert orders == [("O-1",)]


def test_ttl_is_idempotent_changes_and_is_removed_by_zero(warehouse: Warehouse) -> None:
    apply_migrations(warehouse)
    assert apply_retention(warehouse, 0) == {}  # no TTL and none wanted: nothing to do
    assert current_ttl(warehouse, "events") is None

    assert apply_retention(warehouse, 30) == {"events": "set 30 days", "events_by_anchor": "set 30 days"}
    assert apply_retention(warehouse, 30) == {}  # a second start changes nothing
    assert apply_retention(warehouse, 60) == {"events": "set 60 days", "events_by_anchor": "set 60 days"}
    assert current_ttl(warehouse, "events") == "toDateTime(received_at) + toIntervalDay(60)"

    assert apply_retention(warehouse, 0) == {"events": "removed", "events_by_anchor": "removed"}
    assert current_ttl(warehouse, "events") is None
    assert current_ttl(warehouse, "events_by_anchor") is None
    assert apply_retention(warehouse, 0) == {}

    # Without a TTL, nothing expires any more.
    log, ids = _log(datetime.now(UTC))
    store(warehouse, log)
    _expire(warehouse)
    assert _stored(warehouse) == {"events": set(ids.values()), "events_by_anchor": set(ids.values())}


def test_ttl_set_on_stored_rows_is_materialized(warehouse: Warehouse) -> None:
    """Rows stored before the TTL was set expire too (MATERIALIZE TTL, as ClickHouse runs it)."""
    apply_migrations(warehouse)
    log, ids = _log(datetime.now(UTC))
    store(warehouse, log)
    apply_retention(warehouse, 30)
    for spec in RAW_EVENT_TABLES:
        warehouse.command(
            f"ALTER TABLE {warehouse.database}.{spec.table} MATERIALIZE TTL SETTINGS mutations_sync = 2"
        )
    kept = {ids["edge"], ids["new"]}
    assert _stored(warehouse) == {"events": kept, "events_by_anchor": kept}


def test_negative_days_are_refused(warehouse: Warehouse) -> None:
    with pytest.raises(ValueError):
        apply_retention(warehouse, -1)


def test_the_platform_start_applies_the_setting(
    clickhouse_http: RunningServer, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``cdp up`` opens the warehouse through ``_open_warehouse``: migrations, then retention."""
    url = f"http://{WRITER_USER}:{WRITER_PASSWORD}@{clickhouse_http.host}:{clickhouse_http.port}"
    steps: list[str] = []
    caplog.set_level(logging.INFO, logger="cdp.warehouse.retention")
    for days, expected in ((14, "toDateTime(received_at) + toIntervalDay(14)"), (0, None)):
        settings = Settings(clickhouse_url=url, clickhouse_database=database, events_ttl_days=days)
        warehouse = _open_warehouse(settings, steps.append)
        try:
            assert current_ttl(warehouse, "events") == expected
        finally:
            warehouse.close()
    assert f"{database}.events rows are deleted 14 days after received_at (was: no TTL)" in caplog.text
    assert f"removed the TTL of {database}.events" in caplog.text
