"""Fault tolerance (issue 7): the real ``cdp up`` against an external warehouse (``cdp run warehouse``)
that it reaches through a TCP proxy the test can cut. One stack for the whole module.

* a poison message on ``cdp.events`` and ``cdp.profiles`` goes to the DLQ and processing goes on;
* kill -9 of the identity worker mid-stream loses and repeats nothing (events, profiles, transitions);
  the segment processor's kill -9 is tested in test_segments_e2e.py;
* a stalled subscriber of the segment topics does not slow the pipeline;
* the warehouse unreachable for 30 s: ingest goes on, the sinks back off and catch up, nothing is
  lost or written twice.

Docs: docs/operations.md, "Faults and recovery".
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from schemas import topics
from services.core.kafka.broker import free_port
from tests.e2e.cdp_process import CDP, CdpProcess, wait_for
from tests.e2e.tcp_proxy import TcpProxy

WRITER_PASSWORD = "faults-writer-password"
OUTAGE_SECONDS = 30.0


@dataclass
class Stack:
    cdp: CdpProcess
    proxy: TcpProxy
    warehouse: subprocess.Popen[bytes]


def _start_warehouse(root: Path, port: int) -> subprocess.Popen[bytes]:
    """``cdp run warehouse`` (its output in ``root/warehouse.log``), once it answers."""
    env = {k: v for k, v in os.environ.items() if k != "CDP_CLICKHOUSE_URL"}
    env["CDP_CLICKHOUSE_WRITER_PASSWORD"] = WRITER_PASSWORD
    log_path = root / "warehouse.log"
    command = [CDP, "run", "warehouse", "--data-dir", str(root / "warehouse"), "--clickhouse-port", str(port)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    def ready() -> bool:
        assert process.poll() is None, log_path.read_text(errors="replace")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).text.strip() == "Ok."
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout=60)
    return process


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("faults")
    warehouse_port = free_port()
    warehouse = _start_warehouse(root, warehouse_port)
    proxy = TcpProxy("127.0.0.1", warehouse_port)
    # The test reads the warehouse directly (clickhouse_port); cdp up and its children write through
    # the proxy, and open no embedded engine of their own.
    cdp = CdpProcess(
        root / "data", free_port(), warehouse_port, free_port(), "faults-write-key",
        extra_env={"CDP_CLICKHOUSE_URL": f"http://cdp:{WRITER_PASSWORD}@127.0.0.1:{proxy.port}"},
    )  # fmt: skip
    try:
        cdp.start()
        yield Stack(cdp, proxy, warehouse)
    finally:
        proxy.resume()
        if cdp.process is not None:
            cdp.stop()
        proxy.close()
        warehouse.send_signal(signal.SIGTERM)
        warehouse.wait(60)


# --- helpers -------------------------------------------------------------------------------------


def iso(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).isoformat().replace("+00:00", "Z")


def send(cdp: CdpProcess, events: list[dict[str, Any]], client: httpx.Client | None = None) -> None:
    response = (client or httpx).post(
        f"{cdp.url}/v1/batch", json={"batch": events}, auth=(cdp.write_key, ""), timeout=30
    )
    assert response.status_code == 200, response.text


def identify(run: str, customer: str) -> dict[str, Any]:
    return {"type": "identify", "userId": customer, "messageId": f"{customer}-id", "timestamp": iso(),
            "traits": {"email": f"{customer}@example.de", "tier": run}}  # fmt: skip


def order(customer: str, n: int, revenue: float) -> dict[str, Any]:
    return {"type": "track", "event": "Order Completed", "userId": customer, "messageId": f"{customer}-o{n}",
            "timestamp": iso(), "properties": {"order_id": f"{customer}-o{n}", "revenue": revenue,
                                               "currency": "EUR"}}  # fmt: skip


def apply_segment(cdp: CdpProcess, document: dict[str, Any]) -> None:
    response = cdp.admin("POST", "/api/v1/segments", content=orjson.dumps(document))
    assert response.status_code == 200, response.text
    version = response.json()["applied"][0]["version"]

    def backfilled() -> bool:
        segment = cdp.admin("GET", f"/api/v1/segments/{document['id']}").json()
        backfill = segment.get("backfill")
        return bool(segment["version"] == version and backfill and backfill["done"])

    wait_for(backfilled, timeout=60)


def child_pid(cdp: CdpProcess, service: str) -> int | None:
    assert cdp.process is not None
    found = subprocess.run(["pgrep", "-P", str(cdp.process.pid), "-f", f"run {service}"],
                           capture_output=True, text=True, check=False)  # fmt: skip
    pids = [int(p) for p in found.stdout.split()]
    return pids[0] if pids else None


def metrics(cdp: CdpProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{cdp.url}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric_sum(
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(
        value for (sample, sample_labels), value in values.items()
        if sample == name and all(dict(sample_labels).get(k) == v for k, v in labels.items())
    )  # fmt: skip


def query(cdp: CdpProcess, sql: str, **parameters: Any) -> list[tuple[Any, ...]]:
    client = cdp.clickhouse()
    try:
        return [tuple(row) for row in client.query(sql, parameters=parameters).result_rows]
    finally:
        client.close()


def read_topic(bootstrap: str, topic: str, quiet: float = 1.5, timeout: float = 60.0) -> list[bytes]:
    """Every value on ``topic`` (until nothing new came for ``quiet`` seconds)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4()}",
                         "enable.auto.commit": False})  # fmt: skip
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        values: list[bytes] = []
        deadline, last = time.monotonic() + timeout, time.monotonic()
        while time.monotonic() - last < quiet and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.2):
                value = message.value()
                if message.error() is None and value is not None:
                    values.append(value)
                    last = time.monotonic()
        return values
    finally:
        consumer.close()


