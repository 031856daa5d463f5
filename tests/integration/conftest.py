"""Session-wide real infrastructure: one Tansu broker and one chDB engine per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from schemas.topics import PLATFORM_TOPICS
from services.core.kafka.admin import ensure_topics
from services.core.kafka.broker import TansuBroker, free_port
from tests.integration.warehouse_fixtures import (  # noqa: F401 (fixtures)
    chdb_engine,
    clickhouse_http,
    database,
    endpoint_settings,
    warehouse,
)


@pytest.fixture(scope="session")
def broker() -> Iterator[TansuBroker]:
    with TansuBroker("127.0.0.1", free_port()) as running:
        ensure_topics(running.bootstrap, PLATFORM_TOPICS, partitions=4, replication=1)
        yield running
