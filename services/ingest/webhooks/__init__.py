"""Provider webhook formats for ``POST /v1/webhooks/shop|chat|email``: verify, then map to Segment calls.

The HTTP layer picks a provider with ``detect_provider`` (``None`` = canonical Segment JSON), checks
``provider.verify(headers, body, secret)`` with the setting named ``provider.secret_setting`` and
hands ``provider.map_payload(headers, body).messages`` to the ingest pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping

from schemas.base import Channel
from services.ingest.webhooks.base import (
    MappedPayload,
    Message,
    PayloadError,
    ProviderConfigError,
    SignatureError,
    SkippedEvent,
    WebhookProvider,
)
from services.ingest.webhooks.sendgrid import SendGridProvider
from services.ingest.webhooks.shopify import ShopifyProvider
from services.ingest.webhooks.zendesk import ZendeskProvider

__all__ = [
    "PROVIDERS",
    "MappedPayload",
    "Message",
    "PayloadError",
    "ProviderConfigError",
    "ProviderSelectionError",
    "SendGridProvider",
    "ShopifyProvider",
    "SignatureError",
    "SkippedEvent",
    "WebhookProvider",
    "ZendeskProvider",
    "detect_provider",
]

PROVIDERS: dict[str, WebhookProvider] = {
    provider.name: provider for provider in (ShopifyProvider(), SendGridProvider(), ZendeskProvider())
}


class ProviderSelectionError(ValueError):
    """``?provider=`` names no known provider, or a provider of another channel."""


def detect_provider(
    channel: Channel | str,
    headers: Mapping[str, str],
    body: bytes,
    explicit: str | None = None,
    providers: Mapping[str, WebhookProvider] = PROVIDERS,
) -> WebhookProvider | None:
    """The provider whose format this request is in; None when it is canonical Segment JSON."""
    wanted = Channel(channel)
    if explicit:
        provider = providers.get(explicit.strip().lower())
        if provider is None:
            known = ", ".join(sorted(providers))
            raise ProviderSelectionError(f"unknown provider {explicit!r}; known providers: {known}")
        if provider.channel != wanted:
            raise ProviderSelectionError(
                f"provider {provider.name!r} sends {provider.channel.value} events, "
                f"post them to /v1/webhooks/{provider.channel.value}"
            )
        return provider
    for provider in providers.values():
        if provider.detect(headers, body):
            if provider.channel != wanted:
                raise ProviderSelectionError(
                    f"this looks like a {provider.name} webhook, which belongs on "
                    f"/v1/webhooks/{provider.channel.value}, not /v1/webhooks/{wanted.value}"
                )
            return provider
    return None