def transitions(bootstrap: str, segment: str) -> dict[str, list[tuple[int, str]]]:
    """(seq, action) per profile of ``segment`` on cdp.segments.membership."""
    by_profile: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for value in read_topic(bootstrap, topics.SEGMENT_MEMBERSHIP):
        record = orjson.loads(value)
        if record["segmentId"] == segment:
            by_profile[record["profileId"]].append((record["seq"], record["action"]))
    return by_profile


def events_of(cdp: CdpProcess, run: str) -> tuple[int, int]:
    """(rows, distinct message ids) in ``events`` of one test run."""
    rows = query(cdp, "SELECT count(), uniqExact(message_id) FROM cdp.events WHERE startsWith(message_id, {r:String})",
                 r=run)  # fmt: skip
    return int(rows[0][0]), int(rows[0][1])


def repeated_events(cdp: CdpProcess, run: str) -> list[tuple[Any, ...]]:
    """For a failure message: events stored more than once (position, topic, partition, offset of each)."""
    return query(cdp, "SELECT message_id, groupArray(position), groupArray(kafka_topic), groupArray(kafka_partition), "
                      "groupArray(kafka_offset) FROM cdp.events WHERE startsWith(message_id, {r:String}) "
                      "GROUP BY message_id HAVING count() > 1 ORDER BY message_id LIMIT 10", r=run)  # fmt: skip


def profiles_of(cdp: CdpProcess, run: str) -> dict[str, tuple[str, int, float]]:
    """customer id -> (profile id, orders_count, revenue_net) of the live profiles holding one of the run's
    customer ids (a customer id in two live profiles fails the test)."""
    rows = query(cdp, "SELECT profile_id, arrayFilter(i -> startsWith(i, {p:String}), identifiers), orders_count, "
                      "revenue_net FROM cdp.profiles FINAL WHERE live AND arrayExists(i -> startsWith(i, {p:String}), "
                      "identifiers)", p=f"customer_id:{run}")  # fmt: skip
    found: dict[str, tuple[str, int, float]] = {}
    for profile_id, customers, orders, revenue in rows:
        assert len(customers) == 1, (profile_id, customers)
        customer = customers[0].removeprefix("customer_id:")
        assert customer not in found, (
            f"{customer} is in two live profiles: {found[customer][0]}, {profile_id}"
        )
        found[customer] = (profile_id, int(orders), round(float(revenue), 2))
    return found


