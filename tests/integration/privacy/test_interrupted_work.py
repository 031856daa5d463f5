"""Work a stopped process left "running" (erasures, customer value refreshes) is marked failed at
the next start; with several ingest replicas only work idle longer than the staleness bound is,
so a replica starting never fails what another replica is running (both adapters)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from services.analytics import refresh
from services.core.warehouse.migrations import apply_migrations
from services.core.warehouse.port import Warehouse
from services.privacy import requests
from services.privacy.requests import PrivacyRequest

pytestmark = pytest.mark.integration


def _erasure(request_id: str, requested_at: datetime) -> PrivacyRequest:
    return PrivacyRequest(request_id, "erase", "admin", "admin", requested_at, "email", "h")


def _status(warehouse: Warehouse, request_id: str) -> str:
    found = requests.read_request(warehouse, request_id)
    assert found is not None
    return found.status


def test_erasures_older_than_the_bound_only(warehouse: Warehouse) -> None:
    apply_migrations(warehouse)
    now = datetime.now(UTC)
    requests.record(warehouse, _erasure("old", now - timedelta(minutes=10)))
    requests.record(warehouse, _erasure("young", now - timedelta(seconds=5)))

    assert requests.interrupt_running(warehouse, timedelta(minutes=2)) == ["old"]
    assert (_status(warehouse, "old"), _status(warehouse, "young")) == (requests.FAILED, requests.RUNNING)
    # A single node owns all its work: without a bound every running erasure is interrupted.
    assert requests.interrupt_running(warehouse) == ["young"]
    assert _status(warehouse, "young") == requests.FAILED


def _refresh_row(refresh_id: int, updated: datetime) -> bytes:
    stamp = updated.strftime("%Y-%m-%d %H:%M:%S.000")
    return orjson.dumps({
        "refresh_id": refresh_id, "started_at": stamp, "updated_at": stamp, "status": "running", "step": 1,
        "steps": 5, "step_name": "fit", "trigger": "schedule", "until": updated.date().isoformat(),
        "unit": "days", "horizon_days": 365, "customers": 0, "model": "", "error": "",
    })  # fmt: skip


def test_refreshes_idle_longer_than_the_bound_only(warehouse: Warehouse) -> None:
    apply_migrations(warehouse)
    now = datetime.now(UTC)
    warehouse.insert_json_rows("analytics_refreshes", _refresh_row(1, now - timedelta(hours=2)))
    warehouse.insert_json_rows("analytics_refreshes", _refresh_row(2, now - timedelta(seconds=5)))

    assert refresh.interrupt_running(warehouse, timedelta(hours=1)) == [1]
    assert refresh.interrupt_running(warehouse, timedelta(hours=1)) == []
    assert refresh.interrupt_running(warehouse) == [2]
    statuses = dict(
        warehouse.query(f"SELECT refresh_id, status FROM {warehouse.database}.analytics_refreshes FINAL")
    )
    assert statuses == {1: "failed", 2: "failed"}
