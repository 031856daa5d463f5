"""An idempotent confluent-kafka producer whose deliveries can be awaited from asyncio.

One background thread serves delivery reports; a request awaits one future for all its records,
so the HTTP answer is sent only once Kafka acknowledged everything (acks=all).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from services.core.kafka.exceptions import ProduceError

Record = tuple[str, bytes | None, bytes | None]  # topic, key, value (None: a tombstone)
PartitionedRecord = tuple[str, int, bytes]  # topic, partition, value (no key)
KAFKA_LOG = logging.getLogger("cdp.kafka")


def producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 500_000,
        "queue.buffering.max.kbytes": 512 * 1024,
        "compression.type": "lz4",
        "message.timeout.ms": 30_000,
        # Brokers close idle connections; librdkafka reconnects on its own, no need to log it.
        "log.connection.close": False,
        "logger": KAFKA_LOG,
    }
    config.update(overrides)
    return config


class _DeliveryGroup:
    """Counts down the acknowledgements of one group of records and settles one future."""

    __slots__ = ("error", "future", "loop", "remaining")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.remaining = count
        self.error: KafkaError | None = None

    def on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None and self.error is None:
            self.error = err
        self.remaining -= 1
        if self.remaining == 0:
            self.loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        if self.future.done():
            return
        if self.error is not None:
            self.future.set_exception(ProduceError(f"Kafka did not acknowledge a record: {self.error.str()}"))
        else:
            self.future.set_result(None)


class AsyncProducer:
    def __init__(self, bootstrap: str, **overrides: Any) -> None:
        self._config = producer_config(bootstrap, **overrides)
        self._producer = Producer(self._config)
        self._unavailable: str | None = None
        self._closing = threading.Event()
        self._poller = threading.Thread(target=self._poll_forever, name="kafka-delivery", daemon=True)
        self._poller.start()

    def _poll_forever(self) -> None:
        while not self._closing.is_set():
            self._producer.poll(0.05)

    async def send(self, records: Sequence[Record]) -> None:
        """Produce ``records`` and return once every one is acknowledged; raise ProduceError otherwise."""
        await self._produce_all([(topic, value, {"key": key}) for topic, key, value in records])

    async def send_partitioned(self, records: Sequence[PartitionedRecord]) -> None:
        """Like ``send``, to explicit partitions (batch records of internal topics carry no key)."""
        await self._produce_all([(topic, value, {"partition": p}) for topic, p, value in records])

    async def _produce_all(self, items: Sequence[tuple[str, bytes | None, dict[str, Any]]]) -> None:
        if not items:
            return
        self._refuse_if_unavailable()
        group = _DeliveryGroup(asyncio.get_running_loop(), len(items))
        callback = group.on_delivery
        produce = self._producer.produce
        for topic, value, where in items:
            while True:
                try:
                    produce(topic, value, on_delivery=callback, **where)
                    break
                except BufferError:
                    # Local queue full: Kafka is slower than intake. Wait for room (backpressure).
                    await asyncio.sleep(0.005)
                    self._refuse_if_unavailable()
        await group.future

    def _refuse_if_unavailable(self) -> None:
        if self._unavailable is not None:
            raise ProduceError(self._unavailable)

    def suspend(self, reason: str) -> None:
        """Refuse every send with ProduceError(``reason``) and fail the records not yet acknowledged
        (their senders get ProduceError too): the broker is gone. ``resume`` connects again."""
        self._unavailable = reason
        old = self._producer
        old.purge(in_queue=True, in_flight=True, blocking=False)
        old.flush(5.0)  # serves the delivery reports: acknowledged ones succeed, purged ones fail

    def resume(self) -> None:
        """Connect anew (to a new broker on the same address) and accept sends again."""
        self._producer = Producer(self._config)
        self._unavailable = None

    def close(self, timeout: float = 10.0) -> int:
        """Flush what is queued and stop; returns the number of records that could not be sent."""
        deadline = time.monotonic() + timeout
        remaining = self._producer.flush(timeout)
        self._closing.set()
        self._poller.join(max(0.0, deadline - time.monotonic()) + 1.0)
        return int(remaining)
