"""Distinctive personal data for PII hygiene tests, the forms it may take in a log, and requests
to the tracking API that carry it (valid, invalid, unauthorised, badly signed)."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

import orjson
import phonenumbers


@dataclass(frozen=True)
class Person:
    email: str  # as sent: mixed case
    phone: str  # as sent: national format with spaces
    e164: str

    @property
    def needles(self) -> list[str]:
        """Every form of the person's data a log line could show (compare lower-cased)."""
        local = self.email.split("@", 1)[0]
        digits = self.e164.removeprefix("+49")  # 151...: in E.164, national (0151...) and encoded forms
        forms = {
            self.email, self.email.lower(), local, quote(self.email), quote_plus(self.email.lower()),
            self.phone, self.e164, quote(self.e164), digits,
        }  # fmt: skip
        return sorted(forms)


def person(run: str, tag: str, seed: int) -> Person:
    """A person whose email and phone number occur nowhere else: the run id and random digits."""
    rng = random.Random(f"{run}-{tag}-{seed}")
    while True:
        subscriber = f"{rng.randrange(10**7, 10**8)}"
        raw = f"0151 {subscriber[:4]} {subscriber[4:]}"
        number = phonenumbers.parse(raw, "DE")
        if phonenumbers.is_valid_number(number):
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            return Person(f"Pii.{tag.title()}.{run}@Example-Shop.DE", raw, e164)


def find_leaks(texts: dict[str, str], needles: Iterable[str]) -> list[str]:
    """``where: needle`` for every needle found (case-insensitively) in any of ``texts``."""
    wanted = sorted({n for n in needles if n})
    leaks = []
    for where, text in texts.items():
        lowered = text.lower()
        for needle in wanted:
            at = lowered.find(needle.lower())
            if at >= 0:
                line = text[text.rfind("\n", 0, at) + 1 : text.find("\n", at) if "\n" in text[at:] else None]
                leaks.append(f"{where}: {needle!r} in {line[:300]!r}")
    return leaks


@dataclass(frozen=True)
class Call:
    """One request to the ingest API: ``path``, JSON ``body`` or raw ``content``, and the status expected."""

    name: str
    path: str
    status: int
    body: Any = None
    content: bytes | None = None
    headers: dict[str, str] | None = None
    key: str | None = None  # None: the platform's write key


def ingest_calls(run: str, people: list[Person], wrong_key: str) -> list[Call]:
    """Valid events carrying the first person's data, and every kind of refused request carrying it."""
    p = people[0]
    traits = {"email": p.email, "phone": p.phone, "first_name": "Pia"}
    order = {"order_id": f"{run}-o1", "revenue": 42.5, "currency": "EUR", "email": p.email}
    return [
        Call("identify", "/v1/identify", 200,
             {"userId": f"{run}-c1", "messageId": f"{run}-i1", "traits": traits}),
        Call("order", "/v1/track", 200,
             {"event": "Order Completed", "userId": f"{run}-c1", "messageId": f"{run}-o1", "properties": order,
              "context": {"traits": traits}}),
        Call("email_opened", "/v1/track", 200,
             {"event": "Email Opened", "messageId": f"{run}-e1",
              "properties": {"email": p.email, "recipient_id": f"{run}-r1", "campaign_id": "nl-1"}}),
        Call("invalid_properties", "/v1/track", 400,
             {"event": "Order Completed", "userId": f"{run}-c1", "messageId": f"{run}-bad1",
              "properties": {"order_id": p.email, "revenue": p.phone}, "traits": traits}),
        Call("invalid_event", "/v1/identify", 400,
             {"userId": {"email": p.email}, "traits": traits, "timestamp": p.phone}),
        Call("invalid_in_batch", "/v1/batch", 400,
             {"batch": [{"type": "track", "event": "Product Viewed", "userId": f"{run}-c1",
                         "messageId": f"{run}-v1", "properties": {"product_id": "P-1"}},
                        {"type": "track", "userId": p.email, "properties": {"phone": p.phone}}]}),
        Call("missing_identifier", "/v1/track", 400,
             {"event": "Product Viewed", "properties": {"product_id": "P-1", "note": f"{p.email} {p.phone}"}}),
        Call("malformed_json", "/v1/track", 400,
             content=b'{"type": "track", "traits": {"email": "%s", "phone": "%s"}, '
             % (p.email.encode(), p.phone.encode()),
             headers={"content-type": "application/json"}),
        Call("too_large", "/v1/track", 413,
             {"event": "Product Viewed", "userId": p.email, "properties": {"pad": "x" * 40_000, "phone": p.phone}}),
        Call("unauthorized", "/v1/track", 401,
             {"event": "Product Viewed", "userId": f"{run}-c1", "traits": traits}, key=wrong_key),
        Call("bad_signature", "/v1/webhooks/shop?provider=shopify", 401,
             content=orjson.dumps({"id": 1, "email": p.email, "phone": p.phone,
                                   "customer": {"email": p.email, "phone": p.e164}}),
             headers={"content-type": "application/json", "X-Shopify-Topic": "orders/create",
                      "X-Shopify-Hmac-Sha256": "AAAA", "X-Shopify-Webhook-Id": f"{run}-wh"}),
    ]  # fmt: skip


def too_many_emails(run: str, people: list[Person]) -> list[dict[str, Any]]:
    """Identify calls giving one customer an email per person: past the limit of 5, links are refused."""
    return [
        {"type": "identify", "userId": f"{run}-many", "messageId": f"{run}-many-{i}",
         "traits": {"email": who.email, "phone": who.phone}}
        for i, who in enumerate(people)
    ]  # fmt: skip
