"""Shopify ``customers/create`` and ``customers/update`` payloads -> identify calls."""

from __future__ import annotations

from typing import Any

from schemas.base import Channel
from services.ingest.webhooks.base import Message
from services.ingest.webhooks.messages import identify_message, stable_message_id
from services.ingest.webhooks.payload import JsonNode
from services.ingest.webhooks.shopify_orders import PROVIDER


def customer_identified(customer: JsonNode, topic: str) -> Message:
    customer_id = customer.field("id").ident()
    created_at = customer.field("created_at")
    updated_at = customer.field("updated_at")
    traits = {
        "email": customer.field("email").text_or_none(),
        "phone": customer.field("phone").text_or_none(),
        "first_name": customer.field("first_name").text_or_none(),
        "last_name": customer.field("last_name").text_or_none(),
        "accepts_marketing": customer.field("accepts_marketing").flag_or_none(),
        "email_marketing_consent": _object_or_none(customer.field("email_marketing_consent")),
        "sms_marketing_consent": _object_or_none(customer.field("sms_marketing_consent")),
        "verified_email": customer.field("verified_email").flag_or_none(),
        "tags": customer.field("tags").text_or_none(),
        "created_at": created_at.text_or_none(),
    }
    if topic == "customers/update":
        # Every update is its own event; a retry of the same update carries the same updated_at.
        version = updated_at.text_or_none() or ""
        timestamp = updated_at.iso_time()
    else:
        version = "created"
        timestamp = created_at.iso_time_or_none() or updated_at.iso_time()
    return identify_message(
        provider=PROVIDER,
        channel=Channel.SHOP,
        message_id=stable_message_id(PROVIDER, "customer", customer_id, topic, version),
        timestamp=timestamp,
        traits=traits,
        user_id=customer_id,
    )


def _object_or_none(node: JsonNode) -> dict[str, Any] | None:
    return None if node.missing else dict(node.mapping())
