"""``cdp run identity``: one more identity worker process next to ``cdp up`` (or a fleet of them
against Apache Kafka and a ClickHouse server). Workers share the work by Kafka partitions: each
folds the ``resolved`` partitions it is assigned and one of them runs the graph stage."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from urllib.parse import quote

from prometheus_client import CollectorRegistry, start_http_server

from services.core.kafka.admin import cluster_id
from services.core.kafka.producer import AsyncProducer
from services.core.metrics import IdentityMetrics
from services.core.secrets import read_existing
from services.core.settings import Settings
from services.core.warehouse.connect_adapter import ConnectWarehouse
from services.core.warehouse.port import Warehouse
from services.identity.streaming.restore import next_epoch, read_epoch, record_epoch
from services.identity.wiring import IDENTITY_APP_ID, identity_worker

log = logging.getLogger("cdp.identity")


class IdentityProcessError(Exception):
    """The worker cannot start; the message says what to do."""


def bootstrap_of(settings: Settings) -> str:
    return settings.kafka_bootstrap or f"127.0.0.1:{settings.broker_port}"


def warehouse_url(settings: Settings) -> str:
    """``CDP_CLICKHOUSE_URL``, else the writer user of this machine's ``cdp up`` endpoint."""
    if settings.clickhouse_url:
        return settings.clickhouse_url
    password = settings.clickhouse_writer_password.get_secret_value()
    password = password or read_existing(settings).get("clickhouse_writer_password", "")
    if not password:
        raise IdentityProcessError(
            f"no warehouse: set CDP_CLICKHOUSE_URL, or run next to a 'cdp up' whose data dir "
            f"({settings.data_dir}) holds the writer password (--data-dir)"
        )
    user = quote(settings.clickhouse_writer_user, safe="")
    host, port = settings.clickhouse_http_host, settings.clickhouse_http_port
    return f"http://{user}:{quote(password, safe='')}@{host}:{port}"


async def connect(settings: Settings) -> tuple[str, str, ConnectWarehouse]:
    """(bootstrap, cluster id, warehouse) of the platform a worker process joins; IdentityProcessError
    saying what to do when Kafka or the warehouse cannot be reached."""
    bootstrap = bootstrap_of(settings)
    try:
        cluster = await asyncio.to_thread(cluster_id, bootstrap)
    except Exception as exc:
        raise IdentityProcessError(
            f"cannot reach Kafka at {bootstrap} ({exc}): start 'cdp up' first, or set CDP_KAFKA_BOOTSTRAP"
        ) from None
    warehouse = ConnectWarehouse(warehouse_url(settings), settings.clickhouse_database)
    if not await asyncio.to_thread(warehouse.ping):
        warehouse.close()
        raise IdentityProcessError("the warehouse does not answer: check CDP_CLICKHOUSE_URL / cdp up")
    return bootstrap, cluster, warehouse


def _epoch(warehouse: Warehouse, cluster: str) -> int:
    epoch = read_epoch(warehouse, cluster)
    if epoch is None:  # the first worker on this cluster (distributed mode): it starts the numbering
        epoch = next_epoch(warehouse)
        record_epoch(warehouse, cluster, epoch)
    return epoch


async def run_identity(
    settings: Settings,
    stop: asyncio.Event,
    metrics_port: int = 0,
    on_step: Callable[[str], None] = lambda _: None,
    app_id: str | None = None,
    drain_on_stop: bool = False,
) -> None:
    bootstrap, cluster, warehouse = await connect(settings)
    epoch = await asyncio.to_thread(_epoch, warehouse, cluster)
    registry = CollectorRegistry()
    metrics = IdentityMetrics.create(registry)
    if metrics_port:
        start_http_server(metrics_port, addr=settings.http_host, registry=registry)
        on_step(f"metrics on http://{settings.http_host}:{metrics_port}/metrics")
    producer = AsyncProducer(bootstrap)
    worker = identity_worker(
        bootstrap, producer, warehouse, settings, epoch, metrics, app_id=app_id or IDENTITY_APP_ID
    )
    await worker.start()
    on_step(f"identity worker joined on {bootstrap} (cluster {cluster}, positions from {epoch})")
    try:
        await stop.wait()
        if drain_on_stop:
            drained = await worker.drain(within=60)
            on_step("identity worker drained" if drained else "identity worker: inputs not fully processed")
    finally:
        await worker.stop()
        await asyncio.to_thread(producer.close)
        warehouse.close()
        on_step("identity worker stopped")
