"""Shorter fetch waits for faust's consumers (faust-streaming hard-codes ``fetch_max_wait_ms=1500``).

A fetch that finds no new record waits up to that long on the broker before it answers, and on
Tansu a record that arrives meanwhile does not end the wait. Every faust stage between an event and
its segment transition could then add up to 1.5 s; with ``FETCH_MAX_WAIT_MS`` an idle partition
costs a few more fetch requests per second on the broker instead.
"""

from __future__ import annotations

import types
from typing import Any

import aiokafka
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
