"""The ingest API over real HTTP, with records read back from the real broker."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import uuid
from pathlib import Path

import httpx
import orjson

from schemas import topics
from tests.integration.ingest.conftest import SHOPIFY_SECRET, WRITE_KEY, IngestServer
from tests.integration.kafka_reader import read_topic

SAMPLES = Path(__file__).parents[2] / "unit" / "ingest" / "webhooks" / "samples"


def post(server: IngestServer, path: str, body: bytes | dict, **kwargs) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    kwargs.setdefault("auth", (WRITE_KEY, ""))
    return httpx.post(server.url + path, content=content, timeout=10, **kwargs)


def test_tracked_event_is_on_kafka_in_canonical_form_keyed_by_customer(ingest_server: IngestServer):
    mid = f"it-{uuid.uuid4()}"
    response = post(ingest_server, "/v1/track", {
        "userId": "C-77", "anonymousId": "anon-77", "event": "Order Completed", "messageId": mid,
        "properties": {"order_id": "O-77", "total": 120.0, "currency": "EUR"},
        "context": {"traits": {"email": "Kunde@Example.de"}},
        "originalTimestamp": "2026-11-20T10:00:00Z", "sentAt": "2026-11-20T10:00:05Z",
    })  # fmt: skip
    assert response.status_code == 200 and response.json() == {"success": True}
    [(key, _partition, value)] = read_topic(
        ingest_server.bootstrap, topics.EVENTS, lambda v: v["messageId"] == mid, 1
    )
    assert key == b"C-77"
    assert value["schemaVersion"] == 1
    assert value["channel"] == "shop" and value["source"] == "api"
    assert value["properties"]["revenue"] == 120.0  # defaulted from total
    assert value["identifiers"] == {
        "anonymousId": "anon-77",
        "customerId": "C-77",
        "email": "Kunde@Example.de",
    }
    assert value["receivedAt"] > value["timestamp"]  # skew-corrected: 5 s before receipt


def test_one_persons_events_stay_in_order_on_one_partition(ingest_server: IngestServer):
    run = uuid.uuid4().hex[:8]
    batch = [{"type": "track", "event": "Product Viewed", "userId": f"U-{run}", "messageId": f"{run}-{i:03d}",
              "properties": {"product_id": f"P{i}"}} for i in range(100)]  # fmt: skip
    assert post(ingest_server, "/v1/batch", {"batch": batch}).status_code == 200
    records = read_topic(
        ingest_server.bootstrap, topics.EVENTS, lambda v: v["messageId"].startswith(run), 100
    )
    assert len({partition for _, partition, _ in records}) == 1
    assert [v["messageId"] for _, _, v in records] == [f"{run}-{i:03d}" for i in range(100)]


def test_gzip_body_and_write_key_in_body_are_accepted(ingest_server: IngestServer):
    mid = f"gz-{uuid.uuid4()}"
    body = gzip.compress(
        orjson.dumps(
            {"writeKey": WRITE_KEY, "batch": [{"type": "identify", "userId": "G1", "messageId": mid}]}
        )
    )
    response = httpx.post(ingest_server.url + "/v1/batch", content=body, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    read_topic(ingest_server.bootstrap, topics.EVENTS, lambda v: v["messageId"] == mid, 1)


def test_gzip_bomb_is_refused_as_too_large(ingest_server: IngestServer):
    bomb = gzip.compress(b'{"batch": [' + b" " * 5_000_000 + b"]}")
    response = post(ingest_server, "/v1/batch", bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413


def test_rejections_are_dead_lettered_with_reason_and_payload(ingest_server: IngestServer):
    marker = f"dlq-{uuid.uuid4()}"
    response = post(ingest_server, "/v1/track", {"event": "Conversation Rated", "anonymousId": marker,
                                                  "properties": {"conversation_id": "c", "csat": 9}})  # fmt: skip
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"path": "properties.csat", "message": "Input should be less than or equal to 5"}
    ]
    [(_, _, letter)] = read_topic(
        ingest_server.bootstrap, topics.EVENTS_DLQ, lambda v: marker in v["payload"], 1
    )
    assert letter["reason"] == "invalid_properties"
    assert letter["errors"][0]["path"] == "properties.csat"
    assert letter["endpoint"] == "/v1/track"


def _shopify_headers(body: bytes, topic: str, webhook_id: str) -> dict[str, str]:
    digest = hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()
    return {
        "X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        "X-Shopify-Webhook-Id": webhook_id, "X-Shopify-Shop-Domain": "example.myshopify.com",
        "Content-Type": "application/json",
    }  # fmt: skip


def test_signed_shopify_order_webhook_becomes_an_order_and_retries_are_deduplicated(
    ingest_server: IngestServer,
):
    body = (SAMPLES / "shopify_order.json").read_bytes()
    order_id = str(orjson.loads(body)["id"])
    headers = _shopify_headers(body, "orders/create", f"wh-{uuid.uuid4()}")
    before = ingest_server.metric("cdp_ingest_events_duplicate_total", source="shopify")
    first = httpx.post(ingest_server.url + "/v1/webhooks/shop", content=body, headers=headers)
    assert first.status_code == 200, first.text
    retry = httpx.post(ingest_server.url + "/v1/webhooks/shop", content=body, headers=headers)
    assert retry.status_code == 200
    assert ingest_server.metric("cdp_ingest_events_duplicate_total", source="shopify") >= before + 1
    [(_, _, value)] = read_topic(
        ingest_server.bootstrap, topics.EVENTS,
        lambda v: v.get("event") == "Order Completed" and v["properties"].get("order_id") == order_id
        and v["source"] == "shopify", 1,
    )  # fmt: skip
    assert value["channel"] == "shop"
    assert value["properties"]["products"]


def test_tampered_shopify_webhook_is_refused(ingest_server: IngestServer):
    body = (SAMPLES / "shopify_order.json").read_bytes()
    headers = _shopify_headers(body, "orders/create", "wh-tampered")
    response = httpx.post(
        ingest_server.url + "/v1/webhooks/shop", content=body.replace(b"1", b"2", 1), headers=headers
    )
    assert response.status_code == 401
    assert response.json()["error"] == "bad_signature"


def test_canonical_webhook_takes_channel_from_path(ingest_server: IngestServer):
    mid = f"wh-{uuid.uuid4()}"
    response = post(ingest_server, "/v1/webhooks/chat", [{"type": "track", "event": "Chat Escalated",
                                                          "userId": "C-5", "messageId": mid}])  # fmt: skip
    assert response.status_code == 200, response.text
    [(_, _, value)] = read_topic(ingest_server.bootstrap, topics.EVENTS, lambda v: v["messageId"] == mid, 1)
    assert value["channel"] == "chat" and value["source"] == "webhook-chat"


def test_unknown_provider_names_the_known_ones(ingest_server: IngestServer):
    response = post(ingest_server, "/v1/webhooks/shop?provider=magento", {"x": 1})
    assert response.status_code == 400
    assert "shopify" in response.json()["message"]


def test_openapi_document_describes_every_route(ingest_server: IngestServer):
    document = httpx.get(ingest_server.url + "/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    routes = {route.path for route in ingest_server_routes(ingest_server)}
    assert routes <= set(document["paths"]) | {"/openapi.json"}
    assert "IncomingMessage" in document["components"]["schemas"]


def ingest_server_routes(server: IngestServer):
    from services.ingest.api import create_ingest_app

    return create_ingest_app(server.api).routes
