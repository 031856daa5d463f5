from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.ingest.normalise import NormalisedEvent, normalise
from services.ingest.webhooks import PayloadError, ProviderConfigError, SendGridProvider, SignatureError

SIGNED_AT = 1736510400  # 2025-01-10T12:00:00Z
NOW = datetime.fromtimestamp(SIGNED_AT, UTC)


def at(now: datetime) -> SendGridProvider:
    return SendGridProvider(clock=lambda: now)


sendgrid = at(NOW)


class Signer:
    def __init__(self) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: int = SIGNED_AT) -> dict[str, str]:
        signed = str(timestamp).encode() + body
        signature = self.private_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": str(timestamp),
            "Content-Type": "application/json",
        }


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


# --- signature ------------------------------------------------------------------------------


def test_verify_accepts_sendgrids_published_test_vector() -> None:
    # The known-answer vector from SendGrid's own Python SDK tests (test/unit/test_eventwebhook.py).
    public_key = (
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+"
        "2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
    )
    event = {
        "email": "hello@world.com",
        "event": "dropped",
        "reason": "Bounced Address",
        "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
        "sg_message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
        "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
        "timestamp": 1600112492,
    }
    body = (json.dumps([event], sort_keys=True, separators=(",", ":")) + "\r\n").encode()
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": (
            "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="
        ),
        "X-Twilio-Email-Event-Webhook-Timestamp": "1600112502",
    }
    at(datetime.fromtimestamp(1600112502 + 30, UTC)).verify(headers, body, public_key)
    with pytest.raises(SignatureError, match="does not match"):
        at(datetime.fromtimestamp(1600112502, UTC)).verify(
            headers, body.replace(b"dropped", b"bounce"), public_key
        )


def test_verify_accepts_a_fresh_signature(signer: Signer, sample_bytes: Callable[[str], bytes]) -> None:
    body = sample_bytes("sendgrid_events.json")
    sendgrid.verify(signer.headers(body), body, signer.public_key)


def test_verify_reads_headers_case_insensitively(signer: Signer) -> None:
    body = b"[]"
    headers = {key.upper(): value for key, value in signer.headers(body).items()}
    sendgrid.verify(headers, body, signer.public_key)


def test_verify_refuses_a_tampered_body(signer: Signer, sample_bytes: Callable[[str], bytes]) -> None:
    body = sample_bytes("sendgrid_events.json")
    headers = signer.headers(body)
    with pytest.raises(SignatureError, match="does not match"):
        sendgrid.verify(headers, body.replace(b"example@test.com", b"attacker@test.com"), signer.public_key)


def test_verify_refuses_a_moved_timestamp(signer: Signer) -> None:
    body = b"[]"
    headers = signer.headers(body) | {"X-Twilio-Email-Event-Webhook-Timestamp": str(SIGNED_AT + 1)}
    with pytest.raises(SignatureError, match="does not match"):
        sendgrid.verify(headers, body, signer.public_key)


def test_verify_refuses_another_accounts_key(signer: Signer) -> None:
    body = b"[]"
    with pytest.raises(SignatureError, match="does not match"):
        sendgrid.verify(signer.headers(body), body, Signer().public_key)


@pytest.mark.parametrize(
    "missing", ["X-Twilio-Email-Event-Webhook-Signature", "X-Twilio-Email-Event-Webhook-Timestamp"]
)
def test_verify_names_the_missing_header(signer: Signer, missing: str) -> None:
    headers = signer.headers(b"[]")
    del headers[missing]
    with pytest.raises(SignatureError, match=f"missing header {missing}"):
        sendgrid.verify(headers, b"[]", signer.public_key)


def test_verify_refuses_a_stale_timestamp(signer: Signer) -> None:
    headers = signer.headers(b"[]")
    with pytest.raises(SignatureError, match="stale timestamp"):
        at(NOW + timedelta(minutes=11)).verify(headers, b"[]", signer.public_key)
    at(NOW + timedelta(minutes=9)).verify(headers, b"[]", signer.public_key)


def test_verify_tolerance_is_configurable(signer: Signer) -> None:
    headers = signer.headers(b"[]")
    lenient = SendGridProvider(clock=lambda: NOW + timedelta(hours=1), tolerance=timedelta(hours=2))
    lenient.verify(headers, b"[]", signer.public_key)


def test_verify_refuses_a_timestamp_from_the_future(signer: Signer) -> None:
    headers = signer.headers(b"[]", timestamp=SIGNED_AT + 3600)
    with pytest.raises(SignatureError, match="in the future"):
        sendgrid.verify(headers, b"[]", signer.public_key)


def test_verify_refuses_a_signature_that_is_not_base64(signer: Signer) -> None:
    headers = signer.headers(b"[]") | {"X-Twilio-Email-Event-Webhook-Signature": "%%%"}
    with pytest.raises(SignatureError, match="not valid base64"):
        sendgrid.verify(headers, b"[]", signer.public_key)


@pytest.mark.parametrize("key", ["", "not-a-key", base64.b64encode(b"\x30\x03\x02\x01\x01").decode()])
def test_unusable_public_key_is_a_configuration_error(signer: Signer, key: str) -> None:
    with pytest.raises(ProviderConfigError):
        sendgrid.verify(signer.headers(b"[]"), b"[]", key)


# --- mapping --------------------------------------------------------------------------------


