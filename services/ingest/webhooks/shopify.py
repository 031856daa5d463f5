"""Shopify webhooks (shop channel): HMAC-signed JSON, the topic in ``X-Shopify-Topic``.

``orders/create`` only counts as Order Completed when the order is already paid; unpaid orders
(invoice, prepayment) become Order Completed with ``orders/paid``. Both give the same messageId,
so an order paid at creation, which triggers both topics, is counted once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from schemas.base import Channel
from services.ingest.webhooks.base import (
    MappedPayload,
    Message,
    PayloadError,
    SkippedEvent,
    lower_keys,
)
from services.ingest.webhooks.payload import JsonNode, parse_json
from services.ingest.webhooks.shopify_customers import customer_identified
from services.ingest.webhooks.shopify_orders import checkout_started, order_cancelled, order_completed
from services.ingest.webhooks.shopify_refunds import order_refunded
from services.ingest.webhooks.signing import (
    base64_signature,
    check_hmac_sha256,
    require_secret,
    required_header,
)

TOPIC_HEADER = "X-Shopify-Topic"
HMAC_HEADER = "X-Shopify-Hmac-Sha256"


def _orders_create(order: JsonNode) -> Message | None:
    if order.field("financial_status").text_or_none() != "paid":
        return None
    return order_completed(order)


_TOPICS: dict[str, Callable[[JsonNode], Message | None]] = {
    "orders/create": _orders_create,
    "orders/paid": order_completed,
    "orders/cancelled": order_cancelled,
    "refunds/create": order_refunded,
    "checkouts/create": checkout_started,
    "customers/create": lambda customer: customer_identified(customer, "customers/create"),
    "customers/update": lambda customer: customer_identified(customer, "customers/update"),
}


@dataclass(frozen=True, slots=True)
class ShopifyProvider:
    name: str = "shopify"
    channel: Channel = Channel.SHOP
    secret_setting: str = "shopify_webhook_secret"

    def detect(self, headers: Mapping[str, str], body: bytes) -> bool:
        names = lower_keys(headers)
        return TOPIC_HEADER.lower() in names or HMAC_HEADER.lower() in names

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str) -> None:
        """``X-Shopify-Hmac-Sha256`` = base64(HMAC-SHA256(app client secret, raw body))."""
        key = require_secret(secret, "Shopify")
        signature = base64_signature(required_header(lower_keys(headers), HMAC_HEADER), HMAC_HEADER)
        check_hmac_sha256(key, body, signature, HMAC_HEADER)

    def map_payload(self, headers: Mapping[str, str], body: bytes) -> MappedPayload:
        topic = lower_keys(headers).get(TOPIC_HEADER.lower(), "").strip()
        if not topic:
            raise PayloadError(f"headers.{TOPIC_HEADER}", "missing: Shopify names the webhook topic here")
        root = parse_json(body)
        root.mapping()
        handler = _TOPICS.get(topic)
        if handler is None:
            return MappedPayload(skipped=[SkippedEvent("$", topic, "topic has no CDP meaning")])
        message = handler(root)
        if message is None:
            return MappedPayload(skipped=[SkippedEvent("$", topic, _skip_reason(topic, root))])
        return MappedPayload(messages=[message])

    def to_messages(self, headers: Mapping[str, str], body: bytes) -> list[Message]:
        return self.map_payload(headers, body).messages


def _skip_reason(topic: str, root: JsonNode) -> str:
    if topic == "orders/create":
        status = root.field("financial_status").text_or_none()
        return f"order not paid yet (financial_status={status}); orders/paid will complete it"
    return "refund moved neither money nor items"
