"""Identifiers a person leaves in shop, chat and email, normalised so equal people get equal keys.

A value that cannot identify one person (a placeholder, an unparsable phone, an email without
``@``) normalises to ``None`` and never links anything: one junk value shared by thousands of
events would otherwise weld thousands of people into one mega-profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, field_validator


class IdType(StrEnum):
    """Identifier types, declared in rank order: the first is the most trustworthy person id.

    The rank decides which identifier names a profile (see ``graph.py``). Customer ids come first
    (one account, one person); emails before phones (family landlines are shared); the email tool's
    recipient id stands for one address; a chat handle is usually a per-browser widget id; an
    anonymous id is a cookie or device id, the most volatile and the most often shared.
    """

    CUSTOMER_ID = "customer_id"
    EMAIL = "email"
    PHONE = "phone"
    EMAIL_RECIPIENT_ID = "email_recipient_id"
    CHAT_HANDLE = "chat_handle"
    ANONYMOUS_ID = "anonymous_id"

    @property
    def rank(self) -> int:
        return RANK_OF[self]


RANK_OF: dict[IdType, int] = {id_type: rank for rank, id_type in enumerate(IdType)}
ID_TYPES_BY_RANK: tuple[IdType, ...] = tuple(IdType)

# Where each type sits in a canonical event's ``identifiers`` object (camelCase wire names).
WIRE_NAMES: Mapping[str, IdType] = {
    "customerId": IdType.CUSTOMER_ID,
    "email": IdType.EMAIL,
    "phone": IdType.PHONE,
    "emailRecipientId": IdType.EMAIL_RECIPIENT_ID,
    "chatHandle": IdType.CHAT_HANDLE,
    "anonymousId": IdType.ANONYMOUS_ID,
}


@dataclass(frozen=True, slots=True)
class Identifier:
    """One normalised identifier. ``key`` (``email:anna@example.de``) is its form in keys and logs."""

    type: IdType
    value: str

    @property
    def key(self) -> str:
        return f"{self.type}:{self.value}"  # a StrEnum formats as its value

    @property
    def rank_key(self) -> tuple[int, str]:
        """Sort key: best-ranked type first, then by value (code point order, like the stored bytes)."""
        return (RANK_OF[self.type], self.value)

    @classmethod
    def parse(cls, key: str) -> Identifier:
        """The inverse of ``key``; raises ``ValueError`` for a malformed key (a programming error)."""
        type_name, sep, value = key.partition(":")
        if not sep or not value:
            raise ValueError(f"not an identifier key: {key!r}")
        return cls(IdType(type_name), value)

    def __str__(self) -> str:
        return self.key


# Placeholders that forms, SDKs and test accounts send instead of a real value. Compared after
# trimming and case-folding, for every identifier type.
DEFAULT_BLOCKLIST: frozenset[str] = frozenset(
    {
        "", "null", "nil", "none", "undefined", "nan", "n/a", "na", "-", "--", "?", "-1",
        "unknown", "anonymous", "anon", "guest", "test", "user", "default", "[object object]",
        "true", "false", "<nil>", "{}", "[]", "''", '""',
        "test@test.de", "test@test.com", "test@example.com", "test@example.de", "example@example.com",
        "email@example.com", "user@example.com", "name@example.com", "no@email.com",
        "noemail@noemail.com", "none@none.com", "max@mustermann.de", "max.mustermann@mustermann.de",
        "max.mustermann@example.com", "max.mustermann@example.de", "mustermann@example.de",
    }
)  # fmt: skip


class IdentifierRules(BaseModel):
    """How raw identifiers are normalised. Frozen: one instance is shared by every event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default_region: str = "DE"
    """Region for phone numbers written without a country code (``0151 ...``)."""
    keep_plus_addressing: bool = True
    """``anna+shop@x.de`` stays distinct from ``anna@x.de`` unless set to False."""
    blocklist: frozenset[str] = DEFAULT_BLOCKLIST
    """Junk values that never identify anyone (compared trimmed and case-folded)."""
    alias_previous_id_type: IdType = IdType.ANONYMOUS_ID
    """What an alias call's ``previousId`` is taken to be (see ``identifiers_of``)."""
    max_length: int = Field(512, ge=1)
    """Longer values are bugs or attacks, and would be kept in memory for good."""

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, region: str) -> str:
        region = region.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {region!r}")
        return region

    @field_validator("blocklist")
    @classmethod
    def _folded(cls, blocklist: frozenset[str]) -> frozenset[str]:
        return frozenset(value.strip().casefold() for value in blocklist)


