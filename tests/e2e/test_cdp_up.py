"""Acceptance of the platform foundation, against the real ``cdp up`` process."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from confluent_kafka import Consumer
from segment.analytics import Client as SegmentClient

from tests.e2e.cdp_process import CDP, CdpProcess, wait_for

pytestmark = pytest.mark.e2e


def _count(cdp: CdpProcess, where: str, **params: object) -> int:
    client = cdp.clickhouse()
    try:
        return int(
            client.query(f"SELECT count() FROM cdp.events WHERE {where}", parameters=params).result_rows[0][0]
        )
    finally:
        client.close()


def _channel_batch(run: str) -> list[dict]:
    return [
        {"type": "track", "event": "Order Completed", "userId": f"{run}-c1", "messageId": f"{run}-1",
         "properties": {"order_id": f"{run}-o1", "revenue": 59.9, "currency": "EUR"}},
        {"type": "track", "event": "Conversation Rated", "anonymousId": f"{run}-a1", "messageId": f"{run}-2",
         "properties": {"conversation_id": "conv-1", "csat": 4, "handled_by": "bot"}},
        {"type": "track", "event": "Email Opened", "messageId": f"{run}-3",
         "properties": {"email": f"{run}@example.de", "recipient_id": f"{run}-r1", "campaign_id": "nl-48"}},
    ]  # fmt: skip


def test_events_of_every_channel_reach_clickhouse(cdp: CdpProcess):
    run = uuid.uuid4().hex[:8]
    response = cdp.post("/v1/batch", {"batch": _channel_batch(run)})
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}

    wait_for(lambda: _count(cdp, "message_id LIKE {p:String}", p=f"{run}-%") == 3)
    client = cdp.clickhouse()
    rows = dict(
        client.query(
            "SELECT channel, count() FROM cdp.events WHERE message_id LIKE {p:String} GROUP BY channel",
            parameters={"p": f"{run}-%"},
        ).result_rows
    )
    client.close()
    assert rows == {"shop": 1, "chat": 1, "email": 1}

    # The documented query of the README, through the CLI.
    out = subprocess.run(
        [CDP, "sql", "SELECT channel, count() FROM cdp.events GROUP BY channel ORDER BY channel", "-f", "csv"],
        env=cdp.env(), capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    channels = {line.split(",")[0] for line in out.strip().splitlines()[1:]}
    assert {"shop", "chat", "email"} <= channels


def test_segment_python_sdk_delivers_track_identify_page(cdp: CdpProcess):
    user = f"sdk-{uuid.uuid4().hex[:8]}"
    errors: list[object] = []
    client = SegmentClient(
        cdp.write_key, host=cdp.url, sync_mode=True, on_error=lambda e, b: errors.append(e)
    )
    client.identify(user, {"email": f"{user}@example.de", "first_name": "Anna"})
    client.track(user, "Product Viewed", {"product_id": "P-1", "price": 19.9})
    client.page(user, "Shop", "Home", {"url": "https://shop.example.de/"})
    client.flush()
    assert not errors
    wait_for(lambda: _count(cdp, "user_id = {u:String}", u=user) == 3)
    ch = cdp.clickhouse()
    types = sorted(r[0] for r in ch.query(
        "SELECT type FROM cdp.events WHERE user_id = {u:String}", parameters={"u": user}).result_rows)  # fmt: skip
    ch.close()
    assert types == ["identify", "page", "track"]


def _dlq_reasons(cdp: CdpProcess, minimum: int) -> list[dict]:
    consumer = Consumer({
        "bootstrap.servers": cdp.bootstrap, "group.id": f"dlq-check-{uuid.uuid4()}",
        "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
    })  # fmt: skip
    consumer.subscribe(["cdp.events.dlq"])
    letters: list[dict] = []

    def poll() -> bool:
        for message in consumer.consume(500, 0.5):
            if message.error() is None:
                letters.append(json.loads(message.value()))
        return len(letters) >= minimum

    try:
        wait_for(poll, timeout=30, interval=0)
    finally:
        consumer.close()
    return letters


def test_bad_input_gets_a_clear_4xx_and_lands_in_the_dlq(cdp: CdpProcess):
    run = uuid.uuid4().hex[:8]
    valid = {"type": "track", "event": "Product Viewed", "anonymousId": f"{run}-ok", "messageId": f"{run}-ok",
             "properties": {"product_id": "P-9"}}  # fmt: skip
    cases = {
        "malformed_json": cdp.post("/v1/track", content=b'{"type": "track", ', headers={"content-type": "application/json"}),
        "invalid_properties": cdp.post("/v1/track", {"event": "Order Completed", "userId": "u", "messageId": f"{run}-t",
                                                     "properties": {"order_id": "O", "revenue": "a lot"}}),
        "missing_identifier": cdp.post("/v1/track", {"event": "Product Viewed", "properties": {"product_id": "P"}}),
        "too_large": cdp.post("/v1/track", {"event": "X", "userId": "u", "properties": {"pad": "x" * 40_000}}),
        "unauthorized": cdp.post("/v1/track", valid, key="wrong-key"),
        "bad_signature": cdp.post("/v1/webhooks/shop?provider=shopify", content=b'{"id": 1}',
                                  headers={"X-Shopify-Topic": "orders/create", "X-Shopify-Hmac-Sha256": "AAAA"}),
    }  # fmt: skip
    expected_status = {"malformed_json": 400, "invalid_properties": 400, "missing_identifier": 400,
                       "too_large": 413, "unauthorized": 401, "bad_signature": 401}  # fmt: skip
    for case, response in cases.items():
        assert response.status_code == expected_status[case], (case, response.text)
        body = response.json()
        assert body["success"] is False and body["message"], case
    assert cases["invalid_properties"].json()["errors"][0]["path"] == "properties.revenue"

    # A batch mixing valid and invalid events: the valid one is kept, the invalid one reported by index.
    mixed = cdp.post("/v1/batch", {"batch": [valid, {"type": "track", "userId": "u"}]})
    assert mixed.status_code == 400
    assert mixed.json()["accepted"] == 1
    assert mixed.json()["errors"][0]["path"].startswith("batch[1]")
    wait_for(lambda: _count(cdp, "message_id = {m:String}", m=f"{run}-ok") == 1)

    letters = _dlq_reasons(cdp, minimum=7)
    reasons = {letter["reason"] for letter in letters}
    assert {"malformed_json", "invalid_properties", "missing_identifier", "too_large", "unauthorized",
            "invalid_event"} <= reasons  # fmt: skip
    assert any(r in reasons for r in ("bad_signature", "unauthorized"))
    assert any('"a lot"' in letter["payload"] for letter in letters)


def test_duplicate_message_ids_are_dropped_and_counted(cdp: CdpProcess):
    run = uuid.uuid4().hex[:8]
    event = {"type": "track", "event": "Product Added", "userId": f"{run}-u", "messageId": f"{run}-dup",
             "properties": {"product_id": "P-2"}}  # fmt: skip
    for _ in range(3):
        assert cdp.post("/v1/track", event).status_code == 200
    assert cdp.post("/v1/batch", {"batch": [event, event]}).status_code == 200
    wait_for(lambda: _count(cdp, "message_id = {m:String}", m=f"{run}-dup") == 1)
    metrics = httpx.get(f"{cdp.url}/metrics").text
    assert 'cdp_ingest_events_duplicate_total{source="api"}' in metrics


def test_metrics_health_and_readiness(cdp: CdpProcess):
    assert httpx.get(f"{cdp.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{cdp.url}/readyz").json()
    assert ready["ready"] is True and all(ready["checks"].values())
    text = httpx.get(f"{cdp.url}/metrics").text
    for name in ("cdp_ingest_events_accepted_total", "cdp_ingest_request_duration_seconds_bucket",
                 "cdp_kafka_produce_duration_seconds_bucket", "cdp_warehouse_rows_written_total",
                 "cdp_consumer_lag_records"):  # fmt: skip
        assert name in text, name


def test_restart_keeps_every_event_and_accepts_new_ones(cdp: CdpProcess):
    run = uuid.uuid4().hex[:8]
    batch = [{"type": "track", "event": "Product Viewed", "anonymousId": f"{run}-a", "messageId": f"{run}-{i}",
              "properties": {"product_id": f"P{i}"}} for i in range(50)]  # fmt: skip
    assert cdp.post("/v1/batch", {"batch": batch}).status_code == 200
    # Stop right away: a clean stop writes what was accepted before the broker goes away.
    assert cdp.stop() == 0
    total_before = None
    cdp.start()
    assert _count(cdp, "message_id LIKE {p:String}", p=f"{run}-%") == 50
    total_before = _count(cdp, "1")
    # The messageIds seen before the restart are still de-duplicated ...
    assert cdp.post("/v1/batch", {"batch": batch[:10]}).status_code == 200
    # ... and new events are accepted.
    new = {**batch[0], "messageId": f"{run}-new", "timestamp": datetime.now(UTC).isoformat()}
    assert cdp.post("/v1/track", new).status_code == 200
    wait_for(lambda: _count(cdp, "1") == total_before + 1)
    assert _count(cdp, "message_id LIKE {p:String}", p=f"{run}-%") == 51


def test_demo_traffic_lands_completely_in_every_channel(cdp: CdpProcess):
    before = _count(cdp, "1")
    out = subprocess.run(
        [CDP, "demo", "--customers", "40", "--days", "20", "--seed", "7", "--url", cdp.url,
         "--write-key", cdp.write_key],
        env=cdp.env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    accepted = int(re.search(r"accepted\s*│\s*([\d,]+)", out.stdout).group(1).replace(",", ""))
    assert accepted > 500
    wait_for(lambda: _count(cdp, "1") == before + accepted, timeout=60)
    client = cdp.clickhouse()
    channels = {row[0] for row in client.query("SELECT DISTINCT channel FROM cdp.events").result_rows}
    client.close()
    assert {"shop", "chat", "email"} <= channels
