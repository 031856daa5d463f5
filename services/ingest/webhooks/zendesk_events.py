"""Zendesk event-subscription payloads (``zen:event-type:*``) -> chat channel messages.

Every payload has ``type``, ``id`` (the event), ``time`` and ``detail`` (the ticket or user).
Ticket events carry the requester only as ``requester_id``; it becomes the ``chat_handle``.
``user.created`` links that id to the person's email.

A ticket is a complaint when it carries one of the complaint tags. Complaint Opened is keyed on
the ticket, so the same complaint seen again (tag edits, event sequences) keeps one messageId;
a reopened complaint is a new Complaint Opened keyed on that status change.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from schemas.base import Channel
from services.ingest.webhooks.base import Message
from services.ingest.webhooks.messages import identify_message, stable_message_id, track_message
from services.ingest.webhooks.payload import JsonNode

PROVIDER = "zendesk"
EVENT_PREFIX = "zen:event-type:"
_DONE = frozenset({"solved", "closed"})


def ticket_created(payload: JsonNode, complaint_tags: Collection[str]) -> list[Message]:
    ticket = _Ticket(payload)
    started = ticket.track(
        "Conversation Started",
        stable_message_id(PROVIDER, "ticket", ticket.ticket_id, "Conversation Started"),
        {
            "topic": (payload.field("detail").field("type").text_or_none() or "").lower() or None,
            "via_channel": ticket.via_channel(),
            "priority": (payload.field("detail").field("priority").text_or_none() or "").lower() or None,
        },
    )
    if not ticket.is_complaint(complaint_tags):
        return [started]
    return [started, _complaint_opened(ticket, ("ticket", ticket.ticket_id))]


def ticket_tags_changed(payload: JsonNode, complaint_tags: Collection[str]) -> list[Message]:
    ticket = _Ticket(payload)
    if not ticket.is_complaint(complaint_tags) or ticket.status() in _DONE:
        return []
    return [_complaint_opened(ticket, ("ticket", ticket.ticket_id))]


def ticket_status_changed(payload: JsonNode, complaint_tags: Collection[str]) -> list[Message]:
    ticket = _Ticket(payload)
    if not ticket.is_complaint(complaint_tags):
        return []
    change = payload.field("event")
    current = (change.field("current").text_or_none() or "").lower()
    previous = (change.field("previous").text_or_none() or "").lower()
    if current in _DONE and previous not in _DONE:
        properties = {"resolution": current}
        message_id = stable_message_id(PROVIDER, "event", ticket.event_id, "Complaint Resolved")
        return [ticket.track("Complaint Resolved", message_id, ticket.complaint_properties(properties))]
    if previous in _DONE and current and current not in _DONE:
        return [_complaint_opened(ticket, ("event", ticket.event_id))]
    return []


def user_created(payload: JsonNode) -> list[Message]:
    """End users only: agents and admins are staff, not customers."""
    user = payload.field("detail")
    if (user.field("role").text_or_none() or "").lower() != "end-user":
        return []
    user_id = user.field("id").ident()
    traits = {
        "email": user.field("email").text_or_none(),
        "chat_handle": user_id,
        "zendesk_external_id": user.field("external_id").ident_or_none(),
    }
    return [
        identify_message(
            provider=PROVIDER,
            channel=Channel.CHAT,
            message_id=stable_message_id(PROVIDER, "user", user_id, "created"),
            timestamp=payload.field("time").iso_time(),
            traits=traits,
        )
    ]


def _complaint_opened(ticket: _Ticket, key: tuple[str, str]) -> Message:
    message_id = stable_message_id(PROVIDER, *key, "Complaint Opened")
    return ticket.track("Complaint Opened", message_id, ticket.complaint_properties({}))


class _Ticket:
    """The ticket a ticket event is about (``detail``) and the event's own id and time."""

    def __init__(self, payload: JsonNode) -> None:
        self.payload = payload
        self.detail = payload.field("detail")
        self.ticket_id = self.detail.field("id").ident()
        self.event_id = payload.field("id").ident()
        self.requester_id = self.detail.field("requester_id").ident_or_none()
        self.tags = [tag.text().lower() for tag in self.detail.field("tags").items()]

    def status(self) -> str:
        return (self.detail.field("status").text_or_none() or "").lower()

    def via_channel(self) -> str | None:
        via = self.detail.field("via")
        return None if via.missing else via.field("channel").text_or_none()

    def is_complaint(self, complaint_tags: Collection[str]) -> bool:
        return any(tag in complaint_tags for tag in self.tags)

    def complaint_properties(self, extra: dict[str, Any]) -> dict[str, Any]:
        return {"complaint_id": self.ticket_id, **extra}

    def track(self, event: str, message_id: str, extra: dict[str, Any]) -> Message:
        properties = {
            "conversation_id": self.ticket_id,
            "chat_handle": self.requester_id,
            "agent_id": self.detail.field("assignee_id").ident_or_none(),
            "ticket_status": self.status() or None,
            "tags": self.tags,
            **extra,
        }
        return track_message(
            provider=PROVIDER,
            channel=Channel.CHAT,
            event=event,
            message_id=message_id,
            timestamp=self.payload.field("time").iso_time(),
            properties=properties,
        )
