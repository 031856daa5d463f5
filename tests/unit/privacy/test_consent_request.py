"""The Consent Updated event schema, ingest's checks of it, and the consent API's request body."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from schemas.catalog import CATALOG
from schemas.export import all_schemas
from schemas.privacy import DEFAULT_CONSENT_PURPOSES
from services.core.settings import Settings
from services.identity.domain.consents import WEBHOOK_PROVIDERS
from services.identity.domain.identifiers import IdType
from services.ingest.normalise import NormalisedEvent, Rejection, normalise
from services.ingest.webhooks import PROVIDERS
from services.privacy.consent_api import ConsentRequestError, current_of, parse_consent_request
from services.segments.domain.rules import CONSENT_PURPOSES

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def track(properties: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Consent Updated", "userId": "C1", "properties": properties, **more}


def ingest(call: dict[str, Any], purposes: tuple[str, ...] | None = None) -> NormalisedEvent | Rejection:
    return normalise(call, received_at=NOW, default_source="api", consent_purposes=purposes)


# --- the event ----------------------------------------------------------------------------------


def test_default_purposes_are_the_settings_default_everywhere():
    assert tuple(Settings().consent_purposes) == DEFAULT_CONSENT_PURPOSES == CONSENT_PURPOSES


def test_webhook_sources_are_the_providers():
    assert set(PROVIDERS) == WEBHOOK_PROVIDERS


def test_consent_updated_is_typed_and_exported():
    spec = CATALOG["Consent Updated"]
    assert spec.channel is None
    schema = all_schemas()["events/privacy/consent-updated.json"]
    assert schema["x-event"] == "Consent Updated"
    assert set(schema["required"]) == {"purpose", "status"}
    assert schema["properties"]["status"]["enum"] == ["granted", "denied", "withdrawn"]


def test_a_valid_event_is_accepted_and_takes_its_channel_from_context():
    outcome = ingest(track({"purpose": "analytics", "status": "granted", "legal_text_version": "cb-3"}))
    assert isinstance(outcome, NormalisedEvent)
    assert outcome.record["channel"] == "shop"
    assert outcome.record["properties"] == {
        "purpose": "analytics",
        "status": "granted",
        "legal_text_version": "cb-3",
    }
    emailed = ingest(
        track({"purpose": "email_marketing", "status": "withdrawn"}, context={"channel": "email"})
    )
    assert isinstance(emailed, NormalisedEvent) and emailed.record["channel"] == "email"


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"status": "granted", "legal_text_version": "v1"}, "properties.purpose: Field required"),
        ({"purpose": "sms", "status": "denied"}, "unknown purpose 'sms'; use one of email_marketing, personalisation"),
        ({"purpose": "analytics", "status": "maybe"}, "properties.status: Input should be 'granted', 'denied' or 'withdrawn'"),
        ({"purpose": "analytics", "status": "granted"}, "a granted consent needs legal_text_version"),
        ({"purpose": "analytics", "status": "denied", "double_opt_in": "ja"}, "properties.double_opt_in"),
    ],
)  # fmt: skip
def test_invalid_events_are_rejected_with_the_field_and_why(properties: dict[str, Any], message: str):
    outcome = ingest(track(properties))
    assert isinstance(outcome, Rejection)
    assert outcome.reason == "invalid_properties"
    assert message in outcome.describe()


def test_configured_purposes_decide_what_ingest_accepts():
    call = track({"purpose": "profiling", "status": "denied"})
    assert isinstance(ingest(call), Rejection)
    assert isinstance(ingest(call, ("profiling",)), NormalisedEvent)
    refused = ingest(track({"purpose": "analytics", "status": "denied"}), ("profiling",))
    assert isinstance(refused, Rejection) and "use one of profiling" in refused.describe()


# --- the API body -------------------------------------------------------------------------------


def body(**fields: Any) -> bytes:
    base: dict[str, Any] = {"identifier": "email:Anna@Example.de", "purpose": "personalisation",
                            "status": "granted", "legal_text_version": "v2"}  # fmt: skip
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not None})


def test_a_valid_body_becomes_a_consent_updated_call_ingest_accepts():
    request = parse_consent_request(body(reason=" phone call ", double_opt_in=True))
    assert request.identifier.key == "email:anna@example.de"
    assert (request.purpose, request.status, request.legal_text_version, request.reason) == (
        "personalisation", "granted", "v2", "phone call",
    )  # fmt: skip
    call = request.event("consent-1", NOW, "admin")
    outcome = normalise(call, received_at=NOW, default_source="admin-api")
    assert isinstance(outcome, NormalisedEvent)
    record = outcome.record
    assert (record["source"], record["messageId"], record["identifiers"]) == (
        "admin-api", "consent-1", {"email": "anna@example.de"},
    )  # fmt: skip
    assert record["properties"]["double_opt_in"] is True
    assert "source" not in record["context"]


@pytest.mark.parametrize(
    ("identifier", "wire"),
    [
        ("customer_id:C7", ("userId", "C7")),
        ({"type": "anonymous_id", "value": "dev-1"}, ("anonymousId", "dev-1")),
        ("phone:+4915112345678", ("context.traits.phone", "+4915112345678")),
        ("chat_handle:h-1", ("properties.chat_handle", "h-1")),
        ("email_recipient_id:r-9", ("properties.recipient_id", "r-9")),
    ],
)
def test_every_identifier_type_reaches_the_event(identifier: Any, wire: tuple[str, str]):
    call = parse_consent_request(body(identifier=identifier)).event("m", NOW, "admin")
    outcome = normalise(call, received_at=NOW, default_source="admin-api")
    assert isinstance(outcome, NormalisedEvent)
    id_type = parse_consent_request(body(identifier=identifier)).identifier.type
    names = {IdType.CUSTOMER_ID: "customerId", IdType.ANONYMOUS_ID: "anonymousId", IdType.PHONE: "phone",
             IdType.CHAT_HANDLE: "chatHandle", IdType.EMAIL_RECIPIENT_ID: "emailRecipientId"}  # fmt: skip
    assert outcome.record["identifiers"][names[id_type]] == wire[1]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "the body is empty"),
        (b"{not json", "the body is not valid JSON"),
        (b"[1]", "the body must be a JSON object"),
        (body(colour="red"), "unknown field colour"),
        (orjson.dumps({"purpose": "analytics", "status": "denied"}), "identifier missing"),
        (body(identifier="anna@example.de"), "has no type: write type:value"),
        (body(identifier="email:not-an-address"), "not a usable email address"),
        (body(identifier="shoe_size:42"), "unknown identifier type 'shoe_size'"),
        (
            body(purpose="sms"),
            "unknown purpose 'sms': use one of email_marketing, personalisation, analytics",
        ),
        (body(status="yes"), "status must be one of granted, denied, withdrawn, not 'yes'"),
        (body(legal_text_version=None), "legal_text_version missing: a granted consent names the version"),
        (body(legal_text_version=3), "legal_text_version must be a string"),
        (body(legal_text_version="  "), "legal_text_version is empty"),
        (body(double_opt_in="yes"), "double_opt_in must be true or false"),
        (body(status="withdrawn", double_opt_in=True), "double_opt_in true confirms a granted consent"),
        (body(reason="x" * 1001), "reason has 1001 characters; at most 1000"),
    ],
)
def test_each_mistake_gets_a_precise_message(raw: bytes, message: str):
    with pytest.raises(ConsentRequestError) as caught:
        parse_consent_request(raw)
    assert message in str(caught.value)


def test_withdrawal_needs_no_legal_text_and_configured_purposes_apply():
    assert parse_consent_request(body(status="withdrawn", legal_text_version=None)).legal_text_version is None
    with pytest.raises(ConsentRequestError, match="use one of profiling"):
        parse_consent_request(body(), purposes=("profiling",))
    assert parse_consent_request(body(purpose="profiling"), purposes=("profiling",)).purpose == "profiling"


def test_current_state_from_history_rows():
    rows = [
        {"message_id": "a", "purpose": "email_marketing", "status": "granted", "double_opt_in": False,
         "legal_text_version": "nl-1", "source": "event", "occurred_at": "2026-11-01T10:00:00.000Z"},
        {"message_id": "b", "purpose": "email_marketing", "status": "granted", "double_opt_in": True,
         "legal_text_version": None, "source": "event", "occurred_at": "2026-11-01T10:05:00.000Z"},
        {"message_id": "c", "purpose": "personalisation", "status": "withdrawn", "double_opt_in": False,
         "legal_text_version": None, "source": "api", "occurred_at": "2026-11-02T08:00:00.000Z"},
    ]  # fmt: skip
    current = current_of(rows)
    assert (current["email_marketing"]["granted"], current["email_marketing"]["double_opt_in"]) == (
        True,
        True,
    )
    assert (current["personalisation"]["status"], current["personalisation"]["source"]) == (
        "withdrawn",
        "api",
    )
