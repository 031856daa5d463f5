"""Read records back from the real broker in tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from confluent_kafka import Consumer


def read_topic(
    bootstrap: str,
    topic: str,
    matches: Callable[[dict[str, Any]], bool],
    minimum: int,
    timeout: float = 30.0,
) -> list[tuple[bytes | None, int, dict[str, Any]]]:
    """(key, partition, value) of the records matching ``matches``, once at least ``minimum`` are there."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4()}", "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000, "enable.auto.commit": False,
    })  # fmt: skip
    consumer.subscribe([topic])
    found: list[tuple[bytes | None, int, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(found) < minimum:
            for message in consumer.consume(1000, 0.5):
                if message.error() is not None:
                    continue
                value = orjson.loads(message.value())
                if matches(value):
                    found.append((message.key(), message.partition(), value))
    finally:
        consumer.close()
    if len(found) < minimum:
        raise AssertionError(
            f"found {len(found)} of {minimum} expected records on {topic} within {timeout} s"
        )
    return found
