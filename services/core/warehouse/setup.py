"""Who puts the schema in place, and how the other services wait for it.

``cdp up``, ``cdp run warehouse``, ``cdp run ingest`` and ``cdp migrate`` apply the migrations
(idempotent: a second run applies nothing) and the raw-event retention; with
CDP_MIGRATE_ON_START=false only ``cdp migrate`` does, and ingest waits like the processors.
``cdp run identity|segments`` never change the schema: they wait for it to be complete and refuse
to start, saying what to do, when it is not there in time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from services.core.settings import Settings
from services.core.warehouse.migrations import apply_migrations, missing_migrations
from services.core.warehouse.port import Warehouse
from services.core.warehouse.retention import apply_retention


class SchemaMissingError(Exception):
    """The warehouse lacks migrations this version needs; the message says what to do."""


def prepare_warehouse(warehouse: Warehouse, settings: Settings, on_step: Callable[[str], None]) -> list[str]:
    """Apply the migrations not yet applied and the raw-event retention; the names applied."""
    applied = apply_migrations(warehouse)
    if applied:
        on_step(f"applied migrations: {', '.join(applied)}")
    apply_retention(warehouse, settings.events_ttl_days)
    return applied


def wait_for_schema(
    warehouse: Warehouse, within: float, on_step: Callable[[str], None] = lambda _: None
) -> None:
    """Return once every migration is applied; SchemaMissingError after ``within`` seconds."""
    deadline = time.monotonic() + within
    told = False
    while True:
        missing = missing_migrations(warehouse)
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise SchemaMissingError(
                f"the warehouse schema is missing {len(missing)} migration(s) ({', '.join(missing[:3])}"
                f"{', ...' if len(missing) > 3 else ''}): run 'cdp migrate' (or start 'cdp run ingest', "
                "'cdp run warehouse' or 'cdp up', which apply them), then start this service again"
            )
        if not told:
            on_step(
                f"waiting up to {within:.0f} s for the warehouse schema ({len(missing)} migrations missing)"
            )
            told = True
        time.sleep(1.0)
