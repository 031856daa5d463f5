"""The shop's people: identities (devices, emails, phone, chat handle) and behavioural traits.

The population depends only on the seed and the person's position, never on the time window, so
history and live traffic of the same seed are about the same people.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from enum import IntEnum

from services.demo.catalogue import (
    CATEGORIES,
    DEVICE_KIND_WEIGHTS,
    DEVICE_KINDS,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    LAST_NAMES,
    LOCALES,
    MOBILE_PREFIXES,
    DeviceKind,
)

NEVER = float("inf")


class Newsletter(IntEnum):
    NONE = 0
    PENDING = 1  # subscribed, double opt-in not (yet) confirmed
    SUBSCRIBED = 2
    UNSUBSCRIBED = 3


@dataclass(slots=True)
class Device:
    anonymous_id: str
    kind: DeviceKind
    ip: str
    locale: str
    # How this browser/app writes the phone number in forms (the platform has to normalise it).
    phone_style: int
    shouts_email: bool  # types the email address with capitals
    logged_in: bool = False


@dataclass(slots=True)
class Person:
    index: int
    customer_id: str | None  # None: a guest who never logs in
    first_name: str
    last_name: str
    emails: tuple[str, ...]
    recipient_ids: tuple[str, ...]  # the email tool's id per address, same order as ``emails``
    phone: str | None  # digits after +49
    devices: tuple[Device, ...]
    chat_handle: str
    value: float  # Pareto-distributed: drives visit frequency, conversion and basket size
    visit_rate: float  # visits per ordinary day
    buy_propensity: float
    favourite_categories: tuple[str, ...]
    open_rate: float  # newsletter engagement
    newsletter_email: int  # index into ``emails``
    subscribed_before: bool  # on the list before the window starts (arrives as a list import)
    bad_address: bool  # the newsletter address hard-bounces
    switches_email: bool  # changes the shop account's email address during the window
    newsletter: Newsletter = Newsletter.NONE
    newsletter_since: float = NEVER
    unhappy_until: float = 0.0
    email_switch_at: float = NEVER

    def account_email(self, t: float) -> str:
        return self.emails[1] if t >= self.email_switch_at else self.emails[0]

    def account_recipient(self, t: float) -> str:
        return self.recipient_ids[1] if t >= self.email_switch_at else self.recipient_ids[0]

    def receives_newsletter(self, t: float) -> bool:
        return self.newsletter is Newsletter.SUBSCRIBED and self.newsletter_since <= t


def _ascii(name: str) -> str:
    return name.lower().replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("ß", "ss")


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


def _device(rng: random.Random) -> Device:
    kind = rng.choices(DEVICE_KINDS, DEVICE_KIND_WEIGHTS)[0]
    # Documentation address ranges: realistic-looking, never a real person's address.
    ip = f"{rng.choice(('192.0.2', '198.51.100', '203.0.113'))}.{rng.randrange(1, 255)}"
    return Device(
        anonymous_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        kind=kind,
        ip=ip,
        locale=rng.choice(LOCALES),
        phone_style=rng.randrange(3),
        shouts_email=rng.random() < 0.06,
    )


def _person(index: int, rng: random.Random, phone_offset: int) -> Person:
    registered = rng.random() < 0.78
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    local = f"{_ascii(first)}.{_ascii(last)}{index}"
    emails = [f"{local}@{rng.choice(EMAIL_DOMAINS)}"]
    if registered and rng.random() < 0.15:
        emails.append(f"{_ascii(first)[0]}{_ascii(last)}.{index}@{rng.choice(EMAIL_DOMAINS)}")
    # An affine map keeps phone numbers unique within a population (shared numbers would merge people).
    phone_digits = f"{rng.choice(MOBILE_PREFIXES)}{(index * 7919 + phone_offset) % 10**8:08d}"
    value = min(rng.paretovariate(1.2), 30.0)
    engagement = rng.random()
    subscribed_before = rng.random() < (0.38 if registered else 0.08)
    return Person(
        index=index,
        customer_id=f"C{100000 + index}" if registered else None,
        first_name=first,
        last_name=last,
        emails=tuple(emails),
        recipient_ids=tuple(f"rcp_{_hex(rng, 12)}" for _ in emails),
        phone=phone_digits if registered and rng.random() < 0.6 else None,
        devices=tuple(_device(rng) for _ in range(rng.choices((1, 2, 3), (0.55, 0.33, 0.12))[0])),
        chat_handle=f"visitor-{_hex(rng, 10)}",
        value=value,
        visit_rate=(0.02 + 0.012 * value) if registered else 0.04,
        buy_propensity=min(0.6, 0.1 + 0.035 * value) if registered else 0.0,
        favourite_categories=tuple(rng.sample(CATEGORIES, 2)),
        open_rate=0.03 if engagement < 0.3 else (0.22 if engagement < 0.8 else 0.55),
        newsletter_email=1 if len(emails) > 1 and rng.random() < 0.5 else 0,
        subscribed_before=subscribed_before,
        bad_address=rng.random() < 0.03,
        switches_email=len(emails) > 1 and rng.random() < 0.6,
    )


def build_population(customers: int, seed: int) -> list[Person]:
    """``customers`` people; the first n are the same for every population size with this seed."""
    rng = random.Random(f"cdp-demo:{seed}:population")
    phone_offset = rng.randrange(10**8)
    return [_person(index, rng, phone_offset) for index in range(customers)]
