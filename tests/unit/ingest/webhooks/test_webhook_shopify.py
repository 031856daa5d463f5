from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from services.ingest.normalise import NormalisedEvent, Rejection, normalise
from services.ingest.webhooks import PayloadError, ProviderConfigError, ShopifyProvider, SignatureError

SECRET = "shpss_0123456789abcdef"
shopify = ShopifyProvider()


def signed_headers(topic: str, body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": digest,
        "X-Shopify-Shop-Domain": "beispiel-shop.myshopify.com",
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    }


def map_one(topic: str, payload: Any) -> dict[str, Any]:
    body = orjson.dumps(payload)
    messages = shopify.to_messages(signed_headers(topic, body), body)
    assert len(messages) == 1
    return messages[0]


# --- signature ------------------------------------------------------------------------------


def test_verify_accepts_the_documented_hmac(sample_bytes: Callable[[str], bytes]) -> None:
    body = sample_bytes("shopify_order.json")
    shopify.verify(signed_headers("orders/paid", body), body, SECRET)


def test_verify_reads_headers_case_insensitively(sample_bytes: Callable[[str], bytes]) -> None:
    body = sample_bytes("shopify_order.json")
    headers = {key.lower(): value for key, value in signed_headers("orders/paid", body).items()}
    shopify.verify(headers, body, SECRET)


def test_verify_refuses_a_tampered_body(sample_bytes: Callable[[str], bytes]) -> None:
    body = sample_bytes("shopify_order.json")
    headers = signed_headers("orders/paid", body)
    with pytest.raises(SignatureError, match="does not match"):
        shopify.verify(headers, body.replace(b'"403.00"', b'"4.03"'), SECRET)


def test_verify_refuses_the_wrong_secret(sample_bytes: Callable[[str], bytes]) -> None:
    body = sample_bytes("shopify_order.json")
    with pytest.raises(SignatureError, match="does not match"):
        shopify.verify(signed_headers("orders/paid", body, "another-secret"), body, SECRET)


def test_verify_names_the_missing_header() -> None:
    with pytest.raises(SignatureError, match="missing header X-Shopify-Hmac-Sha256"):
        shopify.verify({"X-Shopify-Topic": "orders/paid"}, b"{}", SECRET)


def test_verify_refuses_a_signature_that_is_not_base64() -> None:
    with pytest.raises(SignatureError, match="not valid base64"):
        shopify.verify({"X-Shopify-Hmac-Sha256": "not base64!"}, b"{}", SECRET)


def test_verify_refuses_to_run_without_a_secret() -> None:
    with pytest.raises(ProviderConfigError):
        shopify.verify(signed_headers("orders/paid", b"{}"), b"{}", "")


# --- orders ---------------------------------------------------------------------------------


def test_paid_order_becomes_order_completed(sample_json: Callable[[str], Any], valid_messages: Any) -> None:
    message = map_one("orders/paid", sample_json("shopify_order.json"))
    [incoming] = valid_messages([message])
    assert incoming.event == "Order Completed"
    assert incoming.user_id == "115310627314723954"
    assert incoming.context.channel == "shop"
    assert incoming.context.source == "shopify"
    assert incoming.context.traits == {"email": "jon@example.com", "phone": "+4915112345678"}
    assert incoming.timestamp == datetime(2024, 11, 10, 9, 30, tzinfo=UTC)
    props = incoming.properties
    assert props["order_id"] == "820982911946154508"
    assert props["revenue"] == 403.0
    assert props["total"] == 403.0
    assert (props["subtotal"], props["tax"], props["shipping"], props["discount"]) == (
        388.0,
        64.34,
        15.0,
        10.0,
    )
    assert props["coupon"] == "WILLKOMMEN10"
    assert props["currency"] == "EUR"
    assert props["products"] == [
        {
            "product_id": "632910392",
            "sku": "IPOD2008BLACK",
            "name": "IPod Nano - 8GB",
            "variant": "Schwarz",
            "brand": "Apple",
            "price": 199.0,
            "quantity": 1,
        },
        {"product_id": "788032119674292922", "name": "Lederhülle", "price": 99.5, "quantity": 2},
    ]


