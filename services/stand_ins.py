"""``cdp run broker`` and ``cdp run warehouse``: local stand-ins for Apache Kafka and a ClickHouse
server, so the services can run as separate processes on one machine (and in tests) exactly as
they run against the real systems. Not for containers: there, use Kafka and ClickHouse.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from pydantic import SecretStr

from services.core.http_serving import quiet_server
from services.core.kafka.admin import ensure_platform_topics
from services.core.kafka.broker import TansuBroker, port_is_free
from services.core.secrets import load_or_create
from services.core.service_links import ServiceStartError, writer_url
from services.core.settings import Settings
from services.core.warehouse.chdb_adapter import ChdbWarehouse
from services.core.warehouse.http_endpoint import create_clickhouse_http_app
from services.core.warehouse.setup import prepare_warehouse


def _require_free(host: str, port: int, what: str, option: str) -> None:
    if not port_is_free(host, port):
        raise ServiceStartError(
            f"port {port} for the {what} is in use on {host}: free it or choose another with {option}"
        )


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def run_broker(settings: Settings, stop: asyncio.Event, on_step: Callable[[str], None]) -> None:
    """A Tansu broker on 127.0.0.1:CDP_BROKER_PORT with the platform's topics, until ``stop``.
    Tansu keeps topics in memory: they vanish when this stops."""
    _require_free("127.0.0.1", settings.broker_port, "Kafka broker", "--broker-port / CDP_BROKER_PORT")
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    broker = TansuBroker("127.0.0.1", settings.broker_port, log_path=logs / "tansu.log")
    await asyncio.to_thread(broker.start)
    try:
        created = await asyncio.to_thread(
            ensure_platform_topics, broker.bootstrap, settings.topic_partitions, settings.topic_replication
        )
        on_step(
            f"Kafka-compatible broker (Tansu, in memory) on {broker.bootstrap}: {len(created)} topics created"
        )
        on_step(f"for the services: CDP_KAFKA_BOOTSTRAP={broker.bootstrap}")
        while not stop.is_set():
            if not broker.is_running():
                raise ServiceStartError(f"the Tansu broker exited (log: {logs / 'tansu.log'})")
            await _wait(stop, 1.0)
    finally:
        await asyncio.to_thread(broker.stop)
        on_step("broker stopped (its topics are gone: Tansu keeps them in memory)")


async def run_warehouse(settings: Settings, stop: asyncio.Event, on_step: Callable[[str], None]) -> None:
    """The embedded ClickHouse engine (chDB) in CDP_DATA_DIR, migrations applied, behind its
    ClickHouse-compatible HTTP endpoint, until ``stop``. The caller holds the data dir lock."""
    if settings.clickhouse_url:
        raise ServiceStartError(
            "CDP_CLICKHOUSE_URL is set: 'cdp run warehouse' is the embedded stand-in for a ClickHouse "
            "server; unset CDP_CLICKHOUSE_URL for this command (the other services keep it)"
        )
    host, port = settings.clickhouse_http_host, settings.clickhouse_http_port
    _require_free(host, port, "ClickHouse endpoint", "--clickhouse-port / CDP_CLICKHOUSE_HTTP_PORT")
    secrets = load_or_create(settings)
    settings = settings.model_copy(
        update={"clickhouse_writer_password": SecretStr(secrets.clickhouse_writer_password)}
    )
    on_step(f"opening the embedded warehouse in {settings.data_dir} and applying migrations")
    warehouse = await asyncio.to_thread(ChdbWarehouse, settings.data_dir, settings.clickhouse_database)
    try:
        await asyncio.to_thread(prepare_warehouse, warehouse, settings, on_step)
        server = quiet_server(create_clickhouse_http_app(warehouse, settings), host, port, lifespan="on")
        task = asyncio.create_task(server.serve(), name="clickhouse")
        while not server.started:
            if task.done():
                raise ServiceStartError(f"the ClickHouse endpoint could not listen on {host}:{port}")
            await asyncio.sleep(0.02)
        on_step(
            f"ClickHouse-compatible endpoint on http://{host}:{port} "
            f"(database {settings.clickhouse_database})"
        )
        on_step(f"read-only BI user: '{settings.clickhouse_bi_user}'")
        on_step(
            f"for the services: CDP_CLICKHOUSE_URL={writer_url(settings, secrets.clickhouse_writer_password)}"
        )
        while not stop.is_set() and not task.done():
            await _wait(stop, 1.0)
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await asyncio.to_thread(warehouse.close)
        on_step("warehouse closed")
