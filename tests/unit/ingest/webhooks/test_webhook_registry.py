from __future__ import annotations

from collections.abc import Callable

import pytest

from schemas.base import Channel
from services.core.settings import Settings
from services.ingest.webhooks import PROVIDERS, ProviderSelectionError, detect_provider

CANONICAL = b'{"type": "track", "event": "Order Completed", "userId": "42", "properties": {"order_id": "1"}}'


def test_registry_holds_one_provider_per_channel() -> None:
    assert {name: p.channel for name, p in PROVIDERS.items()} == {
        "shopify": Channel.SHOP,
        "sendgrid": Channel.EMAIL,
        "zendesk": Channel.CHAT,
    }


def test_every_provider_names_an_existing_setting() -> None:
    for provider in PROVIDERS.values():
        assert provider.secret_setting in Settings.model_fields


@pytest.mark.parametrize(
    ("channel", "headers", "expected"),
    [
        ("shop", {"X-Shopify-Topic": "orders/paid", "X-Shopify-Hmac-Sha256": "x"}, "shopify"),
        ("shop", {"x-shopify-topic": "orders/paid"}, "shopify"),
        ("email", {"X-Twilio-Email-Event-Webhook-Signature": "x"}, "sendgrid"),
        ("chat", {"X-Zendesk-Webhook-Signature": "x"}, "zendesk"),
        ("chat", {"x-zendesk-webhook-id": "01GK8E6BKWMJZD2T8Y5AXJQMG5"}, "zendesk"),
    ],
)
def test_provider_is_recognised_by_its_headers(channel: str, headers: dict[str, str], expected: str) -> None:
    provider = detect_provider(channel, headers, b"{}")
    assert provider is not None
    assert provider.name == expected


def test_unsigned_provider_bodies_are_recognised(sample_bytes: Callable[[str], bytes]) -> None:
    sendgrid = detect_provider(Channel.EMAIL, {}, sample_bytes("sendgrid_events.json"))
    zendesk = detect_provider(Channel.CHAT, {}, sample_bytes("zendesk_ticket_created.json"))
    assert (sendgrid and sendgrid.name, zendesk and zendesk.name) == ("sendgrid", "zendesk")


@pytest.mark.parametrize("channel", ["shop", "chat", "email"])
def test_canonical_json_has_no_provider(channel: str) -> None:
    assert detect_provider(channel, {"Content-Type": "application/json"}, CANONICAL) is None
    assert detect_provider(channel, {}, b"[" + CANONICAL + b"]") is None


def test_explicit_provider_wins_over_detection() -> None:
    provider = detect_provider("email", {}, CANONICAL, explicit="SendGrid")
    assert provider is not None
    assert provider.name == "sendgrid"


def test_unknown_explicit_provider_lists_the_known_ones() -> None:
    with pytest.raises(
        ProviderSelectionError,
        match="unknown provider 'mailchimp'; known providers: sendgrid, shopify, zendesk",
    ):
        detect_provider("email", {}, b"[]", explicit="mailchimp")


def test_explicit_provider_of_another_channel_is_refused() -> None:
    with pytest.raises(ProviderSelectionError, match="/v1/webhooks/shop"):
        detect_provider("email", {}, b"{}", explicit="shopify")


def test_provider_webhook_on_the_wrong_channel_is_refused() -> None:
    with pytest.raises(ProviderSelectionError, match="looks like a shopify webhook"):
        detect_provider("chat", {"X-Shopify-Topic": "orders/paid"}, b"{}")


def test_unknown_channel_is_refused() -> None:
    with pytest.raises(ValueError, match="sms"):
        detect_provider("sms", {}, b"{}")
