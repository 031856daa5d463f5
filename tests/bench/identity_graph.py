"""Identity graph: memory per identifier and ``observe`` throughput (not collected by pytest).

Run: ``.venv/bin/python -m tests.bench.identity_graph [--identifiers 1000000]``

A synthetic shop population: every person has one or two device ids, most an email, many a
customer id, some a phone and a chat handle. Events carry three identifiers each, as an identify
call (anonymous id, customer id, email) or an order (customer id, email, phone) does.
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime

from services.identity.domain import Identifier, IdentityGraph, IdType, LinkRule, Provenance

WHEN = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def person(index: int, rng: random.Random) -> list[Identifier]:
    ids = [Identifier(IdType.ANONYMOUS_ID, f"{rng.getrandbits(128):032x}")]
    if rng.random() < 0.5:
        ids.append(Identifier(IdType.ANONYMOUS_ID, f"{rng.getrandbits(128):032x}"))
    if rng.random() < 0.8:
        ids.append(Identifier(IdType.EMAIL, f"kundin.{index}@gmx.de"))
    if rng.random() < 0.6:
        ids.append(Identifier(IdType.CUSTOMER_ID, f"K{index:09d}"))
    if rng.random() < 0.3:
        ids.append(Identifier(IdType.PHONE, f"+49151{index:08d}"))
    if rng.random() < 0.2:
        ids.append(Identifier(IdType.CHAT_HANDLE, f"visitor-{rng.getrandbits(40):010x}"))
    return ids


def events(identifiers: int, seed: int = 7) -> Iterator[tuple[list[Identifier], Provenance]]:
    """Events until ``identifiers`` distinct identifiers were sent: each person's ids in threes."""
    rng = random.Random(seed)
    sent = index = 0
    while sent < identifiers:
        ids = person(index, rng)
        sent += len(ids)
        for start in range(0, len(ids), 2):  # overlapping triples link the whole person
            chunk = ids[start : start + 3]
            yield chunk, Provenance(f"msg-{index}-{start}", "Identify", WHEN, LinkRule.IDENTIFY)
        index += 1


def shop_stream(people: int, events_per_person: int, seed: int = 11) -> list[list[Identifier]]:
    """Logged-in traffic: each event is one person's device id, customer id and email."""
    rng = random.Random(seed)
    population = [
        (
            [
                Identifier(IdType.ANONYMOUS_ID, f"{rng.getrandbits(128):032x}")
                for _ in range(rng.randint(1, 3))
            ],
            Identifier(IdType.CUSTOMER_ID, f"K{index:09d}"),
            Identifier(IdType.EMAIL, f"kundin.{index}@gmx.de"),
        )
        for index in range(people)
    ]
    stream = []
    for _ in range(people * events_per_person):
        devices, customer_id, email = rng.choice(population)
        stream.append([rng.choice(devices), customer_id, email])
    return stream


def memory(identifiers: int) -> float:
    tracemalloc.start()
    graph = IdentityGraph()
    for ids, provenance in events(identifiers):
        graph.observe(ids, provenance)
    current, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stats = graph.stats()
    print(f"memory: {stats}")
    print(f"memory: {current / 2**20:.1f} MiB traced, {current / stats.identifiers:.0f} bytes per identifier")
    return current / stats.identifiers


def throughput(identifiers: int) -> dict[str, float]:
    batch = [(ids, provenance) for ids, provenance in events(identifiers) if len(ids) == 3]
    graph = IdentityGraph()
    started = time.perf_counter()
    for ids, provenance in batch:
        graph.observe(ids, provenance)
    fresh = time.perf_counter() - started
    started = time.perf_counter()
    for ids, provenance in batch:
        graph.observe(ids, provenance)
    known = time.perf_counter() - started
    print(f"observe, 3 identifiers, first sighting (adds + links): {len(batch) / fresh:,.0f} events/s")
    print(f"observe, 3 identifiers, known and linked (steady state): {len(batch) / known:,.0f} events/s")
    stream = shop_stream(people=len(batch) // 10, events_per_person=10)
    graph = IdentityGraph()
    provenance = Provenance("msg", "Page Viewed", WHEN, LinkRule.SAME_EVENT)
    started = time.perf_counter()
    for ids in stream:
        graph.observe(ids, provenance)
    mixed = time.perf_counter() - started
    print(
        f"observe, 3 identifiers, shop stream (10 events per person, {graph.stats().identifiers:,} identifiers):"
        f" {len(stream) / mixed:,.0f} events/s"
    )
    return {"new": len(batch) / fresh, "known": len(batch) / known, "shop_stream": len(stream) / mixed}


def run(identifiers: int = 1_000_000) -> dict[str, object]:
    """The numbers ``make bench`` reports: observe throughput and memory per identifier."""
    rates = throughput(min(identifiers, 500_000))
    return {
        "name": "identity_graph",
        "description": "IdentityGraph.observe, 3 identifiers per event, one core (pure domain, no Kafka)",
        "observe_events_per_s_new": rates["new"],
        "observe_events_per_s_known": rates["known"],
        "observe_events_per_s_shop_stream": rates["shop_stream"],
        "bytes_per_identifier": memory(identifiers),
        "identifiers": identifiers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--identifiers", type=int, default=1_000_000)
    args = parser.parse_args()
    run(args.identifiers)


if __name__ == "__main__":
    main()
