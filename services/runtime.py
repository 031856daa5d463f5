"""The one place that wires the platform together: ``cdp up`` (single node) runs it all in one process.

Start order: data dir lock -> broker (Tansu unless CDP_KAFKA_BOOTSTRAP) -> topics -> warehouse and
migrations -> identity restore (replay of the stored decisions) -> ClickHouse HTTP endpoint
(embedded mode) -> producer, ingest and admin API -> sinks -> restored profiles republished ->
identity worker. Stop order is the reverse: the ingest API stops, the identity worker processes
everything already accepted, the sinks write it, and only then does the broker, which keeps nothing
on disk, go away. If the broker dies while the platform runs, ``_replace_broker`` names the accepted
events lost with it and rebuilds on a new broker the way a start does (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from services.access.audit import AuditLog
from services.access.control import AccessControl
from services.analytics.refresh import RefreshRunner
from services.broker_loss import OTHER_LOSSES, BrokerLoss
from services.core.http_serving import QuietServer, quiet_server
from services.core.kafka.admin import cluster_id, ensure_platform_topics
from services.core.kafka.broker import TansuBroker, port_is_free
from services.core.kafka.exceptions import BrokerError
from services.core.kafka.producer import AsyncProducer
from services.core.log_hygiene import error_summary
from services.core.metrics import BrokerLossMetrics, PlatformMetrics
from services.core.secrets import PlatformSecrets, load_or_create
from services.core.service_links import ServiceStartError, writer_url
from services.core.settings import Settings
from services.core.topic_sink import TopicSink
from services.core.warehouse.chdb_adapter import ChdbWarehouse
from services.core.warehouse.factory import open_warehouse
from services.core.warehouse.http_endpoint import create_clickhouse_http_app
from services.core.warehouse.port import Warehouse, WarehouseError
from services.core.warehouse.setup import prepare_warehouse
from services.identity.child import WorkerProcess, child_environment, serve_child_metrics
from services.identity.wiring import (
    RestoredIdentity,
    identity_sinks,
    publish_restored,
    read_epoch,
    record_epoch,
    restore_identity,
)
from services.ingest.acked import AckedEvents, stored_message_ids
from services.ingest.pipeline import IngestPipeline
from services.ingest.service import build_ingest_service
from services.privacy.wiring import PrivacyService
from services.segments.wiring import segment_sinks

log = logging.getLogger("cdp")


StartupError = ServiceStartError
"""The platform cannot start; the message says what to do."""

_QuietServer = QuietServer  # uvicorn without its own signal handling: the platform stops all servers together


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[IO[str]]:
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / ".lock", "w")  # noqa: SIM115
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StartupError(
            f"another 'cdp up' or 'cdp run warehouse' already uses {data_dir}: stop it first, or give "
            "this one its own "
            "--data-dir (the embedded warehouse belongs to exactly one process)"
        ) from None
    try:
        yield handle
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


@dataclass
class Platform:
    settings: Settings
    secrets: PlatformSecrets
    bootstrap: str
    cluster_id: str
    warehouse: Warehouse
    producer: AsyncProducer
    sinks: list[TopicSink]
    identity: WorkerProcess
    segments: WorkerProcess
    restored: RestoredIdentity
    metrics: PlatformMetrics
    servers: list[tuple[str, _QuietServer]]
    registry: CollectorRegistry
    analytics: RefreshRunner
    privacy: PrivacyService
    access: AccessControl
    audit: AuditLog
    broker: TansuBroker | None = None
    pipeline: IngestPipeline | None = None
    preloaded_ids: int = 0
    urls: dict[str, str] = field(default_factory=dict)


def _server(app: Any, host: str, port: int) -> _QuietServer:
    return quiet_server(app, host, port)


def _check_ports(settings: Settings) -> None:
    wanted = [("ingest API", settings.http_host, settings.http_port, "--http-port / CDP_HTTP_PORT")]
    if not settings.clickhouse_url:
        wanted.append(
            ("ClickHouse endpoint", settings.clickhouse_http_host, settings.clickhouse_http_port,
             "--clickhouse-port / CDP_CLICKHOUSE_HTTP_PORT")
        )  # fmt: skip
    if not settings.kafka_bootstrap:
        wanted.append(("Kafka broker", "127.0.0.1", settings.broker_port, "--broker-port / CDP_BROKER_PORT"))
    for what, host, port, option in wanted:
        if not port_is_free(host, port):
            raise StartupError(
                f"port {port} for the {what} is in use on {host}: free it or choose another with {option}"
            )


def _start_broker(settings: Settings, on_step: Callable[[str], None]) -> TansuBroker | None:
    if settings.kafka_bootstrap:
        return None
    on_step(f"starting the Tansu broker on 127.0.0.1:{settings.broker_port}")
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    broker = TansuBroker("127.0.0.1", settings.broker_port, log_path=logs / "tansu.log")
    broker.start()
    return broker


def _open_warehouse(settings: Settings, on_step: Callable[[str], None]) -> Warehouse:
    on_step("opening the warehouse and applying migrations")
    warehouse = open_warehouse(settings)
    prepare_warehouse(warehouse, settings, on_step)
    return warehouse


def _restore_identity(
    warehouse: Warehouse, settings: Settings, cluster: str, on_step: Callable[[str], None]
) -> RestoredIdentity:
    on_step("restoring identities and profiles from the warehouse")
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last[0] > 2:
            last[0] = time.monotonic()
            on_step(f"  replayed {done:,} of about {total:,} identity decisions")

    known = read_epoch(warehouse, cluster)
    if known is not None:
        # The broker kept its topics (an external Kafka): its observations and cdp.profiles hold
        # the state; the worker rebuilds the graph from them and the warehouse on demand.
        on_step(f"continuing on Kafka cluster {cluster} (identity positions from {known})")
        return RestoredIdentity(known, [], 0, 0.0)
    restored = restore_identity(warehouse, settings, progress)
    record_epoch(warehouse, cluster, restored.epoch)
    if restored.observations:
        on_step(
            f"restored {len(restored.profiles):,} profiles from {restored.observations:,} stored decisions "
            f"in {restored.seconds:.1f} s"
        )
    return restored


def _child_warehouse_url(settings: Settings, warehouse: Warehouse) -> str:
    """The identity child reaches the embedded engine through this process's endpoint (writer user)."""
    if not isinstance(warehouse, ChdbWarehouse) and settings.clickhouse_url:
        return settings.clickhouse_url
    return writer_url(settings, settings.clickhouse_writer_password.get_secret_value())


