"""Real-time segments in the running platform (issue 4's acceptance): entries and exits reach Kafka
as they happen, a window exit happens when time passes with no new event, consent gates the
activation feed, and a killed segment processor is restarted without losing or repeating a
transition."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from schemas import topics
from services.core.kafka.broker import free_port
from tests.e2e.cdp_process import CDP, CdpProcess, wait_for


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CdpProcess]:
    root = tmp_path_factory.mktemp("segments")
    handle = CdpProcess(root / "data", free_port(), free_port(), free_port(), "segments-write-key")
    handle.start()
    yield handle
    if handle.process is not None:
        handle.stop()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def read_all(bootstrap: str, topic: str, quiet: float = 2.0, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Every committed record of ``topic`` (read until nothing new came for ``quiet`` seconds)."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4()}", "enable.auto.commit": False,
        "isolation.level": "read_committed",
    })  # fmt: skip
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
        records: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() - last < quiet and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.2):
                if message.error() is None and message.value():
                    records.append(orjson.loads(message.value()))
                    last = time.monotonic()
        return records
    finally:
        consumer.close()


def apply(cdp: CdpProcess, document: dict[str, Any]) -> int:
    response = cdp.admin("POST", "/api/v1/segments", content=orjson.dumps(document))
    assert response.status_code == 200, response.text
    version: int = response.json()["applied"][0]["version"]

    def backfilled() -> bool:
        segment = cdp.admin("GET", f"/api/v1/segments/{document['id']}").json()
        backfill = segment.get("backfill")
        return bool(segment["version"] == version and backfill and backfill["done"])

    wait_for(backfilled, timeout=30)
    return version


def send(cdp: CdpProcess, events: list[dict[str, Any]]) -> None:
    response = cdp.post("/v1/batch", {"batch": events})
    assert response.status_code == 200, response.text


def test_a_bad_definition_is_refused_with_its_path_and_changes_nothing(platform: CdpProcess) -> None:
    before = platform.admin("GET", "/api/v1/segments").json()["segments"]
    bad = {
        "id": "broken",
        "name": "Broken",
        "rule": {"all": [{"event": "Order Completed", "within": "3 months"}]},
    }
    response = platform.admin("POST", "/api/v1/segments", content=orjson.dumps(bad))
    assert response.status_code == 400
    assert any(p.startswith("rule.all[0].within: ") for p in response.json()["problems"]), response.text
    assert platform.admin("GET", "/api/v1/segments").json()["segments"] == before
    # The built-in library was applied on first start.
    assert {"vip", "repeat_buyers", "cart_abandoners", "unhappy_customers"} <= {s["id"] for s in before}


def test_window_exit_arrives_when_time_passes_with_no_new_event(platform: CdpProcess) -> None:
    run = uuid.uuid4().hex[:8]
    segment = f"e2e_recent_{run}"
    apply(platform, {"id": segment, "name": "Bought in the last 20 s", "expose": ["email"],
                     "rule": {"event": "Order Completed", "within": "20s"},
                     "activation": {"consent": "email_marketing"}})  # fmt: skip
    now = datetime.now(UTC)
    user = f"{run}-anna"
    send(platform, [
        {"type": "identify", "userId": user, "messageId": f"{run}-1", "timestamp": iso(now),
         "traits": {"email": f"anna-{run}@example.de"}},
        {"type": "track", "event": "Subscribed", "userId": user, "messageId": f"{run}-2", "timestamp": iso(now),
         "properties": {"list_id": "newsletter"}},
        {"type": "track", "event": "Order Completed", "userId": user, "messageId": f"{run}-3",
         "timestamp": iso(now), "properties": {"order_id": f"{run}-o1", "revenue": 30.0}},
    ])  # fmt: skip
    boundary = now + timedelta(seconds=20)

    def transitions(topic: str) -> list[dict[str, Any]]:
        return [r for r in read_all(platform.bootstrap, topic, quiet=1.0) if r["segmentId"] == segment]

    entered = wait_for(lambda: transitions(topics.SEGMENT_MEMBERSHIP), timeout=30)
    assert [(r["action"], r["reason"], r["seq"]) for r in entered] == [("entered", "event", 1)]
    assert entered[0]["traits"] == {"email": f"anna-{run}@example.de"}
    assert entered[0]["cause"]["receivedAt"]
    # Nothing more is sent for this person: the exit comes from the window alone.
    exits = wait_for(lambda: [r for r in transitions(topics.SEGMENT_MEMBERSHIP) if r["action"] == "exited"],
                     timeout=90)  # fmt: skip
    assert [(r["reason"], r["seq"]) for r in exits] == [("time", 2)]
    exited_at = datetime.fromisoformat(exits[0]["at"])
    assert boundary <= exited_at < boundary + timedelta(seconds=60), (boundary, exited_at)
    feed = transitions(topics.segment_feed(segment))
    assert [(r["action"], r["reason"]) for r in feed] == [("entered", "event"), ("exited", "time")]


def test_consent_gates_the_activation_feed_but_not_membership(platform: CdpProcess) -> None:
    run = uuid.uuid4().hex[:8]
    segment = f"e2e_pro_{run}"
    apply(platform, {"id": segment, "name": "Pro plan", "rule": {"trait": "plan", "op": "=", "value": "pro"},
                     "activation": {"consent": "email_marketing", "double_opt_in": True}})  # fmt: skip
    now = datetime.now(UTC)
    send(platform, [
        {"type": "identify", "userId": f"{run}-ben", "messageId": f"{run}-1", "timestamp": iso(now),
         "traits": {"plan": "pro", "email": f"ben-{run}@example.de"}},
        {"type": "track", "event": "Subscribed", "userId": f"{run}-ben", "messageId": f"{run}-2",
         "timestamp": iso(now), "properties": {"list_id": "newsletter"}},
        {"type": "track", "event": "Double Opt-In Confirmed", "userId": f"{run}-ben", "messageId": f"{run}-3",
         "timestamp": iso(now), "properties": {"list_id": "newsletter"}},
        {"type": "identify", "userId": f"{run}-cleo", "messageId": f"{run}-4", "timestamp": iso(now),
         "traits": {"plan": "pro", "email": f"cleo-{run}@example.de"}},
    ])  # fmt: skip

    def of(topic: str, who: str) -> list[tuple[str, str]]:
        records = read_all(platform.bootstrap, topic, quiet=1.0)
        mine = [r for r in records if r["segmentId"] == segment and r["profileId"] == profile_ids[who]]
        return [(r["action"], r["reason"]) for r in mine]

    profile_ids: dict[str, str] = {}
    for who in ("ben", "cleo"):
        found = wait_for(lambda w=who: platform.admin("GET", "/api/v1/profiles/lookup",
                                                       params={"customer_id": f"{run}-{w}"}).json().get("profile_id"))  # fmt: skip
        profile_ids[who] = found
    wait_for(lambda: of(topics.SEGMENT_MEMBERSHIP, "cleo") == [("entered", "event")], timeout=30)
    wait_for(lambda: of(topics.segment_feed(segment), "ben") == [("entered", "event")], timeout=30)
    assert of(topics.segment_feed(segment), "cleo") == []  # a member, but no consent: not activated

    send(platform, [{"type": "track", "event": "Unsubscribed", "userId": f"{run}-ben", "messageId": f"{run}-5",
                     "timestamp": iso(datetime.now(UTC)), "properties": {"list_id": "newsletter"}}])  # fmt: skip
    wait_for(lambda: of(topics.segment_feed(segment), "ben") == [("entered", "event"), ("exited", "consent")],
             timeout=30)  # fmt: skip
    assert of(topics.SEGMENT_MEMBERSHIP, "ben") == [("entered", "event")]  # analysis still sees him

    client = platform.clickhouse()
    wait_for(lambda: len(client.query("SELECT 1 FROM cdp.segment_membership FINAL WHERE segment_id = %(s)s",
                                      parameters={"s": segment}).result_rows) == 2, timeout=30)  # fmt: skip
    rows = client.query(
        "SELECT profile_id, member, activated FROM cdp.segment_membership FINAL WHERE segment_id = %(s)s",
        parameters={"s": segment},
    ).result_rows
    assert sorted(rows) == sorted([(profile_ids["ben"], 1, 0), (profile_ids["cleo"], 1, 0)])
    # The profile 360 lists the membership too.
    profile = platform.admin("GET", f"/api/v1/profiles/{profile_ids['ben']}").json()
    assert [(s["segment_id"], s["activated"]) for s in profile["segments"]] == [(segment, False)]


def _segments_child(cdp: CdpProcess) -> int | None:
    assert cdp.process is not None
    found = subprocess.run(["pgrep", "-P", str(cdp.process.pid), "-f", "run segments"],
                           capture_output=True, text=True, check=False)  # fmt: skip
    pids = [int(p) for p in found.stdout.split()]
    return pids[0] if pids else None


def test_kill_9_of_the_segment_processor_loses_and_repeats_no_transition(platform: CdpProcess) -> None:
    run = uuid.uuid4().hex[:8]
    segment = f"e2e_twothree_{run}"
    # Enter at the second order, exit at the fourth: two transitions per customer, none time-based.
    apply(platform, {"id": segment, "name": "Two or three orders",
                     "rule": {"attribute": "orders_count", "op": "between", "value": [2, 3]}})  # fmt: skip
    customers = [f"{run}-c{i}" for i in range(60)]
    rounds = 5

    def stream() -> None:
        for n in range(rounds):
            now = datetime.now(UTC)
            send(platform, [
                {"type": "track", "event": "Order Completed", "userId": c, "messageId": f"{c}-o{n}",
                 "timestamp": iso(now), "properties": {"order_id": f"{c}-o{n}", "revenue": 10.0}}
                for c in customers
            ])  # fmt: skip
            time.sleep(1.5)

    sender = threading.Thread(target=stream)
    sender.start()
    time.sleep(2.5)  # mid-stream: the second round is being processed
    victim = wait_for(lambda: _segments_child(platform), timeout=10)
    os.kill(victim, signal.SIGKILL)
    sender.join()
    restarted = wait_for(lambda: (pid := _segments_child(platform)) not in (None, victim) and pid, timeout=30)
    assert restarted

    def finished() -> list[dict[str, Any]] | None:
        records = [r for r in read_all(platform.bootstrap, topics.SEGMENT_MEMBERSHIP, quiet=2.0)
                   if r["segmentId"] == segment]  # fmt: skip
        by_profile: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in records:
            by_profile[record["profileId"]].append(record)
        done = len(by_profile) == len(customers) and all(
            recs[-1]["action"] == "exited" for recs in by_profile.values()
        )
        return records if done else None

    try:
        records = wait_for(finished, timeout=120, interval=2.0)
    except AssertionError:
        records = [
            r for r in read_all(platform.bootstrap, topics.SEGMENT_MEMBERSHIP) if r["segmentId"] == segment
        ]
        summary: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
        for r in records:
            summary[r["profileId"]].append((r["seq"], r["action"], r["reason"]))
        raise AssertionError(f"{len(summary)} profiles: {dict(summary)}") from None
    by_profile: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_profile[record["profileId"]].append(record)
    for profile_id, recs in by_profile.items():
        seqs = [r["seq"] for r in recs]
        assert seqs == list(range(1, len(seqs) + 1)), (profile_id, seqs)  # no repeat, no gap
        actions = [r["action"] for r in recs]
        assert actions == ["entered", "exited"] * (len(actions) // 2), (profile_id, actions)
    # And the warehouse log holds every transition once.
    client = platform.clickhouse()
    wait_for(lambda: client.query("SELECT count() FROM cdp.segment_membership_log FINAL WHERE segment_id = %(s)s",
                                  parameters={"s": segment}).result_rows[0][0] == len(records), timeout=30)  # fmt: skip
    assert "restarting it" in platform.log()


def test_cdp_segments_watch_prints_the_feed_like_kcat(platform: CdpProcess) -> None:
    run = uuid.uuid4().hex[:8]
    segment = f"e2e_watch_{run}"
    apply(platform, {"id": segment, "name": "Watch", "rule": {"trait": "tier", "op": "=", "value": run}})
    send(platform, [{"type": "identify", "userId": f"{run}-dora", "messageId": f"{run}-1",
                     "traits": {"tier": run}}])  # fmt: skip
    wait_for(
        lambda: [r for r in read_all(platform.bootstrap, topics.segment_feed(segment), quiet=0.5)], timeout=30
    )
    command = [CDP, "segments", "watch", segment, "--from-beginning"]
    watcher = subprocess.Popen(command, env=platform.env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert watcher.stdout is not None
        line = watcher.stdout.readline()
    finally:
        watcher.send_signal(signal.SIGINT)
        watcher.wait(10)
    record = orjson.loads(line)
    assert (record["segmentId"], record["action"], record["feed"]) == (segment, "entered", "activation")
