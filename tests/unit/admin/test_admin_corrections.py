"""Split and detach requests: parsing, validation and the record handed to ``submit`` (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from starlette.routing import Route

from services.admin.api import admin_routes
from services.admin.auth import AdminTokens
from services.admin.corrections import (
    MAX_REASON,
    Correction,
    CorrectionError,
    parse_correction,
    parse_identifier,
)
from services.admin.profiles import ProfileReader
from services.identity.domain.identifiers import Identifier, IdentifierRules, IdType

ANNA = Identifier(IdType.EMAIL, "anna@example.de")
TABLET = Identifier(IdType.ANONYMOUS_ID, "tablet-1")


def body(**fields: object) -> bytes:
    return orjson.dumps(fields)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "email", "value": "  Anna@Example.DE "}, ANNA),
        ("email:anna@example.de", ANNA),
        ("email:mailto:ANNA@example.de", ANNA),
        (" Email :anna@example.de", ANNA),
        ({"type": "phone", "value": "0151 12345678"}, Identifier(IdType.PHONE, "+4915112345678")),
        ("phone:+49 (151) 123-456-78", Identifier(IdType.PHONE, "+4915112345678")),
        ("customer_id: C100042 ", Identifier(IdType.CUSTOMER_ID, "C100042")),
        ("anonymous_id:a:b:c", Identifier(IdType.ANONYMOUS_ID, "a:b:c")),
        ({"type": "chat_handle", "value": "@anna"}, Identifier(IdType.CHAT_HANDLE, "@anna")),
        ("email_recipient_id:r-77", Identifier(IdType.EMAIL_RECIPIENT_ID, "r-77")),
    ],
)
def test_identifiers_are_normalised_like_ingest(raw, expected):
    assert parse_identifier("a", raw) == expected


def test_phone_region_comes_from_the_rules():
    rules = IdentifierRules(default_region="AT")
    assert parse_identifier("a", "phone:0664 1234567", rules).value == "+436641234567"


@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        ("anna@example.de", "invalid_identifier", "a 'anna@example.de' has no type: write type:value"),
        (
            "mail:anna@example.de",
            "invalid_identifier",
            "a: unknown identifier type 'mail'; one of customer_id",
        ),
        ({"type": "fax", "value": "1"}, "invalid_identifier", "unknown identifier type 'fax'"),
        ("profile_id:p_anna", "invalid_identifier", "a: a profile id cannot be split or detached"),
        ("email:", "invalid_identifier", "a: email has no value"),
        ({"type": "email", "value": "  "}, "invalid_identifier", "a: email has no value"),
        ("email:anna", "invalid_identifier", "a: email 'anna' is not a usable email address"),
        ("email:test@test.de", "invalid_identifier", "is not a usable email address"),
        ("phone:0123456789", "invalid_identifier", "a: phone '0123456789' is not a valid phone number"),
        ("customer_id:unknown", "invalid_identifier", "a placeholder such as 'unknown'"),
        (
            "anonymous_id:00000000-0000-0000-0000-000000000000",
            "invalid_identifier",
            "not a usable identifier",
        ),
        ("customer_id:" + "x" * 600, "invalid_identifier", "too long"),
        ({"type": "email"}, "invalid_request", "a needs exactly the keys type and value, got type"),
        ({"type": "email", "value": "a@b.de", "x": 1}, "invalid_request", "got type, value, x"),
        ({"type": "customer_id", "value": 100042}, "invalid_request", "a.type and a.value must be strings"),
        (42, "invalid_request", 'a must be an identifier: {"type": "email"'),
        (None, "invalid_request", "a must be an identifier"),
        (["email", "anna@example.de"], "invalid_request", "a must be an identifier"),
    ],
)
def test_invalid_identifiers_say_what_is_wrong(raw, code, message):
    with pytest.raises(CorrectionError) as caught:
        parse_identifier("a", raw)
    assert caught.value.code == code
    assert message in str(caught.value)


def test_split_request():
    correction = parse_correction(
        "split",
        body(a={"type": "email", "value": "ANNA@example.de"}, b="anonymous_id:tablet-1", reason=" tablet "),
    )
    assert correction == Correction("split", {"a": ANNA, "b": TABLET}, "tablet")


def test_detach_request():
    correction = parse_correction("detach", body(identifier="anonymous_id:tablet-1", reason="shared device"))
    assert correction == Correction("detach", {"identifier": TABLET}, "shared device")


@pytest.mark.parametrize(
    ("kind", "raw", "code", "message"),
    [
        ("split", b"", "invalid_request", "the body is empty: send a JSON object with a, b, reason"),
        ("split", b"{nope", "invalid_request", "the body is not valid JSON"),
        ("split", b"\xff\xfe", "invalid_request", "the body is not valid JSON"),
        ("split", b"[]", "invalid_request", "the body must be a JSON object with a, b, reason"),
        ("detach", b'"x"', "invalid_request", "the body must be a JSON object with identifier, reason"),
        ("split", body(a="email:anna@example.de", reason="r"), "invalid_request", "b missing: give a, b, reason"),
        ("split", body(reason="r"), "invalid_request", "a and b missing"),
        ("detach", body(reason="r"), "invalid_request", "identifier missing"),
        ("detach", body(identifier="email:anna@example.de", a="x", reason="r"), "invalid_request",
         "unknown field a: give identifier, reason"),
        ("split", body(a="email:anna@example.de", b="email:ANNA@example.de ", reason="r"), "invalid_request",
         "a and b are the same identifier (email:anna@example.de)"),
        ("split", body(a="email:anna@example.de", b="email:x", reason="r"), "invalid_identifier",
         "b: email 'x' is not a usable email address"),
        ("detach", body(identifier="email:anna@example.de"), "invalid_request", "reason is missing"),
        ("detach", body(identifier="email:anna@example.de", reason=None), "invalid_request", "reason is missing"),
        ("detach", body(identifier="email:anna@example.de", reason=" \n"), "invalid_request", "reason is empty"),
        ("detach", body(identifier="email:anna@example.de", reason=5), "invalid_request",
         "reason must be a string"),
        ("detach", body(identifier="email:anna@example.de", reason="r" * (MAX_REASON + 1)), "invalid_request",
         f"reason has {MAX_REASON + 1} characters; at most {MAX_REASON}"),
    ],
)  # fmt: skip
def test_invalid_requests_say_what_is_wrong(kind, raw, code, message):
    with pytest.raises(CorrectionError) as caught:
        parse_correction(kind, raw)
    assert caught.value.code == code
    assert message in str(caught.value)


def test_a_reason_of_the_maximum_length_is_accepted():
    raw = body(identifier="email:anna@example.de", reason="r" * MAX_REASON)
    assert parse_correction("detach", raw).reason == "r" * MAX_REASON


def test_records_carry_the_identifier_keys_and_who_asked_when():
    at = datetime(2026, 11, 22, 18, 38, 41, 20_000, tzinfo=UTC)
    split = Correction("split", {"a": ANNA, "b": TABLET}, "tablet")
    assert split.record(request_id="r1", requested_at=at, requested_by="admin") == {
        "schemaVersion": 1, "kind": "split", "a": "email:anna@example.de", "b": "anonymous_id:tablet-1",
        "reason": "tablet", "requestId": "r1", "requestedAt": "2026-11-22T18:38:41.020Z", "requestedBy": "admin",
    }  # fmt: skip
    detach = Correction("detach", {"identifier": TABLET}, "shared")
    record = detach.record(request_id="r2", requested_at=at, requested_by="agent-1")
    assert record["kind"] == "detach" and record["identifier"] == "anonymous_id:tablet-1"
    assert "a" not in record and "b" not in record


class _NoWarehouse:
    database = "cdp"


async def _submit(record: dict[str, object]) -> None:
    return None


def _routes(**kwargs: object) -> set[tuple[str, frozenset[str]]]:
    reader = ProfileReader(_NoWarehouse())  # type: ignore[arg-type]
    routes = admin_routes(reader, AdminTokens.single_admin("t"), **kwargs)  # type: ignore[arg-type]
    return {(route.path, frozenset(route.methods or ())) for route in routes if isinstance(route, Route)}


def test_write_routes_are_mounted_only_with_submit():
    read_only = _routes()
    assert {path for path, _ in read_only} == {"/api/v1/profiles/lookup", "/api/v1/profiles/{profile_id}"}
    assert _routes(submit=_submit) == read_only | {
        ("/api/v1/profiles/split", frozenset({"POST"})),
        ("/api/v1/profiles/detach", frozenset({"POST"})),
    }


def test_the_identity_processor_applies_the_records():
    """The records are what the graph stage reads from ``cdp.identity.observations``."""
    from services.identity.domain.graph import IdentityGraph
    from services.identity.streaming.graph_stage import GraphProcessor
    from services.identity.streaming.observations import apply_observation
    from services.identity.streaming.records import Topic

    stage = GraphProcessor(IdentityGraph())
    event = {"messageId": "m1", "type": "identify", "timestamp": "2026-11-20T10:00:00Z",
             "identifiers": {"email": "anna@example.de", "anonymousId": "tablet-1"}}  # fmt: skip
    apply_observation(stage, event, 0)
    at = datetime(2026, 11, 22, tzinfo=UTC)
    raw = body(a="email:anna@example.de", b="anonymous_id:tablet-1", reason="shared tablet")
    record = parse_correction("split", raw).record(request_id="r1", requested_at=at, requested_by="admin")
    [audit] = [r.value for r in apply_observation(stage, record, 1) if r.topic is Topic.SPLITS]
    assert audit["action"] == "split" and audit["status"] == "split" and audit["requestId"] == "r1"
    assert audit["subject"] == "email:anna@example.de anonymous_id:tablet-1"
