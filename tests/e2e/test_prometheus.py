"""A real Prometheus server scrapes a running ``cdp up`` (whose ``/metrics`` includes its identity and
segment processes), loads the alert rules, and answers the queries of the dashboard: the metrics are
clean under ``promtool check metrics``, every consumer group reports its lag in records and in
seconds, the dead-letter depth and the merges arrive, and no alert or panel names a metric the
platform does not expose."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from services.core.kafka.broker import free_port
from tests.e2e.cdp_process import CdpProcess, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "cdp-pipeline.json"

# Every consumer group of a single node (docs/operations.md, cdp_consumer_lag_records): the warehouse
# sinks, the identity forward group and worker, the segment processor.
CONSUMER_GROUPS = {
    "cdp-warehouse-events-resolved", "cdp-warehouse-events-unresolved", "cdp-warehouse-identity_assignments",
    "cdp-warehouse-profiles", "cdp-warehouse-identity_merges", "cdp-warehouse-identity_refusals",
    "cdp-warehouse-identity_corrections", "cdp-warehouse-profile_redirects",
    "cdp-warehouse-segment_membership_log", "cdp-warehouse-segment_membership",
    "cdp-identity-forward", "cdp-identity", "cdp-segments",
}  # fmt: skip
SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum"),
}


def metrics_text(cdp: CdpProcess) -> str:
    response = httpx.get(f"{cdp.url}/metrics", timeout=10)
    assert response.status_code == 200
    return response.text


def sample_value(text: str, series: str) -> float:
    """The value of one exposition line (``name{labels}`` exactly as exposed); 0 when absent."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def exposed_names(text: str) -> set[str]:
    """Every sample name a query can use: the families' TYPE lines (also families without samples
    yet, such as labelled counters nobody incremented) with their type's suffixes."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ", 3)
            names.add(family)
            names.update(family.removesuffix("_total") + suffix for suffix in SAMPLE_SUFFIXES.get(kind, ()))
    return names


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    queries += [a["expr"] for a in board["annotations"]["list"] if "expr" in a]
    return queries


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def send(cdp: CdpProcess, batch: list[dict[str, Any]]) -> None:
    response = cdp.post("/v1/batch", {"batch": batch})
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def traffic(cdp: CdpProcess) -> str:
    """Events, a merge (two anonymous profiles joined by an email) and a refused event (in the DLQ)."""
    run = uuid.uuid4().hex[:8]
    email = f"merge-{run}@example.de"
    send(cdp, [
        {"type": "track", "event": "Product Viewed", "anonymousId": f"{run}-a", "messageId": f"{run}-1",
         "properties": {"product_id": "P-1"}},
        {"type": "identify", "anonymousId": f"{run}-b", "messageId": f"{run}-2", "traits": {"email": email}},
    ])  # fmt: skip
    # Only after both profiles exist does the second visit of a1 with the email join them.
    wait_for(lambda: sample_value(metrics_text(cdp), "cdp_identity_profiles_published_total") >= 2, 60)
    send(
        cdp,
        [
            {
                "type": "identify",
                "anonymousId": f"{run}-a",
                "messageId": f"{run}-3",
                "traits": {"email": email},
            }
        ],
    )
    refused = cdp.post("/v1/track", {"event": "Product Viewed", "messageId": f"{run}-4"})  # names nobody
    assert refused.status_code == 400, refused.text
    wait_for(lambda: sample_value(metrics_text(cdp), "cdp_identity_merges_total") >= 1, 60)
    return run


@pytest.fixture(scope="module")
def prometheus(cdp: CdpProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus server (Debian's) scraping ``cdp up`` every second, with the alert rules."""
    root = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {"job_name": "cdp", "static_configs": [{"targets": [f"127.0.0.1:{cdp.http_port}"]}]}
        ],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    log = open(root / "prometheus.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [
            "prometheus", f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address={address}", "--log.level=warn",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://{address}"
    try:

        def ready() -> bool:
            assert process.poll() is None, (root / "prometheus.log").read_text()
            try:
                return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 30)
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (promql, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def scalar(prometheus: str, promql: str) -> float | None:
    result = query(prometheus, promql)
    return float(result[0]["value"][1]) if result else None


def test_the_exposition_is_clean_under_promtool(cdp: CdpProcess, traffic: str) -> None:
    text = metrics_text(cdp)
    assert "cdp_segment_evaluations_total" in text, "the segment process's metrics are missing"
    assert "cdp_identity_merges_total" in text, "the identity process's metrics are missing"
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, ""), checked.stdout + checked.stderr


def test_prometheus_scrapes_rates_lag_per_group_dead_letters_and_merges(
    cdp: CdpProcess, traffic: str, prometheus: str
) -> None:
    wait_for(lambda: scalar(prometheus, 'up{job="cdp"}') == 1, 30)
    # Traffic while Prometheus watches, so that the rate of accepted events is above 0.
    send(cdp, [
        {"type": "track", "event": "Product Viewed", "userId": f"{traffic}-c{i}", "messageId": f"{traffic}-p{i}",
         "properties": {"product_id": "P-2"}}
        for i in range(20)
    ])  # fmt: skip
    wait_for(lambda: (scalar(prometheus, "sum(rate(cdp_ingest_events_accepted_total[1m]))") or 0) > 0, 30)
    assert (scalar(prometheus, "max(cdp_dlq_depth_records)") or 0) >= 1
    assert (scalar(prometheus, 'sum(cdp_dlq_messages_total{reason="missing_identifier"})') or 0) >= 1
    assert (scalar(prometheus, "sum(cdp_identity_merges_total)") or 0) >= 1

    def groups(metric: str) -> set[str]:
        return {series["metric"]["group"] for series in query(prometheus, f"count by (group) ({metric})")}

    wait_for(lambda: groups("cdp_consumer_lag_seconds") == CONSUMER_GROUPS, 30)
    assert groups("cdp_consumer_lag_records") == CONSUMER_GROUPS
    # Everything sent has been processed by now: the lag measured from the broker goes back to 0.
    wait_for(
        lambda: scalar(prometheus, "max(cdp_consumer_lag_records) + max(cdp_consumer_lag_seconds)") == 0, 60
    )


def test_prometheus_loaded_every_alert_rule_and_evaluates_it(prometheus: str) -> None:
    expected = {rule["alert"] for rule in alert_rules()}

    def loaded() -> dict[str, str]:
        body = httpx.get(f"{prometheus}/api/v1/rules", params={"type": "alert"}, timeout=10).json()
        return {rule["name"]: rule["health"] for group in body["data"]["groups"] for rule in group["rules"]}

    wait_for(lambda: set(loaded()) == expected and set(loaded().values()) == {"ok"}, 30)


def test_every_dashboard_query_runs_on_prometheus(prometheus: str) -> None:
    for promql in dashboard_queries():
        query(prometheus, promql.replace("$__rate_interval", "1m"))


def test_alerts_and_the_dashboard_name_only_metrics_the_platform_exposes(
    cdp: CdpProcess, traffic: str
) -> None:
    exposed = exposed_names(metrics_text(cdp))
    used = {
        name
        for text in [ALERTS.read_text(), *dashboard_queries()]
        for name in re.findall(r"\bcdp_[a-z0-9_]+", text)
    }
    assert used, "no metric found in the alerts and the dashboard"
    assert used - exposed == set(), f"named but not exposed: {sorted(used - exposed)}"
