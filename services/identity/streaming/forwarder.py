"""The resolve stage's transport: ``cdp.events`` (N partitions) into the single-partition
observations topic, in batches (one message per batch, see ``services/core/kafka/batches.py``).

A pass-through without state, so it is a plain consumer group, not a faust agent: faust's cost is
per message, and this is the one place where every event is a message. Offsets are committed only
after the batch is acknowledged on the observations topic (at least once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, Message, Producer

from schemas import topics
from services.core.kafka.batches import ndjson_batches
from services.core.kafka.producer import KAFKA_LOG, producer_config
from services.core.topic_sink import consumer_config

log = logging.getLogger(__name__)


class Forwarder:
    def __init__(
        self, bootstrap: str, group: str, *, session_timeout_ms: int = 6000, batch: int = 5000
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
                consumed = False
                for message in messages:
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            log.warning("forward: consumer error: %s", error.str())
                        continue
                    consumed = True
                    value = message.value()
                    if value:
                        values.append(value)
                if consumed:
                    self._forward(values)
                    self._consumer.commit(asynchronous=False)
                    self.forwarded += len(values)
                    self.last_activity = time.monotonic()
        except Exception:
            log.exception("the identity forwarder stopped; uncommitted events will be re-read by the group")
        finally:
            self._producer.flush(10)
            self._consumer.close()

    def _forward(self, values: list[bytes]) -> None:
        """Produce until every batch is acknowledged (Kafka unavailable: retry, never skip)."""
        pending = ndjson_batches(values)
        delay = 0.1
        while pending:
            failed = _Failures()
            for batch in pending:
                self._producer.produce(
                    topics.IDENTITY_OBSERVATIONS, batch, partition=0, on_delivery=failed.callback(batch)
                )
            self._producer.flush(60)
            if failed.batches:
                log.warning(
                    "forward: %d batches not acknowledged; retrying in %.1f s", len(failed.batches), delay
                )
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            pending = failed.batches


class _Failures:
    def __init__(self) -> None:
        self.batches: list[bytes] = []

    def callback(self, batch: bytes) -> Callable[[KafkaError | None, Message], None]:
        def delivered(err: KafkaError | None, _message: Message) -> None:
            if err is not None:
                self.batches.append(batch)

        return delivered
