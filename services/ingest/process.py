"""``cdp run ingest``: the ingest + admin API as a process of its own, against Kafka and a
ClickHouse endpoint (CDP_CLICKHOUSE_URL, or this machine's ``cdp run warehouse``).

It is stateless: run any number behind a load balancer. At start it creates the platform's
topics and applies the warehouse migrations (both idempotent), so a fresh Kafka and ClickHouse
need nothing else; with CDP_MIGRATE_ON_START=false it waits for ``cdp migrate`` to apply them.
On SIGTERM it stops accepting requests, flushes the Kafka producer (every acknowledged event is on
Kafka), writes the admin audit and closes its servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from services.core.health import KafkaProbe
from services.core.http_serving import QuietServer, quiet_server
from services.core.kafka.admin import ensure_platform_topics
from services.core.kafka.broker import port_is_free
from services.core.metrics import IngestMetrics
from services.core.secrets import PlatformSecrets, load_or_create
from services.core.service_links import ServiceStartError, connect, is_distributed, require_secrets
from services.core.settings import Settings
from services.core.warehouse.setup import prepare_warehouse, wait_for_schema
from services.core.worker_host import SCHEMA_WAIT_SECONDS
from services.ingest.service import SECRETS, IngestService, build_ingest_service

log = logging.getLogger("cdp.ingest")


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def process_secrets(settings: Settings) -> PlatformSecrets:
    """Distributed mode: the environment's (``require_secrets`` checked them); else the data dir's."""
    if not is_distributed(settings):
        return load_or_create(settings)
    return PlatformSecrets(
        write_key=_secret(settings.write_key),
        admin_token=_secret(settings.admin_token),
        clickhouse_writer_password="",  # the password is the one inside CDP_CLICKHOUSE_URL
        write_key_generated=False,
        privacy_hash_key=_secret(settings.privacy_hash_key),
    )


async def _serve_until(server: QuietServer, where: str) -> asyncio.Task[None]:
    task = asyncio.create_task(server.serve(), name="ingest")
    while not server.started:
        if task.done():
            raise ServiceStartError(f"the ingest API could not listen on {where}: choose another --http-port")
        await asyncio.sleep(0.02)
    return task


async def _stop_service(service: IngestService, server: QuietServer, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.to_thread(service.privacy.stop)
    service.access.stop()
    await asyncio.to_thread(service.audit.close)
    unsent = await asyncio.to_thread(service.producer.close)
    if unsent:
        log.error("%d accepted events could not be written to Kafka at shutdown", unsent)
    if service.analytics.running is not None:
        log.info("waiting up to 10 s for customer value refresh %s", service.analytics.running)
        await asyncio.to_thread(service.analytics.join, 10.0)


async def run_ingest(
    settings: Settings, stop: asyncio.Event, on_step: Callable[[str], None] = lambda _: None
) -> None:
    require_secrets(settings, SECRETS, "cdp run ingest")
    where = f"{settings.http_host}:{settings.http_port}"
    if not port_is_free(settings.http_host, settings.http_port):
        raise ServiceStartError(
            f"port {settings.http_port} on {settings.http_host} is in use: free it or choose another "
            "with --http-port / CDP_HTTP_PORT"
        )
    bootstrap, cluster, warehouse = await connect(settings)
    try:
        await asyncio.to_thread(
            ensure_platform_topics, bootstrap, settings.topic_partitions, settings.topic_replication
        )
        if settings.migrate_on_start:
            await asyncio.to_thread(prepare_warehouse, warehouse, settings, on_step)
        else:  # one 'cdp migrate' job changes the schema, not every replica at once
            await asyncio.to_thread(wait_for_schema, warehouse, SCHEMA_WAIT_SECONDS, on_step)
        secrets = process_secrets(settings)
        settings = settings.model_copy(update={"privacy_hash_key": SecretStr(secrets.privacy_hash_key)})
        registry = CollectorRegistry()
        kafka = KafkaProbe(bootstrap)
        readiness = {"kafka": kafka.reachable, "warehouse": warehouse.ping}
        service = await asyncio.to_thread(
            build_ingest_service, settings, secrets, bootstrap, warehouse, registry,
            IngestMetrics.create(registry), readiness, origin="cdp run ingest", on_step=on_step,
        )  # fmt: skip
        service.privacy.start()
        service.access.start()
        service.audit.start()
        server = quiet_server(service.app, settings.http_host, settings.http_port)
        schedule_stop = threading.Event()
        task = await _serve_until(server, where)
        try:
            if settings.analytics_refresh_seconds > 0:
                service.analytics.schedule(settings.analytics_refresh_seconds, schedule_stop)
            on_step(f"ingest API on http://{where} (Kafka {bootstrap}, cluster {cluster})")
            if service.preloaded_ids:
                on_step(f"remembering {service.preloaded_ids} recent messageIds for de-duplication")
            while not stop.is_set() and not task.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
            if not stop.is_set():
                raise ServiceStartError(f"the ingest API on {where} stopped unexpectedly (see the log above)")
        finally:
            schedule_stop.set()
            await _stop_service(service, server, task)
            on_step("ingest API stopped: every accepted event is on Kafka")
    finally:
        await asyncio.to_thread(warehouse.close)
