"""Admin API for segments under ``/api/v1/segments``.

* ``GET  /segments``: every segment with size, version, last change and backfill progress;
* ``GET  /segments/{id}``: one of them;
* ``GET  /segments/{id}/members?limit=&offset=``: current member profile ids;
* ``POST /segments``: apply one definition, a list, or ``{segments: [...]}`` (JSON or YAML body).
  400 with every problem as ``path: reason`` if anything is wrong, and then nothing is stored.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.admin.api import PREFIX, _answering_warehouse_errors
from services.admin.auth import AdminTokens, Endpoint, require
from services.admin.http import json_error, json_ok
from services.admin.roles import ADMIN_ONLY, ANALYTICS_READ
from services.core.warehouse.port import Warehouse
from services.segments.domain.definition import DefinitionError, load_documents
from services.segments.domain.rules import CONSENT_PURPOSES
from services.segments.store import apply_definitions, segment_members, segment_overview

READ_SEGMENTS = ANALYTICS_READ
WRITE_SEGMENTS = ADMIN_ONLY
MAX_BODY = 1 << 20
MAX_MEMBERS_PAGE = 10_000


class SegmentRoutes:
    def __init__(self, warehouse: Warehouse, purposes: Collection[str] = CONSENT_PURPOSES) -> None:
        self._warehouse = warehouse
        self._purposes = tuple(purposes)

    async def list(self, request: Request) -> Response:
        segments = await run_in_threadpool(segment_overview, self._warehouse)
        return json_ok({"segments": segments})

    async def get(self, request: Request) -> Response:
        segment_id = request.path_params["segment_id"]
        segments = await run_in_threadpool(segment_overview, self._warehouse)
        for segment in segments:
            if segment["id"] == segment_id:
                return json_ok(segment)
        return json_error(404, "not_found", f"no segment {segment_id!r}; GET {PREFIX}/segments lists them")

    async def members(self, request: Request) -> Response:
        segment_id = request.path_params["segment_id"]
        try:
            limit = int(request.query_params.get("limit", "100"))
            offset = int(request.query_params.get("offset", "0"))
        except ValueError:
            return json_error(400, "invalid_request", "limit and offset must be whole numbers")
        if not 1 <= limit <= MAX_MEMBERS_PAGE or offset < 0:
            return json_error(400, "invalid_request", f"limit must be 1-{MAX_MEMBERS_PAGE}, offset >= 0")
        segments = await run_in_threadpool(segment_overview, self._warehouse)
        found = next((s for s in segments if s["id"] == segment_id), None)
        if found is None:
            return json_error(
                404, "not_found", f"no segment {segment_id!r}; GET {PREFIX}/segments lists them"
            )
        ids = await run_in_threadpool(segment_members, self._warehouse, segment_id, limit, offset)
        return json_ok({"segment": segment_id, "members": found["members"], "profile_ids": ids,
                        "limit": limit, "offset": offset})  # fmt: skip

    async def apply(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return json_error(413, "too_large", f"a definition body may be at most {MAX_BODY} bytes")
        try:
            text = body.decode()
        except UnicodeDecodeError:
            return json_error(400, "invalid_request", "the body must be UTF-8 JSON or YAML")
        try:
            definitions = load_documents(text, "body", purposes=self._purposes)
            applied = await run_in_threadpool(apply_definitions, self._warehouse, definitions, "admin API")
        except DefinitionError as exc:
            return json_error(400, "invalid_definition", str(exc), problems=exc.problems)
        changed = {s.id: s.version for s in applied}
        result = [{"id": d.id, "version": changed.get(d.id), "changed": d.id in changed} for d in definitions]
        return json_ok({"applied": result})


def segment_routes(
    warehouse: Warehouse, tokens: AdminTokens, purposes: Collection[str] = CONSENT_PURPOSES
) -> list[Route]:
    """The segment routes; ``purposes`` are the consent purposes rules may name (CDP_CONSENT_PURPOSES)."""
    routes = SegmentRoutes(warehouse, purposes)
    reads: list[tuple[str, Endpoint]] = [
        (f"{PREFIX}/segments", routes.list),
        (f"{PREFIX}/segments/{{segment_id}}", routes.get),
        (f"{PREFIX}/segments/{{segment_id}}/members", routes.members),
    ]
    apply = require(tokens, WRITE_SEGMENTS, _answering_warehouse_errors(routes.apply))
    return [
        Route(f"{PREFIX}/segments", apply, methods=["POST"]),
        *(
            Route(
                path, require(tokens, READ_SEGMENTS, _answering_warehouse_errors(endpoint)), methods=["GET"]
            )
            for path, endpoint in reads
        ),
    ]
