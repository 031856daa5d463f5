"""The workers of ``cdp up`` as child processes (``cdp run identity|segments --drain-on-stop
--no-sinks``: ``cdp up`` runs the sinks itself, next to the embedded warehouse).

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
import time
from collections.abc import Iterator, Sequence
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

_PASSED_SETTINGS = (
    "topic_partitions", "kafka_session_timeout_ms", "clickhouse_database", "log_level", "consent_purposes",
    "access_reload_seconds",
)  # fmt: skip
_PASSED_SECRETS = ("privacy_hash_key",)


def child_environment(settings: Settings, bootstrap: str, warehouse_url: str) -> dict[str, str]:
    """The parent's settings that the worker needs, as ``CDP_*`` variables."""
    values = settings.model_dump(mode="json")
    env = {**os.environ, "CDP_KAFKA_BOOTSTRAP": bootstrap, "CDP_CLICKHOUSE_URL": warehouse_url}
    for name, value in values.items():
        if name.startswith(("identity_", "segments_")) or name in _PASSED_SETTINGS:
            env[f"CDP_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    for name in _PASSED_SECRETS:
        secret = getattr(settings, name)
        if secret is not None and secret.get_secret_value():
            env[f"CDP_{name.upper()}"] = secret.get_secret_value()
    return env


class WorkerProcess:
    """One ``cdp run <service>`` child; ``restart`` brings a crashed one back."""

    def __init__(
        self, env: dict[str, str], log_path: Path, host: str = "127.0.0.1", service: str = "identity"
    ) -> None:
        self.service = service
        self.restarts = 0
        self._stopping = False
        self._started_at = 0.0
        self._restart_at = 0.0
        self._quick_failures = 0
        self._env = env
        self._log_path = log_path
        self.metrics_url = f"http://{host}:{free_port(host)}/metrics"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        port = self.metrics_url.rsplit(":", 1)[1].split("/", 1)[0]
        command = [
            sys.executable, "-c", "from services.cli import main; main()",
            "run", self.service, "--metrics-port", port, "--drain-on-stop", "--no-sinks",
        ]  # fmt: skip
        self._started_at = time.monotonic()
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self._log_path, "ab")  # noqa: SIM115 (closed in stop)
        self._process = subprocess.Popen(
            command, env=self._env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )  # fmt: skip

    def is_alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def crashed(self) -> bool:
        """It was started, is not being stopped, has exited, and its restart back-off has passed:
        one that keeps dying soon after its start waits longer each time (1 s, 2 s, 4 s ... 30 s)."""
        process = self._process
        if process is None or self._stopping or process.poll() is None:
            return False
        if self._restart_at == 0.0:
            quick = time.monotonic() - self._started_at < 30
            self._quick_failures = self._quick_failures + 1 if quick else 0
            self._restart_at = time.monotonic() + min(30.0, 2.0 ** max(0, self._quick_failures - 1))
            log.warning(
                "the %s worker exited (code %s); restarting it (log: %s)",
                self.service, process.returncode, self._log_path,
            )  # fmt: skip
        return time.monotonic() >= self._restart_at

    def kill(self) -> None:
        """Stop at once, without draining: its inputs are gone (the single-node broker was lost).
        ``restart`` starts it again."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)

    def restart(self) -> None:
        if self._log is not None:
            self._log.close()
        self.restarts += 1
        self._restart_at = 0.0
        self.start()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def stop(self, timeout: float = 90.0) -> int | None:
        """Ask the worker to process everything already on its inputs, then to stop."""
        process = self._process
        self._stopping = True
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("the %s worker did not stop within %.0f s; killing it", self.service, timeout)
                process.kill()
                process.wait(10)
        if self._log is not None:
            self._log.close()
        return process.returncode


def serve_child_metrics(
    registry: CollectorRegistry, shared: Sequence[Collector], children: list[WorkerProcess]
) -> None:
    """Serve the children's metrics on ``registry``; ``shared`` are parent metrics the children also
    report (consumer lag, dead letters): their samples are merged into one family each, and a series
    both report (the same labels) is summed."""
    for collector in shared:
        registry.unregister(collector)
    registry.register(_ChildMetrics(children, shared))


class _ChildMetrics(Collector):
    """The children's metrics, on the parent's ``/metrics``."""

    def __init__(self, children: list[WorkerProcess], shared: Sequence[Collector]) -> None:
        self._children = children
        self._shared = shared

    def collect(self) -> Iterator[Metric]:
        merged = {family.name: family for collector in self._shared for family in collector.collect()}
        families: list[Metric] = []
        for child in self._children:
            if child.is_alive():
                with contextlib.suppress(httpx.HTTPError):
                    families.extend(
                        text_string_to_metric_families(httpx.get(child.metrics_url, timeout=3.0).text)
                    )
        for family in families:
            if family.name.startswith(("python_", "process_")):
                continue  # the parent reports its own
            samples = [Sample(*sample) for sample in family.samples]
            if family.name in merged:
                _add_samples(merged[family.name], samples)
                continue
            metric = Metric(family.name, family.documentation, family.type, family.unit)
            metric.samples = samples
            yield metric
        yield from merged.values()


def _add_samples(family: Metric, samples: list[Sample]) -> None:
    """Add ``samples`` to ``family``; a series it has already (same name and labels) is summed."""

    def series(sample: Sample) -> tuple[str, tuple[tuple[str, str], ...]]:
        return sample.name, tuple(sorted(sample.labels.items()))

    index = {series(sample): i for i, sample in enumerate(family.samples)}
    for sample in samples:
        at = index.setdefault(series(sample), len(family.samples))
        if at == len(family.samples):
            family.samples.append(sample)
        else:
            family.samples[at] = family.samples[at]._replace(value=family.samples[at].value + sample.value)
