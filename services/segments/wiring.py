"""The segment topics' warehouse sinks (the processor itself runs in ``cdp run segments``)."""

from __future__ import annotations

from typing import Any

from schemas import topics
from services.core.metrics import SinkMetrics
from services.core.settings import Settings
from services.core.topic_sink import TopicSink
from services.core.warehouse.port import Warehouse
from services.segments.streaming.processor import membership_rows


def segment_sinks(
    bootstrap: str, cluster: str, warehouse: Warehouse, metrics: SinkMetrics, settings: Settings
) -> list[TopicSink]:
    """Every transition into ``segment_membership_log``; each profile's state into
    ``segment_membership`` (one row per segment), both exactly once in effect."""

    def sink(topic: str, table: str, **options: Any) -> TopicSink:
        return TopicSink(
            bootstrap, cluster, warehouse, metrics, topic=topic, table=table,
            batch_rows=settings.sink_batch_rows, flush_seconds=settings.sink_flush_seconds,
            session_timeout_ms=settings.kafka_session_timeout_ms, **options,
        )  # fmt: skip

    return [
        sink(topics.SEGMENT_MEMBERSHIP, "segment_membership_log"),
        sink(topics.SEGMENT_STATE, "segment_membership", explode=membership_rows),
    ]
