"""Tokens and per-source write keys through the admin API, against a real warehouse and broker: shown
once, stored hashed, effective at once in this process and after a reload in another one; ingest
stamps the key's source on the events and refuses revoked and expired keys with a clear 401."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client import CollectorRegistry

from schemas import topics
from services.access.api import access_routes
from services.access.audit import AuditLog
from services.access.control import AccessControl
from services.access.store import sha256_hex
from services.admin.auth import AdminTokens, Role
from services.core.kafka.broker import TansuBroker
from services.core.kafka.producer import AsyncProducer
from services.core.metrics import IngestMetrics
from services.core.warehouse.chdb_adapter import ChdbWarehouse
from services.core.warehouse.migrations import apply_migrations
from services.ingest.api import IngestAPI, create_ingest_app
from services.ingest.auth import WriteKeys
from services.ingest.dedup import MessageIdWindow
from services.ingest.pipeline import IngestPipeline
from services.ingest.webhook_routes import WebhookConfig
from tests.integration.kafka_reader import read_topic
from tests.integration.servers import serve_app

ADMIN = "adm_access-api-bootstrap-token"
BOOT_KEY = "wk_access-api-bootstrap"


@dataclass
class Platform:
    url: str
    access: AccessControl
    warehouse: ChdbWarehouse
    audit: AuditLog
    bootstrap: str

    def admin(self, method: str, path: str, token: str = ADMIN, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]

    def track(self, key: str, **context: object) -> httpx.Response:
        body = {
            "userId": "C-access",
            "event": "Product Viewed",
            "properties": {"product_id": "P-1"},
            "messageId": uuid.uuid4().hex,
            "context": context,
        }
        return httpx.post(f"{self.url}/v1/track", json=body, auth=(key, ""), timeout=30)


@pytest.fixture(scope="module")
def platform(chdb_engine: ChdbWarehouse, broker: TansuBroker) -> Iterator[Platform]:
    database = f"t_access_{uuid.uuid4().hex[:10]}"
    warehouse = ChdbWarehouse.for_path(chdb_engine.data_dir, database)
    apply_migrations(warehouse)
    registry = CollectorRegistry()
    metrics = IngestMetrics.create(registry)
    producer = AsyncProducer(broker.bootstrap)
    pipeline = IngestPipeline(producer, metrics, MessageIdWindow(3600, 100_000))
    api = IngestAPI(
        pipeline, metrics, WriteKeys([BOOT_KEY]), max_event_bytes=32 * 1024, max_batch_bytes=500 * 1024,
        webhooks=WebhookConfig({}), registry=registry,
    )  # fmt: skip
    audit = AuditLog(warehouse)
    tokens = AdminTokens.single_admin(ADMIN, audit=audit)
    access = AccessControl(warehouse, tokens, api.write_keys, reload_seconds=0.2)
    access.reload()
    app = create_ingest_app(api)
    app.router.routes.extend(access_routes(access, tokens))
    try:
        with serve_app(app) as url:
            yield Platform(url, access, warehouse, audit, broker.bootstrap)
    finally:
        producer.close()
        warehouse.command(f"DROP DATABASE IF EXISTS {database} SYNC")
        warehouse.close()


def test_a_token_is_shown_once_stored_hashed_usable_at_once_and_revocable(platform: Platform) -> None:
    created = platform.admin("POST", "/api/v1/tokens", json={"name": "support-team", "role": "service_agent"})
    assert created.status_code == 201, created.text
    body = created.json()
    token, token_id = body["token"], body["token_id"]
    assert body["role"] == "service_agent" and body["status"] == "active"

    listed = platform.admin("GET", "/api/v1/tokens")
    assert listed.status_code == 200
    assert token not in listed.text and sha256_hex(token) not in listed.text
    mine = next(t for t in listed.json()["tokens"] if t["token_id"] == token_id)
    assert "token_sha256" not in mine and "digest" not in mine
    assert listed.json()["tokens"][0]["bootstrap"] is True

    (stored,) = platform.warehouse.query(
        f"SELECT token_sha256 FROM {platform.warehouse.database}.api_tokens FINAL WHERE token_id = {{id:String}}",
        {"id": token_id},
    )
    assert stored == (sha256_hex(token),)

    # In effect in this process at once; a service agent may not manage tokens.
    assert platform.admin("GET", "/api/v1/tokens", token=token).status_code == 403
    # ... and in another process after its reload.
    other = AdminTokens.single_admin("other-bootstrap")
    AccessControl(platform.warehouse, other, WriteKeys([])).reload()
    principal = other.principal(token)
    assert principal is not None and principal.role == Role.SERVICE_AGENT and principal.token_id == token_id

    revoked = platform.admin("DELETE", f"/api/v1/tokens/{token_id}")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    refused = platform.admin("GET", "/api/v1/tokens", token=token)
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert platform.admin("DELETE", "/api/v1/tokens/tok_0123456789abcdef").status_code == 404
    assert platform.admin("DELETE", "/api/v1/tokens/bootstrap").status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": "x"},
        {"name": "x", "role": "root"},
        {"name": "", "role": "admin"},
        {"name": "x", "role": "admin", "extra": 1},
    ],
)
def test_invalid_token_requests_are_400(platform: Platform, body: dict[str, object]) -> None:
    response = platform.admin("POST", "/api/v1/tokens", json=body)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_write_keys_per_source_rotation_and_revocation(platform: Platform) -> None:
    created = platform.admin("POST", "/api/v1/write-keys", json={"source": "webshop"})
    assert created.status_code == 201, created.text
    key, key_id = created.json()["write_key"], created.json()["key_id"]
    listed = platform.admin("GET", "/api/v1/write-keys").text
    assert key not in listed and sha256_hex(key) not in listed

    # The key's source is stamped on the event; a client cannot forge it.
    sent = platform.track(key, writeKeySource="forged", writeKeyId="forged", source="web")
    assert sent.status_code == 200, sent.text
    [(_, _, event)] = read_topic(
        platform.bootstrap, topics.EVENTS, lambda v: v.get("context", {}).get("writeKeyId") == key_id, 1
    )
    assert event["context"]["writeKeySource"] == "webshop"
    assert event["source"] == "web", "the envelope's source stays the client's"
    boot = platform.track(BOOT_KEY)
    assert boot.status_code == 200

    # Rotation: a new key for the same source; the old one works during the grace period.
    rotated = platform.admin("POST", f"/api/v1/write-keys/{key_id}/rotate", json={"grace_seconds": 1})
    assert rotated.status_code == 201, rotated.text
    new_key, new_id = rotated.json()["write_key"], rotated.json()["key_id"]
    assert rotated.json()["source"] == "webshop" and rotated.json()["replaces"]["replaced_by"] == new_id
    assert platform.track(key).status_code == 200
    assert platform.track(new_key).status_code == 200
    time.sleep(1.2)
    expired = platform.track(key)
    assert expired.status_code == 401
    assert "expired" in expired.json()["message"] and key not in expired.text
    assert platform.track(new_key).status_code == 200
    assert platform.admin("POST", f"/api/v1/write-keys/{key_id}/rotate", json={}).status_code == 409

    revoked = platform.admin("DELETE", f"/api/v1/write-keys/{new_id}")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    refused = platform.track(new_key)
    assert refused.status_code == 401 and "revoked" in refused.json()["message"]
    assert refused.headers["www-authenticate"].startswith("Basic")
    assert platform.track("wk_never-issued").json()["message"] == "unknown write key"
    assert platform.admin("DELETE", "/api/v1/write-keys/bootstrap").status_code == 409
    assert platform.admin("DELETE", "/api/v1/write-keys/key_0123456789abcdef").status_code == 404


def test_changes_made_elsewhere_arrive_with_the_periodic_reload(platform: Platform) -> None:
    platform.access.start()
    try:
        _record, key = platform.access.key_store.create("ios-app", "another process")
        deadline = time.monotonic() + 5
        while platform.track(key).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert platform.track(key).status_code == 200
    finally:
        platform.access.stop()


def test_the_audit_is_readable_by_admins_and_privacy_officers(platform: Platform) -> None:
    officer = platform.admin("POST", "/api/v1/tokens", json={"name": "dpo", "role": "privacy_officer"}).json()
    analyst = platform.admin("POST", "/api/v1/tokens", json={"name": "bi", "role": "analyst"}).json()
    assert platform.admin("GET", "/api/v1/audit", token=analyst["token"]).status_code == 403
    platform.audit.flush()
    answer = platform.admin("GET", "/api/v1/audit?limit=1000", token=officer["token"])
    assert answer.status_code == 200
    records = answer.json()["records"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", records[0]["at"]), records[0]
    assert any(
        r["principal"] == "bi"
        and r["route"] == "/api/v1/audit"
        and r["outcome"] == "forbidden"
        and r["status"] == 403
        for r in records
    )
    assert any(r["route"] == "/api/v1/tokens/{token_id}" and r["method"] == "DELETE" for r in records)
    assert not any("tok_" in r["route"] for r in records)
    assert platform.admin("GET", "/api/v1/audit?limit=0").status_code == 400
