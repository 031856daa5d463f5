"""The platform as separate processes (issue 7, Build 2): ``cdp run broker`` and ``cdp run
warehouse`` as the stand-ins for Kafka and ClickHouse, then ``cdp run ingest``, two ``cdp run
identity`` replicas and ``cdp run segments``, configured only by their environment. Realistic
traffic and a segment applied through the admin API end in the warehouse and on Kafka exactly
once, also when one identity replica is stopped (SIGTERM) while traffic flows."""

from __future__ import annotations

import signal
import subprocess
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from schemas import topics
from services.demo.generator import DemoConfig, generate_history
from services.identity.streaming.simulation import run_sequentially
from tests.e2e.cdp_process import CDP, wait_for
from tests.e2e.split_stack import SplitStack
from tests.integration.identity.test_identity_worker import read_all

NOW = datetime(2026, 11, 22, tzinfo=UTC)
BATCH = 100


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SplitStack]:
    handle = SplitStack(tmp_path_factory.mktemp("split"), identity_replicas=2)
    try:
        handle.start()
        yield handle
    finally:
        codes = handle.stop()
    assert all(code == 0 for code in codes.values()), f"{codes}\n{handle.logs()}"


def send_all(
    stack: SplitStack, messages: list[dict[str, Any]], first_sent: threading.Event | None = None
) -> None:
    for start in range(0, len(messages), BATCH):
        response = stack.post("/v1/batch", {"batch": messages[start : start + BATCH]})
        assert response.status_code == 200, response.text
        if first_sent is not None:
            first_sent.set()


def stored_profiles(stack: SplitStack) -> dict[str, tuple[dict[str, Any], frozenset[str]]]:
    rows = stack.clickhouse().query(
        "SELECT profile_id, snapshot, identifiers FROM cdp.profiles FINAL WHERE live"
    )
    return {pid: (orjson.loads(snapshot), frozenset(ids)) for pid, snapshot, ids in rows.result_rows}


