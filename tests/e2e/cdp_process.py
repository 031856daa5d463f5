"""The real ``cdp up`` as a subprocess, as a user would run it, on free ports and a temporary data dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import clickhouse_connect
import httpx

CDP = str(Path(sys.executable).with_name("cdp"))
SHOPIFY_SECRET = "e2e-shopify-secret"
ADMIN_TOKEN = "e2e-admin-token"


@dataclass
class CdpProcess:
    data_dir: Path
    http_port: int
    clickhouse_port: int
    broker_port: int
    write_key: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CDP_DATA_DIR": str(self.data_dir),
            "CDP_HTTP_PORT": str(self.http_port),
            "CDP_CLICKHOUSE_HTTP_PORT": str(self.clickhouse_port),
            "CDP_BROKER_PORT": str(self.broker_port),
            "CDP_WRITE_KEY": self.write_key,
            "CDP_SINK_FLUSH_SECONDS": "0.2",
            "CDP_SHOPIFY_WEBHOOK_SECRET": SHOPIFY_SECRET,
            "CDP_ADMIN_TOKEN": ADMIN_TOKEN,
            **self.extra_env,
        }

    def start(self, timeout: float = 90.0) -> None:
        self.log_path = self.data_dir.parent / f"cdp-up-{self.http_port}-{time.monotonic_ns()}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([CDP, "up"], env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"cdp up exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"cdp up was not ready within {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self.process = None
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def clickhouse(self, **kwargs: Any) -> Any:
        return clickhouse_connect.get_client(
            host="127.0.0.1", port=self.clickhouse_port, username="bi", **kwargs
        )

    def post(self, path: str, body: Any = None, *, key: str | None = None, **kwargs: Any) -> httpx.Response:
        auth = (self.write_key if key is None else key, "")
        if body is not None:
            kwargs["json"] = body
        return httpx.post(f"{self.url}{path}", auth=auth, timeout=10, **kwargs)

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def run_identity_worker(self, metrics_port: int = 0) -> subprocess.Popen[bytes]:
        """A second identity worker process (``cdp run identity``) next to this ``cdp up``."""
        assert self.log_path is not None
        with open(self.log_path.with_suffix(".identity.log"), "ab") as log:
            command = [CDP, "run", "identity", "--metrics-port", str(metrics_port)]
            return subprocess.Popen(command, env=self.env(), stdout=log, stderr=subprocess.STDOUT)


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value: {last!r})")
