"""Email events from the email tool: delivery, engagement, subscription and consent."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import OpenProperties


class EmailProperties(OpenProperties):
    """Common to every email event."""

    email: str | None = Field(None, description="Recipient address")
    recipient_id: str | None = Field(None, description="The email tool's id of the recipient")
    email_id: str | None = Field(None, description="The email tool's id of this message")
    campaign_id: str | None = None
    campaign_name: str | None = None
    list_id: str | None = None
    provider: str | None = None


class EmailClickedProperties(EmailProperties):
    link_url: str | None = None


class EmailBouncedProperties(EmailProperties):
    bounce_type: Literal["hard", "soft"] = "hard"
    reason: str | None = None


class SubscriptionProperties(EmailProperties):
    """Subscribed / Unsubscribed / Double Opt-In Confirmed: the consent trail for email marketing."""

    legal_text_version: str | None = Field(None, description="Version of the consent text shown")
    double_opt_in: bool | None = None
    reason: str | None = None