DEFAULT_RULES = IdentifierRules()


def _junk(value: str, rules: IdentifierRules) -> bool:
    # All-zero ids ("0", "000000", the zeroed advertising id "00000000-0000-...") are what SDKs and
    # databases emit when the real id is missing; they would link everyone who lacks one.
    return value.casefold() in rules.blocklist or not value.strip("0-")


def _email(value: str, rules: IdentifierRules) -> str | None:
    value = value.lower()
    value = value.removeprefix("mailto:")
    local, at, domain = value.rpartition("@")
    if not at or not local or "@" in local or any(ch.isspace() for ch in value):
        return None
    labels = domain.split(".")
    if len(labels) < 2 or not all(labels) or local.startswith(".") or local.endswith("."):
        return None
    if not rules.keep_plus_addressing:
        local = local.partition("+")[0]
        if not local:
            return None
    return f"{local}@{domain}"


@lru_cache(maxsize=65536)
def _e164(raw: str, region: str) -> str | None:
    # Parsing costs ~10 us; the same few numbers arrive again and again, so the cache pays off.
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    # Only numbers valid in the numbering plan: placeholders like 0123456789 must not link people.
    # A real number in a range newer than the metadata merely links nothing, which is safe.
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_identifier(
    id_type: IdType, raw: str, rules: IdentifierRules = DEFAULT_RULES
) -> Identifier | None:
    """The normalised identifier, or ``None`` for a junk, blocked or invalid value.

    Emails are trimmed and lower-cased (plus-addressing kept unless configured); phones become
    E.164. Ids (customer, anonymous, chat handle, recipient id) are only trimmed: their case may be
    meaningful, and folding it could merge two different people.
    """
    value = raw.strip()
    if len(value) > rules.max_length or not value.isprintable() or _junk(value, rules):
        return None
    normalised: str | None = value
    if id_type is IdType.EMAIL:
        normalised = _email(value, rules)
    elif id_type is IdType.PHONE:
        normalised = _e164(value, rules.default_region)
    if normalised is None or _junk(normalised, rules):
        return None
    return Identifier(id_type, normalised)


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def identifiers_of(event: Mapping[str, Any], rules: IdentifierRules = DEFAULT_RULES) -> list[Identifier]:
    """Every usable identifier of a canonical event (camelCase), best-ranked first, without repeats.

    Alias calls also yield ``previousId``. The Segment spec allows it to be an anonymous id or an
    older user id, and the event does not say which; it is typed ``rules.alias_previous_id_type``,
    by default an anonymous id, because that is what alias is used for in practice (sign-up: the
    visitor's cookie id meets the new customer id). A shop whose previousIds are old customer ids
    may configure ``customer_id``: such an alias then links two customer ids, which the graph
    refuses and records (two customer accounts are never merged automatically).
    """
    found: dict[Identifier, None] = {}
    raw_ids = event.get("identifiers")
    if isinstance(raw_ids, Mapping):
        for wire_name, id_type in WIRE_NAMES.items():
            raw = _as_text(raw_ids.get(wire_name))
            identifier = normalise_identifier(id_type, raw, rules) if raw is not None else None
            if identifier is not None:
                found[identifier] = None
    if event.get("type") == "alias":
        raw = _as_text(event.get("previousId"))
        identifier = normalise_identifier(rules.alias_previous_id_type, raw, rules) if raw else None
        if identifier is not None:
            found[identifier] = None
    return sorted(found, key=lambda identifier: identifier.rank_key)