def test_documented_events_map_to_email_events(
    sample_bytes: Callable[[str], bytes], valid_messages: Any
) -> None:
    result = sendgrid.map_payload({}, sample_bytes("sendgrid_events.json"))
    events = [m.event for m in valid_messages(result.messages)]
    assert events == [
        "Email Delivered",
        "Email Opened",
        "Email Link Clicked",
        "Email Bounced",
        "Email Bounced",
        "Email Marked as Spam",
        "Unsubscribed",
        "Unsubscribed",
        "Subscribed",
    ]
    assert [(s.path, s.kind) for s in result.skipped] == [
        ("[0]", "processed"),
        ("[1]", "deferred"),
        ("[7]", "dropped"),
    ]


def test_email_event_carries_recipient_and_sendgrid_ids(
    sample_bytes: Callable[[str], bytes], valid_messages: Any
) -> None:
    delivered = valid_messages(sendgrid.to_messages({}, sample_bytes("sendgrid_events.json")))[0]
    assert delivered.context.channel == "email"
    assert delivered.context.source == "sendgrid"
    assert delivered.context.traits == {"email": "example@test.com"}
    assert delivered.timestamp == datetime(2017, 12, 15, 0, 59, 29, tzinfo=UTC)
    assert delivered.properties == {
        "email": "example@test.com",
        "email_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "provider": "sendgrid",
        "provider_event_id": "hqFbp3HH9WxIM0R2-x2M1Q==",
        "category": ["cat facts"],
    }


def test_event_specific_properties(sample_bytes: Callable[[str], bytes]) -> None:
    by_id = {
        m["properties"]["provider_event_id"]: m["properties"]
        for m in sendgrid.to_messages({}, sample_bytes("sendgrid_events.json"))
    }
    assert by_id["FOTFFO0ecsBE-zxFXfs6WA=="]["machine_open"] is False
    assert by_id["kCAi1KttyQdEKHhdC-nuEA=="]["link_url"] == "http://www.sendgrid.com/"
    hard = by_id["6g4ZI7SA-xmRDv57GoPIPw=="]
    assert (hard["bounce_type"], hard["reason"], hard["smtp_status"]) == (
        "hard",
        "500 unknown recipient",
        "5.0.0",
    )
    assert by_id["Ym91bmNlLTQtNTA0ODUxOTUtZXVvMmlLeGRTYXlQRjRZRTQtLUk3QS0w"]["bounce_type"] == "soft"
    assert by_id["ahSCB7xYcXFb-hEaawsPRw=="]["list_id"] == "10"
    assert by_id["H_B2LlJzSuCOPgTrX3zJTA=="]["list_id"] == "10"


def test_messages_pass_the_ingest_normaliser(sample_bytes: Callable[[str], bytes]) -> None:
    for message in sendgrid.to_messages({}, sample_bytes("sendgrid_events.json")):
        event = normalise(message, received_at=NOW, default_source="webhook")
        assert isinstance(event, NormalisedEvent), event
        event = event.model()
        assert event.identifiers.email == "example@test.com"


def test_message_ids_are_deterministic_and_distinct(sample_bytes: Callable[[str], bytes]) -> None:
    body = sample_bytes("sendgrid_events.json")
    first = [m["messageId"] for m in sendgrid.to_messages({}, body)]
    again = [m["messageId"] for m in sendgrid.to_messages({}, body)]
    assert first == again
    assert len(set(first)) == len(first)


def test_custom_args_and_categories_are_kept() -> None:
    event = {
        "email": "kunde@example.de",
        "timestamp": 1736510000,
        "event": "open",
        "category": ["newsletter", "black-friday"],
        "sg_event_id": "b3Blbi0xMjM0NQ",
        "sg_message_id": "abc.filter0001",
        "marketing_campaign_id": 12345,
        "marketing_campaign_name": "Black Friday",
        "customer_id": "115310627314723954",
        "locale": "de",
    }
    [message] = SendGridProvider(customer_id_arg="customer_id").to_messages({}, orjson.dumps([event]))
    assert message["userId"] == "115310627314723954"
    props = message["properties"]
    assert props["category"] == ["newsletter", "black-friday"]
    assert (props["campaign_id"], props["campaign_name"]) == ("12345", "Black Friday")
    assert props["custom_args"] == {"customer_id": "115310627314723954", "locale": "de"}


def test_unknown_event_type_is_skipped() -> None:
    account_event = {"event": "account_status_change", "type": "compliance_suspend", "timestamp": 1736510000}
    result = sendgrid.map_payload({}, orjson.dumps([account_event]))
    assert result.messages == []
    assert result.skipped[0].kind == "account_status_change"


# --- malformed payloads ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda events: events[2].pop("sg_event_id"), "[2].sg_event_id"),
        (lambda events: events[2].pop("email"), "[2].email"),
        (lambda events: events[3].update(timestamp="1513299569"), "[3].timestamp"),
        (lambda events: events[3].update(timestamp=10**15), "[3].timestamp"),
        (lambda events: events[4].update(category=["ok", 7]), "[4].category[1]"),
        (lambda events: events[10].update(asm_group_id=None), "[10].asm_group_id"),
        (lambda events: events[5].pop("event"), "[5].event"),
        (lambda events: events.__setitem__(0, "processed"), "[0]"),
    ],
)
def test_malformed_event_names_the_field(
    sample_json: Callable[[str], Any], change: Callable[[Any], None], path: str
) -> None:
    events = sample_json("sendgrid_events.json")
    change(events)
    with pytest.raises(PayloadError) as error:
        sendgrid.map_payload({}, orjson.dumps(events))
    assert error.value.path == path


@pytest.mark.parametrize("body", [b"{}", b"", b"[", b'{"event": "open"}'])
def test_body_that_is_not_an_array_is_a_payload_error(body: bytes) -> None:
    with pytest.raises(PayloadError) as error:
        sendgrid.map_payload({}, body)
    assert error.value.path == "$"
