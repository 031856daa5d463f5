"""Profile folding benchmark: ``apply`` throughput and snapshot size on realistic canonical events.

    .venv/bin/python -m tests.bench.profile_fold [--customers 2000] [--days 90]

The demo generator's seeded shop/chat/email traffic goes through the real ingest normaliser and an
orjson round trip, so each event is exactly what a consumer of ``cdp.events`` reads. Events are
grouped into people by a plain union-find over their identifiers (a stand-in for the identity graph,
which is not what is measured here). Not collected by pytest: timings belong to ``make bench``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from services.demo.generator import DemoConfig, generate_history
from services.identity.domain.profile_state import ProfileState
from services.ingest.normalise import NormalisedEvent, normalise

END = datetime(2026, 11, 20, tzinfo=UTC)


def canonical_events(customers: int, days: int) -> list[dict[str, Any]]:
    received = END + timedelta(hours=1)
    events = []
    for message in generate_history(DemoConfig(customers, days, seed=7, end=END)):
        result = normalise(message, received_at=received, default_source="bench")
        if isinstance(result, NormalisedEvent):
            events.append(orjson.loads(result.to_json()))
    return events


def people(events: list[dict[str, Any]]) -> list[int]:
    """The person index of every event, by union-find over identifiers and order ids."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    keys = []
    for e in events:
        ids = [f"{k}:{v}" for k, v in sorted(e["identifiers"].items())]
        if order_id := e["properties"].get("order_id"):
            ids.append(f"order:{order_id}")
        ids = ids or [f"msg:{e['messageId']}"]
        for other in ids[1:]:
            parent[find(other)] = find(ids[0])
        keys.append(ids[0])
    roots: dict[str, int] = {}
    return [roots.setdefault(find(k), len(roots)) for k in keys]


def quantile(ordered: list[int], fraction: float) -> int:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def timed(rounds: int, run: Callable[[], Any]) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def fold_all(events: list[dict[str, Any]], owner: list[int], count: int) -> list[ProfileState]:
    states = [ProfileState() for _ in range(count)]
    for e, person in zip(events, owner, strict=True):
        states[person].apply(e)
    return states


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    run(args.customers, args.days, args.rounds)


def run(customers: int = 2000, days: int = 90, rounds: int = 5) -> dict[str, object]:
    """The numbers ``make bench`` reports: profile folding throughput and snapshot sizes."""
    events = canonical_events(customers, days)
    owner = people(events)
    count = max(owner) + 1
    shuffled = list(zip(events, owner, strict=True))
    random.Random(1).shuffle(shuffled)
    s_events, s_owner = [e for e, _ in shuffled], [p for _, p in shuffled]
    n = len(events)
    print(f"{n:,} canonical events, {count:,} profiles ({customers} demo customers, {days} days)")

    in_order = timed(rounds, lambda: fold_all(events, owner, count))
    any_order = timed(rounds, lambda: fold_all(s_events, s_owner, count))
    states = fold_all(events, owner, count)

    def replay() -> None:
        for e, person in zip(events, owner, strict=True):
            states[person].apply(e)

    replayed = timed(rounds, replay)
    print(f"apply, event-time order : {n / in_order:>10,.0f} events/s  ({in_order * 1e6 / n:.2f} µs/event)")
    print(f"apply, shuffled order   : {n / any_order:>10,.0f} events/s  ({any_order * 1e6 / n:.2f} µs/event)")
    print(f"apply, replay (no-ops)  : {n / replayed:>10,.0f} events/s  ({replayed * 1e6 / n:.2f} µs/event)")

    now = END + timedelta(days=1)
    snap = timed(rounds, lambda: [orjson.dumps(s.to_snapshot()) for s in states])
    attrs = timed(rounds, lambda: [s.attributes(now) for s in states])
    blobs = [orjson.dumps(s.to_snapshot()) for s in states]
    restore = timed(rounds, lambda: [ProfileState.from_snapshot(orjson.loads(b)) for b in blobs])
    print(f"to_snapshot + orjson    : {snap * 1e6 / count:>10.1f} µs/profile")
    print(f"from_snapshot (+ loads) : {restore * 1e6 / count:>10.1f} µs/profile")
    print(f"attributes(now)         : {attrs * 1e6 / count:>10.1f} µs/profile")

    sizes = sorted(len(b) for b in blobs)
    per_profile = sorted(Counter(owner).values())
    print(
        f"snapshot bytes (orjson) : median {quantile(sizes, 0.5):,}  p95 {quantile(sizes, 0.95):,}  max {sizes[-1]:,}  "
        f"mean {statistics.mean(sizes):,.0f}"
    )
    print(
        f"events per profile      : median {quantile(per_profile, 0.5)}  p95 {quantile(per_profile, 0.95)}  max {per_profile[-1]}"
    )

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    kept = fold_all(events, owner, count)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    print(f"Python memory (traced)  : {used / len(kept):,.0f} bytes/profile on average")
    return {
        "name": "profile_fold",
        "description": f"ProfileState.apply on {n:,} demo events ({count:,} profiles), one core (pure domain)",
        "apply_events_per_s": n / in_order,
        "apply_events_per_s_shuffled": n / any_order,
        "snapshot_bytes_median": quantile(sizes, 0.5),
        "snapshot_bytes_p95": quantile(sizes, 0.95),
        "memory_bytes_per_profile": used / len(kept),
    }


if __name__ == "__main__":
    main()
