"""Canonical events (camelCase dicts, as on ``cdp.events``) for profile folding tests.

Builders take the event time as minutes after ``T0`` so expected values can be computed by hand;
``profile_histories`` generates realistic, collision-rich histories for property tests.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import count
from typing import Any

from hypothesis import strategies as st

from schemas.catalog import CATALOG

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SOURCES = {"shop": "web", "chat": "chat-widget", "email": "email-tool"}
_ids = count()

Event = dict[str, Any]


def at(minutes: float) -> str:
    """ISO event time ``minutes`` after T0, in orjson's format (``Z``, microseconds only if set)."""
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def event(
    name: str | None,
    minutes: float,
    *,
    kind: str = "track",
    message_id: str | None = None,
    channel: str | None = None,
    properties: dict[str, Any] | None = None,
    traits: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    timestamp: str | None = None,
) -> Event:
    spec = CATALOG.get(name or "")
    channel = channel or (spec.channel.value if spec and spec.channel else "shop")
    record: Event = {
        "schemaVersion": 1,
        "messageId": message_id or f"msg-{next(_ids)}",
        "type": kind,
        "channel": channel,
        "source": SOURCES.get(channel, "web"),
        "identifiers": {"customerId": "C1"},
        "properties": properties or {},
        "traits": traits or {},
        "context": context or {"channel": channel},
        "timestamp": timestamp or at(minutes),
        "receivedAt": at(minutes + 1),
    }
    if kind == "track":
        record["event"] = name
    elif name is not None:
        record["name"] = name
    return record


def identify(minutes: float, traits: dict[str, Any], **kw: Any) -> Event:
    return event(None, minutes, kind="identify", traits=traits, **kw)


def page(minutes: float, **kw: Any) -> Event:
    return event("Startseite", minutes, kind="page", **kw)


def order_completed(order_id: str, revenue: float, minutes: float, currency: str = "EUR", **kw: Any) -> Event:
    props = {"order_id": order_id, "revenue": revenue, "currency": currency}
    return event("Order Completed", minutes, properties=props, **kw)


def order_refunded(order_id: str, minutes: float, revenue: float | None = None, **kw: Any) -> Event:
    props: dict[str, Any] = {"order_id": order_id, "currency": "EUR"}
    if revenue is not None:
        props["revenue"] = revenue
    props.update(kw.pop("extra", {}))
    return event("Order Refunded", minutes, properties=props, **kw)


def order_cancelled(order_id: str, minutes: float, **kw: Any) -> Event:
    return event("Order Cancelled", minutes, properties={"order_id": order_id, "currency": "EUR"}, **kw)


def chat(name: str, conversation_id: str, minutes: float, handled_by: str | None = None, **kw: Any) -> Event:
    props: dict[str, Any] = {"conversation_id": conversation_id, **kw.pop("extra", {})}
    if handled_by is not None:
        props["handled_by"] = handled_by
    return event(name, minutes, properties=props, **kw)


def rated(conversation_id: str, csat: int, minutes: float, handled_by: str | None = None, **kw: Any) -> Event:
    return chat("Conversation Rated", conversation_id, minutes, handled_by, extra={"csat": csat}, **kw)


def complaint(name: str, complaint_id: str, minutes: float, conversation_id: str = "", **kw: Any) -> Event:
    return chat(name, conversation_id, minutes, extra={"complaint_id": complaint_id}, **kw)


def email(name: str, minutes: float, email_id: str | None = None, **props: Any) -> Event:
    properties: dict[str, Any] = {"email": "anna@example.de", "recipient_id": "rcp_1", **props}
    if email_id is not None:
        properties["email_id"] = email_id
    message_id = properties.pop("message_id", None)
    return event(name, minutes, properties=properties, message_id=message_id)


def subscription(name: str, minutes: float, list_id: str | None = "newsletter-de", **props: Any) -> Event:
    properties: dict[str, Any] = {"email": "anna@example.de", **props}
    if list_id is not None:
        properties["list_id"] = list_id
    return event(name, minutes, properties=properties)


# --- hypothesis: realistic histories with colliding ids, equal timestamps and replays -----------

# Several days (the activity bitmaps), and many events at the very same instant (the tie-breaks).
_minutes: st.SearchStrategy[int] = st.builds(
    lambda day, minute: day * 24 * 60 + minute,
    st.integers(0, 3),
    st.one_of(st.just(7), st.integers(0, 40)),
)
_money = st.sampled_from([0.0, 9.99, 19.99, 24.5, 49.0, 83.11, 120.0])
_order = st.sampled_from(["o1", "o2", "o3", "o4"])
_conversation = st.sampled_from(["c1", "c2", "c3"])
_trait_value = st.one_of(st.none(), st.sampled_from(["Anna", "Berlin", "gold", 3, True, {"zip": "10115"}]))
_traits = st.dictionaries(st.sampled_from(["first_name", "city", "plan", "created_at", "vip"]), _trait_value)


