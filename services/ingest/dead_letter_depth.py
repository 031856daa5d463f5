"""``cdp_dlq_depth_records``: how many records the dead-letter topic holds, read from the broker.

The depth of a partition is its high watermark minus its first offset. Both come from fetching the
partition's first record (``LagProbe``): the high watermark of a fetch response is exact on Tansu
and on Apache Kafka, while a ``ListOffsets`` request on Tansu reports the start of the last record
batch (too low when the last write was a batch). Topic retention on Kafka removes old records, and
the depth follows. It is read when ``/metrics`` is scraped, at most once per ``min_interval``.
"""

from __future__ import annotations

import logging
import threading
import time

from prometheus_client import Gauge

from schemas import topics
from services.core.kafka.lag import LagProbe

log = logging.getLogger(__name__)


class DeadLetterDepth:
    def __init__(self, bootstrap: str, topic: str = topics.EVENTS_DLQ, min_interval: float = 1.0) -> None:
        self._probe = LagProbe(bootstrap)
        self._topic = topic
        self._min_interval = min_interval
        self._lock = threading.Lock()
        self._read_at = -min_interval
        self._depth = 0.0

    def bind(self, gauge: Gauge) -> DeadLetterDepth:
        """Let ``gauge`` (``IngestMetrics.dlq_depth``) report the depth."""
        gauge.set_function(self.depth)
        return self

    def depth(self) -> float:
        """Records held in the topic now (the last value read when the broker does not answer)."""
        with self._lock:
            if time.monotonic() - self._read_at < self._min_interval:
                return self._depth
            try:
                partitions = self._probe.partitions(self._topic)
                lags = self._probe.measure((self._topic, p, -1) for p in partitions)
                if len(lags) == len(partitions):
                    self._depth = float(sum(lag.records for lag in lags.values()))
            except Exception:
                log.debug("cannot read the depth of %s", self._topic, exc_info=True)
            self._read_at = time.monotonic()
            return self._depth

    def close(self) -> None:
        self._probe.close()