def test_paid_order_passes_the_ingest_normaliser(sample_json: Callable[[str], Any]) -> None:
    message = map_one("orders/paid", sample_json("shopify_order.json"))
    event = normalise(message, received_at=datetime.now(UTC), default_source="webhook")
    assert isinstance(event, NormalisedEvent)
    event = event.model()
    assert event.identifiers.customer_id == "115310627314723954"
    assert event.identifiers.email == "jon@example.com"
    assert event.properties["revenue"] == 403.0


def test_order_paid_at_creation_is_counted_once(sample_json: Callable[[str], Any]) -> None:
    order = sample_json("shopify_order.json")
    created = map_one("orders/create", order)
    paid = map_one("orders/paid", order)
    assert created["messageId"] == paid["messageId"]


def test_unpaid_new_order_waits_for_orders_paid(sample_json: Callable[[str], Any]) -> None:
    order = sample_json("shopify_order.json") | {"financial_status": "pending"}
    body = orjson.dumps(order)
    result = shopify.map_payload({"X-Shopify-Topic": "orders/create"}, body)
    assert result.messages == []
    [skipped] = result.skipped
    assert skipped.kind == "orders/create"
    assert "financial_status=pending" in skipped.reason


def test_cancelled_order_becomes_order_cancelled(
    sample_json: Callable[[str], Any], valid_messages: Any
) -> None:
    order = sample_json("shopify_order.json") | {
        "cancelled_at": "2024-11-11T08:00:00+01:00",
        "cancel_reason": "customer",
        "financial_status": "voided",
    }
    [incoming] = valid_messages([map_one("orders/cancelled", order)])
    assert incoming.event == "Order Cancelled"
    assert incoming.properties == {
        "order_id": "820982911946154508",
        "total": 403.0,
        "currency": "EUR",
        "reason": "customer",
    }
    assert incoming.timestamp == datetime(2024, 11, 11, 7, 0, tzinfo=UTC)


def test_guest_order_keeps_email_without_user_id(
    sample_json: Callable[[str], Any], valid_messages: Any
) -> None:
    order = sample_json("shopify_order.json") | {"customer": None}
    [incoming] = valid_messages([map_one("orders/paid", order)])
    assert incoming.user_id is None
    assert incoming.context.traits["email"] == "jon@example.com"


def test_custom_line_item_without_product_keeps_its_own_id(sample_json: Callable[[str], Any]) -> None:
    order = sample_json("shopify_order.json")
    order["line_items"][1] |= {"product_id": None, "variant_id": None}
    products = map_one("orders/paid", order)["properties"]["products"]
    assert products[1]["product_id"] == "line_item:141249953214522974"


# --- refunds, checkouts, customers ----------------------------------------------------------


def test_refund_becomes_order_refunded(sample_json: Callable[[str], Any], valid_messages: Any) -> None:
    [incoming] = valid_messages([map_one("refunds/create", sample_json("shopify_refund.json"))])
    assert incoming.event == "Order Refunded"
    props = incoming.properties
    assert (props["order_id"], props["refund_id"]) == ("820982911946154508", "890088186047892319")
    assert (props["revenue"], props["currency"], props["reason"]) == (99.5, "EUR", "Ware beschädigt")
    assert props["products"] == [
        {"product_id": "788032119674292922", "name": "Lederhülle", "price": 99.5, "quantity": 1}
    ]


def test_refund_naming_only_the_order_is_accepted(sample_json: Callable[[str], Any]) -> None:
    # Shopify's refund payload names no customer: the order id attributes it (identity resolution).
    message = map_one("refunds/create", sample_json("shopify_refund.json"))
    event = normalise(message, received_at=datetime.now(UTC), default_source="webhook")
    assert not isinstance(event, Rejection)
    assert event.record["properties"]["order_id"] == "820982911946154508"


def test_refund_without_transactions_counts_the_refunded_items(sample_json: Callable[[str], Any]) -> None:
    refund = sample_json("shopify_refund.json") | {"transactions": []}
    assert map_one("refunds/create", refund)["properties"]["revenue"] == 99.5


def test_refund_without_money_or_items_is_skipped(sample_json: Callable[[str], Any]) -> None:
    refund = sample_json("shopify_refund.json") | {"transactions": [], "refund_line_items": []}
    result = shopify.map_payload({"X-Shopify-Topic": "refunds/create"}, orjson.dumps(refund))
    assert result.messages == []
    assert len(result.skipped) == 1


