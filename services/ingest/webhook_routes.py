"""``POST /v1/webhooks/{shop|chat|email}``: canonical JSON, or a provider's own documented format.

A provider request is authenticated by the provider's signature when its secret is configured
(and then the signature is required); otherwise by the write key, like the tracking API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from schemas.base import Channel
from services.core.settings import Settings
from services.ingest.auth import KeyUse
from services.ingest.http import ClientError, JSONResponse, body_write_key, parse_json, read_body
from services.ingest.normalise import FieldError, Rejection
from services.ingest.webhooks import ProviderSelectionError, detect_provider
from services.ingest.webhooks.base import PayloadError, ProviderConfigError, SignatureError

if TYPE_CHECKING:
    from services.ingest.api import IngestAPI

SECRET_SETTINGS = ("shopify_webhook_secret", "sendgrid_webhook_public_key", "zendesk_webhook_secret")


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """Provider secrets by setting name; a provider without one is authenticated by write key."""

    secrets: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookConfig:
        secrets: dict[str, str] = {}
        for name in SECRET_SETTINGS:
            value: Any = getattr(settings, name)
            text = value.get_secret_value() if hasattr(value, "get_secret_value") else value
            if text:
                secrets[name] = str(text)
        return cls(secrets)


def _canonical_items(payload: Any, channel: Channel, body: bytes) -> tuple[list[Any], bool]:
    """Items of a canonical webhook body (one call, a list, or a Segment batch) and whether it is a list."""
    if isinstance(payload, dict) and isinstance(payload.get("batch"), list):
        items, many = payload["batch"], True
    elif isinstance(payload, list):
        items, many = payload, True
    elif isinstance(payload, dict):
        items, many = [payload], False
    else:
        raise ClientError(
            400,
            Rejection("invalid_event", (FieldError("", "expected an event object, a list or a batch"),)),
            body,
        )
    for item in items:
        if isinstance(item, dict):
            context = item.get("context")
            if context is None:
                item["context"] = {"channel": channel.value}
            elif isinstance(context, dict):
                context.setdefault("channel", channel.value)
    return items, many


def webhook_endpoint(api: IngestAPI) -> Callable[[Request], Awaitable[Response]]:
    async def route(request: Request) -> Response:
        name = request.path_params["channel"]
        endpoint = f"/v1/webhooks/{name}"
        try:
            channel = Channel(name)
        except ValueError:
            known = ", ".join(c.value for c in Channel)
            return JSONResponse(
                {
                    "success": False,
                    "error": "not_found",
                    "message": f"unknown channel '{name}': use one of {known}",
                },
                status_code=404,
            )

        async def work() -> Response:
            body = await read_body(request, api.max_batch_bytes)
            try:
                provider = detect_provider(
                    channel, request.headers, body, request.query_params.get("provider")
                )
            except ProviderSelectionError as exc:
                raise ClientError(
                    400, Rejection("unknown_provider", (FieldError("provider", str(exc)),)), body
                ) from None

            if provider is None:
                used = api.authorise(request, body_write_key(body))
                items, many = _canonical_items(parse_json(body), channel, body)
                result = await api.pipeline.ingest(
                    items,
                    source=f"webhook-{channel.value}",
                    endpoint=endpoint,
                    path_prefix="batch" if many else "",
                    write_key=used,
                )
                return api.answer(result, single=not many)

            key: KeyUse | None = None  # None: authenticated by the provider's signature
            secret = api.webhooks.secrets.get(provider.secret_setting)
            if secret:
                try:
                    provider.verify(request.headers, body, secret)
                except SignatureError as exc:
                    rejection = Rejection(
                        "bad_signature", (FieldError("", f"{provider.name}: {exc.reason}"),)
                    )
                    raise ClientError(401, rejection, body) from None
                except ProviderConfigError as exc:
                    # Our configuration is broken, not the caller's request: a 500 the operator must fix.
                    return JSONResponse(
                        {
                            "success": False,
                            "error": "misconfigured",
                            "message": f"{provider.secret_setting}: {exc}",
                        },
                        status_code=500,
                    )
            else:
                key = api.authorise(request)
            try:
                mapped = provider.map_payload(request.headers, body)
            except PayloadError as exc:
                rejection = Rejection(
                    "invalid_payload", (FieldError(exc.path, f"{provider.name}: {exc.message}"),)
                )
                raise ClientError(400, rejection, body) from None
            if mapped.skipped:
                api.metrics.webhook_skipped.labels(provider.name).inc(len(mapped.skipped))
            result = await api.pipeline.ingest(
                mapped.messages, source=provider.name, endpoint=endpoint, path_prefix="events", write_key=key
            )
            return api.answer(result, single=False)

        return await api.handle(request, endpoint, work, source=f"webhook-{channel.value}")

    return route