def quiet_pipeline(cdp: CdpProcess, groups: tuple[str, ...], timeout: float = 60.0) -> None:
    """Every sink group of ``groups`` (prefixes) reports no lag."""

    def quiet() -> bool:
        values = metrics(cdp)
        lags = [v for (name, labels), v in values.items() if name == "cdp_consumer_lag_records"
                and dict(labels)["group"].startswith(groups)]  # fmt: skip
        return bool(lags) and all(v == 0 for v in lags)

    wait_for(quiet, timeout=timeout, interval=1.0)


# --- tests -----------------------------------------------------------------------------------------


def test_a_poison_message_goes_to_the_dlq_and_processing_goes_on(stack: Stack) -> None:
    cdp = stack.cdp
    run = f"poison{uuid.uuid4().hex[:6]}"
    identity_pid, segments_pid = child_pid(cdp, "identity"), child_pid(cdp, "segments")
    before = metrics(cdp)
    segment = f"faults_poison_{run}"
    apply_segment(cdp, {"id": segment, "name": "Poison", "rule": {"trait": "tier", "op": "=", "value": run}})
    # Straight onto the topics, past ingest's validation: raw bytes, and JSON that breaks the schema.
    not_json = f"{run} \x00 not json {{".encode()
    not_an_event = orjson.dumps({"messageId": f"{run}-bad", "type": "track", "timestamp": "yesterday-ish"})
    not_a_profile = orjson.dumps({"profileId": f"{run}-ghost", "version": "one"})
    producer = Producer({"bootstrap.servers": cdp.bootstrap})
    partitions = len(producer.list_topics(topics.EVENTS, timeout=10).topics[topics.EVENTS].partitions)
    for partition in range(partitions):  # in front of whatever comes next, on every partition
        producer.produce(topics.EVENTS, not_json, partition=partition)
        producer.produce(topics.EVENTS, not_an_event, partition=partition)
        producer.produce(topics.PROFILES, not_json, key=f"{run}-ghost".encode(), partition=partition)
        producer.produce(topics.PROFILES, not_a_profile, key=f"{run}-ghost".encode(), partition=partition)
    assert producer.flush(10) == 0
    customers = [f"{run}-c{i}" for i in range(8)]
    send(cdp, [identify(run, c) for c in customers])

    # Processing went on: the later events are stored and decided, the segment entered.
    wait_for(lambda: events_of(cdp, run) == (len(customers), len(customers)), timeout=60)
    wait_for(lambda: len(profiles_of(cdp, run)) == len(customers), timeout=60)
    wait_for(lambda: sum(len(t) for t in transitions(cdp.bootstrap, segment).values()) == len(customers),
             timeout=60)  # fmt: skip

    letters = [orjson.loads(v) for v in read_topic(cdp.bootstrap, topics.EVENTS_DLQ)]
    mine = [letter for letter in letters if run in letter["payload"]]
    by_place = sorted((letter["endpoint"], letter["reason"], letter["payload"]) for letter in mine)
    expected = sorted(
        [(topics.EVENTS, "malformed_json", not_json.decode())] * partitions
        + [(topics.EVENTS, "invalid_event", not_an_event.decode())] * partitions
        + [(topics.PROFILES, "malformed_json", not_json.decode())] * partitions
        + [(topics.PROFILES, "invalid_profile", not_a_profile.decode())] * partitions
    )
    assert by_place == expected
    assert {letter["source"] for letter in mine} == {"kafka"}
    assert all(
        re.match(r"cdp\.\w+ partition \d+ offset \d+: ", letter["errors"][0]["message"]) for letter in mine
    )

    after = metrics(cdp)
    for reason, count in (("malformed_json", 2 * partitions), ("invalid_event", partitions),
                          ("invalid_profile", partitions)):  # fmt: skip
        grown = metric_sum(after, "cdp_dlq_messages_total", reason=reason) - metric_sum(
            before, "cdp_dlq_messages_total", reason=reason
        )
        assert grown == count, (reason, grown, count)
    # No crash, so no crash loop: the same worker processes kept running.
    assert (child_pid(cdp, "identity"), child_pid(cdp, "segments")) == (identity_pid, segments_pid)
    # The poison never became a row.
    assert query(cdp, "SELECT count() FROM cdp.events WHERE message_id = {m:String}", m=f"{run}-bad") == [
        (0,)
    ]


