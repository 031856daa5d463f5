"""Shopify order and checkout payloads -> Segment e-commerce spec messages.

Field names follow Shopify's Admin REST webhook payloads (``orders/*``, ``checkouts/create``);
amounts are decimal strings in the shop currency.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from schemas.base import Channel
from services.ingest.webhooks.base import Message
from services.ingest.webhooks.messages import compact, stable_message_id, track_message
from services.ingest.webhooks.payload import JsonNode

PROVIDER = "shopify"
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def order_completed(order: JsonNode) -> Message:
    order_id = order.field("id").ident()
    user_id, traits = buyer(order)
    properties = {
        "order_id": order_id,
        "order_number": order.field("name").text_or_none(),
        # The platform's order value is what the customer paid; subtotal, tax and shipping stay beside it.
        "revenue": order.field("total_price").money(),
        "total": order.field("total_price").money(),
        "subtotal": order.field("subtotal_price").money_or_none(),
        "tax": order.field("total_tax").money_or_none(),
        "discount": order.field("total_discounts").money_or_none(),
        "shipping": _shop_money(order.field("total_shipping_price_set")),
        "coupon": _coupon(order),
        "currency": currency(order.field("currency")),
        "products": [item for node in order.field("line_items").items() if (item := line_item(node))],
        "financial_status": order.field("financial_status").text_or_none(),
        "test": order.field("test").flag_or_none() or None,
    }
    return shop_track(
        "Order Completed",
        stable_message_id(PROVIDER, "order", order_id, "Order Completed"),
        _first_time(order, "processed_at", "created_at"),
        properties,
        user_id,
        traits,
    )


def order_cancelled(order: JsonNode) -> Message:
    order_id = order.field("id").ident()
    user_id, traits = buyer(order)
    properties = {
        "order_id": order_id,
        "total": order.field("total_price").money_or_none(),
        "currency": currency(order.field("currency")),
        "reason": order.field("cancel_reason").text_or_none(),
    }
    return shop_track(
        "Order Cancelled",
        stable_message_id(PROVIDER, "order", order_id, "Order Cancelled"),
        _first_time(order, "cancelled_at", "updated_at"),
        properties,
        user_id,
        traits,
    )


def checkout_started(checkout: JsonNode) -> Message:
    checkout_id = checkout.field("id").ident()
    user_id, traits = buyer(checkout)
    properties = {
        "checkout_id": checkout_id,
        "cart_id": checkout.field("cart_token").text_or_none(),
        "value": checkout.field("total_price").money_or_none(),
        "currency": currency(checkout.field("currency")),
        "products": [item for node in checkout.field("line_items").items() if (item := line_item(node))],
    }
    return shop_track(
        "Checkout Started",
        stable_message_id(PROVIDER, "checkout", checkout_id, "Checkout Started"),
        checkout.field("created_at").iso_time(),
        properties,
        user_id,
        traits,
    )


def line_item(node: JsonNode, quantity: int | None = None) -> dict[str, Any] | None:
    """A line item as a Segment product; None for a line an order edit took down to zero."""
    node.mapping()
    units = node.field("quantity").count() if quantity is None else quantity
    if units < 1:
        return None
    return compact(
        {
            "product_id": _product_id(node),
            "sku": node.field("sku").text_or_none(),
            "name": node.field("title").text_or_none() or node.field("name").text_or_none(),
            "variant": node.field("variant_title").text_or_none(),
            "brand": node.field("vendor").text_or_none(),
            "price": node.field("price").money(),
            "quantity": units,
        }
    )


def currency(node: JsonNode) -> str:
    code = node.text()
    if not _CURRENCY.match(code):
        raise node.fail(f"expected an ISO 4217 currency code, got {code[:20]!r}")
    return code


def _product_id(node: JsonNode) -> str:
    # Custom line items have no product or variant; their own id keeps them distinct.
    for key in ("product_id", "variant_id", "id", "key"):
        value = node.field(key).ident_or_none()
        if value is not None:
            return value if key in ("product_id", "variant_id") else f"line_item:{value}"
    raise node.field("product_id").fail("a line item needs product_id, variant_id or id")


def buyer(node: JsonNode) -> tuple[str | None, dict[str, Any]]:
    """The customer id and contact details of an order or checkout (guest checkouts have no customer)."""
    email, phone = node.field("email").text_or_none(), node.field("phone").text_or_none()
    customer = node.field("customer")
    if customer.missing:
        return None, {"email": email, "phone": phone}
    customer.mapping()
    traits = {
        "email": email or customer.field("email").text_or_none(),
        "phone": phone or customer.field("phone").text_or_none(),
    }
    return customer.field("id").ident_or_none(), traits


def _shop_money(money_set: JsonNode) -> float | None:
    if money_set.missing:
        return None
    return money_set.field("shop_money").field("amount").money_or_none()


def _coupon(order: JsonNode) -> str | None:
    discount_codes = order.field("discount_codes").items()
    codes = [code for node in discount_codes if (code := node.field("code").text_or_none())]
    return ",".join(codes) or None


def _first_time(node: JsonNode, *keys: str) -> datetime:
    for key in keys[:-1]:
        value = node.field(key).iso_time_or_none()
        if value is not None:
            return value
    return node.field(keys[-1]).iso_time()


def shop_track(
    event: str,
    message_id: str,
    timestamp: datetime,
    properties: dict[str, Any],
    user_id: str | None,
    traits: dict[str, Any],
) -> Message:
    return track_message(
        provider=PROVIDER,
        channel=Channel.SHOP,
        event=event,
        message_id=message_id,
        timestamp=timestamp,
        properties=properties,
        user_id=user_id,
        traits=traits,
    )
