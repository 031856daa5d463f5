"""Memory per profile: the identity worker's resident memory and the warehouse's bytes per profile.

    .venv/bin/python -m tests.bench.profile_memory [--profiles 100000]

A fresh Tansu broker with the platform's topics, and one real ``IdentityWorker`` process (the one
of ``tests/bench/identity_pipeline.py``). The worker holds every profile of its partitions in
memory: the identity graph (every identifier and link) and the folded profile states. The events
are synthetic shop customers, each with ``EVENTS_PER_PROFILE`` events through the real ingest
normaliser (an identify with email and name, a page view, three product views, a cart addition,
an order with two lines, an email opened): customer id, device id, email and email recipient id,
one profile each.

The events are produced in steps of ``STEP``, each once the worker has caught up with the ones
before, as under steady traffic: a replay of everything at once would measure the backlog that the
Kafka clients buffer, not the profiles. The worker measures itself (``/proc/self/statm`` after
``gc.collect()``) when asked: after it started and joined its consumer groups but before any event
(the baseline), after the first half of the customers is folded, and after all of them. Reported:

* RSS growth per profile: (end - baseline) / live profiles. Everything the process grew by is in
  it: graph, profile states, Kafka client buffers, and memory the allocator keeps after freeing;
* the marginal growth per profile over the second half: (end - middle) / profiles added, which
  leaves out one-time costs (buffers, caches) that the first half already paid.

The worker's ``cdp.profiles`` records are then inserted into the embedded warehouse's ``profiles``
table the way the profiles sink inserts them (the JSON record as ``_raw`` with its Kafka lineage),
and ``system.parts`` gives the table's bytes on disk per live profile: as inserted (in batches of
``INSERT_ROWS`` records; ClickHouse already keeps only the latest version of a profile id within one
insert), and after ``OPTIMIZE TABLE ... FINAL`` (one row per profile id, what the ReplacingMergeTree
converges to; ids that a merge retired keep their last row). Not collected by pytest: measurements
belong to ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from schemas import topics
from schemas.topics import IDENTITY_TOPICS, PLATFORM_TOPICS
from services.core.kafka.admin import ensure_topics
from services.core.kafka.broker import TansuBroker, free_port
from services.core.topic_sink import INSERT_COLUMNS
from services.core.warehouse.chdb_adapter import ChdbWarehouse
from services.ingest.normalise import NormalisedEvent, normalise
from tests.bench.bench_warehouse import migrated_warehouse
from tests.bench.identity_pipeline import (
    PARTITIONS,
    SETTLE_S,
    KeyedRecord,
    WorkerProcess,
    _looks_done,
    _progress,
    consumer,
    produce_all,
)

EVENTS_PER_PROFILE = 8
START = datetime(2026, 10, 1, tzinfo=UTC)
QUIET_S = 1.5  # the worker's counters say done and did not change for this long
STALL_S = 60.0  # no progress at all for this long: give the measurement up
STEP = 10_000  # events produced at a time, each step once the worker has caught up
INSERT_ROWS = 50_000  # rows per warehouse insert, about what the sink writes at a time


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def customer_messages(n: int, run: str) -> list[dict[str, Any]]:
    """Customer ``n``'s Segment-spec calls: one profile with a customer id, a device id and an email."""
    customer, device, email = f"C{n:08d}", f"{run}-device-{n}", f"kunde.{n}@example.de"
    at = START + timedelta(seconds=n * 7 % 2_592_000)
    product = {"product_id": f"P-{n % 997}", "price": 24.95, "category": "Kueche", "name": "Pfeffermuehle"}
    calls: list[dict[str, Any]] = [
        {"type": "identify", "userId": customer, "anonymousId": device,
         "traits": {"email": email, "first_name": "Anna", "last_name": "Schmidt", "city": "Köln"}},
        {"type": "page", "anonymousId": device, "name": "Startseite",
         "properties": {"url": "https://shop.example.de/"}},
        *({"type": "track", "event": "Product Viewed", "userId": customer, "anonymousId": device,
           "properties": {**product, "product_id": f"P-{(n + i) % 997}"}} for i in range(3)),
        {"type": "track", "event": "Product Added", "userId": customer, "anonymousId": device,
         "properties": {**product, "quantity": 2}},
        {"type": "track", "event": "Order Completed", "userId": customer, "anonymousId": device,
         "properties": {"order_id": f"O-{run}-{n}", "revenue": 74.85, "currency": "EUR",
                        "products": [{**product, "quantity": 2}, {"product_id": "P-1", "price": 24.95,
                                                                   "quantity": 1}]}},
        {"type": "track", "event": "Email Opened",
         "properties": {"email": email, "recipient_id": f"r-{n}", "campaign_id": "nl-2026-47"}},
    ]  # fmt: skip
    assert len(calls) == EVENTS_PER_PROFILE
    for i, call in enumerate(calls):
        call["messageId"] = f"{run}-{n}-{i}"
        call["timestamp"] = _iso(at + timedelta(minutes=i))
    return calls