def test_kill_9_of_the_identity_worker_loses_and_repeats_nothing(stack: Stack) -> None:
    cdp = stack.cdp
    run = f"kill{uuid.uuid4().hex[:6]}"
    segment = f"faults_three_orders_{run}"
    # Entered once, at the third order, however the worker batches the profile versions.
    apply_segment(cdp, {"id": segment, "name": "Three orders",
                        "rule": {"attribute": "orders_count", "op": ">=", "value": 3}})  # fmt: skip
    customers = [f"{run}-c{i:02d}" for i in range(50)]
    rounds = 5
    revenue = {c: [round(10 + i + n * 0.25, 2) for n in range(rounds)] for i, c in enumerate(customers)}
    send(cdp, [identify(run, c) for c in customers])
    wait_for(
        lambda: len(profiles_of(cdp, run)) == len(customers), timeout=60
    )  # the worker is busy, not starting
    victim = child_pid(cdp, "identity")
    assert victim is not None
    sent = threading.Event()

    def stream() -> None:
        with httpx.Client() as client:
            for n in range(rounds):
                send(cdp, [order(c, n, revenue[c][n]) for c in customers], client)
                if n == 1:
                    sent.set()
                time.sleep(1.0)

    sender = threading.Thread(target=stream)
    sender.start()
    assert sent.wait(30)
    time.sleep(0.3)  # the second round of orders is on its way through the worker
    os.kill(victim, signal.SIGKILL)
    sender.join()
    restarted = wait_for(
        lambda: (pid := child_pid(cdp, "identity")) not in (None, victim) and pid, timeout=30
    )
    assert restarted

    total = len(customers) * (1 + rounds)
    wait_for(lambda: events_of(cdp, run)[1] == total, timeout=120, interval=1.0)

    def done() -> dict[str, list[tuple[int, str]]] | None:
        found = transitions(cdp.bootstrap, segment)
        complete = len(found) == len(customers)
        return found if complete else None

    try:
        found = wait_for(done, timeout=120, interval=2.0)
    except AssertionError:
        seen = transitions(cdp.bootstrap, segment)
        orders = sorted({o for _p, o, _r in profiles_of(cdp, run).values()})
        raise AssertionError(
            f"transitions of {len(seen)} profiles: {dict(seen)}; order counts {orders}"
        ) from None
    quiet_pipeline(cdp, ("cdp-warehouse-events", "cdp-warehouse-profiles", "cdp-warehouse-segment"))
    # Every accepted event exactly once.
    assert events_of(cdp, run) == (total, total), repeated_events(cdp, run)
    # Every customer one live profile, with every order counted once.
    profiles = profiles_of(cdp, run)
    assert {c: (o, r) for c, (_p, o, r) in profiles.items()} == {
        c: (rounds, round(sum(revenue[c]), 2)) for c in customers
    }
    # Exactly one entry (seq 1) per profile: none lost, none repeated.
    assert set(found) == {p for p, _o, _r in profiles.values()}
    assert all(t == [(1, "entered")] for t in found.values()), dict(found)
    rows = query(cdp, "SELECT count(), uniqExact(profile_id) FROM cdp.segment_membership_log FINAL "
                      "WHERE segment_id = {s:String}", s=segment)  # fmt: skip
    assert rows == [(len(customers), len(customers))]
    assert "the identity worker exited" in cdp.log()


