"""The resolve stage's transport: ``cdp.events`` (N partitions) into the single-partition
observations topic, in batches (one message per batch, see ``services/core/kafka/batches.py``).

A pass-through without state, so it is a plain consumer group, not a faust agent: faust's cost is
per message, and this is the one place where every event is a message. Offsets are committed only
after the batch is acknowledged on the observations topic (at least once).

Ingest puts only canonical events on ``cdp.events``, but anything with access to the topic can write
to it. A record that is not a canonical event (not JSON: ``malformed_json``; not the
``CanonicalEvent`` schema: ``invalid_event``) goes to ``cdp.events.dlq`` instead, with the same
format and reasons as ingest's refusals, and is counted in ``cdp_dlq_messages_total{reason}``; the
partition goes on (see ``services/core/kafka/dead_letters.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, Message, Producer
from prometheus_client import Counter
from pydantic import ValidationError

from schemas import topics
from schemas.events import CanonicalEvent
from services.core.kafka.batches import ndjson_batches
from services.core.kafka.dead_letters import topic_dead_letter
from services.core.kafka.producer import KAFKA_LOG, producer_config
from services.core.topic_sink import consumer_config

log = logging.getLogger(__name__)

ANY_PARTITION = -1  # librdkafka's RD_KAFKA_PARTITION_UA: the partitioner chooses
MALFORMED_JSON = "malformed_json"
INVALID_EVENT = "invalid_event"


def event_problem(value: bytes) -> tuple[str, str] | None:
    """Why ``value`` is no canonical event, as (reason, detail); None for a canonical event."""
    try:
        CanonicalEvent.model_validate_json(value)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if errors and errors[0]["type"] == "json_invalid":
            return MALFORMED_JSON, f"not JSON: {errors[0]['msg']}"
        details = "; ".join(f"{'.'.join(map(str, e['loc'])) or '$'}: {e['msg']}" for e in errors[:5])
        return INVALID_EVENT, f"not a canonical event: {details}"
    return None


class Forwarder:
    def __init__(
        self,
        bootstrap: str,
        group: str,
        *,
        session_timeout_ms: int = 6000,
        batch: int = 5000,
        dead_letters: Counter | None = None,
    ) -> None:
        self.group = group
        self._consumer = Consumer(
            {**consumer_config(bootstrap, group, session_timeout_ms), "logger": KAFKA_LOG}
        )
        self._producer = Producer(producer_config(bootstrap, **{"linger.ms": 1}))
        self._batch = batch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.forwarded = 0
        self.dead_lettered = 0
        self._dead_letters = dead_letters
        self.last_activity = time.monotonic()
        self.assigned = threading.Event()

    def start(self) -> None:
        self._consumer.subscribe([topics.EVENTS], on_assign=lambda _c, _p: self.assigned.set())
        self._thread = threading.Thread(target=self._run, name="identity-forward", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                messages = self._consumer.consume(self._batch, 0.05)
                values: list[bytes] = []
                letters: list[tuple[str, bytes]] = []
                consumed = False
                for message in messages:
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            log.warning("forward: consumer error: %s", error.str())
                        continue
                    consumed = True
                    value = message.value()
                    if not value:
                        continue
                    problem = event_problem(value)
                    if problem is None:
                        values.append(value)
                    else:
                        letters.append((problem[0], self._letter(message, value, *problem)))
                if consumed:
                    self._forward(values, [letter for _, letter in letters])
                    self._consumer.commit(asynchronous=False)
                    self.forwarded += len(values)
                    self._count(letters)
                    self.last_activity = time.monotonic()
        except Exception:
            log.exception("the identity forwarder stopped; uncommitted events will be re-read by the group")
        finally:
            self._producer.flush(10)
            self._consumer.close()

    @staticmethod
    def _letter(message: Message, value: bytes, reason: str, detail: str) -> bytes:
        partition, offset = message.partition() or 0, message.offset() or 0
        return topic_dead_letter(
            value, reason, detail, topic=topics.EVENTS, partition=partition, offset=offset
        )

    def _count(self, letters: list[tuple[str, bytes]]) -> None:
        if not letters:
            return
        self.dead_lettered += len(letters)
        reasons: dict[str, int] = {}
        for reason, _ in letters:
            reasons[reason] = reasons.get(reason, 0) + 1
        for reason, count in reasons.items():
            if self._dead_letters is not None:
                self._dead_letters.labels(reason).inc(count)
            log.warning(
                "forward: %d records on %s are no canonical event (%s): written to %s",
                count, topics.EVENTS, reason, topics.EVENTS_DLQ,
            )  # fmt: skip

    def _forward(self, values: list[bytes], letters: list[bytes]) -> None:
        """Produce until every batch (and dead letter) is acknowledged (Kafka unavailable: retry,
        never skip)."""
        pending = [
            *((topics.IDENTITY_OBSERVATIONS, 0, batch) for batch in ndjson_batches(values)),
            *((topics.EVENTS_DLQ, ANY_PARTITION, letter) for letter in letters),
        ]
        delay = 0.1
        while pending:
            failed = _Failures()
            for record in pending:
                topic, partition, value = record
                self._producer.produce(topic, value, partition=partition, on_delivery=failed.callback(record))
            self._producer.flush(60)
            if failed.records:
                log.warning(
                    "forward: %d batches not acknowledged; retrying in %.1f s", len(failed.records), delay
                )
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            pending = failed.records


class _Failures:
    def __init__(self) -> None:
        self.records: list[tuple[str, int, bytes]] = []

    def callback(self, record: tuple[str, int, bytes]) -> Callable[[KafkaError | None, Message], None]:
        def delivered(err: KafkaError | None, _message: Message) -> None:
            if err is not None:
                self.records.append(record)

        return delivered
