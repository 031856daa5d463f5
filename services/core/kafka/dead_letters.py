"""Dead letters: what could not be processed goes to ``cdp.events.dlq`` with its reason, in one format
(``schemas.events.DeadLetter``), whether ingest refused it or a processor met it on a topic.

Ingest writes refused requests (``source`` the sending system, ``endpoint`` the HTTP path). A
processor that reads a record it cannot use (written to the topic by something other than the
platform, bypassing ingest) writes it with ``source`` ``"kafka"`` and ``endpoint`` the topic, and
the record's position in the first error, then goes on with the next record: one bad record never
stops a partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import orjson

from schemas.events import DeadLetter

DLQ_PAYLOAD_LIMIT = 1024 * 1024
KAFKA_SOURCE = "kafka"


def dead_letter_value(
    payload: bytes, reason: str, errors: Iterable[Mapping[str, str]], *, source: str, endpoint: str
) -> bytes:
    """The ``cdp.events.dlq`` record of ``payload`` (kept up to ``DLQ_PAYLOAD_LIMIT`` bytes, as text)."""
    letter = DeadLetter(
        reason=reason,
        errors=[dict(error) for error in errors],
        source=source,
        endpoint=endpoint,
        received_at=datetime.now(UTC),
        payload=payload[:DLQ_PAYLOAD_LIMIT].decode("utf-8", errors="replace"),
        payload_truncated=len(payload) > DLQ_PAYLOAD_LIMIT,
    )
    return orjson.dumps(letter.model_dump(mode="json", by_alias=True))


def topic_dead_letter(
    payload: bytes, reason: str, detail: str, *, topic: str, partition: int, offset: int
) -> bytes:
    """A record met on ``topic`` that its processor cannot use."""
    error = {"path": "$", "message": f"{topic} partition {partition} offset {offset}: {detail}"}
    return dead_letter_value(payload, reason, [error], source=KAFKA_SOURCE, endpoint=topic)