def test_a_stalled_subscriber_does_not_slow_the_pipeline(stack: Stack) -> None:
    cdp = stack.cdp
    run = f"slow{uuid.uuid4().hex[:6]}"
    segment = f"faults_slow_{run}"
    apply_segment(cdp, {"id": segment, "name": "Slow subscriber", "expose": ["email"],
                        "rule": {"trait": "tier", "op": "=", "value": run}})  # fmt: skip
    tail = Consumer({"bootstrap.servers": cdp.bootstrap, "group.id": f"test-{uuid.uuid4()}",
                     "enable.auto.commit": False})  # fmt: skip
    membership_partitions = (
        tail.list_topics(topics.SEGMENT_MEMBERSHIP, timeout=10).topics[topics.SEGMENT_MEMBERSHIP].partitions
    )
    tail.assign([TopicPartition(topics.SEGMENT_MEMBERSHIP, p, OFFSET_END) for p in membership_partitions])
    tail.consume(100, 1.0)  # positions resolved: from here on, only new transitions

    def latencies(label: str, count: int) -> list[float]:
        """Send ``count`` identifies one by one; seconds from each request to its transition on Kafka."""
        sent_at: dict[str, float] = {}
        arrived: dict[str, float] = {}
        with httpx.Client() as client:
            for i in range(count):
                customer = f"{run}-{label}{i}"
                sent_at[customer] = time.monotonic()
                send(cdp, [identify(run, customer)], client)
                time.sleep(0.1)
        deadline = time.monotonic() + 30
        while len(arrived) < count and time.monotonic() < deadline:
            for message in tail.consume(100, 0.1):
                value = message.value()
                if message.error() is not None or value is None:
                    continue
                record = orjson.loads(value)
                if record["segmentId"] == segment:
                    arrived[record["traits"]["email"].removesuffix("@example.de")] = time.monotonic()
        assert len(arrived) == count, f"{label}: {len(arrived)} of {count} transitions within 30 s"
        return [arrived[c] - sent_at[c] for c in sent_at]

    try:
        baseline = latencies("base", 10)
        # The slow subscriber: it reads one record, then stalls (never commits, never polls again).
        stalled = Consumer({"bootstrap.servers": cdp.bootstrap, "group.id": f"slow-subscriber-{run}",
                            "auto.offset.reset": "earliest", "enable.auto.commit": False,
                            "session.timeout.ms": 6000})  # fmt: skip
        stalled.subscribe([topics.segment_feed(segment), topics.SEGMENT_MEMBERSHIP])
        got = wait_for(lambda: stalled.poll(0.5), timeout=30)
        assert got.error() is None
        try:
            slowed = latencies("slow", 10)
            # While it stalls, the pipeline's own groups have nothing left to do.
            quiet_pipeline(cdp, ("cdp-warehouse-segment", "cdp-segments", "cdp-identity"))
        finally:
            stalled.close()
    finally:
        tail.close()
    # Generous margins: the machine is shared; a subscriber that slowed the pipeline would add seconds.
    assert max(slowed) < 15, slowed
    assert statistics.median(slowed) <= 3 * statistics.median(baseline) + 2.0, (baseline, slowed)


