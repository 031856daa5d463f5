"""The faust app of a platform worker (identity, segments), with shorter fetch waits.

faust-streaming hard-codes ``fetch_max_wait_ms=1500`` for its consumers.
A fetch that finds no new record waits up to that long on the broker before it answers, and on
Tansu a record that arrives meanwhile does not end the wait. Every faust stage between an event and
its segment transition could then add up to 1.5 s; with ``FETCH_MAX_WAIT_MS`` an idle partition
costs a few more fetch requests per second on the broker instead.
"""

from __future__ import annotations

import asyncio
import tempfile
import types
from pathlib import Path
from typing import Any

import aiokafka
import faust
import faust.transport.drivers.aiokafka as driver

FETCH_MAX_WAIT_MS = 20


class _ShortWaitConsumer(aiokafka.AIOKafkaConsumer):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["fetch_max_wait_ms"] = min(
            int(kwargs.get("fetch_max_wait_ms", FETCH_MAX_WAIT_MS)), FETCH_MAX_WAIT_MS
        )
        super().__init__(*args, **kwargs)


def shorten_fetch_wait() -> None:
    """Make faust's driver build its consumers with ``FETCH_MAX_WAIT_MS`` (idempotent)."""
    namespace = vars(driver)
    if getattr(namespace["aiokafka"], "AIOKafkaConsumer", None) is _ShortWaitConsumer:
        return
    shim = types.ModuleType("aiokafka")
    shim.__dict__.update(vars(aiokafka))
    shim.AIOKafkaConsumer = _ShortWaitConsumer  # type: ignore[attr-defined]
    namespace["aiokafka"] = shim


def worker_app(app_id: str, bootstrap: str, partitions: int, session_timeout: float) -> faust.App:
    """A faust app for raw-bytes agents: in-memory tables, no web server, topics created by the
    platform, new groups starting at the earliest offset, on the running event loop.

    faust keeps nothing on disk with the memory store but still creates its data directory; it goes
    under the system's temporary directory instead of the working directory.
    """
    shorten_fetch_wait()
    datadir = Path(tempfile.gettempdir()) / "cdp-faust" / f"{app_id}-data"
    datadir.parent.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    return faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=datadir,
        web_enabled=False,
        broker_session_timeout=session_timeout,
        topic_partitions=partitions,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
        loop=asyncio.get_running_loop(),
    )
