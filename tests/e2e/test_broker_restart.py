"""Broker restart in single-node mode (issue 7, fault tolerance): ``kill -9`` of ``cdp up``'s Tansu
broker while traffic flows. The platform rebuilds on a new broker by itself, names exactly the
acknowledged events that were lost with it, and keeps profiles and segment memberships exact for
everything that reached the warehouse; a second loss after a quiet period costs nothing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from services.core.kafka.broker import free_port
from tests.e2e.cdp_process import CdpProcess, wait_for

THRESHOLD = 3  # the segment: orders_count >= 3


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CdpProcess]:
    root = tmp_path_factory.mktemp("broker-restart")
    handle = CdpProcess(
        root / "data", free_port(), free_port(), free_port(), "broker-restart-key",
        extra_env={"CDP_SEGMENTS_LIBRARY": "false"},
    )  # fmt: skip
    handle.start()
    yield handle
    if handle.process is not None:
        handle.stop()


def _child(cdp: CdpProcess, pattern: str) -> int | None:
    assert cdp.process is not None
    found = subprocess.run(["pgrep", "-P", str(cdp.process.pid), "-f", pattern],
                           capture_output=True, text=True, check=False)  # fmt: skip
    pids = [int(pid) for pid in found.stdout.split()]
    return pids[0] if pids else None


def _order(customer: str, n: int) -> dict[str, Any]:
    message_id = f"{customer}-o{n}"
    return {"type": "track", "event": "Order Completed", "userId": customer, "messageId": message_id,
            "timestamp": datetime.now(UTC).isoformat(),
            "properties": {"order_id": message_id, "revenue": 10.0}}  # fmt: skip


class Traffic:
    """Orders for ``customers`` in small batches; a batch that is not accepted is sent again (the
    same messageIds) until it is, as a tracking SDK does. Every answer other than 200 is kept."""

    def __init__(self, cdp: CdpProcess, customers: list[str]) -> None:
        self._cdp = cdp
        self._customers = customers
        self.acked: list[str] = []
        self.refusals: list[tuple[int, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic")

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        n = 0
        with httpx.Client(auth=(self._cdp.write_key, ""), timeout=30) as client:
            while not self._stop.is_set():
                batch = [_order(c, n) for c in self._customers[n % 2 :: 2]]
                while True:
                    try:
                        response = client.post(f"{self._cdp.url}/v1/batch", json={"batch": batch})
                    except httpx.HTTPError as exc:  # kept: the test expects none
                        self.refusals.append((0, repr(exc)))
                    else:
                        if response.status_code == 200:
                            break
                        self.refusals.append((response.status_code, response.headers.get("retry-after")))
                    time.sleep(0.2)
                self.acked.extend(event["messageId"] for event in batch)
                n += 1
                time.sleep(0.05)


def send(cdp: CdpProcess, events: list[dict[str, Any]]) -> list[str]:
    response = cdp.post("/v1/batch", {"batch": events})
    assert response.status_code == 200, response.text
    return [event["messageId"] for event in events]


def stored_ids(cdp: CdpProcess) -> set[str]:
    return {row[0] for row in cdp.clickhouse().query("SELECT message_id FROM cdp.events").result_rows}


def lost_files(cdp: CdpProcess) -> list[Path]:
    return sorted((cdp.data_dir / "lost").glob("*.txt"))


def listed_ids(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]


def metric(cdp: CdpProcess, name: str) -> float | None:
    match = re.search(rf"^{name} (\S+)$", httpx.get(f"{cdp.url}/metrics", timeout=10).text, re.MULTILINE)
    return float(match.group(1)) if match else None


def ready(cdp: CdpProcess) -> bool:
    try:
        return httpx.get(f"{cdp.url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def kill_broker(cdp: CdpProcess) -> None:
    """kill -9 of the Tansu child; returns once the platform runs on a new one and is ready."""
    victim = _child(cdp, "tansu")
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: _child(cdp, "tansu") not in (None, victim), timeout=60)
    wait_for(lambda: ready(cdp), timeout=60)


def differences(cdp: CdpProcess, segment: str) -> list[str]:
    """What keeps profiles and memberships from being exact: every profile's orders_count must be
    the number of its orders in ``events``, and the segment's members exactly the profiles with at
    least THRESHOLD of them."""
    client = cdp.clickhouse()
    stored = dict(client.query(
        "SELECT profile_id, count() FROM cdp.events WHERE event = 'Order Completed' GROUP BY profile_id"
    ).result_rows)  # fmt: skip
    profiles = dict(client.query("SELECT profile_id, orders_count FROM cdp.profiles_latest").result_rows)
    members = {row[0] for row in client.query(
        "SELECT profile_id FROM cdp.segment_membership FINAL WHERE segment_id = {s:String} AND member",
        parameters={"s": segment},
    ).result_rows}  # fmt: skip
    expected = {profile for profile, count in stored.items() if count >= THRESHOLD}
    wrong = [
        f"{profile}: orders_count {profiles.get(profile)}, {stored.get(profile)} stored"
        for profile in sorted(set(profiles) | set(stored))
        if profiles.get(profile) != stored.get(profile)
    ]
    if members != expected:
        wrong.append(f"members: extra {sorted(members - expected)}, missing {sorted(expected - members)}")
    return wrong


def assert_exact(cdp: CdpProcess, segment: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while wrong := differences(cdp, segment):
        assert time.monotonic() < deadline, wrong
        time.sleep(1.0)


def test_a_killed_broker_is_replaced_and_exactly_the_lost_events_are_named(platform: CdpProcess) -> None:
    run = uuid.uuid4().hex[:6]
    segment = f"bk_{run}"
    response = platform.admin("POST", "/api/v1/segments", content=orjson.dumps(
        {"id": segment, "name": "Three orders", "rule": {"attribute": "orders_count", "op": ">=", "value": THRESHOLD}}
    ))  # fmt: skip
    assert response.status_code == 200, response.text
    steady = [f"{run}-s{i}" for i in range(16)]
    edge = [f"{run}-e{i}" for i in range(8)]  # two orders stored, the third one lost with the broker
    before = send(platform, [_order(c, n) for c in edge for n in (1, 2)])

    with Traffic(platform, steady) as traffic:
        wait_for(lambda: set(before) <= stored_ids(platform) and len(stored_ids(platform)) > len(before), 90)
        # Hold the identity worker: what Kafka acknowledges from now on cannot reach the warehouse.
        identity = _child(platform, "run identity")
        assert identity is not None
        os.kill(identity, signal.SIGSTOP)
        doomed = send(platform, [_order(c, 3) for c in edge])
        time.sleep(1.0)
        kill_broker(platform)
        report = wait_for(lambda: lost_files(platform), timeout=30)[0]
        time.sleep(3)  # traffic on the new broker
    lost = listed_ids(report)
    acked = set(before) | set(traffic.acked) | set(doomed)

    # Everything acknowledged is in the warehouse, except exactly the events the report names.
    wait_for(lambda: stored_ids(platform) | set(lost) == acked, timeout=90, interval=1.0)
    stored = stored_ids(platform)
    assert stored.isdisjoint(lost)
    assert set(doomed) <= set(lost)
    assert len(lost) == len(set(lost))
    assert traffic.refusals and all(refusal == (503, "1") for refusal in traffic.refusals), traffic.refusals
    assert f"{len(lost):,} events acknowledged to clients never reached the warehouse" in platform.log()
    assert_exact(platform, segment)

    # The lost events are accepted again when their source re-sends them: now the edge customers
    # have three orders and enter the segment.
    send(platform, [_order(c, 3) for c in edge])
    wait_for(lambda: set(doomed) <= stored_ids(platform), timeout=60)
    assert_exact(platform, segment)

    # A second loss after a quiet period (everything acknowledged is in the warehouse) costs nothing.
    wait_for(lambda: metric(platform, "cdp_ingest_events_unconfirmed") == 0.0, timeout=30)
    kill_broker(platform)
    wait_for(
        lambda: "the Kafka broker exited with code -9: no acknowledged event was lost" in platform.log(), 30
    )
    assert lost_files(platform) == [report]
    assert metric(platform, "cdp_broker_restarts_total") == 2.0
    assert metric(platform, "cdp_events_lost_total") == float(len(lost))
    late = send(platform, [_order(f"{run}-late", n) for n in (1, 2, 3)])
    wait_for(lambda: set(late) <= stored_ids(platform), timeout=60)
    assert_exact(platform, segment)