def test_warehouse_unavailable_for_30_s_loses_and_repeats_nothing(stack: Stack) -> None:
    cdp, proxy = stack.cdp, stack.proxy
    run = f"outage{uuid.uuid4().hex[:6]}"
    identity_pid, segments_pid = child_pid(cdp, "identity"), child_pid(cdp, "segments")
    before = metrics(cdp)
    logs = cdp.data_dir / "logs"
    log_marks = {
        path: len(_text(path)) for path in (cdp.log_path, logs / "identity.log", logs / "segments.log")
    }
    accepted: list[str] = []
    statuses: list[int] = []
    stop = threading.Event()

    def traffic() -> None:
        n = 0
        with httpx.Client() as client:
            while not stop.is_set():
                customer = f"{run}-c{n % 40:02d}"
                events = (
                    [identify(run, customer), order(customer, n, 5.0)]
                    if n < 40
                    else [order(customer, n, 5.0)]
                )
                response = client.post(f"{cdp.url}/v1/batch", json={"batch": events}, auth=(cdp.write_key, ""),
                                       timeout=30)  # fmt: skip
                statuses.append(response.status_code)
                if response.status_code == 200:
                    accepted.extend(e["messageId"] for e in events)
                n += 1
                time.sleep(0.1)

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        wait_for(lambda: events_of(cdp, run)[0] > 0, timeout=30)  # flowing into the warehouse
        proxy.cut()
        cut_at = time.monotonic()
        stored_at_cut = events_of(cdp, run)[0]

        def unready() -> dict[str, Any] | None:
            response = httpx.get(f"{cdp.url}/readyz", timeout=10)
            body: dict[str, Any] = response.json()
            return body if response.status_code == 503 and body["checks"]["warehouse"] is False else None

        readiness = wait_for(unready, timeout=20)
        assert readiness["checks"]["broker"] is True
        errors_before = metric_sum(before, "cdp_warehouse_insert_errors_total", table="events")

        def backing_off() -> bool:
            """The events sink retries (errors counted) while its lag grows."""
            values = metrics(cdp)
            return (
                metric_sum(values, "cdp_consumer_lag_records", group="cdp-warehouse-events-resolved") > 0
                and metric_sum(values, "cdp_warehouse_insert_errors_total", table="events") > errors_before
            )

        try:
            wait_for(backing_off, timeout=OUTAGE_SECONDS - 5, interval=1.0)
        except AssertionError:
            values = metrics(cdp)
            shown = {k: v for k, v in values.items()
                     if k[0] in ("cdp_consumer_lag_records", "cdp_warehouse_insert_errors_total")}  # fmt: skip
            raise AssertionError(f"no back-off seen: {len(statuses)} requests; {shown}") from None
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - cut_at)))
        assert events_of(cdp, run)[0] == stored_at_cut  # nothing written while cut (the proxy did cut)
        assert child_pid(cdp, "identity") == identity_pid and child_pid(cdp, "segments") == segments_pid
        proxy.resume()
        resumed_at = time.monotonic()
        time.sleep(2.0)
    finally:
        stop.set()
        sender.join()
        proxy.resume()
    # Ingest kept accepting throughout: the outage was lag, not refusals.
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    total = len(set(accepted))
    wait_for(lambda: events_of(cdp, run) == (total, total), timeout=60, interval=1.0)
    caught_up = time.monotonic() - resumed_at
    quiet_pipeline(cdp, ("cdp-warehouse-",), timeout=60)
    assert events_of(cdp, run) == (total, total)
    orders: dict[str, int] = defaultdict(int)
    for message_id in set(accepted):
        if "-o" in message_id:
            orders[message_id.rsplit("-o", 1)[0]] += 1
    wait_for(lambda: {c: o for c, (_p, o, _r) in profiles_of(cdp, run).items()} == dict(orders), timeout=60)
    assert {c: r for c, (_p, _o, r) in profiles_of(cdp, run).items()} == {
        c: 5.0 * n for c, n in orders.items()
    }
    assert httpx.get(f"{cdp.url}/readyz", timeout=10).status_code == 200
    # The workers rode it out: no restart.
    assert child_pid(cdp, "identity") == identity_pid and child_pid(cdp, "segments") == segments_pid
    # Retries in the metrics, and a bounded log: per table one line when it starts failing and one
    # when it works again (a reminder only after a minute).
    after = metrics(cdp)
    assert metric_sum(after, "cdp_warehouse_insert_errors_total") > metric_sum(
        before, "cdp_warehouse_insert_errors_total"
    )
    written = {path: _text(path)[mark:] for path, mark in log_marks.items()}
    main = written[cdp.log_path]
    failed = re.findall(r"warehouse insert into (\w+) failed", main)
    recovered = re.findall(r"warehouse insert into (\w+) works again", main)
    assert "events" in failed and sorted(failed) == sorted(set(failed)), failed
    assert sorted(recovered) == sorted(failed), (failed, recovered)
    assert "still failing" not in main
    for path, text in written.items():
        assert "Traceback" not in text, f"{path}:\n{text[-3000:]}"
        # Each retrying task (sink, reload, schedule) says once that it fails: no line per attempt.
        tasks = re.findall(r"WARNING ([\w.]+): (.+?) failed \(", text)
        assert len(tasks) == len(set(tasks)), f"{path}: {tasks}"
        assert len(text.splitlines()) <= 40, f"{path}: {len(text.splitlines())} lines\n{text[-3000:]}"
    print(f"caught up {caught_up:.1f} s after the warehouse came back")


def _text(path: Path | None) -> str:
    return path.read_text(errors="replace") if path is not None and path.exists() else ""
