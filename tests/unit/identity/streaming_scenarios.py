"""Shop histories for the streaming identity tests: people with devices, accounts, emails and chats.

Each person's events carry the identifiers their channel would: page views only the device id,
identify calls the device and the account, orders the account and email, chats the handle, email
tool events the address and recipient id. Devices may be shared (a family tablet), some values
are placeholders, so the graph merges, chains merges and refuses links as it would in a shop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from tests.unit.identity.profile_events import event

Event = dict[str, Any]
TABLET = "tablet-family"
JUNK = {"anonymousId": "undefined", "email": "test@test.de"}
KINDS = ["page", "identify", "alias", "order", "refund", "chat", "rating", "email", "subscribe", "junk"]


@dataclass(frozen=True, slots=True)
class Person:
    n: int
    customer_id: str | None
    emails: tuple[str, ...]
    devices: tuple[str, ...]
    chat_handle: str
    recipient_id: str
    phone: str | None


def _ids(**ids: str | None) -> dict[str, str]:
    return {name: value for name, value in ids.items() if value is not None}


def build(kind: str, who: Person, k: int, minutes: int, pick: int) -> Event:
    """One event of ``kind`` by ``who``; ``pick`` chooses among the person's devices and emails."""
    message_id = f"m-{who.n}-{k}"
    device, mail = who.devices[pick % len(who.devices)], who.emails[pick % len(who.emails)]
    order_id = f"o-{who.n}-{pick % 3}"
    if kind == "page":
        record = event("Startseite", minutes, kind="page", message_id=message_id)
        record["identifiers"] = _ids(anonymousId=device)
    elif kind == "identify":
        traits = {"first_name": f"Name{who.n}", "city": ["Berlin", "Köln"][pick % 2]}
        record = event(None, minutes, kind="identify", traits=traits, message_id=message_id)
        record["identifiers"] = _ids(
            anonymousId=device, customerId=who.customer_id, email=mail, phone=who.phone
        )
    elif kind == "alias":
        record = event(None, minutes, kind="alias", message_id=message_id)
        record["previousId"] = device
        record["identifiers"] = _ids(customerId=who.customer_id) if who.customer_id else _ids(email=mail)
    elif kind in ("order", "refund"):
        name = "Order Completed" if kind == "order" else "Order Refunded"
        props = {"order_id": order_id, "revenue": 10.0 + pick, "currency": "EUR"}
        record = event(name, minutes, properties=props, message_id=message_id)
        record["identifiers"] = _ids(customerId=who.customer_id, email=mail, anonymousId=device)
    elif kind in ("chat", "rating"):
        props: dict[str, Any] = {"conversation_id": f"c-{who.n}", "handled_by": "bot"}
        name = "Conversation Started" if kind == "chat" else "Conversation Rated"
        if kind == "rating":
            props["csat"] = 1 + pick % 5
        record = event(name, minutes, properties=props, message_id=message_id)
        record["identifiers"] = _ids(chatHandle=who.chat_handle, email=mail if pick % 2 else None)
    elif kind in ("email", "subscribe"):
        name = "Email Opened" if kind == "email" else "Subscribed"
        props = (
            {"email": mail, "email_id": f"e-{pick % 2}"} if kind == "email" else {"list_id": "newsletter-de"}
        )
        record = event(name, minutes, properties=props, message_id=message_id)
        record["identifiers"] = _ids(email=mail, emailRecipientId=who.recipient_id)
    else:
        record = event("Startseite", minutes, kind="page", message_id=message_id)
        record["identifiers"] = dict(JUNK)
    return record


@st.composite
def people(draw: st.DrawFn, max_people: int = 4) -> list[Person]:
    found = []
    for n in range(draw(st.integers(1, max_people))):
        devices = [f"dev-{n}-{d}" for d in range(draw(st.integers(1, 3)))]
        if draw(st.integers(0, 3)) == 0:
            devices.append(TABLET)
        found.append(
            Person(
                n=n,
                customer_id=f"C{n}" if draw(st.integers(0, 3)) else None,
                emails=tuple(f"p{n}.{e}@example.de" for e in range(draw(st.integers(1, 2)))),
                devices=tuple(devices),
                chat_handle=f"chat-{n}",
                recipient_id=f"rcp-{n}",
                phone=f"+4915112345{n:03d}" if draw(st.booleans()) else None,
            )
        )
    return found


@st.composite
def shop_histories(draw: st.DrawFn, max_people: int = 4, max_events: int = 12) -> list[Event]:
    """Everyone's events in one arbitrary publishing order, with a few exact resends."""
    events = []
    for who in draw(people(max_people)):
        for k in range(draw(st.integers(2, max_events))):
            kind = draw(st.sampled_from(KINDS))
            events.append(build(kind, who, k, draw(st.integers(0, 3 * 24 * 60)), draw(st.integers(0, 5))))
    events = draw(st.permutations(events))
    resends = draw(st.lists(st.sampled_from(events), max_size=3))
    return [*events, *(dict(e) for e in resends)]
