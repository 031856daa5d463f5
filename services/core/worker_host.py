"""What runs around a worker in ``cdp run identity|segments``: its topic sinks, the heartbeat of
its event loop and the ``/metrics``, ``/healthz``, ``/readyz`` server on CDP_METRICS_PORT."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge

from services.core.health import Heartbeat, KafkaProbe, serve_health
from services.core.metrics import SinkMetrics
from services.core.service_links import warehouse_url
from services.core.settings import Settings
from services.core.topic_sink import TopicSink
from services.core.warehouse.connect_adapter import ConnectWarehouse
from services.core.warehouse.http_endpoint import RunningServer
from services.core.warehouse.port import Warehouse

SCHEMA_WAIT_SECONDS = 60.0
"""How long a worker waits at start for ``cdp run ingest`` (or ``warehouse``) to apply the migrations."""


SinkFactory = Callable[[str, str, Warehouse, SinkMetrics, Settings], list[TopicSink]]
"""(bootstrap, cluster, warehouse, metrics, settings) -> the topic sinks of a worker."""


class WorkerHost:
    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        warehouse: Warehouse,
        registry: CollectorRegistry,
        sinks: list[TopicSink],
        on_step: Callable[[str], None],
        sink_warehouse: Warehouse | None = None,
    ) -> None:
        self._settings = settings
        self._bootstrap = bootstrap
        self._warehouse = warehouse
        self._registry = registry
        self.sinks = sinks
        self._on_step = on_step
        self._heartbeat = Heartbeat()
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._server: RunningServer | None = None
        self._worker_running = False
        self._sink_warehouse = sink_warehouse

    @classmethod
    def for_worker(
        cls, settings: Settings, bootstrap: str, cluster: str, warehouse: Warehouse,
        registry: CollectorRegistry, consumer_lag: Gauge, sink_factory: SinkFactory | None,
        on_step: Callable[[str], None],
    ) -> WorkerHost:  # fmt: skip
        """The host of a worker; with ``sink_factory``, also its topic sinks on a warehouse connection
        of their own (closed by ``close``), reporting lag in the worker's ``consumer_lag`` family."""
        if sink_factory is None:
            return cls(settings, bootstrap, warehouse, registry, [], on_step)
        sink_warehouse = ConnectWarehouse(warehouse_url(settings), settings.clickhouse_database)
        metrics = SinkMetrics.create(registry, consumer_lag=consumer_lag)
        sinks = sink_factory(bootstrap, cluster, sink_warehouse, metrics, settings)
        return cls(settings, bootstrap, warehouse, registry, sinks, on_step, sink_warehouse)

    def close(self) -> None:
        """Close the sinks' warehouse connection (after ``stop``, or when the worker never started)."""
        if self._sink_warehouse is not None:
            self._sink_warehouse.close()
            self._sink_warehouse = None

    def start(self) -> None:
        """Serve health and metrics (when CDP_METRICS_PORT / --metrics-port is set) and start the sinks."""
        self._heartbeat_task = asyncio.create_task(self._heartbeat.run(), name="heartbeat")
        port, host = self._settings.metrics_port, self._settings.http_host
        if port:
            kafka = KafkaProbe(self._bootstrap)
            readiness: dict[str, Callable[[], bool]] = {
                "worker": lambda: self._worker_running,
                "kafka": kafka.reachable,
                "warehouse": self._warehouse.ping,
            }
            if self.sinks:
                readiness["sinks"] = lambda: all(sink.is_alive() for sink in self.sinks)
            self._server = serve_health(host, port, self._registry, self._alive, readiness)
            self._on_step(f"metrics on http://{host}:{port}/metrics (health: /healthz, /readyz)")
        for sink in self.sinks:
            sink.start()
        if self.sinks:
            self._on_step(f"{len(self.sinks)} topic sinks writing to the warehouse")

    def _alive(self) -> bool:
        """Liveness: the event loop beats, and no sink thread has ended (a sink that stopped on an
        error never resumes in this process: the orchestrator must restart it)."""
        sink_ended = self._worker_running and not all(sink.is_alive() for sink in self.sinks)
        return self._heartbeat.alive() and not sink_ended

    def worker_started(self) -> None:
        self._worker_running = True

    def worker_stopping(self) -> None:
        self._worker_running = False

    async def stop(self) -> None:
        """Drain the sinks (what the worker wrote before its stop reaches the warehouse), stop serving."""
        self._worker_running = False
        await asyncio.gather(*(asyncio.to_thread(sink.stop) for sink in self.sinks))
        if self.sinks:
            self._on_step("sinks drained and committed")
        if self._server is not None:
            await asyncio.to_thread(self._server.stop)
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
