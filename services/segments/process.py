"""``cdp run segments``: the segment processor as a process of its own, with the segment topic
sinks (``--no-sinks``: the processor only; ``cdp up`` starts one that way as a child and runs the
sinks itself). More can run against Apache Kafka and a ClickHouse server, sharing ``cdp.profiles``
by partition; give each replica its own ``CDP_SEGMENTS_WORKER_ID``."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from schemas.topics import PLATFORM_TOPICS, SEGMENT_TOPICS
from services.core.kafka.admin import ensure_topics
from services.core.metrics import SegmentMetrics
from services.core.service_links import connect
from services.core.settings import Settings
from services.core.warehouse.setup import wait_for_schema
from services.core.worker_host import SCHEMA_WAIT_SECONDS, WorkerHost
from services.segments.streaming.kafka_worker import SEGMENTS_APP_ID, SegmentWorker
from services.segments.wiring import segment_sinks

log = logging.getLogger("cdp.segments")


def worker_id(settings: Settings) -> str:
    """This replica's name in ``segment_backfills``: ``CDP_SEGMENTS_WORKER_ID``, else the host name
    (unique per container or pod, so replicas started from one template need no per-replica setting)."""
    return settings.segments_worker_id or socket.gethostname()


async def run_segments(
    settings: Settings,
    stop: asyncio.Event,
    on_step: Callable[[str], None] = lambda _: None,
    drain_on_stop: bool = False,
    sinks: bool = True,
) -> None:
    bootstrap, cluster, warehouse = await connect(settings)
    host: WorkerHost | None = None
    try:
        await asyncio.to_thread(wait_for_schema, warehouse, SCHEMA_WAIT_SECONDS, on_step)
        await asyncio.to_thread(
            ensure_topics, bootstrap, PLATFORM_TOPICS + SEGMENT_TOPICS, settings.topic_partitions,
            settings.topic_replication,
        )  # fmt: skip
        registry = CollectorRegistry()
        metrics = SegmentMetrics.create(registry)
        host = WorkerHost.for_worker(
            settings, bootstrap, cluster, warehouse, registry, metrics.consumer_lag,
            segment_sinks if sinks else None, on_step,
        )  # fmt: skip
        worker = SegmentWorker(
            bootstrap, warehouse, partitions=settings.topic_partitions,
            replication=settings.topic_replication, worker_id=worker_id(settings), metrics=metrics,
            app_id=SEGMENTS_APP_ID,
            sweep_seconds=settings.segments_sweep_seconds, catalog_seconds=settings.segments_catalog_seconds,
            session_timeout=settings.kafka_session_timeout_ms / 1000,
        )  # fmt: skip
        host.start()
        try:
            await worker.start()
            host.worker_started()
            on_step(
                f"segment processor joined on {bootstrap} (cluster {cluster}, "
                f"{len(worker.processor.catalog)} segments)"
            )
            await stop.wait()
            host.worker_stopping()
            if drain_on_stop:
                drained = await worker.drain(within=60)
                on_step(
                    "segment processor drained"
                    if drained
                    else "segment processor: inputs not fully processed"
                )
        finally:
            await worker.stop()
            await host.stop()
    finally:
        warehouse.close()
        if host is not None:
            host.close()
        on_step("segment processor stopped")
