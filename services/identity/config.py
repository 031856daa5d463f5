"""The identity rules of a deployment, from its settings (``CDP_IDENTITY_*``)."""

from __future__ import annotations

from services.core.settings import Settings
from services.identity.domain import IdentifierRules, LinkLimits
from services.identity.domain.identifiers import DEFAULT_BLOCKLIST


def link_limits(settings: Settings) -> LinkLimits:
    return LinkLimits(
        email=settings.identity_max_emails,
        phone=settings.identity_max_phones,
        chat_handle=settings.identity_max_chat_handles,
        email_recipient_id=settings.identity_max_email_recipient_ids,
        anonymous_id=settings.identity_max_anonymous_ids,
    )


def identifier_rules(settings: Settings) -> IdentifierRules:
    extra = frozenset(value.strip().casefold() for value in settings.identity_extra_blocklist)
    return IdentifierRules(
        default_region=settings.identity_phone_region,
        keep_plus_addressing=settings.identity_keep_plus_addressing,
        blocklist=DEFAULT_BLOCKLIST | extra,
    )
