"""Access control without infrastructure: tokens and their roles, the audit record of every call,
write keys per source with revocation and expiry, the source stamp on events, the audit writer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.access.audit import AuditEntry, AuditLog
from services.admin import roles
from services.admin.auth import AdminTokens, Principal, Role, policy_of, require, token_digest
from services.ingest.auth import KeyRefusal, KeyUse, WriteKeyGrant, WriteKeys, _digest
from services.ingest.normalise import NormalisedEvent, normalise

BOOT = "boot-token"


class _Client:
    """GET through the ASGI app in-process (httpx's ASGI transport)."""

    def __init__(self, app: Starlette) -> None:
        self._app = app

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self._app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.get(path, headers=headers)

        return asyncio.run(call())


def _app(tokens: AdminTokens, allowed: frozenset[Role]) -> _Client:
    async def endpoint(request: Request) -> Response:
        return JSONResponse({"principal": request.state.principal.name})

    route = Route("/api/v1/things/{thing_id}", require(tokens, allowed, endpoint), methods=["GET"])
    return _Client(Starlette(routes=[route]))


def test_role_sets() -> None:
    assert frozenset(Role) == roles.PROFILE_LOOKUP
    assert {Role.ADMIN} == roles.ADMIN_ONLY
    assert {Role.ADMIN, Role.ANALYST, Role.PRIVACY_OFFICER} == roles.READ_ONLY
    assert (
        roles.PRIVACY_ROUTES == roles.PRIVACY_READ == roles.AUDIT_READ == {Role.ADMIN, Role.PRIVACY_OFFICER}
    )
    assert Role.SERVICE_AGENT not in roles.ANALYTICS_READ | roles.READ_ONLY | roles.PRIVACY_ROUTES


def test_loaded_tokens_are_replaced_as_a_whole_and_the_bootstrap_token_stays() -> None:
    tokens = AdminTokens.single_admin(BOOT)
    agent = Principal("agents", Role.SERVICE_AGENT, "tok_1")
    tokens.load([(token_digest("t-agent"), agent)])
    assert tokens.principal("t-agent") == agent
    tokens.load([])
    assert tokens.principal("t-agent") is None
    assert tokens.principal(BOOT) == Principal("admin", Role.ADMIN)


def test_require_declares_its_policy_and_refuses_an_empty_one() -> None:
    async def endpoint(request: Request) -> Response:
        return Response()

    guarded = require(AdminTokens([]), roles.READ_ONLY, endpoint)
    assert policy_of(guarded) == roles.READ_ONLY
    assert policy_of(endpoint) is None
    assert policy_of("not a function") is None
    with pytest.raises(ValueError, match="at least one role"):
        require(AdminTokens([]), frozenset(), endpoint)


def test_every_call_is_audited_with_the_route_template_never_the_path() -> None:
    entries: list[AuditEntry] = []
    tokens = AdminTokens.single_admin(BOOT, audit=entries.append)
    tokens.load([(token_digest("t-analyst"), Principal("bi-team", Role.ANALYST, "tok_a"))])
    client = _app(tokens, roles.ADMIN_ONLY)
    assert client.get("/api/v1/things/anna@example.de?email=anna@example.de").status_code == 401
    assert client.get("/api/v1/things/x", headers={"Authorization": "Bearer nope"}).status_code == 401
    forbidden = client.get("/api/v1/things/x", headers={"Authorization": "Bearer t-analyst"})
    assert forbidden.status_code == 403
    assert "analyst" in forbidden.json()["message"] and "admin" in forbidden.json()["message"]
    allowed = client.get("/api/v1/things/x", headers={"Authorization": f"Bearer {BOOT}"})
    assert allowed.status_code == 200 and allowed.headers["x-request-id"]
    assert [(e.outcome, e.status, e.principal, e.role, e.token_id) for e in entries] == [
        ("unauthenticated", 401, "", "", ""),
        ("unauthenticated", 401, "", "", ""),
        ("forbidden", 403, "bi-team", "analyst", "tok_a"),
        ("allowed", 200, "admin", "admin", ""),
    ]
    assert {e.route for e in entries} == {"/api/v1/things/{thing_id}"}
    assert {e.method for e in entries} == {"GET"}
    assert entries[-1].request_id == allowed.headers["x-request-id"]


def test_a_failing_audit_never_fails_the_request(caplog: pytest.LogCaptureFixture) -> None:
    def broken(entry: AuditEntry) -> None:
        raise RuntimeError("audit down")

    client = _app(AdminTokens.single_admin(BOOT, audit=broken), roles.ADMIN_ONLY)
    with caplog.at_level(logging.ERROR):
        assert client.get("/api/v1/things/x", headers={"Authorization": f"Bearer {BOOT}"}).status_code == 200
    assert BOOT not in caplog.text


# --- write keys ---------------------------------------------------------------------------------


def test_write_keys_name_their_source_and_why_they_are_refused() -> None:
    keys = WriteKeys(["boot-key"])
    keys.load([
        WriteKeyGrant("key_live", "webshop", _digest("k-live")),
        WriteKeyGrant("key_rot", "webshop", _digest("k-rotated"), expires_at=1000.0),
        WriteKeyGrant("key_rev", "app", _digest("k-revoked"), revoked_at=10.0),
    ])  # fmt: skip
    assert keys.check("boot-key") == KeyUse("bootstrap", "default")
    assert keys.check("k-live") == KeyUse("key_live", "webshop")
    assert keys.check("k-rotated", now=999.0) == KeyUse("key_rot", "webshop")
    expired = keys.check("k-rotated", now=1000.0)
    assert isinstance(expired, KeyRefusal) and expired.reason == "expired" and "webshop" in expired.message
    revoked = keys.check("k-revoked")
    assert isinstance(revoked, KeyRefusal) and revoked.reason == "revoked"
    for key, reason in ((None, "missing"), ("", "missing"), ("k-other", "unknown")):
        refused = keys.check(key)
        assert isinstance(refused, KeyRefusal) and refused.reason == reason
    assert keys.accepts("k-live") and not keys.accepts("k-revoked")
    keys.load([])
    assert not keys.accepts("k-live") and keys.accepts("boot-key")


def _event(context: dict[str, Any], write_key: KeyUse | None) -> dict[str, Any]:
    outcome = normalise(
        {"type": "identify", "userId": "C1", "context": context},
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
        default_source="api",
        write_key=write_key,
    )
    assert isinstance(outcome, NormalisedEvent)
    return outcome.record


def test_the_key_source_is_stamped_on_the_event_and_never_taken_from_the_client() -> None:
    record = _event({"source": "ios", "writeKeySource": "forged", "locale": "de"}, KeyUse("key_1", "webshop"))
    assert record["context"] == {
        "source": "ios",
        "locale": "de",
        "writeKeySource": "webshop",
        "writeKeyId": "key_1",
    }
    assert record["source"] == "ios"
    unsigned = _event({"writeKeySource": "forged", "writeKeyId": "forged"}, None)
    assert unsigned["context"] == {}


# --- the audit writer ---------------------------------------------------------------------------


class FlakyWarehouse:
    database = "cdp"

    def __init__(self) -> None:
        self.fail = True
        self.rows: list[dict[str, Any]] = []

    def insert_json_rows(
        self, table: str, rows: bytes, *, columns: Sequence[str] | None = None, dedup_token: str | None = None
    ) -> None:
        if self.fail:
            raise ConnectionError("warehouse down")
        assert table == "admin_audit"
        self.rows += [orjson.loads(line) for line in rows.splitlines()]


def _entry(n: int) -> AuditEntry:
    return AuditEntry(1.8e9 + n, f"r{n}", "admin", "admin", "", "GET", "/api/v1/tokens", 200, "allowed")


def test_audit_records_survive_a_failing_warehouse_in_order_and_are_written_at_close() -> None:
    warehouse = FlakyWarehouse()
    log = AuditLog(warehouse, max_batch=2)  # type: ignore[arg-type]
    for n in range(5):
        log(_entry(n))
    assert log.flush() == 0 and log.pending == 5
    warehouse.fail = False
    log.close()
    assert [row["request_id"] for row in warehouse.rows] == ["r0", "r1", "r2", "r3", "r4"]
    assert (
        warehouse.rows[0]["at"] == "2027-01-15 08:00:00.000"
        and warehouse.rows[0]["route"] == "/api/v1/tokens"
    )


def test_audit_drops_the_oldest_records_beyond_its_bound() -> None:
    warehouse = FlakyWarehouse()
    log = AuditLog(warehouse, max_pending=3)  # type: ignore[arg-type]
    for n in range(5):
        log(_entry(n))
    assert log.pending == 3 and log.dropped == 2
    warehouse.fail = False
    log.flush()
    assert [row["request_id"] for row in warehouse.rows] == ["r2", "r3", "r4"]
