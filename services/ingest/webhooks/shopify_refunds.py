"""Shopify ``refunds/create`` payloads -> Order Refunded.

The refunded amount is the money that moved: the successful ``refund`` transactions. A refund
without transactions (e.g. store credit) falls back to the refunded line items' subtotals.
"""

from __future__ import annotations

from typing import Any

from services.ingest.webhooks.base import Message
from services.ingest.webhooks.messages import stable_message_id
from services.ingest.webhooks.payload import JsonNode
from services.ingest.webhooks.shopify_orders import PROVIDER, currency, line_item, shop_track


def order_refunded(refund: JsonNode) -> Message | None:
    """None when the refund moved neither money nor items (nothing for the CDP to count)."""
    refund_id = refund.field("id").ident()
    refund_lines = list(refund.field("refund_line_items").items())
    transactions = [
        node
        for node in refund.field("transactions").items()
        if node.field("kind").text_or_none() == "refund" and node.field("status").text_or_none() == "success"
    ]
    refund_currency: str | None
    if transactions:
        amount = round(sum(node.field("amount").money() for node in transactions), 2)
        refund_currency = currency(transactions[0].field("currency"))
    elif refund_lines:
        amount = round(sum(node.field("subtotal").money() for node in refund_lines), 2)
        refund_currency = _line_currency(refund_lines[0])
    else:
        return None
    properties: dict[str, Any] = {
        "order_id": refund.field("order_id").ident(),
        "refund_id": refund_id,
        "revenue": amount,
        "currency": refund_currency,
        "reason": refund.field("note").text_or_none(),
        "products": [item for node in refund_lines if (item := _refunded_item(node))],
    }
    return shop_track(
        "Order Refunded",
        stable_message_id(PROVIDER, "refund", refund_id, "Order Refunded"),
        refund.field("processed_at").iso_time_or_none() or refund.field("created_at").iso_time(),
        properties,
        None,
        {},
    )


def _refunded_item(refund_line: JsonNode) -> dict[str, Any] | None:
    return line_item(refund_line.field("line_item"), quantity=refund_line.field("quantity").count())


def _line_currency(refund_line: JsonNode) -> str | None:
    money_set = refund_line.field("subtotal_set")
    if money_set.missing:
        return None
    return currency(money_set.field("shop_money").field("currency_code"))
