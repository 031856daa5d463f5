"""Batch records: many JSON records in one Kafka message, one per line (NDJSON).

The identity pipeline's internal topics carry batches: a stream processor's cost is per Kafka
message, not per byte, so one message per batch and partition moves thousands of records for the
price of one. JSON never contains a raw newline (orjson escapes it in strings), so splitting on
``\\n`` is exact and needs no parsing.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_BATCH_BYTES = 512 * 1024
"""Below the 1 MB default message limit of Kafka brokers and clients, with room for headers."""


def ndjson_batches(values: Iterable[bytes], max_bytes: int = MAX_BATCH_BYTES) -> list[bytes]:
    """``values`` joined by newlines into messages of at most ``max_bytes`` (a larger single value
    gets a message of its own)."""
    batches: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for value in values:
        if current and size + len(value) + 1 > max_bytes:
            batches.append(b"\n".join(current))
            current, size = [], 0
        current.append(value)
        size += len(value) + 1
    if current:
        batches.append(b"\n".join(current))
    return batches


def split_lines(message: bytes) -> list[bytes]:
    """The records of a batch message (a message with one record is a batch of one)."""
    return [line for line in message.split(b"\n") if line]