def _as_gauge(probe: Callable[[], bool]) -> Callable[[], float]:
    return lambda: 1.0 if probe() else 0.0


def build(settings: Settings, on_step: Callable[[str], None] = lambda _: None) -> Platform:
    """Start every component (blocking work: call before the event loop serves requests)."""
    _check_ports(settings)
    secrets = load_or_create(settings)
    settings = settings.model_copy(
        update={
            "clickhouse_writer_password": SecretStr(secrets.clickhouse_writer_password),
            "privacy_hash_key": SecretStr(secrets.privacy_hash_key),
        }
    )
    registry = CollectorRegistry()
    metrics = PlatformMetrics.create(registry)
    broker = _start_broker(settings, on_step)
    try:
        bootstrap = broker.bootstrap if broker else str(settings.kafka_bootstrap)
        on_step("creating topics")
        ensure_platform_topics(bootstrap, settings.topic_partitions, settings.topic_replication)
        cluster = broker.cluster_id if broker else cluster_id(bootstrap)
        warehouse = _open_warehouse(settings, on_step)
        restored = _restore_identity(warehouse, settings, cluster, on_step)
        metrics.identity_restore.set(restored.seconds)
        sinks = identity_sinks(bootstrap, cluster, warehouse, metrics.sink, settings)
        sinks += segment_sinks(bootstrap, cluster, warehouse, metrics.sink, settings)
        env = child_environment(settings, bootstrap, _child_warehouse_url(settings, warehouse))
        logs = settings.data_dir / "logs"
        worker = WorkerProcess(env, logs / "identity.log", settings.http_host, service="identity")
        segments = WorkerProcess(env, logs / "segments.log", settings.http_host, service="segments")
        shared = [metrics.sink.consumer_lag, metrics.sink.consumer_lag_seconds, metrics.ingest.dlq_messages]
        serve_child_metrics(registry, shared, [worker, segments])
        running = {
            "broker": broker.is_running if broker else lambda: True,
            "warehouse": warehouse.ping,
            "events_sink": lambda: all(sink.is_alive() for sink in sinks),
            "identity": worker.is_alive,
            "segments": segments.is_alive,
        }
        service = build_ingest_service(
            settings, secrets, bootstrap, warehouse, registry, metrics.ingest, running, origin="cdp up",
            on_step=on_step,
        )  # fmt: skip
        for component in ("broker", "events_sink", "identity", "segments"):
            metrics.up.labels(component).set_function(_as_gauge(running[component]))
        servers = [("ingest", _server(service.app, settings.http_host, settings.http_port))]
        urls = {
            "ingest": f"http://{settings.http_host}:{settings.http_port}",
            "metrics": f"http://{settings.http_host}:{settings.http_port}/metrics",
            "kafka": bootstrap,
            "clickhouse": str(settings.clickhouse_url),
        }
        if isinstance(warehouse, ChdbWarehouse):
            endpoint = create_clickhouse_http_app(warehouse, settings)
            host, port = settings.clickhouse_http_host, settings.clickhouse_http_port
            servers.append(("clickhouse", _server(endpoint, host, port)))
            urls["clickhouse"] = f"http://{host}:{port}"
    except Exception:
        if broker is not None:
            broker.stop()
        raise
    return Platform(
        settings=settings, secrets=secrets, bootstrap=bootstrap, cluster_id=cluster, warehouse=warehouse,
        producer=service.producer, sinks=sinks, identity=worker, segments=segments, restored=restored,
        metrics=metrics, analytics=service.analytics, privacy=service.privacy, access=service.access,
        audit=service.audit, servers=servers, registry=registry, broker=broker,
        preloaded_ids=service.preloaded_ids, urls=urls, pipeline=service.api.pipeline,
    )  # fmt: skip


