"""Choose the warehouse adapter from the settings."""

from __future__ import annotations

from services.core.settings import Settings
from services.core.warehouse.chdb_adapter import ChdbWarehouse
from services.core.warehouse.connect_adapter import ConnectWarehouse
from services.core.warehouse.port import Warehouse


def open_warehouse(settings: Settings) -> Warehouse:
    """A ClickHouse server when ``clickhouse_url`` is set, else the embedded chDB in ``data_dir``."""
    if settings.clickhouse_url:
        return ConnectWarehouse(settings.clickhouse_url, settings.clickhouse_database)
    return ChdbWarehouse(settings.data_dir, settings.clickhouse_database)
