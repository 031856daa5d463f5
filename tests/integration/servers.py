"""ASGI apps served for integration tests: the platform's own ``serve_in_thread``, yielding the URL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from services.core.warehouse.http_endpoint import serve_in_thread


@contextlib.contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1:<free port> in a thread; yields the base URL."""
    with serve_in_thread(app) as server:
        yield server.url
