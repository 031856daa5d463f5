"""The platform as separate processes, as it runs in containers: ``cdp run broker`` and ``cdp run
warehouse`` (the local stand-ins for Kafka and a ClickHouse server), then ``cdp run ingest``, any
number of ``cdp run identity`` replicas and ``cdp run segments``, each a subprocess configured only
by its environment (distributed mode: CDP_KAFKA_BOOTSTRAP, CDP_CLICKHOUSE_URL and the shared
secrets). Tests start the topology with ``SplitStack.start()`` and stop it with ``stop()``.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import clickhouse_connect
import httpx

from services.core.kafka.admin import cluster_id
from services.core.kafka.broker import free_port
from tests.e2e.cdp_process import CDP


@dataclass
class ServiceProcess:
    """One ``cdp run <service>`` subprocess with its own log file."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    health_url: str | None = None  # where /healthz and /readyz are served, if anywhere
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [CDP, "run", *self.args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send ``sig`` and wait for the exit code (killed after ``timeout``: the code is then -9)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return int(self.process.returncode)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def probe(self, path: str) -> int:
        """HTTP status of ``/healthz`` or ``/readyz`` (0: no answer)."""
        assert self.health_url is not None, f"{self.name} serves no health endpoints"
        try:
            return httpx.get(f"{self.health_url}{path}", timeout=5).status_code
        except httpx.HTTPError:
            return 0


@dataclass
class SplitStack:
    """Broker, warehouse, ingest, ``identity_replicas`` identity workers and one segment processor."""

    root: Path
    identity_replicas: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)
    broker_port: int = field(default_factory=free_port)
    clickhouse_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    write_key: str = field(default_factory=lambda: f"wk_{secrets.token_urlsafe(12)}")
    admin_token: str = field(default_factory=lambda: f"adm_{secrets.token_urlsafe(16)}")
    privacy_hash_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    writer_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    @property
    def clickhouse_url(self) -> str:
        return f"http://cdp:{self.writer_password}@127.0.0.1:{self.clickhouse_port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _base_env(self, name: str) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("CDP_")}
        data_dir = self.root / name
        data_dir.mkdir(parents=True, exist_ok=True)
        return {
            **inherited, "CDP_DATA_DIR": str(data_dir), "CDP_SINK_FLUSH_SECONDS": "0.2",
            "CDP_ANALYTICS_REFRESH_SECONDS": "0", **self.extra_env,
        }  # fmt: skip

    def service_env(self, name: str, **settings: str) -> dict[str, str]:
        """What a service container gets: where Kafka and ClickHouse are, and the shared secrets."""
        return {
            **self._base_env(name), "CDP_KAFKA_BOOTSTRAP": self.bootstrap, "CDP_CLICKHOUSE_URL": self.clickhouse_url,
            "CDP_WRITE_KEY": self.write_key, "CDP_ADMIN_TOKEN": self.admin_token,
            "CDP_PRIVACY_HASH_KEY": self.privacy_hash_key, **settings,
        }  # fmt: skip

    def _add(
        self, name: str, args: list[str], env: dict[str, str], health_port: int | None = None
    ) -> ServiceProcess:
        health = f"http://127.0.0.1:{health_port}" if health_port else None
        service = ServiceProcess(name, args, env, self.root / f"{name}.log", health)
        self.services[name] = service
        service.start()
        return service

    def start_worker(self, service: str, name: str, **settings: str) -> ServiceProcess:
        """One more ``cdp run identity|segments`` replica named ``name``."""
        port = free_port()
        env = self.service_env(name, CDP_METRICS_PORT=str(port), **settings)
        return self._add(name, [service], env, port)

    def start(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        broker_env = {**self._base_env("broker"), "CDP_BROKER_PORT": str(self.broker_port)}
        self._add("broker", ["broker"], broker_env)
        warehouse_env = {
            **self._base_env("warehouse"), "CDP_CLICKHOUSE_HTTP_PORT": str(self.clickhouse_port),
            "CDP_CLICKHOUSE_WRITER_PASSWORD": self.writer_password,
        }  # fmt: skip
        self._add("warehouse", ["warehouse"], warehouse_env)
        self._wait(deadline, "broker", self._broker_answers)
        self._wait(deadline, "warehouse", self._warehouse_answers)
        ingest_env = self.service_env("ingest", CDP_HTTP_PORT=str(self.http_port))
        self._add("ingest", ["ingest"], ingest_env, self.http_port)
        for replica in range(self.identity_replicas):
            self.start_worker("identity", f"identity-{replica}")
        self.start_worker("segments", "segments", CDP_SEGMENTS_WORKER_ID="segments-0")
        for name, service in self.services.items():
            if service.health_url is not None:
                self._wait(deadline, name, lambda s=service: s.probe("/readyz") == 200)  # type: ignore[misc]

    def _wait(self, deadline: float, name: str, ready: Any) -> None:
        service = self.services[name]
        while time.monotonic() < deadline:
            if not service.alive():
                raise AssertionError(f"cdp run {service.args[0]} ({name}) exited:\n{self.logs()}")
            if ready():
                return
            time.sleep(0.2)
        raise AssertionError(f"{name} was not ready in time:\n{self.logs()}")

    def _broker_answers(self) -> bool:
        try:
            cluster_id(self.bootstrap, timeout=1.0)
        except Exception:
            return False
        return True

    def _warehouse_answers(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.clickhouse_port}/ping", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> dict[str, int]:
        """SIGTERM every running service, the workers before ingest, the stand-ins last; the exit codes."""
        order = [n for n in self.services if n not in ("ingest", "warehouse", "broker")]
        codes = {}
        for name in [*order, "ingest", "warehouse", "broker"]:
            service = self.services.get(name)
            if service is not None and service.process is not None:
                codes[name] = service.stop()
        return codes

    def logs(self, tail: int = 40) -> str:
        parts = []
        for name, service in self.services.items():
            lines = service.log().splitlines()[-tail:]
            parts.append(f"--- {name} ---\n" + "\n".join(lines))
        return "\n".join(parts)

    # --- clients ---------------------------------------------------------------------------------
    def clickhouse(self, **kwargs: Any) -> Any:
        return clickhouse_connect.get_client(
            host="127.0.0.1", port=self.clickhouse_port, username="bi", **kwargs
        )

    def post(self, path: str, body: Any) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", auth=(self.write_key, ""), json=body, timeout=30)

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)
