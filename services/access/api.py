"""Admin API for access control (all ``admin`` only, except the audit log):

* ``POST   /api/v1/tokens`` ``{name, role}``: a new API token, shown once (201);
* ``GET    /api/v1/tokens``: every token (no secrets, no digests);
* ``DELETE /api/v1/tokens/{token_id}``: revoke;
* ``POST   /api/v1/write-keys`` ``{source}``: a new write key for a source, shown once (201);
* ``GET    /api/v1/write-keys``: every key, the bootstrap key included (no secrets, no digests);
* ``POST   /api/v1/write-keys/{key_id}/rotate`` ``{grace_seconds}``: a new key for the same source; the
  old one expires after the grace period (default 3600 s);
* ``DELETE /api/v1/write-keys/{key_id}``: revoke at once;
* ``GET    /api/v1/audit?limit=``: the newest admin audit records (``admin``, ``privacy_officer``).

A change is in effect in this process when the answer is sent (the sets are reloaded at once).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.access.audit import read_audit
from services.access.control import AccessControl
from services.access.store import AccessRequestError, check_name, check_role, check_source, iso, valid_id
from services.admin.auth import AdminTokens, Endpoint, Principal, require
from services.admin.http import NO_STORE, JSONResponse, json_error, json_ok
from services.admin.roles import ADMIN_ONLY, AUDIT_READ
from services.ingest.auth import BOOTSTRAP_KEY_ID, BOOTSTRAP_SOURCE

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
MAX_BODY = 16 * 1024
DEFAULT_GRACE_SECONDS = 3600
MAX_AUDIT_LIMIT = 10_000


class _BodyError(ValueError):
    pass


async def _json_object(request: Request, allowed: set[str], *, empty_ok: bool = False) -> dict[str, Any]:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise _BodyError(f"the body is larger than {MAX_BODY // 1024} KiB")
    if not body.strip():
        if empty_ok:
            return {}
        raise _BodyError(f"the body is empty: send a JSON object with {', '.join(sorted(allowed))}")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _BodyError("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _BodyError(f"the body must be a JSON object with {', '.join(sorted(allowed))}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _BodyError(f"unknown field {', '.join(unknown)}: give {', '.join(sorted(allowed))}")
    return data


def _principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


def _created(content: Any) -> Response:
    return JSONResponse(content, status_code=201, headers=NO_STORE)


class AccessRoutes:
    def __init__(self, control: AccessControl, bootstrap_key: bool) -> None:
        self._control = control
        self._bootstrap_key = bootstrap_key

    async def _reload(self) -> None:
        await run_in_threadpool(self._control.reload)

    # --- tokens ------------------------------------------------------------------------------
    async def create_token(self, request: Request) -> Response:
        try:
            data = await _json_object(request, {"name", "role"})
            name, role = check_name(data.get("name")), check_role(data.get("role"))
        except (_BodyError, AccessRequestError) as exc:
            return json_error(400, "invalid_request", str(exc))
        by = _principal(request).name
        record, secret = await run_in_threadpool(self._control.token_store.create, name, role, by)
        await self._reload()
        log.info(
            "access: %s created API token %s (%s, role %s)", by, record.token_id, record.name, record.role
        )
        return _created(
            {
                **record.public(),
                "token": secret,
                "note": "the token is shown only now: store it safely, it cannot be shown again",
            }
        )

    async def list_tokens(self, request: Request) -> Response:
        records = await run_in_threadpool(self._control.token_store.records)
        bootstrap = {
            "token_id": "bootstrap", "name": "admin", "role": "admin", "status": "active", "bootstrap": True,
            "note": "CDP_ADMIN_TOKEN (or the token generated into the data directory); always valid",
        }  # fmt: skip
        return json_ok({"tokens": [bootstrap, *({**r.public(), "bootstrap": False} for r in records)]})

    async def revoke_token(self, request: Request) -> Response:
        token_id = request.path_params["token_id"]
        if token_id == "bootstrap":
            return json_error(
                409, "bootstrap_token", "the bootstrap token cannot be revoked here: change CDP_ADMIN_TOKEN"
            )
        if not valid_id(token_id):
            return json_error(404, "not_found", "no such token")
        by = _principal(request).name
        record = await run_in_threadpool(self._control.token_store.revoke, token_id, by)
        if record is None:
            return json_error(404, "not_found", f"no token {token_id}")
        await self._reload()
        log.info("access: %s revoked API token %s", by, token_id)
        return json_ok(record.public())

    # --- write keys --------------------------------------------------------------------------
    async def create_key(self, request: Request) -> Response:
        try:
            data = await _json_object(request, {"source"})
            source = check_source(data.get("source"))
        except (_BodyError, AccessRequestError) as exc:
            return json_error(400, "invalid_request", str(exc))
        by = _principal(request).name
        record, secret = await run_in_threadpool(self._control.key_store.create, source, by)
        await self._reload()
        log.info("access: %s created write key %s for source %s", by, record.key_id, source)
        return _created(
            {
                **record.public(),
                "write_key": secret,
                "note": "the key is shown only now: configure it in the source, it cannot be shown again",
            }
        )

    async def list_keys(self, request: Request) -> Response:
        records = await run_in_threadpool(self._control.key_store.records)
        keys = [record.public() for record in records]
        if self._bootstrap_key:
            bootstrap = {
                "key_id": BOOTSTRAP_KEY_ID, "source": BOOTSTRAP_SOURCE, "status": "active", "bootstrap": True,
                "note": "CDP_WRITE_KEY (or the key generated into the data directory); always valid",
            }  # fmt: skip
            keys.insert(0, bootstrap)
        return json_ok({"write_keys": keys})

    async def rotate_key(self, request: Request) -> Response:
        key_id = request.path_params["key_id"]
        if key_id == BOOTSTRAP_KEY_ID:
            return json_error(
                409,
                "bootstrap_key",
                "the bootstrap key cannot be rotated here: change CDP_WRITE_KEY and restart",
            )
        try:
            data = await _json_object(request, {"grace_seconds"}, empty_ok=True)
            grace = data.get("grace_seconds", DEFAULT_GRACE_SECONDS)
            if isinstance(grace, bool) or not isinstance(grace, int | float):
                raise AccessRequestError("grace_seconds: a number of seconds")
        except (_BodyError, AccessRequestError) as exc:
            return json_error(400, "invalid_request", str(exc))
        if not valid_id(key_id):
            return json_error(404, "not_found", "no such write key")
        by = _principal(request).name
        try:
            rotated = await run_in_threadpool(self._control.key_store.rotate, key_id, float(grace), by)
        except AccessRequestError as exc:
            return json_error(409, "not_rotatable", str(exc))
        if rotated is None:
            return json_error(404, "not_found", f"no write key {key_id}")
        new, secret, old = rotated
        await self._reload()
        log.info("access: %s rotated write key %s to %s (grace %s s)", by, key_id, new.key_id, grace)
        return _created(
            {
                **new.public(),
                "write_key": secret,
                "replaces": old.public(),
                "note": f"the key is shown only now; the old key {key_id} stays valid until "
                f"{iso(old.expires_at)}",
            }
        )

    async def revoke_key(self, request: Request) -> Response:
        key_id = request.path_params["key_id"]
        if key_id == BOOTSTRAP_KEY_ID:
            return json_error(
                409,
                "bootstrap_key",
                "the bootstrap key cannot be revoked here: change CDP_WRITE_KEY and restart",
            )
        if not valid_id(key_id):
            return json_error(404, "not_found", "no such write key")
        by = _principal(request).name
        record = await run_in_threadpool(self._control.key_store.revoke, key_id, by)
        if record is None:
            return json_error(404, "not_found", f"no write key {key_id}")
        await self._reload()
        log.info("access: %s revoked write key %s", by, key_id)
        return json_ok(record.public())

    # --- audit -------------------------------------------------------------------------------
    async def audit(self, request: Request) -> Response:
        unknown = sorted(set(request.query_params) - {"limit"})
        if unknown:
            return json_error(400, "invalid_request", f"unknown parameter {', '.join(unknown)}: only limit")
        text = request.query_params.get("limit", "100")
        if not text.isdigit() or not 1 <= int(text) <= MAX_AUDIT_LIMIT:
            return json_error(400, "invalid_request", f"limit: a number from 1 to {MAX_AUDIT_LIMIT}")
        records = await run_in_threadpool(read_audit, self._control.warehouse, int(text))
        return json_ok({"records": records})


def access_routes(control: AccessControl, tokens: AdminTokens, *, bootstrap_key: bool = True) -> list[Route]:
    """The token, write key and audit routes, each behind the bearer-token check."""
    routes = AccessRoutes(control, bootstrap_key)
    table: list[tuple[str, str, Endpoint, frozenset[Any]]] = [
        ("POST", f"{PREFIX}/tokens", routes.create_token, ADMIN_ONLY),
        ("GET", f"{PREFIX}/tokens", routes.list_tokens, ADMIN_ONLY),
        ("DELETE", f"{PREFIX}/tokens/{{token_id}}", routes.revoke_token, ADMIN_ONLY),
        ("POST", f"{PREFIX}/write-keys", routes.create_key, ADMIN_ONLY),
        ("GET", f"{PREFIX}/write-keys", routes.list_keys, ADMIN_ONLY),
        ("POST", f"{PREFIX}/write-keys/{{key_id}}/rotate", routes.rotate_key, ADMIN_ONLY),
        ("DELETE", f"{PREFIX}/write-keys/{{key_id}}", routes.revoke_key, ADMIN_ONLY),
        ("GET", f"{PREFIX}/audit", routes.audit, AUDIT_READ),
    ]
    return [
        Route(path, require(tokens, roles, endpoint), methods=[method])
        for method, path, endpoint, roles in table
    ]
