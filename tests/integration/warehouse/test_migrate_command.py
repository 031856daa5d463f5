"""``cdp migrate`` against a ClickHouse endpoint (CDP_CLICKHOUSE_URL): applies every migration to a
fresh database once, then nothing; an unreachable warehouse is a clear error, not a traceback."""

from __future__ import annotations

import uuid

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.core.warehouse.chdb_adapter import ChdbWarehouse
from services.core.warehouse.http_endpoint import RunningServer
from services.core.warehouse.migrations import missing_migrations
from tests.integration.warehouse_fixtures import WRITER_PASSWORD, WRITER_USER

pytestmark = pytest.mark.integration


def test_migrate_applies_once_then_reports_up_to_date(
    chdb_engine: ChdbWarehouse, clickhouse_http: RunningServer
) -> None:
    database = f"t_migrate_{uuid.uuid4().hex[:8]}"
    env = {
        "CDP_CLICKHOUSE_URL": f"http://{WRITER_USER}:{WRITER_PASSWORD}@{clickhouse_http.host}:{clickhouse_http.port}",
        "CDP_CLICKHOUSE_DATABASE": database,
    }
    try:
        first = CliRunner().invoke(app, ["migrate"], env=env)
        assert first.exit_code == 0, first.output
        assert "applied migrations: 001_events" in first.output
        assert missing_migrations(ChdbWarehouse.for_path(chdb_engine.data_dir, database)) == []
        second = CliRunner().invoke(app, ["migrate"], env=env)
        assert second.exit_code == 0, second.output
        assert "up to date: nothing to apply" in second.output
    finally:
        chdb_engine.command(f"DROP DATABASE IF EXISTS {database} SYNC")


def test_migrate_without_a_warehouse_says_what_to_check() -> None:
    result = CliRunner().invoke(app, ["migrate"], env={"CDP_CLICKHOUSE_URL": "http://cdp:x@127.0.0.1:1"})
    assert result.exit_code == 1
    assert "the warehouse does not answer" in result.output
    assert "Traceback" not in result.output
