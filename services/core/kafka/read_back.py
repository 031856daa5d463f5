"""Reading a topic back into memory at a restart or a partition handoff, until it stays quiet.

End offsets cannot be trusted on every broker (Tansu reports the start of the last batch), so a
read ends when nothing new arrived for ``QUIET_SECONDS``. Nobody else writes the partitions being
read while they are being assigned, so quiet is what proves the end.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition

from services.core.kafka.producer import KAFKA_LOG

log = logging.getLogger(__name__)

QUIET_SECONDS = 1.0


def read_records(
    bootstrap: str,
    starts: dict[tuple[str, int], int],
    *,
    group: str,
    with_offsets: bool = False,
    with_keys: bool = False,
) -> list[dict[str, Any]]:
    """The JSON records of the given topic partitions from the given offsets, read until they stay
    quiet (end offsets are only a lower bound on some brokers). ``with_offsets``: each as
    ``{partition, offset, value}``. ``with_keys``: each as ``{key, partition, offset, value}``,
    tombstones included (``value`` None, ``key`` the text key). A value that is no JSON object is left out
    (and counted in a warning): something other than the platform wrote it."""
    records: list[dict[str, Any]] = []
    if not starts:
        return records
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
        "isolation.level": "read_committed", "logger": KAFKA_LOG,
    })  # fmt: skip
    unreadable = 0
    try:
        consumer.assign([TopicPartition(topic, p, offset) for (topic, p), offset in starts.items()])
        quiet_since = time.monotonic()
        deadline = quiet_since + 300
        while time.monotonic() - quiet_since < QUIET_SECONDS:
            if time.monotonic() > deadline:
                raise TimeoutError(f"partitions {sorted(starts)} did not go quiet")
            messages = consumer.consume(10_000, 0.2)
            for message in messages:
                value = message.value()
                if message.error() is not None or not (value or with_keys):
                    continue
                decoded = _object(value) if value else None
                if value and decoded is None:
                    unreadable += 1  # not written by the platform: its consumer dead-letters it
                    continue
                if with_keys:
                    key = message.key()
                    records.append({
                        "key": key.decode() if key is not None else None,
                        "partition": message.partition(),
                        "offset": message.offset(),
                        "value": decoded,
                    })  # fmt: skip
                elif with_offsets:
                    records.append(
                        {"partition": message.partition(), "offset": message.offset(), "value": decoded}
                    )
                elif decoded is not None:
                    records.append(decoded)
            if messages:
                quiet_since = time.monotonic()
    finally:
        consumer.close()
    if unreadable:
        log.warning("read back %s: skipped %d records that are no JSON object", sorted(starts), unreadable)
    return records


def _object(value: bytes) -> dict[str, Any] | None:
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return decoded if isinstance(decoded, dict) else None


def start_offsets(
    bootstrap: str, names: list[str], partitions: set[int], tail: int | None, *, group: str
) -> dict[tuple[str, int], int]:
    """Where to start reading ``names``' ``partitions``: 0, or ``tail`` records before the end.
    Empty partitions (an end offset of 0 is exact) are left out."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "logger": KAFKA_LOG})
    try:
        existing = consumer.list_topics(timeout=10).topics
        starts = {}
        for name in names:
            if name not in existing:
                continue
            for p in partitions:
                high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1]
                if high > 0:
                    starts[(name, p)] = 0 if tail is None else max(0, high - tail)
        return starts
    finally:
        consumer.close()
