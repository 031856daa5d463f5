"""The identity story (admin_story.py) in a real warehouse, and the admin routes served over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette

from services.admin.api import admin_routes
from services.admin.auth import AdminTokens
from services.admin.profiles import ProfileReader
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