async def serve(
    platform: Platform,
    stop: asyncio.Event,
    on_ready: Callable[[], None] = lambda: None,
    on_notice: Callable[[str], None] = lambda _: None,
) -> None:
    """Serve until ``stop`` is set, then shut everything down in order. ``on_notice``: lines for the
    console (the single-node broker was lost: what it cost, and the platform back)."""
    schedule_stop = threading.Event()
    guard = _guard_broker(platform)
    for sink in platform.sinks:
        sink.start()
    platform.privacy.start()
    platform.access.start()
    platform.audit.start()
    await publish_restored(platform.producer, platform.restored)
    platform.restored.profiles.clear()
    tasks = [asyncio.create_task(server.serve(), name=name) for name, server in platform.servers]
    while not all(server.started for _, server in platform.servers):
        done = [task for task in tasks if task.done()]
        if done:
            # A server that ended before starting could not bind its port.
            stop.set()
            break
        await asyncio.sleep(0.02)
    else:
        platform.identity.start()  # after the endpoint they reach the warehouse through
        platform.segments.start()
        tasks.append(asyncio.create_task(_supervise(platform, guard, stop, on_notice), name="supervise"))
        if platform.settings.analytics_refresh_seconds > 0:
            platform.analytics.schedule(platform.settings.analytics_refresh_seconds, schedule_stop)
        on_ready()
    await stop.wait()
    schedule_stop.set()
    await shutdown(platform, tasks)


@dataclass
class _BrokerGuard:
    """``cdp up`` on its own broker (Tansu, topics in memory only): the acknowledged events not yet
    found in the warehouse, to name exactly what a loss of the broker takes with it."""

    broker: TansuBroker
    acked: AckedEvents
    metrics: BrokerLossMetrics


