"""The alert rules and the Grafana dashboard in deploy/: valid for Prometheus's own tools, unit-tested
alert by alert, each alert with a runbook that exists, and the dashboard on the provisioned data
source. (That they name only metrics the platform exposes is checked against a running stack in
tests/e2e/test_prometheus.py.)"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "cdp-pipeline.json"
OPERATIONS = ROOT / "docs" / "operations.md"


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def markdown_anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings of a markdown page."""
    anchors = set()
    for line in text.splitlines():
        heading = re.match(r"#{1,6} (.+)", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def test_promtool_checks_the_rules() -> None:
    checked = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout


def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    tested = subprocess.run(
        ["promtool", "test", "rules", ALERT_TESTS.name],
        capture_output=True,
        text=True,
        cwd=ALERT_TESTS.parent,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_test_that_makes_it_fire() -> None:
    document = yaml.safe_load(ALERT_TESTS.read_text())
    firing = {
        case["alertname"]
        for test in document["tests"]
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert {rule["alert"] for rule in alert_rules()} - firing == set()


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_says_what_and_where_its_runbook_is(rule: dict[str, Any]) -> None:
    assert rule["alert"].startswith("Cdp")
    assert rule["labels"]["severity"] in {"critical", "warning"}
    annotations = rule["annotations"]
    assert annotations["summary"] and annotations["description"]
    page, _, anchor = annotations["runbook_url"].partition("#")
    assert page == "docs/operations.md"
    assert anchor in markdown_anchors(OPERATIONS.read_text()), f"no section #{anchor} in {page}"


def test_the_dashboard_reads_the_provisioned_prometheus_and_its_panels_fit() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "cdp-pipeline"
    (variable,) = board["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "DS_PROMETHEUS",
        "datasource",
        "prometheus",
    )
    assert variable["current"]["value"] == "prometheus"  # the uid deploy/grafana provisions
    panels = board["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    source = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    queried = [panel for panel in panels if panel["type"] != "row"]
    assert queried
    for panel in queried:
        assert panel["datasource"] == source, panel["title"]
        assert panel["targets"] and all(t["datasource"] == source and t["expr"] for t in panel["targets"])
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
