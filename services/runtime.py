"""The one place that wires the platform together: ``cdp up`` (single node) runs it all in one process.

Start order: data dir lock -> broker (Tansu unless CDP_KAFKA_BOOTSTRAP) -> topics -> warehouse and
migrations -> identity restore (replay of the stored decisions) -> ClickHouse HTTP endpoint
(embedded mode) -> producer, ingest and admin API -> sinks -> restored profiles republished ->
identity worker. Stop order is the reverse: the ingest API stops, the identity worker processes
everything already accepted, the sinks write it, and only then does the broker, which keeps nothing
on disk, go away.
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
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import uvicorn
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from schemas.topics import IDENTITY_TOPICS, PLATFORM_TOPICS, SEGMENT_TOPICS
from services.access.audit import AuditLog
from services.access.control import AccessControl
from services.admin.auth import AdminTokens
from services.admin.corrections import kafka_submit
from services.admin.profiles import ProfileReader
from services.admin.routes import AdminComponents, check_mounted, platform_admin_routes
from services.analytics.domain.value import OptionError, ValueOptions
from services.analytics.refresh import RefreshRunner, interrupt_running
from services.core.kafka.admin import cluster_id, ensure_topics
from services.core.kafka.broker import TansuBroker, port_is_free
from services.core.kafka.exceptions import BrokerError
from services.core.kafka.producer import AsyncProducer
from services.core.metrics import AnalyticsMetrics, PlatformMetrics
from services.core.secrets import PlatformSecrets, load_or_create
from services.core.settings import Settings
from services.core.topic_sink import TopicSink
from services.core.warehouse.chdb_adapter import ChdbWarehouse
from services.core.warehouse.factory import open_warehouse
from services.core.warehouse.http_endpoint import create_clickhouse_http_app
from services.core.warehouse.migrations import apply_migrations
from services.core.warehouse.port import Warehouse
from services.core.warehouse.retention import apply_retention
from services.identity.child import WorkerProcess, child_environment, serve_child_metrics
from services.identity.config import identifier_rules
from services.identity.wiring import (
    RestoredIdentity,
    identity_sinks,
    publish_restored,
    read_epoch,
    record_epoch,
    restore_identity,
)
from services.ingest.api import Check, IngestAPI, create_ingest_app
from services.ingest.auth import WriteKeys
from services.ingest.dedup import MessageIdWindow
from services.ingest.pipeline import IngestPipeline
from services.ingest.webhook_routes import WebhookConfig
from services.privacy.consent_api import WithConsentRoutes
from services.privacy.suppression import SuppressionList
from services.privacy.wiring import PrivacyService, build_privacy
from services.segments.library import library_definitions
from services.segments.store import apply_definitions, library_applied
from services.segments.wiring import segment_sinks

log = logging.getLogger("cdp")


class StartupError(Exception):
    """The platform cannot start; the message says what to do."""


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the platform stops all servers together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[IO[str]]:
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / ".lock", "w")  # noqa: SIM115
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StartupError(
            f"another 'cdp up' already uses {data_dir}: stop it first, or give this one its own "
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
    preloaded_ids: int = 0
    urls: dict[str, str] = field(default_factory=dict)


def _value_options(settings: Settings) -> Callable[[date], ValueOptions]:
    def options(until: date) -> ValueOptions:
        return ValueOptions(
            until, settings.analytics_unit, settings.analytics_horizon_days, settings.analytics_margin,
            settings.analytics_abc_a, settings.analytics_abc_b,
        )  # fmt: skip

    return options


def _server(app: Any, host: str, port: int) -> _QuietServer:
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, lifespan="off", access_log=False,
        loop="none", http="httptools", timeout_graceful_shutdown=5,
    )  # fmt: skip
    return _QuietServer(config)


def _preload_dedup(warehouse: Warehouse, window: MessageIdWindow, settings: Settings) -> int:
    if settings.dedup_window_seconds <= 0:
        return 0
    rows = warehouse.query(
        f"SELECT message_id, toUnixTimestamp64Milli(received_at) / 1000 FROM {warehouse.database}.events "
        "WHERE received_at > now64(3) - toIntervalSecond({window:UInt32}) "
        "ORDER BY received_at DESC LIMIT {limit:UInt32}",
        {"window": settings.dedup_window_seconds, "limit": settings.dedup_max_entries},
    )
    return window.preload(((str(mid), float(ts)) for mid, ts in rows), time.time())


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
    applied = apply_migrations(warehouse)
    if applied:
        on_step(f"applied migrations: {', '.join(applied)}")
    apply_retention(warehouse, settings.events_ttl_days)
    return warehouse


def _ingest_api(
    settings: Settings, secrets: PlatformSecrets, producer: AsyncProducer, warehouse: Warehouse,
    metrics: PlatformMetrics, registry: CollectorRegistry, readiness: dict[str, Callable[[], bool]],
    suppressions: SuppressionList,
) -> tuple[IngestAPI, int]:  # fmt: skip
    window = MessageIdWindow(settings.dedup_window_seconds, settings.dedup_max_entries)
    preloaded = _preload_dedup(warehouse, window, settings)
    skew = timedelta(seconds=settings.max_future_skew_seconds)
    pipeline = IngestPipeline(
        producer, metrics.ingest, window, max_future_skew=skew, suppressions=suppressions,
        consent_purposes=settings.consent_purposes,
    )  # fmt: skip

    def check(probe: Callable[[], bool]) -> Check:
        async def run() -> bool:
            return await asyncio.to_thread(probe)

        return run

    api = IngestAPI(
        pipeline, metrics.ingest, WriteKeys([secrets.write_key]),
        max_event_bytes=settings.max_event_bytes, max_batch_bytes=settings.max_batch_bytes,
        webhooks=WebhookConfig.from_settings(settings), registry=registry,
        readiness={name: check(probe) for name, probe in readiness.items()},
    )  # fmt: skip
    return api, preloaded


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
    password = quote(settings.clickhouse_writer_password.get_secret_value(), safe="")
    user = quote(settings.clickhouse_writer_user, safe="")
    return f"http://{user}:{password}@{settings.clickhouse_http_host}:{settings.clickhouse_http_port}"


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
        ensure_topics(
            bootstrap,
            PLATFORM_TOPICS + IDENTITY_TOPICS + SEGMENT_TOPICS,
            settings.topic_partitions,
            settings.topic_replication,
        )
        cluster = broker.cluster_id if broker else cluster_id(bootstrap)
        warehouse = _open_warehouse(settings, on_step)
        restored = _restore_identity(warehouse, settings, cluster, on_step)
        metrics.identity_restore.set(restored.seconds)
        producer = AsyncProducer(bootstrap)
        if settings.segments_library:
            _apply_library(warehouse, on_step)
        sinks = identity_sinks(bootstrap, cluster, warehouse, metrics.sink, settings)
        sinks += segment_sinks(bootstrap, cluster, warehouse, metrics.sink, settings)
        env = child_environment(settings, bootstrap, _child_warehouse_url(settings, warehouse))
        logs = settings.data_dir / "logs"
        worker = WorkerProcess(env, logs / "identity.log", settings.http_host, service="identity")
        segments = WorkerProcess(env, logs / "segments.log", settings.http_host, service="segments")
        serve_child_metrics(registry, metrics.sink.consumer_lag, [worker, segments])
        running = {
            "broker": broker.is_running if broker else lambda: True,
            "warehouse": warehouse.ping,
            "events_sink": lambda: all(sink.is_alive() for sink in sinks),
            "identity": worker.is_alive,
            "segments": segments.is_alive,
        }
        privacy = build_privacy(settings, warehouse, bootstrap, registry)
        if privacy.interrupted:
            on_step(f"marked {len(privacy.interrupted)} interrupted erasure(s) as failed: run them again")
        api, preloaded = _ingest_api(
            settings, secrets, producer, warehouse, metrics, registry, running, privacy.suppressions
        )
        for component in ("broker", "events_sink", "identity", "segments"):
            metrics.up.labels(component).set_function(_as_gauge(running[component]))
        ingest_app = create_ingest_app(api)
        audit = AuditLog(warehouse)
        tokens = AdminTokens.single_admin(secrets.admin_token, audit=audit)
        access = AccessControl(
            warehouse, tokens, api.write_keys, reload_seconds=settings.access_reload_seconds
        )
        access.reload()
        reader = ProfileReader(warehouse, rules=identifier_rules(settings))
        interrupted = interrupt_running(warehouse)
        if interrupted:
            on_step(f"marked {len(interrupted)} interrupted customer value refresh(es) as failed")
        try:
            _value_options(settings)(date.today())
        except OptionError as exc:
            raise StartupError(f"customer analytics settings: {exc} (CDP_ANALYTICS_ABC_A, _ABC_B)") from None
        analytics = RefreshRunner(warehouse, _value_options(settings), AnalyticsMetrics.create(registry))
        # Every admin route comes from platform_admin_routes: the route enumeration test covers them.
        components = AdminComponents(
            tokens, warehouse, reader, kafka_submit(producer), analytics, access,
            WithConsentRoutes(privacy, api.pipeline, reader, warehouse, tuple(settings.consent_purposes)),
            consent_purposes=tuple(settings.consent_purposes),
        )  # fmt: skip
        admin_api = platform_admin_routes(components)
        ingest_app.router.routes.extend(admin_api)
        check_mounted(ingest_app.router.routes, admin_api)
        servers = [("ingest", _server(ingest_app, settings.http_host, settings.http_port))]
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
        producer=producer, sinks=sinks, identity=worker, segments=segments, restored=restored,
        metrics=metrics, analytics=analytics, privacy=privacy, access=access, audit=audit,
        servers=servers, registry=registry, broker=broker,
        preloaded_ids=preloaded, urls=urls,
    )  # fmt: skip


async def serve(platform: Platform, stop: asyncio.Event, on_ready: Callable[[], None] = lambda: None) -> None:
    """Serve until ``stop`` is set, then shut everything down in order."""
    schedule_stop = threading.Event()
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
        tasks.append(
            asyncio.create_task(_supervise([platform.identity, platform.segments], stop), name="supervise")
        )
        if platform.settings.analytics_refresh_seconds > 0:
            platform.analytics.schedule(platform.settings.analytics_refresh_seconds, schedule_stop)
        on_ready()
    await stop.wait()
    schedule_stop.set()
    await shutdown(platform, tasks)


async def _supervise(children: list[WorkerProcess], stop: asyncio.Event) -> None:
    """Restart a worker that died (a crash, or kill -9): it resumes from its durable state."""
    while not stop.is_set():
        for child in children:
            if child.crashed():
                await asyncio.to_thread(child.restart)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def _apply_library(warehouse: Warehouse, on_step: Callable[[str], None]) -> None:
    """The built-in segments, once: when the platform starts with no segment ever defined."""
    if library_applied(warehouse):
        return
    applied = apply_definitions(warehouse, library_definitions(), applied_by="cdp up (built-in library)")
    on_step(f"applied the built-in segment library ({len(applied)} segments)")


async def shutdown(platform: Platform, tasks: list[asyncio.Task[None]]) -> None:
    started = time.monotonic()

    def phase(name: str) -> None:
        log.info("shutdown: %s (%.2f s)", name, time.monotonic() - started)

    for name, server in platform.servers:
        if name == "ingest":
            server.should_exit = True
    await asyncio.gather(*(t for t in tasks if t.get_name() == "ingest"), return_exceptions=True)
    phase("ingest API stopped")
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
