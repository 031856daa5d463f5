"""A correction through the admin API lands on ``cdp.identity.observations`` of the real broker."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette

from schemas.topics import IDENTITY_OBSERVATIONS, IDENTITY_TOPICS
from services.admin.api import admin_routes
from services.admin.auth import AdminTokens
from services.admin.corrections import kafka_submit
from services.admin.profiles import ProfileReader
from services.core.kafka.admin import ensure_topics
from services.core.kafka.broker import TansuBroker
from services.core.kafka.producer import AsyncProducer
from services.core.warehouse.chdb_adapter import ChdbWarehouse
from tests.integration.admin.admin_story import TOKEN
from tests.integration.kafka_reader import read_topic
from tests.integration.servers import serve_app


@pytest.fixture
def kafka_admin_url(broker: TansuBroker, chdb_engine: ChdbWarehouse) -> Iterator[str]:
    ensure_topics(broker.bootstrap, IDENTITY_TOPICS, partitions=4, replication=1)
    producer = AsyncProducer(broker.bootstrap)
    routes = admin_routes(
        ProfileReader(chdb_engine), AdminTokens.single_admin(TOKEN), submit=kafka_submit(producer)
    )
    try:
        with serve_app(Starlette(routes=routes)) as url:
            yield url
    finally:
        producer.close()


def test_split_and_detach_are_produced_in_order(broker: TansuBroker, kafka_admin_url: str):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=kafka_admin_url, headers=auth, timeout=40) as client:
        split = client.post("/api/v1/profiles/split", json={
            "a": {"type": "email", "value": "Anna@Example.de"}, "b": "anonymous_id:family-tablet",
            "reason": "shared family tablet"})  # fmt: skip
        detach = client.post(
            "/api/v1/profiles/detach", json={"identifier": "anonymous_id:family-tablet", "reason": "shared"}
        )
    # 202 only once Kafka acknowledged the record (acks=all).
    assert split.status_code == 202, split.text
    assert detach.status_code == 202, detach.text
    ids = [split.json()["requestId"], detach.json()["requestId"]]
    found = read_topic(
        broker.bootstrap, IDENTITY_OBSERVATIONS, lambda value: value.get("requestId") in ids, 2
    )
    assert [value["requestId"] for _, _, value in found] == ids  # one partition: one order
    (split_key, partition, split_record), (_, _, detach_record) = found
    assert split_key is None and partition == 0
    assert split_record == {
        "schemaVersion": 1, "kind": "split", "a": "email:anna@example.de", "b": "anonymous_id:family-tablet",
        "reason": "shared family tablet", "requestId": ids[0], "requestedAt": split_record["requestedAt"],
        "requestedBy": "admin",
    }  # fmt: skip
    assert split_record["requestedAt"].endswith("Z")
    assert detach_record["kind"] == "detach" and detach_record["identifier"] == "anonymous_id:family-tablet"
