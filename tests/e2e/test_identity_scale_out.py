"""Scale-out (issue 3): ``cdp up`` plus a second worker process (``cdp run identity``) on 4
partitions end with exactly the profiles one worker gets by folding the same observations in order."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from schemas import topics
from services.core.kafka.broker import free_port
from services.demo.generator import DemoConfig, generate_history
from services.identity.streaming.simulation import run_sequentially
from tests.e2e.cdp_process import CdpProcess, wait_for
from tests.integration.identity.test_identity_worker import read_all

NOW = datetime(2026, 11, 22, tzinfo=UTC)


@pytest.fixture
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CdpProcess, int]]:
    root = tmp_path_factory.mktemp("scale")
    cdp = CdpProcess(root / "data", free_port(), free_port(), free_port(), "scale-write-key")
    cdp.start()
    metrics_port = free_port()
    worker = cdp.run_identity_worker(metrics_port)
    try:
        yield cdp, metrics_port
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        cdp.stop()


def published(url: str) -> float:
    """``cdp_identity_profiles_published`` of one worker's /metrics."""
    try:
        text = httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return -1.0
    for line in text.splitlines():
        if line.startswith("cdp_identity_profiles_published_total ") or line.startswith(
            "cdp_identity_profiles_published "
        ):
            return float(line.split()[1])
    return 0.0


def stored_profiles(cdp: CdpProcess) -> dict[str, tuple[dict, frozenset[str]]]:
    rows = (
        cdp.clickhouse()
        .query("SELECT profile_id, snapshot, identifiers FROM cdp.profiles FINAL WHERE live")
        .result_rows
    )
    return {pid: (orjson.loads(snapshot), frozenset(ids)) for pid, snapshot, ids in rows}


def test_two_worker_processes_equal_one_worker_in_order(two_workers: tuple[CdpProcess, int]):
    cdp, metrics_port = two_workers
    second = f"http://127.0.0.1:{metrics_port}/metrics"
    wait_for(lambda: published(second) >= 0, 60)  # the second worker is up
    time.sleep(3)  # let the group settle with both members
    messages = list(generate_history(DemoConfig(customers=60, days=30, seed=11, end=NOW)))
    for start in range(0, len(messages), 250):
        response = cdp.post("/v1/batch", {"batch": messages[start : start + 250]})
        assert response.status_code == 200, response.text

    events = lambda: cdp.clickhouse().query("SELECT count() FROM cdp.events").result_rows[0][0]  # noqa: E731
    wait_for(lambda: events() == len(messages), 120)

    # Settled: the stored profiles stop changing.
    last: list[object] = [None]

    def quiet() -> bool:
        now = stored_profiles(cdp)
        same, last[0] = now == last[0], now
        return same

    wait_for(quiet, 120, interval=2.0)
    assert published(second) > 0, "the second worker folded nothing: the test would not prove scale-out"
    assert published(f"{cdp.url}/metrics") > 0

    observations = [
        ("event", orjson.loads(v)) for _, v in read_all(cdp.bootstrap, topics.IDENTITY_OBSERVATIONS)
    ]
    assert len(observations) == len(messages)
    reference = run_sequentially(observations, lambda: NOW)
    stored = stored_profiles(cdp)
    expected = {
        pid: (orjson.loads(orjson.dumps(folded.state.to_snapshot())), frozenset(folded.identifiers))
        for pid, folded in reference.fold.live.items()
    }
    assert len(expected) > 30
    assert set(stored) == set(expected)
    for pid, want in expected.items():
        assert stored[pid] == want, pid
