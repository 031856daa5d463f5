"""Ingest benchmark: events/s through ``POST /v1/batch`` into Kafka (acknowledged) and request latency.

The server is a real ``cdp up`` process; the load comes from this process over loopback with
several concurrent connections, each request a 100-event batch of realistic shop/chat/email events.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from typing import Any

import httpx
import orjson

from tests.e2e.cdp_process import CdpProcess

EVENT_TEMPLATES: list[dict[str, Any]] = [
    {"type": "track", "event": "Product Viewed", "properties": {"product_id": "P-1001", "price": 24.95,
     "category": "Kueche", "name": "Pfeffermuehle"}, "context": {"source": "web", "userAgent": "Mozilla/5.0"}},
    {"type": "track", "event": "Order Completed", "properties": {"order_id": "O-1", "revenue": 74.85,
     "currency": "EUR", "products": [{"product_id": "P-1001", "price": 24.95, "quantity": 3}]}},
    {"type": "track", "event": "Conversation Rated", "properties": {"conversation_id": "conv-7", "csat": 5,
     "handled_by": "bot"}, "context": {"channel": "chat", "source": "chat-widget"}},
    {"type": "track", "event": "Email Opened", "properties": {"email": "kunde@example.de",
     "recipient_id": "r-77", "campaign_id": "nl-2026-47"}},
    {"type": "page", "name": "Startseite", "properties": {"url": "https://shop.example.de/"}},
    {"type": "identify", "traits": {"email": "kunde@example.de", "first_name": "Anna"}},
]  # fmt: skip


def make_batches(count: int, size: int) -> list[bytes]:
    run = uuid.uuid4().hex[:8]
    bodies = []
    for b in range(count):
        items = []
        for i in range(size):
            template = EVENT_TEMPLATES[(b * size + i) % len(EVENT_TEMPLATES)]
            n = b * size + i
            items.append({**template, "messageId": f"{run}-{n}", "userId": f"C{n % 5000}",
                          "anonymousId": f"anon-{n % 9000}", "timestamp": "2026-11-20T10:00:00.000Z"})  # fmt: skip
        bodies.append(orjson.dumps({"batch": items, "sentAt": "2026-11-20T10:00:00.500Z"}))
    return bodies


async def _load(url: str, key: str, bodies: list[bytes], concurrency: int) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, auth=(key, ""), limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal failures
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                response = await client.post(
                    "/v1/batch", content=body, headers={"content-type": "application/json"}
                )
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, failures, elapsed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(
    cdp: CdpProcess, *, batches: int = 600, batch_size: int = 100, concurrency: int = 8, rounds: int = 3
) -> dict[str, Any]:
    warmup = make_batches(50, batch_size)
    asyncio.run(_load(cdp.url, cdp.write_key, warmup, concurrency))
    results = []
    for _ in range(rounds):
        bodies = make_batches(batches, batch_size)
        latencies, failures, elapsed = asyncio.run(_load(cdp.url, cdp.write_key, bodies, concurrency))
        if failures:
            raise RuntimeError(f"{failures} requests failed during the ingest benchmark")
        results.append({
            "events_per_s": batches * batch_size / elapsed,
            "p50_ms": percentile(latencies, 0.50) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
        })  # fmt: skip
    return {
        "name": "ingest",
        "description": f"POST /v1/batch ({batch_size} events) -> Kafka acks=all, {concurrency} connections",
        "rounds": rounds,
        "events_per_round": batches * batch_size,
        "events_per_s_median": statistics.median(r["events_per_s"] for r in results),
        "request_p50_ms_median": statistics.median(r["p50_ms"] for r in results),
        "request_p99_ms_median": statistics.median(r["p99_ms"] for r in results),
        "floor_events_per_s": 20_000,
        "rounds_detail": results,
    }
