"""The faust adapter of the identity stages: it only moves the pure processors' records.

One ``IdentityWorker`` per process. Every worker forwards its ``cdp.events`` partitions to the
single-partition observations topic; the worker that owns that partition runs the graph stage;
every worker folds the ``cdp.identity.resolved`` partitions it owns. Outputs are produced with the
platform's idempotent producer and awaited before faust acknowledges the inputs (at least once;
the processors make repeats harmless).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import faust
import orjson

from schemas import topics
from services.core.kafka.producer import AsyncProducer, Record
from services.identity.domain import IdentityGraph
from services.identity.streaming.fold_stage import EventStore, FoldProcessor
from services.identity.streaming.graph_stage import GraphProcessor
from services.identity.streaming.records import OutRecord, Topic

log = logging.getLogger(__name__)

TOPIC_NAMES: dict[Topic, str] = {
    Topic.RESOLVED: topics.IDENTITY_RESOLVED,
    Topic.MERGES: topics.IDENTITY_MERGES,
    Topic.PROFILES: topics.PROFILES,
    Topic.REFUSALS: topics.IDENTITY_REFUSALS,
    Topic.SPLITS: topics.IDENTITY_SPLITS,
    Topic.UNRESOLVED: topics.IDENTITY_UNRESOLVED,
}


def encode(records: Sequence[OutRecord]) -> list[Record]:
    return [(TOPIC_NAMES[r.topic], r.key.encode(), orjson.dumps(r.value)) for r in records]


def _no_events(_keys: Sequence[str]) -> list[dict[str, Any]]:
    return []


class IdentityWorker:
    def __init__(
        self,
        bootstrap: str,
        producer: AsyncProducer,
        *,
        partitions: int,
        app_id: str = "cdp-identity",
        graph: IdentityGraph | None = None,
        events_of: EventStore | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        batch: int = 2000,
        linger: float = 0.05,
        flush_interval: float = 0.5,
        session_timeout: float = 6.0,
    ) -> None:
        self.graph_stage = GraphProcessor(graph or IdentityGraph())
        self.fold_stage = FoldProcessor(now, events_of=events_of or _no_events)
        self._bootstrap = bootstrap
        self._producer = producer
        self._partitions = partitions
        self._app_id = app_id
        self._batch = batch
        self._linger = linger
        self._flush_interval = flush_interval
        self._session_timeout = session_timeout
        self._app: faust.App | None = None
        self.observations_decided = 0
        self.records_folded = 0
        self.resolved_sent = 0  # records this worker produced to the resolved topic

    async def start(self) -> None:
        app = faust.App(
            self._app_id,
            broker=f"kafka://{self._bootstrap}",
            store="memory://",
            web_enabled=False,
            broker_session_timeout=self._session_timeout,
            topic_partitions=self._partitions,
            topic_allow_declare=False,
            consumer_auto_offset_reset="earliest",
            stream_wait_empty=False,
            loop=asyncio.get_running_loop(),
        )
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        events = app.topic(topics.EVENTS, **raw)
        observations = app.topic(topics.IDENTITY_OBSERVATIONS, partitions=1, **raw)
        resolved = app.topic(topics.IDENTITY_RESOLVED, partitions=self._partitions, **raw)

        async def send(records: list[OutRecord]) -> None:
            self.resolved_sent += sum(record.topic is Topic.RESOLVED for record in records)
            await self._producer.send(encode(records))

        @app.agent(events)
        async def forward(stream: faust.StreamT[bytes]) -> None:
            async for values in stream.take(self._batch, within=self._linger):
                await self._producer.send([(topics.IDENTITY_OBSERVATIONS, None, value) for value in values])

        @app.agent(observations)
        async def decide(stream: Any) -> None:  # faust's stub lacks take_events
            async for batch in stream.take_events(self._batch, within=self._linger):
                out: list[OutRecord] = []
                for event in batch:
                    out.extend(
                        self.graph_stage.process(orjson.loads(event.value), position=event.message.offset)
                    )
                self.observations_decided += len(batch)
                await send(out)

        @app.agent(resolved)
        async def fold(stream: faust.StreamT[bytes]) -> None:
            async for values in stream.take(self._batch, within=self._linger):
                out: list[OutRecord] = []
                for value in values:
                    out.extend(self.fold_stage.process(orjson.loads(value)))
                self.records_folded += len(values)
                await send(out)

        @app.timer(self._flush_interval)  # type: ignore[untyped-decorator]
        async def publish_profiles() -> None:
            await send(self.fold_stage.flush())

        self._app = app
        await app.start()

    async def stop(self) -> None:
        if self._app is not None:
            await self._app.stop()
            await self._producer.send(encode(self.fold_stage.flush()))