def _formats(minutes: int) -> st.SearchStrategy[str]:
    moment = T0 + timedelta(minutes=minutes)
    # The same instant written the ways clients and orjson write it: parsing must not care.
    return st.sampled_from(
        [
            moment.isoformat().replace("+00:00", "Z"),
            moment.isoformat(),
            moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            moment.astimezone(timezone(timedelta(hours=1))).isoformat(),
        ]
    )


# (event name, kind, properties, traits) of one generated event, before times and ids are drawn
Spec = tuple[str | None, str, dict[str, Any], dict[str, Any]]
_fields = st.fixed_dictionaries


def _track(names: list[str], required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[Spec]:
    props = _fields(required, optional=optional)
    return st.builds(lambda name, p: (name, "track", p, {}), st.sampled_from(names), props)


_ORDER_SPECS = st.one_of(
    _track(
        ["Order Completed"],
        {"order_id": _order, "revenue": _money, "currency": st.sampled_from(["EUR", "CHF"])},
        {},
    ),
    _track(
        ["Order Refunded"],
        {"order_id": _order},
        {"revenue": _money, "refund_id": st.sampled_from(["r1", "r2"])},
    ),
    _track(["Order Cancelled"], {"order_id": _order}, {}),
)
_HANDLED_BY = {"handled_by": st.sampled_from(["bot", "human"])}
_CHAT_SPECS = st.one_of(
    _track(
        ["Conversation Started", "Message Sent", "Message Received"],
        {"conversation_id": _conversation},
        _HANDLED_BY,
    ),
    _track(
        ["Conversation Rated"], {"conversation_id": _conversation, "csat": st.integers(1, 5)}, _HANDLED_BY
    ),
    _track(
        ["Complaint Opened", "Complaint Resolved"],
        {"complaint_id": st.sampled_from(["k1", "k2"]), "conversation_id": st.sampled_from(["", "c1"])},
        {},
    ),
)
_EMAIL_ID = {"email_id": st.sampled_from(["e1", "e2", "e3"]), "campaign_id": st.just("cmp-1")}
_EMAIL_SPECS = st.one_of(
    _track(["Email Delivered", "Email Opened", "Email Link Clicked", "Email Marked as Spam"], {}, _EMAIL_ID),
    _track(["Email Bounced"], {"bounce_type": st.sampled_from(["hard", "soft"])}, _EMAIL_ID),
    _track(
        ["Subscribed"],
        {},
        {"list_id": st.sampled_from(["newsletter-de", "promo"]), "double_opt_in": st.just(True)},
    ),
    _track(
        ["Unsubscribed", "Double Opt-In Confirmed"],
        {},
        {"list_id": st.sampled_from(["newsletter-de", "promo"])},
    ),
)
_CONSENT_SPECS = _track(
    ["Consent Updated"],
    {
        "purpose": st.sampled_from(["email_marketing", "personalisation"]),
        "status": st.sampled_from(["granted", "denied", "withdrawn"]),
    },
    {"double_opt_in": st.booleans(), "legal_text_version": st.sampled_from(["v1", "v2"])},
)
_OTHER_SPECS: st.SearchStrategy[Spec] = st.one_of(
    st.builds(lambda traits: (None, "identify", {}, traits), _traits),
    st.builds(lambda name: (name, "page", {}, {}), st.sampled_from(["Startseite", "Produkt"])),
)
_SPECS: st.SearchStrategy[Spec] = st.one_of(
    _ORDER_SPECS, _CHAT_SPECS, _EMAIL_SPECS, _CONSENT_SPECS, _OTHER_SPECS
)


@st.composite
def profile_histories(draw: st.DrawFn, max_size: int = 30) -> list[Event]:
    """A profile's events with unique message ids, plus some exact replays (duplicates)."""
    specs = draw(st.lists(_SPECS, min_size=1, max_size=max_size))
    events: list[Event] = []
    for n, (name, kind, props, traits) in enumerate(specs):
        minutes = draw(_minutes)
        channel = draw(st.sampled_from(["shop", "chat", "email"])) if kind == "page" else None
        events.append(
            event(
                name,
                minutes,
                kind=kind,
                message_id=f"m{n:03d}",
                channel=channel,
                properties=props,
                traits=traits,
                timestamp=draw(_formats(minutes)),
            )
        )
    replays = draw(st.lists(st.sampled_from(events), max_size=5))
    return events + [dict(e) for e in replays]
