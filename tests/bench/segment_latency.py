"""Segment latency benchmark: from an event's HTTP request to its membership event on Kafka.

A real ``cdp up`` (identity and segment processors as its child processes, the built-in library
plus one benchmark segment) receives steady traffic at a target rate: shop events of 5,000 returning
customers, and 20 times a second a probe, an ``identify`` of a new customer with ``plan: gold``,
which enters the benchmark segment. A consumer on ``cdp.segments.membership`` matches each entry to
its probe by the ``cause.messageId`` the transition carries; the latency is from just before the
probe's POST to the transition's Kafka timestamp (when the segment processor produced it): the whole
path of HTTP, ingest, Kafka, identity graph and fold, profile topic and segment evaluation.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from typing import Any

import httpx
import orjson
from confluent_kafka import Consumer, TopicPartition

from schemas import topics
from tests.e2e.cdp_process import CdpProcess, wait_for

RATES = (1000, 5000)
SECONDS = 20.0
WARM_UP = 5.0
TICK = 0.05
PROBES_PER_TICK = 1
FLOOR_P99_S_AT_1000 = 1.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _arrivals(bootstrap: str, segment: str) -> dict[str, float]:
    """cause messageId -> Kafka timestamp (the processor's produce time, in seconds) of every
    ``entered`` transition of ``segment``, read from the start of the membership topic."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}",
                         "enable.auto.commit": False})  # fmt: skip
    arrivals: dict[str, float] = {}
    try:
        metadata = consumer.list_topics(topics.SEGMENT_MEMBERSHIP, timeout=10)
        partitions = metadata.topics[topics.SEGMENT_MEMBERSHIP].partitions
        consumer.assign([TopicPartition(topics.SEGMENT_MEMBERSHIP, p, 0) for p in partitions])
        last = time.monotonic()
        while time.monotonic() - last < 1.0:
            for message in consumer.consume(10_000, 0.2):
                last = time.monotonic()
                if message.error() is not None or not message.value():
                    continue
                record = orjson.loads(message.value())
                cause = record.get("cause") or {}
                if record["segmentId"] == segment and record["action"] == "entered" and cause:
                    arrivals.setdefault(cause["messageId"], message.timestamp()[1] / 1000)
    finally:
        consumer.close()
    return arrivals


async def _drive(cdp: CdpProcess, rate: int, seconds: float, run: str) -> tuple[dict[str, float], list[int]]:
    """Send ``rate`` events/s for ``seconds``; returns probe messageId -> time just before its POST
    (probes of accepted requests only) and the status codes of refused requests."""
    per_tick = max(1, round(rate * TICK))
    sent: dict[str, float] = {}
    n = 0
    async with httpx.AsyncClient(base_url=cdp.url, auth=(cdp.write_key, ""), timeout=30) as client:
        requests: list[tuple[list[str], asyncio.Task[Any]]] = []
        start = time.monotonic()
        tick = 0
        while time.monotonic() - start < seconds:
            batch = []
            for _ in range(per_tick - PROBES_PER_TICK):
                n += 1
                batch.append({"type": "track", "event": "Product Viewed", "userId": f"{run}-c{n % 5000}",
                              "messageId": f"{run}-e{n}", "properties": {"product_id": f"P-{n % 300}",
                                                                         "price": 19.9}})  # fmt: skip
            probes = []
            for p in range(PROBES_PER_TICK):
                probe = f"{run}-probe-{tick}-{p}"
                probes.append(probe)
                batch.append({"type": "identify", "userId": f"{run}-new-{tick}-{p}", "messageId": probe,
                              "traits": {"plan": "gold"}})  # fmt: skip
            body = orjson.dumps({"batch": batch})
            now = time.time()
            for probe in probes:
                sent[probe] = now
            task = asyncio.create_task(client.post("/v1/batch", content=body,
                                                   headers={"Content-Type": "application/json"}))  # fmt: skip
            requests.append((probes, task))
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * TICK - time.monotonic()))
        refused = []
        for probes, task in requests:
            response = await task
            if response.status_code != 200:
                refused.append(response.status_code)
                for probe in probes:
                    sent.pop(probe, None)
    return sent, refused


def _round(cdp: CdpProcess, rate: int, seconds: float) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    segment = f"bench_gold_{run}"
    document = {
        "id": segment,
        "name": "Benchmark: gold plan",
        "rule": {"trait": "plan", "op": "=", "value": "gold"},
    }
    response = cdp.admin("POST", "/api/v1/segments", content=orjson.dumps(document))
    response.raise_for_status()
    wait_for(lambda: (cdp.admin("GET", f"/api/v1/segments/{segment}").json().get("backfill") or {}).get("done"),
             timeout=60)  # fmt: skip
    # Warm-up at the same rate, not measured: every consumer group has joined, caches are warm.
    warm, _ = asyncio.run(_drive(cdp, rate, WARM_UP, f"{run}w"))
    wait_for(lambda: set(warm) <= set(_arrivals(cdp.bootstrap, segment)), timeout=60)
    sent, refused = asyncio.run(_drive(cdp, rate, seconds, run))
    deadline = time.monotonic() + 60
    arrivals = _arrivals(cdp.bootstrap, segment)
    while time.monotonic() < deadline and not set(sent) <= set(arrivals):
        time.sleep(1.0)
        arrivals = _arrivals(cdp.bootstrap, segment)
    latencies = [arrivals[m] - t for m, t in sent.items() if m in arrivals]
    return {
        "rate_events_per_s": rate,
        "seconds": seconds,
        "probes_sent": len(sent),
        "requests_refused": len(refused),
        "refused_statuses": sorted(set(refused)),
        "probes_received": len(latencies),
        "p50_s": statistics.median(latencies) if latencies else None,
        "p99_s": _percentile(latencies, 0.99) if latencies else None,
        "max_s": max(latencies) if latencies else None,
    }


def run(cdp: CdpProcess, seconds: float = SECONDS, rates: tuple[int, ...] = RATES) -> dict[str, Any]:
    rounds = [_round(cdp, rate, seconds) for rate in rates]
    return {
        "name": "segment_latency",
        "description": "HTTP request of an event -> its entered transition consumed from "
        "cdp.segments.membership, through cdp up's identity and segment processors; "
        f"{int(1 / TICK) * PROBES_PER_TICK} probes/s among steady shop traffic",
        "rounds": rounds,
        "floor_p99_s_at_1000": FLOOR_P99_S_AT_1000,
    }
