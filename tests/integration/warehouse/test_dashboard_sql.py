"""The SQL of the ClickHouse dashboard in ``deploy/grafana/dashboards`` runs as the read-only BI
user on a migrated warehouse, with Grafana's ClickHouse macros expanded as the plugin expands them.

Grafana sends each panel's ``rawSql`` to ClickHouse as the user ``bi`` (deploy/README.md); a query
that does not parse, names a column the BI views do not have, or needs write access shows an error
panel instead of a chart. This catches that without Grafana.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest

from services.core.warehouse.chdb_adapter import ChdbWarehouse
from services.core.warehouse.http_endpoint import RunningServer
from services.core.warehouse.migrations import apply_migrations
from tests.integration.analytics.stored_events import EventLog, insert_records, store
from tests.integration.warehouse_fixtures import BI_PASSWORD, BI_USER

DASHBOARDS = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "dashboards"
NOW = datetime.now(UTC).replace(microsecond=0)
FROM, TO = NOW - timedelta(days=30), NOW + timedelta(hours=1)
NOT_FILLED_HERE = ("customer_value_latest",)  # filled by a customer value refresh, not by events


def clickhouse_panels() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text()).get("panels", []):
            for target in panel.get("targets", []):
                if target.get("datasource", {}).get("type") == "grafana-clickhouse-datasource":
                    found.append((f"{path.name}: {panel['title']}", target))
    return found


def expand_macros(sql: str, database: str) -> str:
    """The grafana-clickhouse-datasource macros the dashboards use, for a fixed time range."""
    start, end = int(FROM.timestamp()), int(TO.timestamp())
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 >= toDateTime({start}) AND \1 <= toDateTime({end})", sql)
    sql = re.sub(
        r"\$__dateFilter\(([^)]+)\)", rf"\1 >= toDate('{FROM.date()}') AND \1 <= toDate('{TO.date()}')", sql
    )
    sql = re.sub(
        r"\$__timeInterval\(([^)]+)\)", r"toStartOfInterval(toDateTime(\1), INTERVAL 3600 second)", sql
    )
    left = re.findall(r"\$__\w+", sql)
    assert not left, f"macros this test does not expand yet: {left}"
    return re.sub(r"\bcdp\.", f"{database}.", sql)


@pytest.fixture(scope="module")
def bi_database(chdb_engine: ChdbWarehouse) -> Iterator[str]:
    """A migrated database with a few days of shop and email events and segment transitions."""
    database = f"t_dash_{uuid.uuid4().hex[:12]}"
    chdb_engine.command(f"CREATE DATABASE {database}")
    warehouse = ChdbWarehouse.for_path(chdb_engine.data_dir, database)
    try:
        apply_migrations(warehouse)
        log = EventLog()
        for day in range(1, 4):
            at = NOW - timedelta(days=day)
            log.track("C1", "Product Viewed", at, "shop", product_id="P-1")
            log.order("C1", f"O-{day}", at + timedelta(minutes=5), 40.0 + day)
            log.track("C2", "Email Delivered", at, "email", campaign_id="K-1", campaign_name="Spring")
        store(warehouse, log)
        at = (NOW - timedelta(days=1)).isoformat()
        insert_records(warehouse, "segment_membership", [
            {"segmentId": "vip", "profileId": "C1", "member": True, "activated": True, "seq": 1,
             "activationSeq": 1, "segmentVersion": 1, "at": at},
        ])  # fmt: skip
        insert_records(warehouse, "segment_membership_log", [
            {"segmentId": "vip", "segmentVersion": 1, "profileId": "C1", "action": "entered",
             "reason": "event", "seq": 1, "at": at},
        ])  # fmt: skip
        yield database
    finally:
        warehouse.close()
        chdb_engine.command(f"DROP DATABASE IF EXISTS {database} SYNC")


def test_the_dashboards_have_clickhouse_panels() -> None:
    assert len(clickhouse_panels()) >= 5


@pytest.mark.parametrize(
    ("panel", "target"), clickhouse_panels(), ids=[name for name, _ in clickhouse_panels()]
)
def test_panel_sql_runs_as_the_bi_user(
    panel: str, target: dict[str, Any], bi_database: str, clickhouse_http: RunningServer
) -> None:
    client = clickhouse_connect.get_client(
        host=clickhouse_http.host, port=clickhouse_http.port, username=BI_USER, password=BI_PASSWORD
    )
    try:
        result = client.query(expand_macros(target["rawSql"], bi_database))
    finally:
        client.close()
    if target.get("queryType") == "timeSeries":
        assert result.column_names[0] == "time", (
            f"{panel}: a time series needs `time` first: {result.column_names}"
        )
    if not any(table in target["rawSql"] for table in NOT_FILLED_HERE):
        assert result.result_rows, f"{panel}: no rows on a warehouse with events in the time range"
