from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from services.core.kafka.broker import TansuBroker
from services.core.kafka.producer import AsyncProducer
from services.core.metrics import IngestMetrics
from services.ingest.api import IngestAPI, create_ingest_app
from services.ingest.auth import WriteKeys
from services.ingest.dedup import MessageIdWindow
from services.ingest.pipeline import IngestPipeline
from services.ingest.webhook_routes import WebhookConfig
from tests.integration.servers import serve_app

WRITE_KEY = "it-write-key"
SHOPIFY_SECRET = "it-shopify-secret"
ZENDESK_SECRET = "it-zendesk-secret"


@dataclass
class IngestServer:
    url: str
    api: IngestAPI
    registry: CollectorRegistry
    bootstrap: str

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return value or 0.0


@pytest.fixture(scope="module")
def ingest_server(broker: TansuBroker) -> Iterator[IngestServer]:
    registry = CollectorRegistry()
    metrics = IngestMetrics.create(registry)
    producer = AsyncProducer(broker.bootstrap)
    pipeline = IngestPipeline(producer, metrics, MessageIdWindow(3600, 100_000))
    api = IngestAPI(
        pipeline, metrics, WriteKeys([WRITE_KEY]), max_event_bytes=32 * 1024, max_batch_bytes=500 * 1024,
        webhooks=WebhookConfig({"shopify_webhook_secret": SHOPIFY_SECRET, "zendesk_webhook_secret": ZENDESK_SECRET}),
        registry=registry,
    )  # fmt: skip
    with serve_app(create_ingest_app(api)) as url:
        yield IngestServer(url, api, registry, broker.bootstrap)
    producer.close()