def _guard_broker(platform: Platform) -> _BrokerGuard | None:
    if platform.broker is None or platform.pipeline is None:
        return None  # an external Kafka keeps what it acknowledged
    acked = AckedEvents()
    platform.pipeline.acked = acked
    _note_written_events(platform.sinks, acked)
    metrics = BrokerLossMetrics.create(platform.registry)
    metrics.unconfirmed.set_function(lambda: len(acked))
    return _BrokerGuard(platform.broker, acked, metrics)


def _note_written_events(sinks: list[TopicSink], acked: AckedEvents) -> None:
    for sink in sinks:
        if sink.table == "events":
            sink.on_written = acked.note_rows


async def _supervise(
    platform: Platform, guard: _BrokerGuard | None, stop: asyncio.Event, on_notice: Callable[[str], None]
) -> None:
    """Restart a worker that died (a crash, or kill -9): it resumes from its durable state. On the
    single-node broker also forget the acknowledged events the sinks wrote, and when the broker
    dies, rebuild on a new one and report what was lost."""
    children = [platform.identity, platform.segments]
    while not stop.is_set():
        if guard is not None and not guard.broker.is_running():
            await _replace_broker(platform, guard, stop, on_notice)
        for child in children:
            if child.crashed():
                await asyncio.to_thread(child.restart)
        if guard is not None:
            guard.acked.settle(time.time())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def _replace_broker(
    platform: Platform, guard: _BrokerGuard, stop: asyncio.Event, on_notice: Callable[[str], None]
) -> None:
    """The single-node broker died, and every topic and consumer offset with it. Stop what used it,
    name the acknowledged events that never reached the warehouse, then start again on a new broker
    as a fresh ``cdp up`` does. Ingest answers 503 with Retry-After until the new broker is there."""
    started = time.monotonic()
    code = guard.broker.exited()
    log.error(
        "the Kafka broker (Tansu) exited with code %s: its topics and consumer offsets are gone; "
        "rebuilding the pipeline on a new broker (ingest answers 503 meanwhile)", code,
    )  # fmt: skip
    on_notice(f"the Kafka broker exited (code {code}): rebuilding the pipeline on a new broker ...")
    details = True
    while True:
        await _quiesce(platform)
        loss = await _account_loss(platform, guard, code)
        guard.metrics.events_lost.inc(len(loss.lost))
        loss.log()
        on_notice(loss.headline())
        if details:  # once per loss
            details = False
            guard.metrics.restarts.inc()
            on_notice("also lost with the broker (see docs/operations.md, Broker restart):")
            for line in OTHER_LOSSES:
                on_notice(f"  - {line}")
        try:
            await _rebuild(platform)
            break
        except Exception:
            # What an interim broker acknowledged is lost with it too: the next round names it.
            log.exception("could not rebuild on a new broker; trying again in 5 s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5.0)
            if stop.is_set():
                return
            code = guard.broker.exited()
    message = (
        f"the pipeline runs again on a new broker (cluster {platform.cluster_id}), rebuilt in "
        f"{time.monotonic() - started:.1f} s"
    )
    log.warning("%s", message)
    on_notice(message)


async def _quiesce(platform: Platform) -> None:
    """Stop everything that used the lost broker, so that nothing of its life reaches the next one:
    ingest refuses (503) and fails what Kafka had not acknowledged, the worker processes are killed
    (their state is in the warehouse), the sinks write what they had read and stop."""
    await asyncio.to_thread(platform.producer.suspend, "the Kafka broker is being replaced")
    await asyncio.gather(*(asyncio.to_thread(child.kill) for child in (platform.identity, platform.segments)))
    await asyncio.gather(*(asyncio.to_thread(sink.stop, 0.0) for sink in platform.sinks))
    for sink in platform.sinks:
        if sink.is_alive():
            log.warning("the %s sink did not stop; rows it still writes may be reported as lost", sink.table)


async def _account_loss(platform: Platform, guard: _BrokerGuard, code: int | None) -> BrokerLoss:
    """The acknowledged events the warehouse does not hold: lost. Written to ``<data dir>/lost/``,
    and accepted again by ingest (a re-send is no duplicate)."""
    ids, forgotten = guard.acked.take(time.time())
    loss = BrokerLoss(datetime.now(UTC), code, platform.cluster_id, checked=len(ids), forgotten=forgotten)
    try:
        stored = await asyncio.to_thread(stored_message_ids, platform.warehouse, ids)
    except WarehouseError as exc:
        stored, loss.unchecked = set(), error_summary(exc)
    loss.lost = [message_id for message_id in ids if message_id not in stored]
    if platform.pipeline is not None:
        platform.pipeline.forget_message_ids(loss.lost)
    loss.write(platform.settings.data_dir)
    return loss


async def _rebuild(platform: Platform) -> None:
    """A new broker on the same port, rebuilt as ``build`` and ``serve`` start one: topics, a new
    cluster id (the sinks' positions start again), the identity restore and the republished
    profiles, new sinks, new worker processes (they restore their state from the warehouse)."""
    broker, settings, warehouse = platform.broker, platform.settings, platform.warehouse
    assert broker is not None
    await asyncio.to_thread(broker.restart)
    await asyncio.to_thread(
        ensure_platform_topics, broker.bootstrap, settings.topic_partitions, settings.topic_replication
    )
    platform.cluster_id = broker.cluster_id
    platform.producer.resume()  # ingest accepts again: new events wait on cdp.events for the worker
    restored = await asyncio.to_thread(_restore_identity, warehouse, settings, broker.cluster_id, log.info)
    platform.restored = restored
    platform.metrics.identity_restore.set(restored.seconds)
    sinks = identity_sinks(broker.bootstrap, broker.cluster_id, warehouse, platform.metrics.sink, settings)
    sinks += segment_sinks(broker.bootstrap, broker.cluster_id, warehouse, platform.metrics.sink, settings)
    platform.sinks[:] = sinks  # in place: readiness checks hold this list
    if platform.pipeline is not None and platform.pipeline.acked is not None:
        _note_written_events(sinks, platform.pipeline.acked)
    for sink in sinks:
        sink.start()
    await publish_restored(platform.producer, restored)
    restored.profiles.clear()
    for child in (platform.identity, platform.segments):
        await asyncio.to_thread(child.restart)


async def shutdown(platform: Platform, tasks: list[asyncio.Task[None]]) -> None:
    started = time.monotonic()

    def phase(name: str) -> None:
        log.info("shutdown: %s (%.2f s)", name, time.monotonic() - started)

    for name, server in platform.servers:
        if name == "ingest":
            server.should_exit = True
    await asyncio.gather(*(t for t in tasks if t.get_name() == "ingest"), return_exceptions=True)
    phase("ingest API stopped")
    # A rebuild on a new broker in progress finishes first (the supervisor ends within 1 s otherwise).
    await asyncio.gather(*(t for t in tasks if t.get_name() == "supervise"), return_exceptions=True)
    await asyncio.to_thread(platform.privacy.stop)
    platform.access.stop()
    await asyncio.to_thread(platform.audit.close)
    phase(f"admin audit written ({platform.audit.written} records)")
    code = await asyncio.to_thread(platform.identity.stop)
    phase(f"identity worker drained and stopped (exit {code})")
    code = await asyncio.to_thread(platform.segments.stop)
    phase(f"segment processor drained and stopped (exit {code})")
    unsent = await asyncio.to_thread(platform.producer.close)
    if unsent:
        log.error("%d accepted events could not be written to Kafka at shutdown", unsent)
    phase("producer flushed")
    await asyncio.gather(*(asyncio.to_thread(sink.stop) for sink in platform.sinks))
    phase("sinks drained and committed")
    for _name, server in platform.servers:
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    phase("HTTP servers stopped")
    if platform.analytics.running is not None:
        log.info("shutdown: waiting up to 10 s for customer value refresh %s", platform.analytics.running)
        await asyncio.to_thread(platform.analytics.join, 10.0)
    platform.warehouse.close()
    phase("warehouse closed")
    if platform.broker is not None:
        platform.broker.stop()
        phase("broker stopped")


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    # SIGHUP too: a closed terminal must stop the platform as cleanly as Ctrl-C does.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)


__all__ = [
    "BrokerError",
    "Platform",
    "StartupError",
    "build",
    "data_dir_lock",
    "install_stop_signals",
    "serve",
]