def canonical_events(customers: range, run: str) -> list[KeyedRecord]:
    """The customers' events as ingest puts them on ``cdp.events``: (partition key, canonical JSON)."""
    received = START + timedelta(days=40)
    records: list[KeyedRecord] = []
    for n in customers:
        for message in customer_messages(n, run):
            event = normalise(message, received_at=received, default_source="bench")
            if not isinstance(event, NormalisedEvent):
                raise RuntimeError(f"the benchmark's own event was rejected: {event}")
            records.append((event.key, event.to_json()))
    return records


def feed(worker: WorkerProcess, bootstrap: str, records: Sequence[KeyedRecord], before: int) -> float:
    """Produce ``records`` in steps of ``STEP`` events, each once the worker has decided the ones
    before it (as under steady traffic: no backlog piles up in the Kafka clients' buffers), then wait
    until all are folded. ``before``: events the worker had already decided. Returns the seconds."""
    started = time.monotonic()
    for start in range(0, len(records), STEP):
        produce_all(bootstrap, records[start : start + STEP])
        target, progressed = before + start, time.monotonic()
        while int(worker.status.get("observations_decided") or 0) < target:
            time.sleep(0.05)
            before_pump = worker.status
            worker.pump()
            if worker.status != before_pump:
                progressed = time.monotonic()
            elif time.monotonic() - progressed > STALL_S:
                raise RuntimeError(f"the worker made no progress for {STALL_S:.0f} s at {worker.status}")
    wait_folded(worker, before + len(records))
    return time.monotonic() - started


def wait_folded(worker: WorkerProcess, events: int) -> float:
    """Wait until the worker has decided ``events`` observations and folded every resolved record;
    returns the seconds it took."""
    started = time.monotonic()
    progress, progressed = _progress([worker]), started
    while True:
        time.sleep(0.1)
        worker.pump()
        now = time.monotonic()
        if _progress([worker]) != progress:
            progress, progressed = _progress([worker]), now
        if _looks_done([worker], events) and now - progressed >= QUIET_S:
            return now - started
        if now - progressed > STALL_S:
            raise RuntimeError(
                f"the worker made no progress for {STALL_S:.0f} s at {worker.status}; its log:\n{worker.log_tail()}"
            )


def profile_records(bootstrap: str, idle: float = 1.0) -> list[tuple[int, int, bytes]]:
    """Every ``cdp.profiles`` record as (partition, offset, value), read until nothing came for ``idle`` s."""
    reader = consumer(bootstrap)
    try:
        listed = reader.list_topics(topics.PROFILES, timeout=10).topics[topics.PROFILES].partitions
        reader.assign([TopicPartition(topics.PROFILES, p, OFFSET_BEGINNING) for p in sorted(listed)])
        records: list[tuple[int, int, bytes]] = []
        last = time.monotonic() + 1.0  # the first fetch after assign takes a moment
        deadline = time.monotonic() + 300
        while time.monotonic() - last < idle and time.monotonic() < deadline:
            for message in reader.consume(10_000, 0.2):
                partition, offset, value = message.partition(), message.offset(), message.value()
                if message.error() is None and partition is not None and offset is not None and value:
                    records.append((partition, offset, value))
                    last = time.monotonic()
        return records
    finally:
        reader.close()


def _parts(warehouse: ChdbWarehouse) -> dict[str, int]:
    row = warehouse.query_dicts(
        "SELECT count() AS parts, sum(rows) AS rows, sum(bytes_on_disk) AS bytes_on_disk, "
        "sum(data_compressed_bytes) AS compressed_bytes, sum(data_uncompressed_bytes) AS uncompressed_bytes "
        "FROM system.parts WHERE database = {db:String} AND table = 'profiles' AND active",
        {"db": warehouse.database},
    )[0]
    return {key: int(value) for key, value in row.items()}


