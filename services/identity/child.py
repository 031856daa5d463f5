"""The identity worker of ``cdp up`` as a child process (``cdp run identity --drain-on-stop``).

Identity resolution costs about as much CPU per event as ingest. In one Python process the two
would share one core (the GIL) and the ingest API would wait on the identity stages' batches; as
a child process the worker has a core of its own. It talks to the parent's broker and to the
warehouse through the parent's ClickHouse endpoint (the embedded engine belongs to the parent),
dies with the parent, and its metrics are served on the parent's ``/metrics``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from services.core.kafka.broker import _die_with_parent, free_port
from services.core.settings import Settings

log = logging.getLogger("cdp")

_PASSED_SETTINGS = ("topic_partitions", "kafka_session_timeout_ms", "clickhouse_database", "log_level")


def child_environment(settings: Settings, bootstrap: str, warehouse_url: str) -> dict[str, str]:
    """The parent's settings that the worker needs, as ``CDP_*`` variables."""
    values = settings.model_dump(mode="json")
    env = {**os.environ, "CDP_KAFKA_BOOTSTRAP": bootstrap, "CDP_CLICKHOUSE_URL": warehouse_url}
    for name, value in values.items():
        if name.startswith("identity_") or name in _PASSED_SETTINGS:
            env[f"CDP_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


class IdentityProcess:
    def __init__(self, env: dict[str, str], log_path: Path, host: str = "127.0.0.1") -> None:
        self._env = env
        self._log_path = log_path
        self.metrics_url = f"http://{host}:{free_port(host)}/metrics"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        port = self.metrics_url.rsplit(":", 1)[1].split("/", 1)[0]
        command = [
            sys.executable, "-c", "from services.cli import main; main()",
            "run", "identity", "--metrics-port", port, "--drain-on-stop",
        ]  # fmt: skip
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self._log_path, "ab")  # noqa: SIM115 (closed in stop)
        self._process = subprocess.Popen(
            command, env=self._env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )  # fmt: skip

    def is_alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 90.0) -> int | None:
        """Ask the worker to process everything already on its inputs, then to stop."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("the identity worker did not stop within %.0f s; killing it", timeout)
                process.kill()
                process.wait(10)
        if self._log is not None:
            self._log.close()
        return process.returncode

    def serve_metrics(self, registry: CollectorRegistry, shared: Collector) -> None:
        """Serve the child's metrics on ``registry``; ``shared`` is a parent metric the child also
        reports (consumer lag): its samples are merged into one family."""
        registry.unregister(shared)
        registry.register(_ChildMetrics(self, shared))


class _ChildMetrics(Collector):
    """The child's metrics, on the parent's ``/metrics``."""

    def __init__(self, child: IdentityProcess, shared: Collector) -> None:
        self._child = child
        self._shared = shared

    def collect(self) -> Iterator[Metric]:
        merged = {family.name: family for family in self._shared.collect()}
        text = ""
        if self._child.is_alive():
            with contextlib.suppress(httpx.HTTPError):
                text = httpx.get(self._child.metrics_url, timeout=1.0).text
        for family in text_string_to_metric_families(text):
            if family.name.startswith(("python_", "process_")):
                continue  # the parent reports its own
            samples = [Sample(*sample) for sample in family.samples]
            if family.name in merged:
                merged[family.name].samples.extend(samples)
                continue
            metric = Metric(family.name, family.documentation, family.type, family.unit)
            metric.samples = samples
            yield metric
        yield from merged.values()