def test_checkout_becomes_checkout_started(sample_json: Callable[[str], Any], valid_messages: Any) -> None:
    [incoming] = valid_messages([map_one("checkouts/create", sample_json("shopify_checkout.json"))])
    assert incoming.event == "Checkout Started"
    assert incoming.user_id == "603851970716743426"
    props = incoming.properties
    assert (props["checkout_id"], props["cart_id"]) == (
        "981820079255243537",
        "eeafa272cebfd4b22385bc4b645e762c",
    )
    assert (props["value"], props["currency"]) == (199.0, "EUR")
    assert props["products"][0]["sku"] == "IPOD2008PINK"


def test_new_customer_becomes_identify(sample_json: Callable[[str], Any], valid_messages: Any) -> None:
    [incoming] = valid_messages([map_one("customers/create", sample_json("shopify_customer.json"))])
    assert incoming.type == "identify"
    assert incoming.user_id == "706405506930370084"
    assert incoming.traits["email"] == "bob@biller.com"
    assert incoming.traits["phone"] == "+4930123456"
    assert (incoming.traits["first_name"], incoming.traits["last_name"]) == ("Bob", "Biller")
    assert incoming.traits["accepts_marketing"] is True
    assert incoming.traits["email_marketing_consent"]["state"] == "subscribed"


def test_each_customer_update_is_its_own_message(sample_json: Callable[[str], Any]) -> None:
    customer = sample_json("shopify_customer.json")
    first = map_one("customers/update", customer)
    again = map_one("customers/update", customer)
    later = map_one("customers/update", customer | {"updated_at": "2024-10-02T08:00:00+02:00"})
    assert first["messageId"] == again["messageId"] != later["messageId"]
    assert map_one("customers/create", customer)["messageId"] != first["messageId"]


def test_message_ids_are_distinct_across_events(sample_json: Callable[[str], Any]) -> None:
    order = sample_json("shopify_order.json")
    ids = {
        map_one("orders/paid", order)["messageId"],
        map_one("orders/cancelled", order | {"cancelled_at": "2024-11-11T08:00:00+01:00"})["messageId"],
        map_one("refunds/create", sample_json("shopify_refund.json"))["messageId"],
        map_one("checkouts/create", sample_json("shopify_checkout.json"))["messageId"],
        map_one("customers/create", sample_json("shopify_customer.json"))["messageId"],
    }
    assert len(ids) == 5


def test_topic_without_cdp_meaning_is_skipped(sample_bytes: Callable[[str], bytes]) -> None:
    result = shopify.map_payload({"x-shopify-topic": "products/update"}, sample_bytes("shopify_order.json"))
    assert result.messages == []
    assert result.skipped[0].kind == "products/update"


# --- malformed payloads ---------------------------------------------------------------------


def test_missing_topic_header_is_a_payload_error() -> None:
    with pytest.raises(PayloadError) as error:
        shopify.map_payload({}, b"{}")
    assert error.value.path == "headers.X-Shopify-Topic"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda o: o["line_items"][1].update(price="neunundneunzig"), "line_items[1].price"),
        (lambda o: o["line_items"][0].update(price="-1.00"), "line_items[0].price"),
        (lambda o: o["line_items"][0].update(quantity="1"), "line_items[0].quantity"),
        (lambda o: o.update(currency="euro"), "currency"),
        (lambda o: o.update(total_price=None), "total_price"),
        (lambda o: o.update(id=None), "id"),
        (lambda o: o.update(line_items={"0": {}}), "line_items"),
        (lambda o: o["customer"].update(id=True), "customer.id"),
        (lambda o: o.update(processed_at="gestern"), "processed_at"),
    ],
)
def test_malformed_order_names_the_field(
    sample_json: Callable[[str], Any], change: Callable[[Any], None], path: str
) -> None:
    order = sample_json("shopify_order.json")
    change(order)
    with pytest.raises(PayloadError) as error:
        shopify.map_payload({"X-Shopify-Topic": "orders/paid"}, orjson.dumps(order))
    assert error.value.path == path


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'"text"'])
def test_body_that_is_not_an_object_is_a_payload_error(body: bytes) -> None:
    with pytest.raises(PayloadError) as error:
        shopify.map_payload({"X-Shopify-Topic": "orders/paid"}, body)
    assert error.value.path == "$"