def published(stack: SplitStack, name: str) -> float:
    """``cdp_identity_profiles_published`` of one identity replica."""
    text = httpx.get(f"{stack.services[name].health_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == "cdp_identity_profiles_published":
            return sum(sample.value for sample in family.samples if sample.name.endswith("_total"))
    return 0.0


def test_every_process_is_alive_and_ready(stack: SplitStack) -> None:
    served = {name: service for name, service in stack.services.items() if service.health_url}
    assert set(served) == {"ingest", "identity-0", "identity-1", "segments"}
    for name, service in served.items():
        assert service.probe("/healthz") == 200, name
        ready = httpx.get(f"{service.health_url}/readyz", timeout=10).json()
        assert ready["ready"] is True, (name, ready)
        assert ready["checks"]["kafka"] is True and ready["checks"]["warehouse"] is True, (name, ready)
    # The workers run their topic sinks (no cdp up runs them here); ingest runs none.
    identity_metrics = httpx.get(f"{served['identity-0'].health_url}/metrics", timeout=10).text
    assert "cdp_warehouse_insert_duration_seconds" in identity_metrics
    assert "cdp_identity_observations_total" in identity_metrics
    assert "cdp_warehouse_rows_written" not in httpx.get(f"{stack.url}/metrics", timeout=10).text


def test_traffic_lands_exactly_once_while_an_identity_replica_stops(stack: SplitStack) -> None:
    segment = f"split_repeat_{uuid.uuid4().hex[:6]}"
    applied = stack.admin("POST", "/api/v1/segments", content=orjson.dumps(
        {"id": segment, "name": "Repeat buyers (split test)",
         "rule": {"attribute": "orders_count", "op": ">=", "value": 2}}
    ))  # fmt: skip
    assert applied.status_code == 200, applied.text
    messages = list(generate_history(DemoConfig(customers=60, days=60, seed=23, end=NOW)))
    half = len(messages) // 2
    send_all(stack, messages[:half])

    # Both replicas took part (each folded profiles of its partitions) before one of them stops.
    for name in ("identity-0", "identity-1"):
        wait_for(lambda name=name: published(stack, name) > 0, 60)
    # The second half flows while one identity replica is stopped; the other takes over its partitions.
    first_sent = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        sending = pool.submit(send_all, stack, messages[half:], first_sent)
        assert first_sent.wait(30)
        stopped = stack.services["identity-1"].stop(signal.SIGTERM, timeout=60)
        sending.result(60)
    assert stopped == 0, stack.services["identity-1"].log()

    # Every accepted event is in the warehouse exactly once.
    count = "SELECT count(), uniqExact(message_id) FROM cdp.events"
    events = lambda: tuple(stack.clickhouse().query(count).result_rows[0])  # noqa: E731
    wait_for(lambda: events()[0] >= len(messages), 90)
    assert events() == (len(messages), len(messages))

    # Profiles: exactly those one worker gets by folding the same observations in order (the
    # surviving replica has taken over the stopped one's partitions when they match).
    observations = [
        ("event", orjson.loads(v)) for _, v in read_all(stack.bootstrap, topics.IDENTITY_OBSERVATIONS)
    ]
    assert len(observations) == len(messages)
    reference = run_sequentially(observations, lambda: NOW)
    expected = {
        pid: (orjson.loads(orjson.dumps(folded.state.to_snapshot())), frozenset(folded.identifiers))
        for pid, folded in reference.fold.live.items()
    }
    assert len(expected) > 30
    last: list[dict[str, Any]] = [{}]

    def profiles_match() -> bool:
        last[0] = stored_profiles(stack)
        return last[0] == expected

    try:
        wait_for(profiles_match, 90, interval=1.0)
    except AssertionError:
        stored = last[0]
        wrong = sorted(pid for pid in set(stored) | set(expected) if stored.get(pid) != expected.get(pid))
        raise AssertionError(
            f"{len(wrong)} profiles differ (missing: {len(set(expected) - set(stored))}, extra: "
            f"{len(set(stored) - set(expected))}), e.g. {wrong[:3]}\n{stack.logs()}"
        ) from None

    # Segment transitions: on Kafka and in segment_membership_log, each exactly once, and the net
    # membership is the set of profiles with at least two orders.
    buyers = "SELECT profile_id FROM cdp.profiles FINAL WHERE live AND orders_count >= 2"
    repeat = {pid for (pid,) in stack.clickhouse().query(buyers).result_rows}
    assert repeat, "no repeat buyer in the traffic: the segment check would prove nothing"

    def transitions() -> list[tuple[str, int, str]]:
        records = [orjson.loads(v) for _, v in read_all(stack.bootstrap, topics.SEGMENT_MEMBERSHIP)]
        return sorted((r["profileId"], r["seq"], r["action"]) for r in records if r["segmentId"] == segment)

    def logged() -> list[tuple[str, int, str]]:
        query = "SELECT profile_id, seq, action FROM cdp.segment_membership_log WHERE segment_id = {s:String}"
        rows = stack.clickhouse().query(query, parameters={"s": segment}).result_rows
        return sorted((pid, int(seq), action) for pid, seq, action in rows)

    def members(feed: list[tuple[str, int, str]]) -> set[str]:
        latest = {pid: action for pid, _seq, action in feed}  # sorted by seq within a profile
        return {pid for pid, action in latest.items() if action == "entered"}

    wait_for(lambda: members(transitions()) == repeat, 60)
    on_kafka = transitions()
    wait_for(lambda: logged() == on_kafka, 30)
    assert not [key for key, n in Counter((pid, seq) for pid, seq, _ in on_kafka).items() if n > 1]
    for pid in {pid for pid, _, _ in on_kafka}:
        feed = [(seq, action) for p, seq, action in on_kafka if p == pid]
        assert [seq for seq, _ in feed] == list(range(1, len(feed) + 1)), (pid, feed)
        assert [action for _, action in feed] == ["entered", "exited"] * (len(feed) // 2) + ["entered"] * (
            len(feed) % 2
        ), (pid, feed)

    # The remaining processes stay ready.
    for name in ("ingest", "identity-0", "segments"):
        assert stack.services[name].probe("/readyz") == 200, name


def test_a_service_that_cannot_start_says_what_is_missing(stack: SplitStack) -> None:
    def refusal(service: str, env: dict[str, str]) -> str:
        done = subprocess.run([CDP, "run", service], env=env, capture_output=True, timeout=60, check=False)
        assert done.returncode == 1, done
        return " ".join(done.stderr.decode().split())

    no_token = {k: v for k, v in stack.service_env("refused").items() if k != "CDP_ADMIN_TOKEN"}
    assert "needs CDP_ADMIN_TOKEN in distributed mode" in refusal("ingest", no_token)
    wrong_password = stack.service_env("refused", CDP_CLICKHOUSE_URL=stack.clickhouse_url.replace("@", "x@"))
    assert "the warehouse does not answer" in refusal("identity", wrong_password)
