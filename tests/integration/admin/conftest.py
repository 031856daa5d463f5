"""The identity story (admin_story.py) in a real warehouse, and the admin routes served over HTTP
(read-only, and with the correction routes writing to a recording ``submit``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from services.admin.api import admin_routes
from services.admin.auth import AdminTokens
from services.admin.profiles import ProfileReader
from services.core.warehouse.chdb_adapter import ChdbWarehouse
from services.core.warehouse.migrations import apply_migrations
from services.core.warehouse.port import Warehouse
from tests.integration.admin.admin_story import TOKEN, insert_story
from tests.integration.servers import serve_app


@pytest.fixture
def story(warehouse: Warehouse) -> Warehouse:
    apply_migrations(warehouse)
    insert_story(warehouse)
    return warehouse


@pytest.fixture
def reader(story: Warehouse) -> ProfileReader:
    return ProfileReader(story)


@pytest.fixture
def admin_url(reader: ProfileReader) -> Iterator[str]:
    app = Starlette(routes=admin_routes(reader, AdminTokens.single_admin(TOKEN)))
    with serve_app(app) as url:
        yield url


@pytest.fixture
def admin(admin_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=admin_url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


class RecordingSubmit:
    """A ``submit`` that keeps the records; raises ``failure`` instead when one is set."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.failure: Exception | None = None

    async def __call__(self, record: dict[str, Any]) -> None:
        if self.failure is not None:
            raise self.failure
        self.records.append(record)


@pytest.fixture
def submitted() -> RecordingSubmit:
    return RecordingSubmit()


@pytest.fixture
def corrections_url(chdb_engine: ChdbWarehouse, submitted: RecordingSubmit) -> Iterator[str]:
    """Every admin route with the write routes; corrections never read the warehouse."""
    tokens = AdminTokens.single_admin(TOKEN)
    app = Starlette(routes=admin_routes(ProfileReader(chdb_engine), tokens, submit=submitted))
    with serve_app(app) as url:
        yield url


@pytest.fixture
def read_only_url(chdb_engine: ChdbWarehouse) -> Iterator[str]:
    app = Starlette(routes=admin_routes(ProfileReader(chdb_engine), AdminTokens.single_admin(TOKEN)))
    with serve_app(app) as url:
        yield url
