"""Customer analytics in the running platform (issue 5): orders sent over HTTP reach the BI views,
``cdp analytics refresh`` scores every customer with a progress bar, ``cdp analytics fit`` prints the
model as JSON, and a segment on the new attributes ("A customers", "A customers likely to churn")
gets its members from the refresh."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from schemas import topics
from services.core.kafka.broker import free_port
from tests.e2e.cdp_process import CDP, CdpProcess, wait_for
from tests.e2e.test_segments_e2e import apply, iso, read_all, send

CUSTOMERS, REPEATERS = 60, 40


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CdpProcess]:
    root = tmp_path_factory.mktemp("analytics")
    handle = CdpProcess(root / "data", free_port(), free_port(), free_port(), "analytics-write-key",
                        extra_env={"CDP_ANALYTICS_REFRESH_SECONDS": "0"})  # fmt: skip
    handle.start()
    yield handle
    if handle.process is not None:
        handle.stop()


def orders(now: datetime) -> tuple[list[dict[str, object]], float]:
    """60 customers over the last 300 days, 40 of them with repeat purchases; their total revenue."""
    rng = random.Random(5)
    events, total = [], 0.0
    for n in range(CUSTOMERS):
        count = rng.randint(2, 6) if n < REPEATERS else 1
        first = rng.uniform(30, 300)
        for k in range(count):
            at = now - timedelta(days=first - k * rng.uniform(3, first / count))
            revenue = round(rng.uniform(10, 80) * (3 if n < 5 else 1), 2)
            total += revenue
            events.append({
                "type": "track", "event": "Order Completed", "userId": f"an-{n}", "messageId": f"an-{n}-{k}",
                "timestamp": iso(at), "properties": {"order_id": f"an-o-{n}-{k}", "revenue": revenue},
            })  # fmt: skip
    return events, round(total, 2)


def cli(platform: CdpProcess, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CDP, "analytics", *args], env=platform.env(), capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


def test_refresh_scores_customers_and_segments_use_the_values(platform: CdpProcess) -> None:
    now = datetime.now(UTC)
    events, total = orders(now)
    for start in range(0, len(events), 100):
        send(platform, events[start : start + 100])
    bi = platform.clickhouse()
    wait_for(lambda: bi.query("SELECT count() FROM cdp.orders").result_rows[0][0] == len(events), timeout=60)
    # The daily KPIs hold every order, and the BI user reads them.
    revenue = bi.query(
        "SELECT sum(revenue), sum(orders) FROM cdp.kpi_daily WHERE channel = 'all'"
    ).result_rows[0]
    assert round(revenue[0], 2) == total and revenue[1] == len(events)

    apply(platform, {"id": "e2e_a_customers", "name": "A customers",
                     "rule": {"attribute": "abc_class", "op": "=", "value": "A"}})  # fmt: skip
    apply(platform, {"id": "e2e_a_at_risk", "name": "A customers likely to churn",
                     "rule": {"all": [{"attribute": "abc_class", "op": "=", "value": "A"},
                                      {"attribute": "churn_risk", "op": ">", "value": 0.6}]}})  # fmt: skip
    assert platform.admin("GET", "/api/v1/segments/e2e_a_customers").json()["members"] == 0

    done = cli(platform, "refresh")
    assert done.returncode == 0, done.stderr
    assert f"{CUSTOMERS} customers scored" in done.stdout and "BG/NBD" in done.stdout
    assert "4/4" in done.stderr  # the progress bar, at its last step

    a_class = {
        r[0]
        for r in bi.query(
            "SELECT profile_id FROM cdp.customer_value_latest WHERE abc_class = 'A'"
        ).result_rows
    }
    at_risk = {
        r[0]
        for r in bi.query(
            "SELECT profile_id FROM cdp.customer_value_latest WHERE abc_class = 'A' AND churn_risk > 0.6"
        ).result_rows
    }
    assert 0 < len(a_class) < CUSTOMERS

    def members(segment: str) -> set[str]:
        answer = platform.admin("GET", f"/api/v1/segments/{segment}/members", params={"limit": "1000"}).json()
        return set(answer["profile_ids"])

    wait_for(lambda: members("e2e_a_customers") == a_class, timeout=30)
    assert members("e2e_a_at_risk") == at_risk
    transitions = [
        r for r in read_all(platform.bootstrap, topics.SEGMENT_MEMBERSHIP, quiet=1.0)
        if r["segmentId"] == "e2e_a_customers"
    ]  # fmt: skip
    assert {r["profileId"] for r in transitions if r["reason"] == "value"} == a_class

    status = cli(platform, "status", "--json")
    assert status.returncode == 0 and orjson.loads(status.stdout)["customers"] == CUSTOMERS


def test_fit_prints_the_model_as_json_and_refuses_bad_input(platform: CdpProcess) -> None:
    today = datetime.now(UTC).date().isoformat()
    fitted = cli(platform, "fit", "--until", today, "--unit", "weeks")
    assert fitted.returncode == 0, fitted.stderr
    model = orjson.loads(fitted.stdout)
    assert model["unit"] == "weeks" and model["until"] == today
    assert set(model["bgnbd"]) >= {"r", "alpha", "a", "b", "log_likelihood", "converged"}
    assert set(model["gamma_gamma"]) >= {"p", "q", "gamma", "log_likelihood", "converged"}
    bad = cli(platform, "fit", "--until", "2026-13-01")
    assert bad.returncode == 1 and "YYYY-MM-DD" in bad.stderr
    refused = platform.admin("GET", "/api/v1/analytics/fit", params={"until": today, "unit": "months"})
    assert refused.status_code == 400 and "days, weeks" in refused.json()["message"]
    assert platform.admin("POST", "/api/v1/analytics/refresh", content=b'{"until": 5}').status_code == 400
