from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from services.ingest.normalise import NormalisedEvent, normalise
from services.ingest.webhooks import PayloadError, ProviderConfigError, SignatureError, ZendeskProvider

SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ"
SIGNED_AT = "2025-01-10T12:00:00Z"
NOW = datetime(2025, 1, 10, 12, 0, 30, tzinfo=UTC)
zendesk = ZendeskProvider(clock=lambda: NOW)


def signed_headers(body: bytes, timestamp: str = SIGNED_AT, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return {
        "X-Zendesk-Webhook-Id": "01GK8E6BKWMJZD2T8Y5AXJQMG5",
        "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
        "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
    }


def mapped(payload: Any) -> list[dict[str, Any]]:
    return zendesk.to_messages({}, orjson.dumps(payload))


# --- signature ------------------------------------------------------------------------------


def test_verify_accepts_the_documented_signature(sample_bytes: Callable[[str], bytes]) -> None:
    body = sample_bytes("zendesk_ticket_created.json")
    zendesk.verify(signed_headers(body), body, SECRET)


def test_verify_reads_headers_case_insensitively(sample_bytes: Callable[[str], bytes]) -> None:
    body = sample_bytes("zendesk_ticket_created.json")
    headers = {key.lower(): value for key, value in signed_headers(body).items()}
    zendesk.verify(headers, body, SECRET)


def test_verify_refuses_a_tampered_body(sample_bytes: Callable[[str], bytes]) -> None:
    body = sample_bytes("zendesk_ticket_created.json")
    with pytest.raises(SignatureError, match="does not match"):
        zendesk.verify(signed_headers(body), body.replace(b"beschwerde", b"frage"), SECRET)


def test_verify_refuses_a_moved_timestamp() -> None:
    headers = signed_headers(b"{}") | {"X-Zendesk-Webhook-Signature-Timestamp": "2025-01-10T12:00:01Z"}
    with pytest.raises(SignatureError, match="does not match"):
        zendesk.verify(headers, b"{}", SECRET)


@pytest.mark.parametrize("missing", ["X-Zendesk-Webhook-Signature", "X-Zendesk-Webhook-Signature-Timestamp"])
def test_verify_names_the_missing_header(missing: str) -> None:
    headers = signed_headers(b"{}")
    del headers[missing]
    with pytest.raises(SignatureError, match=f"missing header {missing}"):
        zendesk.verify(headers, b"{}", SECRET)


def test_verify_refuses_a_stale_timestamp() -> None:
    headers = signed_headers(b"{}")
    late = ZendeskProvider(clock=lambda: NOW + timedelta(minutes=10))
    with pytest.raises(SignatureError, match="stale timestamp"):
        late.verify(headers, b"{}", SECRET)


def test_verify_refuses_a_timestamp_from_the_future() -> None:
    headers = signed_headers(b"{}", timestamp="2025-01-10T13:00:00Z")
    with pytest.raises(SignatureError, match="in the future"):
        zendesk.verify(headers, b"{}", SECRET)


def test_verify_refuses_an_unreadable_timestamp() -> None:
    headers = signed_headers(b"{}", timestamp="yesterday")
    with pytest.raises(SignatureError, match="not a timestamp"):
        zendesk.verify(headers, b"{}", SECRET)


def test_verify_refuses_to_run_without_a_secret() -> None:
    with pytest.raises(ProviderConfigError):
        zendesk.verify(signed_headers(b"{}"), b"{}", "")


# --- mapping --------------------------------------------------------------------------------


def test_new_complaint_ticket_starts_a_conversation_and_opens_a_complaint(
    sample_json: Callable[[str], Any], valid_messages: Any
) -> None:
    started, opened = valid_messages(mapped(sample_json("zendesk_ticket_created.json")))
    assert started.event == "Conversation Started"
    assert started.context.channel == "chat"
    assert started.context.source == "zendesk"
    assert started.timestamp == datetime(2025, 1, 8, 10, 12, 7, 672717, tzinfo=UTC)
    assert started.properties == {
        "conversation_id": "5158",
        "chat_handle": "8658726154110",
        "agent_id": "8447388090494",
        "ticket_status": "open",
        "tags": ["beschwerde", "lieferung"],
        "topic": "incident",
        "via_channel": "web_widget",
        "priority": "high",
    }
    assert opened.event == "Complaint Opened"
    assert opened.properties["complaint_id"] == "5158"
    assert opened.properties["chat_handle"] == "8658726154110"


def test_ordinary_ticket_only_starts_a_conversation(sample_json: Callable[[str], Any]) -> None:
    payload = sample_json("zendesk_ticket_created.json")
    payload["detail"]["tags"] = ["lieferung"]
    assert [m["event"] for m in mapped(payload)] == ["Conversation Started"]


def test_complaint_tags_are_configurable(sample_json: Callable[[str], Any]) -> None:
    payload = sample_json("zendesk_ticket_created.json")
    custom = ZendeskProvider(complaint_tags=frozenset({"Lieferung"}))
    payload["detail"]["tags"] = ["lieferung"]
    assert [m["event"] for m in custom.to_messages({}, orjson.dumps(payload))] == [
        "Conversation Started",
        "Complaint Opened",
    ]


def test_tagging_a_ticket_as_complaint_opens_it(
    sample_json: Callable[[str], Any], valid_messages: Any
) -> None:
    [opened] = valid_messages(mapped(sample_json("zendesk_ticket_tags_changed.json")))
    assert opened.event == "Complaint Opened"
    assert opened.properties["complaint_id"] == "5203"


def test_a_complaint_seen_twice_keeps_one_message_id(sample_json: Callable[[str], Any]) -> None:
    created = sample_json("zendesk_ticket_created.json")
    tagged = sample_json("zendesk_ticket_tags_changed.json")
    tagged["detail"] = created["detail"]
    tagged["id"] = "another-event"
    assert mapped(created)[1]["messageId"] == mapped(tagged)[0]["messageId"]


def test_solving_a_complaint_resolves_it(sample_json: Callable[[str], Any], valid_messages: Any) -> None:
    [resolved] = valid_messages(mapped(sample_json("zendesk_ticket_status_changed.json")))
    assert resolved.event == "Complaint Resolved"
    assert resolved.properties["complaint_id"] == "5158"
    assert resolved.properties["resolution"] == "solved"


def test_reopening_a_complaint_opens_it_again(sample_json: Callable[[str], Any]) -> None:
    payload = sample_json("zendesk_ticket_status_changed.json")
    payload["event"] = {"current": "OPEN", "previous": "SOLVED"}
    payload["detail"]["status"] = "OPEN"
    [reopened] = mapped(payload)
    assert reopened["event"] == "Complaint Opened"
    assert reopened["messageId"] != mapped(sample_json("zendesk_ticket_created.json"))[1]["messageId"]


@pytest.mark.parametrize(
    ("tags", "current", "previous"),
    [
        (["lieferung"], "SOLVED", "OPEN"),
        (["beschwerde"], "PENDING", "OPEN"),
        (["beschwerde"], "CLOSED", "SOLVED"),
    ],
)
def test_other_status_changes_are_skipped(
    sample_json: Callable[[str], Any], tags: list[str], current: str, previous: str
) -> None:
    payload = sample_json("zendesk_ticket_status_changed.json")
    payload["detail"]["tags"] = tags
    payload["event"] = {"current": current, "previous": previous}
    result = zendesk.map_payload({}, orjson.dumps(payload))
    assert result.messages == []
    assert result.skipped[0].kind == "zen:event-type:ticket.status_changed"


def test_new_end_user_links_email_and_requester_id(
    sample_json: Callable[[str], Any], valid_messages: Any
) -> None:
    [identify] = valid_messages(mapped(sample_json("zendesk_user_created.json")))
    assert identify.type == "identify"
    assert identify.traits == {"email": "jon@example.com", "chat_handle": "8658726154110"}
    event = normalise(
        mapped(sample_json("zendesk_user_created.json"))[0], received_at=NOW, default_source="webhook"
    )
    assert isinstance(event, NormalisedEvent)
    event = event.model()
    assert (event.identifiers.email, event.identifiers.chat_handle) == ("jon@example.com", "8658726154110")


def test_new_agent_is_not_a_customer(sample_json: Callable[[str], Any]) -> None:
    payload = sample_json("zendesk_user_created.json")
    payload["detail"]["role"] = "agent"
    assert mapped(payload) == []


def test_ticket_messages_pass_the_ingest_normaliser(sample_json: Callable[[str], Any]) -> None:
    for name in ("zendesk_ticket_created.json", "zendesk_ticket_status_changed.json"):
        for message in mapped(sample_json(name)):
            event = normalise(message, received_at=NOW, default_source="webhook")
            assert isinstance(event, NormalisedEvent), event
            event = event.model()
            assert event.identifiers.chat_handle == "8658726154110"


def test_message_ids_are_deterministic_and_distinct(sample_json: Callable[[str], Any]) -> None:
    names = [
        "zendesk_ticket_created.json",
        "zendesk_ticket_status_changed.json",
        "zendesk_ticket_tags_changed.json",
        "zendesk_user_created.json",
    ]
    ids = [m["messageId"] for name in names for m in mapped(sample_json(name))]
    assert ids == [m["messageId"] for name in names for m in mapped(sample_json(name))]
    assert len(set(ids)) == len(ids) == 5


def test_event_type_without_cdp_meaning_is_skipped(sample_json: Callable[[str], Any]) -> None:
    payload = sample_json("zendesk_ticket_created.json") | {"type": "zen:event-type:ticket.priority_changed"}
    result = zendesk.map_payload({}, orjson.dumps(payload))
    assert result.messages == []
    assert result.skipped[0].reason == "event type has no CDP meaning"


# --- malformed payloads ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda p: p.update(type="ticket.created"), "type"),
        (lambda p: p.pop("type"), "type"),
        (lambda p: p["detail"].pop("id"), "detail.id"),
        (lambda p: p.update(detail=[]), "detail"),
        (lambda p: p["detail"].update(tags="beschwerde"), "detail.tags"),
        (lambda p: p["detail"].update(tags=["ok", None]), "detail.tags[1]"),
        (lambda p: p.update(time="10.01.2025"), "time"),
        (lambda p: p["detail"].update(requester_id=["x"]), "detail.requester_id"),
    ],
)
def test_malformed_event_names_the_field(
    sample_json: Callable[[str], Any], change: Callable[[Any], None], path: str
) -> None:
    payload = sample_json("zendesk_ticket_created.json")
    change(payload)
    with pytest.raises(PayloadError) as error:
        zendesk.map_payload({}, orjson.dumps(payload))
    assert error.value.path == path


@pytest.mark.parametrize("body", [b"", b"[]", b"null", b"{"])
def test_body_that_is_not_an_object_is_a_payload_error(body: bytes) -> None:
    with pytest.raises(PayloadError) as error:
        zendesk.map_payload({}, body)
    assert error.value.path == "$"
