"""``cdp run segments``: the segment processor as a process of its own (``cdp up`` starts one as a
child; more can run against Apache Kafka and a ClickHouse server, sharing ``cdp.profiles`` by
partition; give each replica its own ``CDP_SEGMENTS_WORKER_ID``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry, start_http_server

from schemas.topics import PLATFORM_TOPICS, SEGMENT_TOPICS
from services.core.kafka.admin import ensure_topics
from services.core.metrics import SegmentMetrics
from services.core.settings import Settings
from services.identity.process import connect
from services.segments.streaming.kafka_worker import SEGMENTS_APP_ID, SegmentWorker

log = logging.getLogger("cdp.segments")


async def run_segments(
    settings: Settings,
    stop: asyncio.Event,
    metrics_port: int = 0,
    on_step: Callable[[str], None] = lambda _: None,
    drain_on_stop: bool = False,
) -> None:
    bootstrap, cluster, warehouse = await connect(settings)
    await asyncio.to_thread(
        ensure_topics, bootstrap, PLATFORM_TOPICS + SEGMENT_TOPICS, settings.topic_partitions,
        settings.topic_replication,
    )  # fmt: skip
    registry = CollectorRegistry()
    metrics = SegmentMetrics.create(registry)
    if metrics_port:
        start_http_server(metrics_port, addr=settings.http_host, registry=registry)
        on_step(f"metrics on http://{settings.http_host}:{metrics_port}/metrics")
    worker = SegmentWorker(
        bootstrap, warehouse, partitions=settings.topic_partitions, replication=settings.topic_replication,
        worker_id=settings.segments_worker_id, metrics=metrics, app_id=SEGMENTS_APP_ID,
        sweep_seconds=settings.segments_sweep_seconds, catalog_seconds=settings.segments_catalog_seconds,
        session_timeout=settings.kafka_session_timeout_ms / 1000,
    )  # fmt: skip
    await worker.start()
    on_step(
        f"segment processor joined on {bootstrap} (cluster {cluster}, "
        f"{len(worker.processor.catalog)} segments)"
    )
    try:
        await stop.wait()
        if drain_on_stop:
            drained = await worker.drain(within=60)
            on_step(
                "segment processor drained" if drained else "segment processor: inputs not fully processed"
            )
    finally:
        await worker.stop()
        warehouse.close()
        on_step("segment processor stopped")
