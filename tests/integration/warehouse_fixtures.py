"""Warehouse fixtures: one chDB engine per pytest process, its HTTP endpoint, throwaway databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from services.core.settings import Settings
from services.core.warehouse.chdb_adapter import ChdbWarehouse, embedded_engine_path
from services.core.warehouse.connect_adapter import ConnectWarehouse
from services.core.warehouse.http_endpoint import RunningServer, create_clickhouse_http_app, serve_in_thread
from services.core.warehouse.port import Warehouse

BI_USER, BI_PASSWORD = "bi", "bi-secret"
WRITER_USER, WRITER_PASSWORD = "cdp", "writer-secret"


def open_test_engine(tmp_root: Path) -> ChdbWarehouse:
    """The chDB engine of this pytest process: chDB allows one data directory per process,
    so a directory another fixture already opened is reused instead of a new one."""
    return ChdbWarehouse.for_path(embedded_engine_path() or tmp_root, "default")


@pytest.fixture(scope="session")
def chdb_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbWarehouse]:
    engine = open_test_engine(tmp_path_factory.mktemp("chdb"))
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def endpoint_settings() -> Settings:
    return Settings(
        clickhouse_bi_user=BI_USER,
        clickhouse_bi_password=SecretStr(BI_PASSWORD),
        clickhouse_writer_user=WRITER_USER,
        clickhouse_writer_password=SecretStr(WRITER_PASSWORD),
    )


@pytest.fixture(scope="session")
def clickhouse_http(chdb_engine: ChdbWarehouse, endpoint_settings: Settings) -> Iterator[RunningServer]:
    """The ClickHouse-compatible endpoint over ``chdb_engine`` on a free port."""
    with serve_in_thread(create_clickhouse_http_app(chdb_engine, endpoint_settings)) as server:
        yield server


@pytest.fixture
def database(chdb_engine: ChdbWarehouse) -> Iterator[str]:
    """A throwaway database, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    chdb_engine.command(f"CREATE DATABASE {name}")
    yield name
    chdb_engine.command(f"DROP DATABASE IF EXISTS {name} SYNC")


@pytest.fixture(params=["chdb", "connect"])
def warehouse(
    request: pytest.FixtureRequest, chdb_engine: ChdbWarehouse, clickhouse_http: RunningServer, database: str
) -> Iterator[Warehouse]:
    """Each adapter in turn: chDB in-process, and clickhouse-connect over the HTTP endpoint."""
    adapter: Warehouse
    if request.param == "chdb":
        adapter = ChdbWarehouse.for_path(chdb_engine.data_dir, database)
    else:
        url = f"http://{WRITER_USER}:{WRITER_PASSWORD}@{clickhouse_http.host}:{clickhouse_http.port}"
        adapter = ConnectWarehouse(url, database)
    yield adapter
    adapter.close()
