"""Access control on a real ``cdp up``: tokens and write keys through ``cdp tokens`` / ``cdp keys``,
roles enforced, the key's source on the stored events, rotation and revocation, the audit table,
the read-only BI user, and no secret in the platform log."""

from __future__ import annotations

import subprocess
import uuid

import httpx
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from tests.e2e.cdp_process import ADMIN_TOKEN, CDP, CdpProcess, wait_for


def cdp_cli(platform: CdpProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CDP, *args, "--url", platform.url], env=platform.env(), capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip


def bearer(platform: CdpProcess, method: str, path: str, token: str, **kwargs: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.request(method, f"{platform.url}{path}", headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


def track(platform: CdpProcess, key: str, user: str) -> httpx.Response:
    body = {
        "userId": user,
        "event": "Product Viewed",
        "properties": {"product_id": "P-1"},
        "messageId": uuid.uuid4().hex,
    }
    return platform.post("/v1/track", body, key=key)


def test_tokens_with_roles_through_the_cli(cdp: CdpProcess) -> None:
    created = cdp_cli(cdp, "tokens", "create", "--role", "analyst", "--name", "bi-team")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("cdpt_")
    assert bearer(cdp, "GET", "/api/v1/segments", token).status_code == 200
    refused = bearer(cdp, "POST", "/api/v1/analytics/refresh", token, json={})
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert bearer(cdp, "GET", "/api/v1/tokens", token).status_code == 403

    listed = cdp_cli(cdp, "tokens", "list")
    assert listed.returncode == 0 and "bi-team" in listed.stdout and token not in listed.stdout
    token_id = next(t["token_id"] for t in bearer(cdp, "GET", "/api/v1/tokens", ADMIN_TOKEN).json()["tokens"]
                    if t["name"] == "bi-team")  # fmt: skip
    revoked = cdp_cli(cdp, "tokens", "revoke", token_id)
    assert revoked.returncode == 0, revoked.stderr
    assert bearer(cdp, "GET", "/api/v1/segments", token).status_code == 401
    bad_role = cdp_cli(cdp, "tokens", "create", "--role", "root", "--name", "x")
    assert bad_role.returncode == 1 and "role" in bad_role.stderr


def test_write_keys_per_source_rotation_and_revocation(cdp: CdpProcess) -> None:
    created = cdp_cli(cdp, "keys", "create", "--source", "webshop")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    key_id = next(k["key_id"] for k in bearer(cdp, "GET", "/api/v1/write-keys", ADMIN_TOKEN).json()["write_keys"]
                  if k["source"] == "webshop")  # fmt: skip
    assert track(cdp, key, "C-webshop-1").status_code == 200
    assert track(cdp, cdp.write_key, "C-default-1").status_code == 200, "the bootstrap key stays valid"
    bi = cdp.clickhouse()
    stamped = "SELECT JSONExtractString(context, 'writeKeySource') FROM cdp.events WHERE user_id = {u:String}"
    wait_for(
        lambda: bi.query(stamped, parameters={"u": "C-webshop-1"}).result_rows == [("webshop",)], timeout=60
    )
    wait_for(
        lambda: bi.query(stamped, parameters={"u": "C-default-1"}).result_rows == [("default",)], timeout=60
    )

    rotated = cdp_cli(cdp, "keys", "rotate", key_id, "--grace-seconds", "0")
    assert rotated.returncode == 0, rotated.stderr
    new_key = rotated.stdout.strip()
    old = track(cdp, key, "C-webshop-2")
    assert old.status_code == 401 and "expired" in old.json()["message"]
    assert track(cdp, new_key, "C-webshop-2").status_code == 200
    listed = cdp_cli(cdp, "keys", "list")
    assert listed.returncode == 0 and key not in listed.stdout and new_key not in listed.stdout
    new_id = next(k["key_id"] for k in bearer(cdp, "GET", "/api/v1/write-keys", ADMIN_TOKEN).json()["write_keys"]
                  if k["source"] == "webshop" and k["status"] == "active")  # fmt: skip
    assert cdp_cli(cdp, "keys", "revoke", new_id).returncode == 0
    revoked = track(cdp, new_key, "C-webshop-3")
    assert revoked.status_code == 401 and "revoked" in revoked.json()["message"]


def test_admin_calls_are_audited(cdp: CdpProcess) -> None:
    assert bearer(cdp, "GET", "/api/v1/profiles/lookup?email=audit@example.de", "wrong").status_code == 401
    bi = cdp.clickhouse()
    query = "SELECT count() FROM cdp.admin_audit WHERE route = '/api/v1/profiles/lookup' AND outcome = 'unauthenticated'"
    wait_for(lambda: bi.query(query).result_rows[0][0] >= 1, timeout=30)
    leaked = bi.query("SELECT count() FROM cdp.admin_audit WHERE position(route, 'example.de') > 0")
    assert leaked.result_rows[0][0] == 0
    assert bearer(cdp, "GET", "/api/v1/audit?limit=5", ADMIN_TOKEN).status_code == 200


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO cdp.api_tokens (token_id, name, role, token_sha256, created_at, created_by) "
        "VALUES ('tok_x', 'x', 'admin', 'aa', now64(3), 'x')",
        "INSERT INTO cdp.write_keys (key_id, source, key_sha256, created_at, created_by) VALUES ('k', 's', 'a', now64(3), 'x')",
        "ALTER TABLE cdp.api_tokens DELETE WHERE 1",
        "ALTER TABLE cdp.admin_audit ADD COLUMN x UInt8",
        "DROP TABLE cdp.admin_audit",
        "CREATE TABLE cdp.mine (x UInt8) ENGINE = Memory",
        "TRUNCATE TABLE cdp.admin_audit",
    ],
)
def test_the_bi_user_cannot_write_or_change_the_access_tables(cdp: CdpProcess, statement: str) -> None:
    with pytest.raises(DatabaseError) as raised:
        cdp.clickhouse().command(statement)
    assert "164" in str(raised.value) or "READONLY" in str(raised.value)


def test_no_token_or_key_reaches_the_log(cdp: CdpProcess) -> None:
    created = cdp_cli(cdp, "keys", "create", "--source", "log-check")
    token = cdp_cli(cdp, "tokens", "create", "--role", "service_agent", "--name", "log-check").stdout.strip()
    key = created.stdout.strip()
    track(cdp, key, "C-log")
    bearer(cdp, "GET", "/api/v1/tokens", token)
    log = cdp.log()
    # (The bootstrap write key is on the start banner by design: it is the terminal's, not a log line.)
    for secret in (key, token, ADMIN_TOKEN):
        assert secret and secret not in log
