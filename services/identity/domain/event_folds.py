"""How each typed event folds into a profile. Properties are read defensively, as sent.

Canonical events are validated at ingest, but a profile must never fail on one odd field: an event
without the id a fold needs (an order without ``order_id``) still counts as activity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from services.identity.domain import email_engagement as mail
from services.identity.domain.money import currency_of, line_items_units, to_units
from services.identity.domain.order_record import FULL_REFUND
from services.identity.domain.subscriptions import CONFIRMED, SUBSCRIBED, UNSUBSCRIBED

if TYPE_CHECKING:
    from services.identity.domain.profile_state import ProfileState

Fold = Callable[["ProfileState", int, str, Mapping[str, Any]], bool]
Properties = Mapping[str, Any]


def _text(properties: Properties, field: str) -> str | None:
    value = properties.get(field)
    return value if isinstance(value, str) and value else None


def amount_of(properties: Properties) -> int | None:
    """The amount an order event names: ``revenue``, else ``total``, else its line items."""
    for field in ("revenue", "total"):
        if (units := to_units(properties.get(field))) is not None:
            return units
    return line_items_units(properties)


def order_completed(state: ProfileState, stamp: int, message_id: str, properties: Properties) -> bool:
    if (order_id := _text(properties, "order_id")) is None:
        return False
    revenue = amount_of(properties) or 0
    return state.orders.complete(order_id, stamp, revenue, currency_of(properties))


def order_refunded(state: ProfileState, stamp: int, message_id: str, properties: Properties) -> bool:
    if (order_id := _text(properties, "order_id")) is None:
        return False
    # A shop's own refund id de-duplicates a refund re-sent under a new message id.
    refund_key = _text(properties, "refund_id") or message_id
    amount = amount_of(properties)
    return state.orders.refund(order_id, refund_key, FULL_REFUND if amount is None else amount)


def order_cancelled(state: ProfileState, stamp: int, message_id: str, properties: Properties) -> bool:
    if (order_id := _text(properties, "order_id")) is None:
        return False
    return state.orders.cancel(order_id, stamp)


def chat_event(state: ProfileState, stamp: int, message_id: str, properties: Properties) -> bool:
    if (conversation_id := _text(properties, "conversation_id")) is None:
        return False
    return state.conversations.touch(conversation_id, stamp, _text(properties, "handled_by"), None)


def conversation_rated(state: ProfileState, stamp: int, message_id: str, properties: Properties) -> bool:
    if (conversation_id := _text(properties, "conversation_id")) is None:
        return False
    csat = properties.get("csat")
    rating = None
    if isinstance(csat, int) and not isinstance(csat, bool) and 1 <= csat <= 5:
        rating = (stamp, csat)
    return state.conversations.touch(conversation_id, stamp, _text(properties, "handled_by"), rating)


def _complaint(opened: bool) -> Fold:
    def fold(state: ProfileState, stamp: int, message_id: str, properties: Properties) -> bool:
        changed = chat_event(state, stamp, message_id, properties)
        if (complaint_id := _text(properties, "complaint_id")) is not None:
            book = state.complaints
            changed |= book.opened(complaint_id, stamp) if opened else book.resolved(complaint_id, stamp)
        return changed

    return fold


def _email(outcome: int) -> Fold:
    def fold(state: ProfileState, stamp: int, message_id: str, properties: Properties) -> bool:
        return state.email.record(mail.email_key(properties, message_id), outcome, stamp)

    return fold


def email_bounced(state: ProfileState, stamp: int, message_id: str, properties: Properties) -> bool:
    # schemas/email.py: a bounce without a type is hard.
    outcome = mail.SOFT_BOUNCE if properties.get("bounce_type") == "soft" else mail.HARD_BOUNCE
    return state.email.record(mail.email_key(properties, message_id), outcome, stamp)


def subscribed(state: ProfileState, stamp: int, message_id: str, properties: Properties) -> bool:
    # A list import that says the opt-in was already confirmed carries the confirmation with it.
    status = CONFIRMED if properties.get("double_opt_in") is True else SUBSCRIBED
    return state.subscriptions.decide(_text(properties, "list_id") or "", stamp, message_id, status)


def _subscription(status: str) -> Fold:
    def fold(state: ProfileState, stamp: int, message_id: str, properties: Properties) -> bool:
        return state.subscriptions.decide(_text(properties, "list_id") or "", stamp, message_id, status)

    return fold


FOLDS: dict[str, Fold] = {
    "Order Completed": order_completed,
    "Order Refunded": order_refunded,
    "Order Cancelled": order_cancelled,
    "Conversation Started": chat_event,
    "Message Sent": chat_event,
    "Message Received": chat_event,
    "Conversation Rated": conversation_rated,
    "Complaint Opened": _complaint(opened=True),
    "Complaint Resolved": _complaint(opened=False),
    "Email Delivered": _email(mail.DELIVERED),
    "Email Opened": _email(mail.OPENED),
    "Email Link Clicked": _email(mail.CLICKED),
    "Email Bounced": email_bounced,
    "Email Marked as Spam": _email(mail.SPAM),
    "Subscribed": subscribed,
    "Double Opt-In Confirmed": _subscription(CONFIRMED),
    "Unsubscribed": _subscription(UNSUBSCRIBED),
}
