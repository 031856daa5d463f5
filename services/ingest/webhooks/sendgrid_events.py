"""One SendGrid Event Webhook event -> a Segment-spec email event.

Field names follow SendGrid's Event Webhook reference. Top-level fields SendGrid does not define
are the sender's custom args; they are kept under ``properties.custom_args``.
"""

from __future__ import annotations

from typing import Any

from schemas.base import Channel
from services.ingest.webhooks.base import Message
from services.ingest.webhooks.messages import stable_message_id, track_message
from services.ingest.webhooks.payload import JsonNode

PROVIDER = "sendgrid"

EVENT_NAMES = {
    "delivered": "Email Delivered",
    "open": "Email Opened",
    "click": "Email Link Clicked",
    "bounce": "Email Bounced",
    "spamreport": "Email Marked as Spam",
    "unsubscribe": "Unsubscribed",
    "group_unsubscribe": "Unsubscribed",
    "group_resubscribe": "Subscribed",
}

SKIPPED_EVENTS = {
    "processed": "accepted by SendGrid, not delivered yet",
    "deferred": "temporary delivery delay that SendGrid retries",
    "dropped": "SendGrid did not send the email (suppressed or invalid address)",
}

_DOCUMENTED_FIELDS = frozenset(
    {
        "email", "timestamp", "smtp-id", "event", "category", "sg_event_id", "sg_message_id",
        "sg_template_id", "sg_template_name", "sg_machine_open", "sg_content_type", "response",
        "attempt", "useragent", "ip", "url", "url_offset", "reason", "status", "type",
        "bounce_classification", "tls", "cert_err", "asm_group_id", "marketing_campaign_id",
        "marketing_campaign_name", "marketing_campaign_split_id", "marketing_campaign_version",
        "mc_stats", "phase_id", "post_type", "send_at", "singlesend_id", "singlesend_name",
        "template_id", "template_name", "template_version_id", "template_hash", "pool",
    }
)  # fmt: skip


def event_message(node: JsonNode, kind: str, customer_id_arg: str | None) -> Message | None:
    """None for an event type without CDP meaning."""
    event_name = EVENT_NAMES.get(kind)
    if event_name is None:
        return None
    event_id = node.field("sg_event_id").ident()
    email = node.field("email").text()
    properties: dict[str, Any] = {
        "email": email,
        "email_id": node.field("sg_message_id").ident_or_none(),
        "campaign_id": node.field("marketing_campaign_id").ident_or_none()
        or node.field("singlesend_id").ident_or_none(),
        "campaign_name": node.field("marketing_campaign_name").text_or_none()
        or node.field("singlesend_name").text_or_none(),
        "provider": PROVIDER,
        "provider_event_id": event_id,
        "category": _categories(node.field("category")),
        "custom_args": _custom_args(node) or None,
        **_specific(node, kind),
    }
    user_id = node.field(customer_id_arg).ident_or_none() if customer_id_arg else None
    return track_message(
        provider=PROVIDER,
        channel=Channel.EMAIL,
        event=event_name,
        message_id=stable_message_id(PROVIDER, event_id, kind),
        timestamp=node.field("timestamp").unix_time(),
        properties=properties,
        user_id=user_id,
        traits={"email": email},
    )


def _specific(node: JsonNode, kind: str) -> dict[str, Any]:
    if kind == "open":
        return {"machine_open": node.field("sg_machine_open").flag_or_none()}
    if kind == "click":
        return {"link_url": node.field("url").text_or_none()}
    if kind == "bounce":
        return {
            "bounce_type": "soft" if node.field("type").text_or_none() == "blocked" else "hard",
            "reason": node.field("reason").text_or_none(),
            "smtp_status": node.field("status").text_or_none(),
            "bounce_classification": node.field("bounce_classification").text_or_none(),
        }
    if kind in ("group_unsubscribe", "group_resubscribe"):
        return {"list_id": node.field("asm_group_id").ident()}
    return {}


def _categories(node: JsonNode) -> list[str] | None:
    """SendGrid sends one category as a string and several as an array."""
    if node.missing:
        return None
    if isinstance(node.value, str):
        return [node.value]
    return [item.text() for item in node.items()]


def _custom_args(node: JsonNode) -> dict[str, Any]:
    return {key: value for key, value in node.mapping().items() if key not in _DOCUMENTED_FIELDS}
