"""Shorthands for identity graph tests: identifiers by type and provenance by message id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.identity.domain import Identifier, IdentityGraph, IdType, LinkRule, Provenance

WHEN = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def anon(value: str) -> Identifier:
    return Identifier(IdType.ANONYMOUS_ID, value)


def customer(value: str) -> Identifier:
    return Identifier(IdType.CUSTOMER_ID, value)


def email(value: str) -> Identifier:
    return Identifier(IdType.EMAIL, value)


def phone(value: str) -> Identifier:
    return Identifier(IdType.PHONE, value)


def chat(value: str) -> Identifier:
    return Identifier(IdType.CHAT_HANDLE, value)


def recipient(value: str) -> Identifier:
    return Identifier(IdType.EMAIL_RECIPIENT_ID, value)


def prov(
    message_id: str = "m1", rule: LinkRule = LinkRule.SAME_EVENT, event: str = "Order Completed"
) -> Provenance:
    return Provenance(message_id, event, WHEN + timedelta(seconds=len(message_id)), rule)


def founded_id(identifier: Identifier) -> str:
    """The id a profile named by ``identifier`` has: what a fresh graph gives it alone."""
    profile_id = IdentityGraph().observe([identifier], prov()).profile_id
    assert profile_id is not None
    return profile_id
