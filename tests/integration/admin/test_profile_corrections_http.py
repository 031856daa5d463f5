"""``POST /api/v1/profiles/split`` and ``/detach`` served over HTTP: 202 and the record handed to
``submit``, every client mistake a 400, 401 without a token, 503 when the record cannot be queued."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette

from services.admin.api import admin_routes
from services.admin.auth import AdminTokens
from services.admin.profiles import ProfileReader
from tests.integration.admin.admin_story import TOKEN
from tests.integration.admin.conftest import RecordingSubmit
from tests.integration.servers import serve_app

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SPLIT = "/api/v1/profiles/split"
DETACH = "/api/v1/profiles/detach"


def post(url: str, path: str, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, headers=AUTH if headers is None else headers)


def test_split_is_accepted_and_submitted(corrections_url, submitted: RecordingSubmit):
    before = datetime.now(UTC)
    response = post(corrections_url, SPLIT, {
        "a": {"type": "email", "value": " ANNA@example.de"}, "b": "anonymous_id:family-tablet",
        "reason": "shared family tablet",
    })  # fmt: skip
    assert response.status_code == 202, response.text
    assert response.headers["cache-control"] == "no-store"
    answer = response.json()
    request_id = answer["requestId"]
    assert uuid.UUID(hex=request_id).version == 4 and request_id == uuid.UUID(hex=request_id).hex
    assert answer["status"] == "accepted" and answer["kind"] == "split"
    assert answer["a"] == "email:anna@example.de" and answer["b"] == "anonymous_id:family-tablet"
    assert "shortly" in answer["note"]
    [record] = submitted.records
    assert record == {
        "schemaVersion": 1, "kind": "split", "a": "email:anna@example.de", "b": "anonymous_id:family-tablet",
        "reason": "shared family tablet", "requestId": request_id, "requestedAt": record["requestedAt"],
        "requestedBy": "admin",
    }  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["requestedAt"])
    requested_at = datetime.fromisoformat(record["requestedAt"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= requested_at <= datetime.now(UTC)


def test_detach_is_accepted_and_submitted(corrections_url, submitted: RecordingSubmit):
    response = post(corrections_url, DETACH, {"identifier": "phone:0151 12345678", "reason": "shop's phone"})
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["kind"] == "detach" and answer["identifier"] == "phone:+4915112345678"
    assert "a" not in answer and "b" not in answer
    [record] = submitted.records
    assert record["kind"] == "detach" and record["identifier"] == "phone:+4915112345678"
    assert record["requestId"] == answer["requestId"] and record["reason"] == "shop's phone"
    assert set(record) == {"schemaVersion", "kind", "identifier", "reason", "requestId", "requestedAt",
                           "requestedBy"}  # fmt: skip


def test_each_request_gets_its_own_id(corrections_url, submitted: RecordingSubmit):
    body = {"identifier": "anonymous_id:tablet", "reason": "shared"}
    ids = {post(corrections_url, DETACH, body).json()["requestId"] for _ in range(3)}
    assert len(ids) == 3 and {record["requestId"] for record in submitted.records} == ids


VALID_SPLIT = {"a": "email:anna@example.de", "b": "anonymous_id:tablet", "reason": "shared tablet"}


@pytest.mark.parametrize(
    ("path", "body", "error", "message"),
    [
        (SPLIT, {**VALID_SPLIT, "a": "anna@example.de"}, "invalid_identifier", "has no type"),
        (SPLIT, {**VALID_SPLIT, "b": "imei:123"}, "invalid_identifier", "unknown identifier type 'imei'"),
        (SPLIT, {**VALID_SPLIT, "a": {"type": "email", "value": "test@test.de"}}, "invalid_identifier",
         "a: email 'test@test.de' is not a usable email address"),
        (SPLIT, {**VALID_SPLIT, "b": "phone:0123456789"}, "invalid_identifier", "not a valid phone number"),
        (SPLIT, {**VALID_SPLIT, "b": "anonymous_id:undefined"}, "invalid_identifier", "a placeholder"),
        (SPLIT, {**VALID_SPLIT, "a": "profile_id:p_anna"}, "invalid_identifier", "a profile id cannot"),
        (SPLIT, {**VALID_SPLIT, "b": "email:Anna@Example.de"}, "invalid_request", "a and b are the same"),
        (SPLIT, {**VALID_SPLIT, "a": {"type": "email"}}, "invalid_request", "exactly the keys type and value"),
        (SPLIT, {**VALID_SPLIT, "a": 17}, "invalid_request", "a must be an identifier"),
        (SPLIT, {"a": "email:anna@example.de", "reason": "x"}, "invalid_request", "b missing"),
        (SPLIT, {**VALID_SPLIT, "reason": ""}, "invalid_request", "reason is empty"),
        (SPLIT, {**VALID_SPLIT, "reason": "x" * 501}, "invalid_request", "at most 500"),
        (SPLIT, {k: v for k, v in VALID_SPLIT.items() if k != "reason"}, "invalid_request", "reason is missing"),
        (SPLIT, {**VALID_SPLIT, "force": True}, "invalid_request", "unknown field force"),
        (SPLIT, [VALID_SPLIT], "invalid_request", "must be a JSON object"),
        (DETACH, VALID_SPLIT, "invalid_request", "unknown field a, b"),
        (DETACH, {"identifier": "email:", "reason": "x"}, "invalid_identifier", "email has no value"),
        (DETACH, {"identifier": "customer_id:C1"}, "invalid_request", "reason is missing"),
    ],
)  # fmt: skip
def test_client_mistakes_are_400_with_a_precise_message(
    corrections_url, submitted, path, body, error, message
):
    response = post(corrections_url, path, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error
    assert message in response.json()["message"]
    assert submitted.records == []


@pytest.mark.parametrize("content", [b"", b"{", b'{"a": "email:anna@example.de",}', b"\xff", b"null"])
def test_malformed_json_is_400(corrections_url, submitted, content):
    response = httpx.post(f"{corrections_url}{SPLIT}", content=content, headers=AUTH)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert submitted.records == []


def test_an_oversized_body_is_413(corrections_url, submitted):
    body = {**VALID_SPLIT, "reason": "x" * 20_000}
    response = post(corrections_url, SPLIT, body)
    assert response.status_code == 413 and response.json()["error"] == "too_large"
    assert submitted.records == []


@pytest.mark.parametrize("path", [SPLIT, DETACH])
@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}]
)
def test_without_the_token_it_is_401_before_validation(corrections_url, submitted, path, headers):
    for body in (VALID_SPLIT, {"identifier": "email:anna@example.de", "reason": "x"}, "junk"):
        response = post(corrections_url, path, body, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"] == "unauthorized"
    assert submitted.records == []


@pytest.mark.parametrize("path", [SPLIT, DETACH])
def test_a_failing_submit_is_503_with_retry_after(corrections_url, submitted, path, caplog):
    submitted.failure = RuntimeError("Kafka did not acknowledge a record")
    body = VALID_SPLIT if path == SPLIT else {"identifier": "email:anna@example.de", "reason": "x"}
    response = post(corrections_url, path, body)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"] == "unavailable"
    assert "could not submit" in caplog.text and "anna@example.de" not in caplog.text


def test_without_submit_the_api_is_read_only(read_only_url):
    response = post(read_only_url, SPLIT, VALID_SPLIT)
    assert response.status_code == 405
    assert (
        post(read_only_url, DETACH, {"identifier": "email:anna@example.de", "reason": "x"}).status_code == 405
    )


def test_read_routes_answer_as_before_with_the_write_routes_mounted(reader: ProfileReader):
    app = Starlette(routes=admin_routes(reader, AdminTokens.single_admin(TOKEN), submit=RecordingSubmit()))
    with serve_app(app) as url, httpx.Client(base_url=url, headers=AUTH) as client:
        assert (
            client.get("/api/v1/profiles/lookup", params={"email": "anna@example.de"}).json()["profile_id"]
            == "p_anna"
        )
        assert client.get("/api/v1/profiles/p_visitor").json()["profile_id"] == "p_anna"
        assert client.get("/api/v1/profiles/split").status_code == 404  # a profile id, not the route
