"""uvicorn servers that a process stops itself, in its own order (not on uvicorn's signal handling)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal

import uvicorn


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the process stops its servers when it chooses."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def quiet_server(app: Any, host: str, port: int, lifespan: Literal["on", "off"] = "off") -> QuietServer:
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, lifespan=lifespan, access_log=False,
        loop="none", http="httptools", timeout_graceful_shutdown=5,
    )  # fmt: skip
    return QuietServer(config)