def warehouse_bytes(records: Sequence[tuple[int, int, bytes]]) -> dict[str, Any]:
    """The ``profiles`` table's size after inserting ``records`` as the profiles sink does."""
    with migrated_warehouse("cdp-bench-memory-") as warehouse:
        for start in range(0, len(records), INSERT_ROWS):
            rows = [
                b'{"_raw":%s,"kafka_cluster":"bench","kafka_partition":%d,"kafka_offset":%d}' % (value, p, o)
                for p, o, value in records[start : start + INSERT_ROWS]
            ]
            warehouse.insert_json_rows("profiles", b"\n".join(rows), columns=INSERT_COLUMNS)
        as_inserted = _parts(warehouse)
        warehouse.command(f"OPTIMIZE TABLE {warehouse.database}.profiles FINAL")
        merged = _parts(warehouse)
        live = int(
            warehouse.query(f"SELECT count() FROM {warehouse.database}.profiles FINAL WHERE live")[0][0]
        )
    return {
        "profile_records": len(records),
        "live_profiles": live,
        "as_inserted": as_inserted,
        "after_final_merge": merged,
        "bytes_per_profile": merged["bytes_on_disk"] / live if live else None,
        "bytes_per_profile_as_inserted": as_inserted["bytes_on_disk"] / live if live else None,
        "uncompressed_bytes_per_profile": merged["uncompressed_bytes"] / live if live else None,
    }


def run(profiles: int = 100_000) -> dict[str, Any]:
    """The numbers ``make bench`` reports: worker RSS and warehouse bytes per profile."""
    run_id = uuid.uuid4().hex[:6]
    half = profiles // 2
    started = time.monotonic()
    first = canonical_events(range(half), run_id)
    second = canonical_events(range(half, profiles), run_id)
    print(
        f"memory per profile: {len(first) + len(second):,} events generated in {time.monotonic() - started:.1f} s"
    )
    with (
        tempfile.TemporaryDirectory(prefix="cdp-bench-memory-") as tmp,
        TansuBroker("127.0.0.1", free_port()) as broker,
    ):
        ensure_topics(
            broker.bootstrap, PLATFORM_TOPICS + IDENTITY_TOPICS, partitions=PARTITIONS, replication=1
        )
        worker = WorkerProcess(broker.bootstrap, f"bench-memory-{run_id}", Path(tmp) / "worker.log")
        try:
            worker.wait_ready(120)
            time.sleep(SETTLE_S)  # the consumer groups settle
            worker.tell("go")
            baseline = dict(worker.measure_memory())
            first_s = feed(worker, broker.bootstrap, first, 0)
            middle = dict(worker.measure_memory())
            print(f"memory per profile: first half folded in {first_s:.1f} s, {middle}")
            second_s = feed(worker, broker.bootstrap, second, len(first))
            end = dict(worker.measure_memory())
            print(f"memory per profile: second half folded in {second_s:.1f} s, {end}")
        finally:
            worker.tell("stop")
            worker.stop()
        records = profile_records(broker.bootstrap)
    stored = warehouse_bytes(records)
    live, added = end["live_profiles"], end["live_profiles"] - middle["live_profiles"]
    return {
        "name": "profile_memory",
        "description": (
            f"one IdentityWorker process folding {profiles:,} synthetic shop customers "
            f"({EVENTS_PER_PROFILE} events, 4 identifiers each): RSS growth per profile; the warehouse "
            "profiles table's bytes on disk per profile (system.parts)"
        ),
        "profiles": profiles,
        "events": len(first) + len(second),
        "events_per_profile": EVENTS_PER_PROFILE,
        "worker_memory": {"baseline": baseline, "middle": middle, "end": end},
        "worker_rss_bytes_per_profile": (end["rss_bytes"] - baseline["rss_bytes"]) / live if live else None,
        "worker_rss_bytes_per_profile_marginal": (
            (end["rss_bytes"] - middle["rss_bytes"]) / added if added > 0 else None
        ),
        "fold_seconds": {"first_half": first_s, "second_half": second_s},
        "warehouse": stored,
        "warehouse_bytes_per_profile": stored["bytes_per_profile"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=100_000)
    args = parser.parse_args()
    print(json.dumps(run(args.profiles), indent=2, default=str))


if __name__ == "__main__":
    main()
