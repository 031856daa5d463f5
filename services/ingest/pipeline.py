"""The ingest pipeline: normalise, de-duplicate, produce to ``cdp.events``; rejects go to the DLQ.

It knows nothing of HTTP: the tracking API and the webhooks both hand it decoded items.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from schemas import topics
from services.core.kafka.dead_letters import dead_letter_value
from services.core.kafka.producer import AsyncProducer, Record
from services.core.metrics import IngestMetrics
from services.ingest.acked import AckedEvents
from services.ingest.auth import KeyUse
from services.ingest.dedup import MessageIdWindow
from services.ingest.normalise import FieldError, Rejection, normalise
from services.privacy.suppression import SuppressionList

log = logging.getLogger(__name__)


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    suppressed: int = 0
    rejected: list[tuple[int, Rejection]] = field(default_factory=list)

    @property
    def errors(self) -> list[dict[str, Any]]:
        out = []
        for index, rejection in self.rejected:
            for error in rejection.errors or (FieldError("", rejection.reason),):
                out.append({"index": index, "reason": rejection.reason, **error.as_dict()})
        return out


class IngestPipeline:
    def __init__(
        self,
        producer: AsyncProducer,
        metrics: IngestMetrics,
        dedup: MessageIdWindow,
        max_future_skew: timedelta = timedelta(days=1),
        suppressions: SuppressionList | None = None,
        consent_purposes: Collection[str] | None = None,
    ) -> None:
        self._suppressions = suppressions
        self._consent_purposes = tuple(consent_purposes) if consent_purposes is not None else None
        self._producer = producer
        self._metrics = metrics
        self._dedup = dedup
        self._max_future_skew = max_future_skew
        self.acked: AckedEvents | None = None
        """Set by ``cdp up`` on its single-node broker: the messageIds Kafka acknowledged are kept
        until they are found in the warehouse, to name them if the broker is lost first."""

    async def ingest(
        self,
        items: Sequence[Any],
        *,
        source: str,
        endpoint: str,
        batch_sent_at: datetime | None = None,
        batch_context: Mapping[str, Any] | None = None,
        path_prefix: str = "",
        write_key: KeyUse | None = None,
    ) -> IngestResult:
        """Accept every valid item (acknowledged by Kafka when this returns), dead-letter the rest.

        Raises ProduceError when Kafka did not acknowledge: the caller answers 503 and the client
        retries; the claimed messageIds are released so that retry is not dropped as a duplicate.
        """
        received_at = datetime.now(UTC)
        now = time.time()
        result = IngestResult()
        records: list[Record] = []
        claimed: list[str] = []
        channels: dict[str, int] = {}
        for index, item in enumerate(items):
            path = f"{path_prefix}[{index}]" if path_prefix else ""
            outcome = normalise(
                item,
                received_at=received_at,
                default_source=source,
                batch_sent_at=batch_sent_at,
                batch_context=batch_context,
                max_future_skew=self._max_future_skew,
                path=path,
                consent_purposes=self._consent_purposes,
                write_key=write_key,
            )
            if isinstance(outcome, Rejection):
                result.rejected.append((index, outcome))
                continue
            if self._suppressions is not None and self._suppressions.suppresses(outcome.record):
                # An erased person: dropped and counted, never stored (not even in the DLQ).
                result.suppressed += 1
                continue
            if not self._dedup.claim(outcome.message_id, now):
                result.duplicates += 1
                continue
            claimed.append(outcome.message_id)
            records.append((topics.EVENTS, outcome.key, outcome.to_json()))
            channels[outcome.channel] = channels.get(outcome.channel, 0) + 1

        if records:
            started = time.perf_counter()
            try:
                await self._producer.send(records)
            except BaseException:
                self._dedup.release(claimed)
                raise
            self._metrics.produce_duration.labels(topics.EVENTS).observe(time.perf_counter() - started)
            if self.acked is not None:
                self.acked.add(claimed, time.time())
        result.accepted = len(records)
        for channel, count in channels.items():
            self._metrics.events_accepted.labels(source, channel).inc(count)
        if result.suppressed:
            self._metrics.events_suppressed.labels(source).inc(result.suppressed)
        if result.duplicates:
            self._metrics.events_duplicate.labels(source).inc(result.duplicates)
        if result.rejected:
            await self.dead_letter_items(items, result.rejected, source=source, endpoint=endpoint)
        return result

    def forget_message_ids(self, message_ids: Iterable[str]) -> None:
        """Accept these messageIds again (events lost with the single-node broker: a re-send of
        them must not be dropped as a duplicate)."""
        self._dedup.release(message_ids)

    async def dead_letter_items(
        self, items: Sequence[Any], rejected: Sequence[tuple[int, Rejection]], *, source: str, endpoint: str
    ) -> None:
        letters = []
        for index, rejection in rejected:
            payload = orjson.dumps(items[index], default=str)
            letters.append(self._letter(payload, rejection, source=source, endpoint=endpoint))
        await self._send_letters(letters)

    async def dead_letter(self, payload: bytes, rejection: Rejection, *, source: str, endpoint: str) -> None:
        """Dead-letter a whole request body (malformed JSON, bad key, bad signature, too large)."""
        await self._send_letters([self._letter(payload, rejection, source=source, endpoint=endpoint)])

    def _letter(
        self, payload: bytes, rejection: Rejection, *, source: str, endpoint: str
    ) -> tuple[str, bytes]:
        self._metrics.events_rejected.labels(source, rejection.reason).inc()
        errors = [error.as_dict() for error in rejection.errors]
        return rejection.reason, dead_letter_value(
            payload, rejection.reason, errors, source=source, endpoint=endpoint
        )

    async def _send_letters(self, letters: Sequence[tuple[str, bytes]]) -> None:
        started = time.perf_counter()
        try:
            await self._producer.send([(topics.EVENTS_DLQ, None, value) for _, value in letters])
            self._metrics.produce_duration.labels(topics.EVENTS_DLQ).observe(time.perf_counter() - started)
        except Exception:
            # The client's answer is a 4xx either way; losing the DLQ copy is an operator alert.
            self._metrics.dlq_failures.inc(len(letters))
            log.exception("could not write %d rejected payloads to %s", len(letters), topics.EVENTS_DLQ)
            return
        for reason, _ in letters:
            self._metrics.dlq_messages.labels(reason).inc()
