"""Admin API for data-subject requests under ``/api/v1/privacy`` (roles: admin, privacy officer).

* ``GET  /privacy/export?email=...`` (or any identifier parameter of ``/profiles/lookup``):
  everything held about the person as JSON (Art. 15); 404 when nothing is held;
* ``POST /privacy/erasures`` ``{"identifier": "email:anna@example.de"}``: erase the person
  (Art. 17) in the background; 202 with the request id;
* ``GET  /privacy/erasures/{request_id}``: the erasure's progress and outcome;
* ``GET  /privacy/requests?kind=&limit=``: the privacy audit (no personal data in it).

Every export and erasure is recorded in ``privacy_requests``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.admin.api import PREFIX, LookupRequestError, _answering_warehouse_errors, lookup_parameter
from services.admin.auth import AdminTokens, Endpoint, Principal, require
from services.admin.corrections import CorrectionError, parse_identifier
from services.admin.http import NO_STORE, JSONResponse, json_error, json_ok
from services.admin.profiles import why_invalid
from services.admin.roles import PRIVACY_ROUTES
from services.core.metrics import PrivacyMetrics
from services.core.warehouse.port import Warehouse
from services.identity.domain.identifiers import (
    DEFAULT_RULES,
    Identifier,
    IdentifierRules,
    normalise_identifier,
)
from services.privacy.erasure import Eraser
from services.privacy.export import export_json, export_subject
from services.privacy.hashing import IdentifierHasher
from services.privacy.requests import (
    COMPLETED,
    PrivacyRequest,
    list_requests,
    new_request_id,
    read_request,
    record,
)
from services.privacy.subject import resolve_subject

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024
KINDS = ("export", "erase")


class PrivacyRoutes:
    def __init__(
        self,
        warehouse: Warehouse,
        eraser: Eraser,
        hasher: IdentifierHasher,
        metrics: PrivacyMetrics,
        rules: IdentifierRules = DEFAULT_RULES,
    ) -> None:
        self._warehouse = warehouse
        self._eraser = eraser
        self._hasher = hasher
        self._metrics = metrics
        self._rules = rules

    async def export(self, request: Request) -> Response:
        try:
            id_type, value = lookup_parameter(request)
        except LookupRequestError as exc:
            return json_error(400, "invalid_request", str(exc))
        identifier = normalise_identifier(id_type, value, self._rules)
        if identifier is None:
            return json_error(
                400, "invalid_identifier", f"{id_type} {value!r} is {why_invalid(id_type, self._rules)}"
            )
        principal: Principal = request.state.principal
        body, found = await run_in_threadpool(self._export, identifier, principal)
        if not found:
            return json_error(404, "not_found", f"nothing is held about the {id_type} {value!r}")
        return Response(body, media_type="application/json", headers=NO_STORE)

    def _export(self, identifier: Identifier, principal: Principal) -> tuple[bytes, bool]:
        started = datetime.now(UTC)
        subject = resolve_subject(self._warehouse, identifier)
        document = export_subject(self._warehouse, subject)
        held = subject.found or any(isinstance(v, list) and v for v in document.values())
        audit = PrivacyRequest(
            request_id=new_request_id(), kind="export", requested_by=principal.name,
            requested_role=str(principal.role), requested_at=started, subject_type=str(identifier.type),
            subject_hash=self._hasher.hash(identifier.key), profiles=len(subject.profile_ids),
            identifiers=len(subject.keys),
            counts={name: len(rows) for name, rows in document.items() if isinstance(rows, list)},
        ).finished(COMPLETED, step="done")  # fmt: skip
        record(self._warehouse, audit)
        self._metrics.requests.labels("export", "completed" if held else "not_found").inc()
        log.info(
            "privacy export %s by %s: %d profile ids",
            audit.request_id,
            principal.name,
            len(subject.profile_ids),
        )
        return export_json({"request_id": audit.request_id, **document}), held

    async def erase(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return json_error(413, "too_large", f"the body has {len(body)} bytes; at most {MAX_BODY}")
        try:
            identifier = self._identifier_of(body)
        except CorrectionError as exc:
            return json_error(400, exc.code, str(exc))
        principal: Principal = request.state.principal
        queued = await run_in_threadpool(self._eraser.submit, identifier, principal.name, str(principal.role))
        log.info("privacy erasure %s by %s queued", queued.request_id, principal.name)
        answer = {
            **queued.as_json(),
            "poll": f"{PREFIX}/privacy/erasures/{queued.request_id}",
            "note": "the erasure runs in the background; poll until status is completed or failed",
        }
        return JSONResponse(answer, status_code=202, headers=NO_STORE)

    def _identifier_of(self, body: bytes) -> Identifier:
        if not body.strip():
            raise CorrectionError(
                "invalid_request", 'the body is empty: send {"identifier": "email:anna@example.de"}'
            )
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise CorrectionError("invalid_request", f"the body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CorrectionError("invalid_request", 'the body must be a JSON object: {"identifier": ...}')
        unknown = sorted(set(data) - {"identifier"})
        if unknown:
            raise CorrectionError(
                "invalid_request", f"unknown field {', '.join(unknown)}: give only identifier"
            )
        if "identifier" not in data:
            raise CorrectionError(
                "invalid_request", 'identifier is missing: {"identifier": "email:anna@example.de"}'
            )
        return parse_identifier("identifier", data["identifier"], self._rules)

    async def erasure(self, request: Request) -> Response:
        request_id = request.path_params["request_id"]
        found = await run_in_threadpool(read_request, self._warehouse, request_id)
        if found is None or found.kind != "erase":
            return json_error(404, "not_found", f"no erasure request {request_id!r}")
        return json_ok(found.as_json())

    async def requests(self, request: Request) -> Response:
        unknown = sorted(set(request.query_params) - {"kind", "limit"})
        if unknown:
            return json_error(
                400, "invalid_request", f"unknown parameter {', '.join(unknown)}: use kind and limit"
            )
        kind = request.query_params.get("kind")
        if kind is not None and kind not in KINDS:
            return json_error(400, "invalid_request", f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        limit_text = request.query_params.get("limit", "100")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 10_000:
            return json_error(
                400, "invalid_request", f"limit must be a number from 1 to 10000, not {limit_text!r}"
            )
        found = await run_in_threadpool(list_requests, self._warehouse, int(limit_text), kind)
        return json_ok({"requests": [r.as_json() for r in found]})


def privacy_routes(routes: PrivacyRoutes, tokens: AdminTokens) -> list[Route]:
    def guarded(endpoint: Endpoint) -> Endpoint:
        return require(tokens, PRIVACY_ROUTES, _answering_warehouse_errors(endpoint))

    return [
        Route(f"{PREFIX}/privacy/export", guarded(routes.export), methods=["GET"]),
        Route(f"{PREFIX}/privacy/erasures", guarded(routes.erase), methods=["POST"]),
        Route(f"{PREFIX}/privacy/erasures/{{request_id}}", guarded(routes.erasure), methods=["GET"]),
        Route(f"{PREFIX}/privacy/requests", guarded(routes.requests), methods=["GET"]),
    ]
