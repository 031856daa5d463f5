"""``/metrics``, ``/healthz`` and ``/readyz`` of a worker process (``cdp run identity|segments``).

The server runs in a thread of its own, so a scrape or a probe is answered while the worker's event
loop is busy with a batch. Liveness is the worker loop's heartbeat (a loop stuck for a minute is
not alive); readiness is a set of named checks, each answered with its result.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping

from confluent_kafka import KafkaException
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.core.kafka.admin import admin_client
from services.core.service_links import ServiceStartError
from services.core.warehouse.http_endpoint import RunningServer, serve_in_thread

STALE_HEARTBEAT_SECONDS = 60.0


class Heartbeat:
    """Beaten by the worker's event loop; ``alive`` while the last beat is recent."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def beat(self) -> None:
        self._last = time.monotonic()

    def alive(self) -> bool:
        return time.monotonic() - self._last < STALE_HEARTBEAT_SECONDS

    async def run(self, interval: float = 1.0) -> None:
        while True:
            self.beat()
            await asyncio.sleep(interval)


class KafkaProbe:
    """Whether the Kafka cluster answers a metadata request (one admin client, reused)."""

    def __init__(self, bootstrap: str, timeout: float = 2.0) -> None:
        self._admin = admin_client(bootstrap)
        self._timeout = timeout
        self._lock = threading.Lock()

    def reachable(self) -> bool:
        with self._lock:
            try:
                self._admin.list_topics(timeout=self._timeout)
            except KafkaException:
                return False
            return True


def health_app(
    registry: CollectorRegistry, alive: Callable[[], bool], readiness: Mapping[str, Callable[[], bool]]
) -> Starlette:
    async def metrics(_request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_request: Request) -> Response:
        ok = alive()
        return JSONResponse({"status": "ok" if ok else "stuck"}, status_code=200 if ok else 503)

    async def readyz(_request: Request) -> Response:
        checks = {name: await asyncio.to_thread(check) for name, check in readiness.items()}
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    routes = [
        Route("/metrics", metrics, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    return Starlette(routes=routes)


def serve_health(
    host: str,
    port: int,
    registry: CollectorRegistry,
    alive: Callable[[], bool],
    readiness: Mapping[str, Callable[[], bool]],
) -> RunningServer:
    """Serve ``health_app`` on ``host:port`` in a daemon thread (stop it with ``stop``)."""
    try:
        return serve_in_thread(health_app(registry, alive, readiness), host, port)
    except OSError as exc:
        raise ServiceStartError(
            f"cannot serve /metrics on {host}:{port} ({exc}): choose another port with "
            "--metrics-port / CDP_METRICS_PORT"
        ) from None
