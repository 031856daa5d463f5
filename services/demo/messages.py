"""Segment-spec message dicts (camelCase, as SDKs send them) for the demo's three channels."""

from __future__ import annotations

from typing import Any

from services.demo.catalogue import SHOP_URL
from services.demo.population import Device, Person
from services.demo.simulation import Message

_LIBRARY_VERSIONS = {"analytics.js": "4.1.0", "analytics-ios": "4.1.6", "analytics-android": "4.11.3"}
BACKEND_CONTEXT: dict[str, Any] = {
    "channel": "shop",
    "source": "shop-backend",
    "library": {"name": "analytics-python", "version": "2.3.2"},
}
EMAIL_CONTEXT: dict[str, Any] = {"channel": "email", "source": "email-tool"}


def device_context(device: Device) -> dict[str, Any]:
    kind = device.kind
    return {
        "channel": "shop",
        "source": kind.source,
        "library": {"name": kind.library, "version": _LIBRARY_VERSIONS[kind.library]},
        "userAgent": kind.user_agent,
        "ip": device.ip,
        "locale": device.locale,
    }


def track(
    event: str,
    properties: dict[str, Any],
    context: dict[str, Any],
    *,
    user_id: str | None = None,
    anonymous_id: str | None = None,
) -> Message:
    # Each message gets its own context dict: consumers may enrich one without touching the others.
    message: Message = {"type": "track", "event": event, "properties": properties, "context": {**context}}
    if user_id is not None:
        message["userId"] = user_id
    if anonymous_id is not None:
        message["anonymousId"] = anonymous_id
    return message


def page(
    name: str, path: str, referrer: str, device: Device, context: dict[str, Any], user_id: str | None
) -> Message:
    """A ``page`` call from the website, a ``screen`` call from the apps."""
    if device.kind.source == "web":
        properties = {"path": path, "url": f"{SHOP_URL}{path}", "title": f"{name} | Demo-Shop"}
        if referrer:
            properties["referrer"] = referrer
        message: Message = {"type": "page", "name": name, "properties": properties, "context": {**context}}
    else:
        message = {"type": "screen", "name": name, "properties": {"path": path}, "context": {**context}}
    message["anonymousId"] = device.anonymous_id
    if user_id is not None:
        message["userId"] = user_id
    return message


def _phone(digits: str, style: int) -> str:
    if style == 0:
        return f"+49 {digits[:3]} {digits[3:]}"
    if style == 1:
        return f"0{digits[:3]} {digits[3:]}"
    return f"+49{digits}"


def _shouted(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local.title()}@{domain.upper()}"


def identify(t: float, person: Person, device: Device, context: dict[str, Any]) -> Message:
    """The shop's login: the device's anonymous id meets the customer number and the account's traits."""
    assert person.customer_id is not None
    email = person.account_email(t)
    traits: dict[str, Any] = {
        "email": _shouted(email) if device.shouts_email else email,
        "first_name": person.first_name,
        "last_name": person.last_name,
    }
    if person.phone is not None:
        traits["phone"] = _phone(person.phone, device.phone_style)
    return {
        "type": "identify",
        "userId": person.customer_id,
        "anonymousId": device.anonymous_id,
        "traits": traits,
        "context": {**context},
    }
