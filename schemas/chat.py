"""Chat events: live chat and chatbot conversations, ratings and complaints."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import OpenProperties

HandledBy = Literal["bot", "human"]


class ConversationProperties(OpenProperties):
    """Common to every chat event."""

    conversation_id: str = Field(min_length=1)
    handled_by: HandledBy | None = Field(None, description="Who answered: the chatbot or a human agent")
    agent_id: str | None = None
    chat_handle: str | None = Field(None, description="The customer's handle in the chat tool")
    topic: str | None = None


class MessageProperties(ConversationProperties):
    """Message Sent (by the customer) / Message Received (by the customer, from bot or agent)."""

    message_length: int | None = Field(None, ge=0)


class ConversationRatedProperties(ConversationProperties):
    csat: int = Field(ge=1, le=5, description="Customer satisfaction, 1 (very unhappy) to 5 (very happy)")
    comment: str | None = None


class ComplaintProperties(ConversationProperties):
    """Complaint Opened / Complaint Resolved (Beschwerdemanagement)."""

    conversation_id: str = Field("", description="Set when the complaint came through a conversation")
    complaint_id: str = Field(min_length=1)
    category: str | None = Field(None, description="delivery, product, billing, service, ...")
    order_id: str | None = None
    resolution: str | None = None
