"""A throwaway, migrated database in this process's embedded chDB engine, for benchmarks."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.core.warehouse.chdb_adapter import ChdbWarehouse, embedded_engine_path
from services.core.warehouse.migrations import apply_migrations


@contextmanager
def migrated_warehouse(prefix: str) -> Iterator[ChdbWarehouse]:
    """A new database with every migration applied; dropped (and the engine closed) on exit.
    chDB allows one data directory per process, so an engine already open is reused."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        engine = ChdbWarehouse.for_path(embedded_engine_path() or Path(tmp), "default")
        database = f"bench_{uuid.uuid4().hex[:8]}"
        engine.command(f"CREATE DATABASE {database}")
        warehouse = ChdbWarehouse.for_path(engine.data_dir, database)
        try:
            apply_migrations(warehouse)
            yield warehouse
        finally:
            warehouse.close()
            engine.command(f"DROP DATABASE IF EXISTS {database} SYNC")
            engine.close()
