"""``cdp run identity``: an identity worker as a process of its own, with the identity topic sinks
(``--no-sinks``: the worker only; ``cdp up`` runs its children that way, as it runs the sinks
itself). Next to ``cdp up`` it adds a worker; against Apache Kafka and a ClickHouse server any
number of them form the identity service. Workers share the work by Kafka partitions: each folds
the ``resolved`` partitions it is assigned and one of them runs the graph stage; the sinks share
their topics' partitions the same way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from services.core.kafka.producer import AsyncProducer
from services.core.metrics import IdentityMetrics
from services.core.service_links import (
    ServiceStartError,
    bootstrap_of,
    connect,
    require_secrets,
    warehouse_url,
)
from services.core.settings import Settings
from services.core.warehouse.port import Warehouse
from services.core.warehouse.setup import wait_for_schema
from services.core.worker_host import SCHEMA_WAIT_SECONDS, WorkerHost
from services.identity.streaming.restore import next_epoch, read_epoch, record_epoch
from services.identity.wiring import IDENTITY_APP_ID, identity_sinks, identity_worker

log = logging.getLogger("cdp.identity")

IdentityProcessError = ServiceStartError
"""The worker cannot start; the message says what to do (the name predates ``cdp run ingest``)."""

SECRETS = ("privacy_hash_key",)
"""The shared secrets ``cdp run identity`` reads (required in distributed mode)."""


def _epoch(warehouse: Warehouse, cluster: str) -> int:
    epoch = read_epoch(warehouse, cluster)
    if epoch is None:  # the first worker on this cluster (distributed mode): it starts the numbering
        epoch = next_epoch(warehouse)
        record_epoch(warehouse, cluster, epoch)
    return epoch


async def run_identity(
    settings: Settings,
    stop: asyncio.Event,
    on_step: Callable[[str], None] = lambda _: None,
    app_id: str | None = None,
    drain_on_stop: bool = False,
    sinks: bool = True,
) -> None:
    require_secrets(settings, SECRETS, "cdp run identity")
    bootstrap, cluster, warehouse = await connect(settings)
    host: WorkerHost | None = None
    try:
        await asyncio.to_thread(wait_for_schema, warehouse, SCHEMA_WAIT_SECONDS, on_step)
        epoch = await asyncio.to_thread(_epoch, warehouse, cluster)
        registry = CollectorRegistry()
        metrics = IdentityMetrics.create(registry)
        host = WorkerHost.for_worker(
            settings, bootstrap, cluster, warehouse, registry, metrics.consumer_lag,
            identity_sinks if sinks else None, on_step,
        )  # fmt: skip
        producer = AsyncProducer(bootstrap)
        worker = identity_worker(
            bootstrap, producer, warehouse, settings, epoch, metrics, app_id=app_id or IDENTITY_APP_ID
        )
        host.start()
        try:
            await worker.start()
            host.worker_started()
            on_step(f"identity worker joined on {bootstrap} (cluster {cluster}, positions from {epoch})")
            await stop.wait()
            host.worker_stopping()
            if drain_on_stop:
                drained = await worker.drain(within=60)
                on_step(
                    "identity worker drained" if drained else "identity worker: inputs not fully processed"
                )
        finally:
            await worker.stop()
            unsent = await asyncio.to_thread(producer.close)
            if unsent:
                log.error("%d identity records could not be written to Kafka at shutdown", unsent)
            await host.stop()
    finally:
        warehouse.close()
        if host is not None:
            host.close()
        on_step("identity worker stopped")


__all__ = ["IdentityProcessError", "bootstrap_of", "connect", "run_identity", "warehouse_url"]
