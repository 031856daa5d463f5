"""Admin API routes under ``/api/v1/``: profile 360 for service agents and identity corrections,
behind bearer tokens."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.admin.auth import AdminTokens, Endpoint, Role, require
from services.admin.corrections import CorrectionRoutes, Submit
from services.admin.http import json_error, json_ok
from services.admin.profiles import InvalidIdentifierError, ProfileReader
from services.admin.roles import ADMIN_ONLY, PROFILE_LOOKUP
from services.core.log_hygiene import error_summary
from services.core.warehouse.port import WarehouseError, WarehouseUnavailable
from services.identity.domain.identifiers import IdType

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
# In the order a service agent is most likely to have them at hand.
_AGENT_ORDER = (IdType.EMAIL, IdType.PHONE, IdType.CUSTOMER_ID, IdType.ANONYMOUS_ID, IdType.CHAT_HANDLE)
LOOKUP_PARAMETERS: dict[str, IdType] = {
    id_type.value: id_type for id_type in (*_AGENT_ORDER, *(t for t in IdType if t not in _AGENT_ORDER))
}
READ_PROFILES = PROFILE_LOOKUP  # the profile 360: every role, the service agent included
CORRECT_PROFILES = ADMIN_ONLY

_CHOICES = ", ".join(LOOKUP_PARAMETERS)


class LookupRequestError(ValueError):
    """The query string does not name exactly one identifier."""


def lookup_parameter(request: Request) -> tuple[IdType, str]:
    """The one identifier of ``?email=...`` (or phone, customer_id, ...), or LookupRequestError."""
    names = request.query_params.keys()
    unknown = sorted(set(names) - LOOKUP_PARAMETERS.keys())
    if unknown:
        raise LookupRequestError(f"unknown parameter {', '.join(unknown)}: use exactly one of {_CHOICES}")
    given = request.query_params.multi_items()
    if not given:
        raise LookupRequestError(
            f"give exactly one identifier: one of {_CHOICES} (e.g. ?email=anna@example.de)"
        )
    if len(given) > 1:
        raise LookupRequestError(
            f"give exactly one identifier, got {len(given)} ({', '.join(name for name, _ in given)})"
        )
    name, value = given[0]
    if not value.strip():
        raise LookupRequestError(f"{name} is empty")
    return LOOKUP_PARAMETERS[name], value


class ProfileRoutes:
    def __init__(self, reader: ProfileReader) -> None:
        self._reader = reader

    async def lookup(self, request: Request) -> Response:
        try:
            id_type, value = lookup_parameter(request)
        except LookupRequestError as exc:
            return json_error(400, "invalid_request", str(exc))
        try:
            profile = await run_in_threadpool(self._reader.lookup, id_type, value)
        except InvalidIdentifierError as exc:
            return json_error(400, "invalid_identifier", str(exc))
        if profile is None:
            return json_error(404, "not_found", f"no profile has the {id_type} {value!r}")
        return json_ok(profile)

    async def get(self, request: Request) -> Response:
        profile_id = request.path_params["profile_id"]
        profile = await run_in_threadpool(self._reader.get, profile_id)
        if profile is None:
            return json_error(404, "not_found", f"no profile {profile_id!r}")
        return json_ok(profile)


def _route_name(endpoint: Endpoint) -> str:
    return str(getattr(endpoint, "__qualname__", "") or getattr(endpoint, "__name__", "") or "route")


def _answering_warehouse_errors(endpoint: Endpoint) -> Endpoint:
    async def route(request: Request) -> Response:
        try:
            return await endpoint(request)
        except WarehouseError as exc:
            # No path (it can name a person) and no error text (it can quote data): the route and
            # ClickHouse's code say what failed.
            log.error(
                "admin API: warehouse query failed for %s: %s", _route_name(endpoint), error_summary(exc)
            )
            if isinstance(exc, WarehouseUnavailable):
                return json_error(
                    503, "unavailable", "the warehouse is not reachable; retry", {"Retry-After": "1"}
                )
            return json_error(500, "warehouse_error", "the warehouse query failed; see the platform log")

    return route


def admin_routes(reader: ProfileReader, tokens: AdminTokens, *, submit: Submit | None = None) -> list[Route]:
    """Every admin route, each behind the bearer-token check (add them to the ingest app).

    With ``submit`` (which queues a correction record, see ``corrections``) the write routes
    ``POST /profiles/split`` and ``/profiles/detach`` are mounted too; without it the API is read-only.
    """
    routes: list[Route] = []
    if submit is not None:
        corrections = CorrectionRoutes(submit, rules=reader.rules)
        routes += [
            Route(f"{PREFIX}/profiles/{name}", require(tokens, CORRECT_PROFILES, endpoint), methods=["POST"])
            for name, endpoint in (("split", corrections.split), ("detach", corrections.detach))
        ]
    profiles = ProfileRoutes(reader)
    endpoints: list[tuple[str, Endpoint, frozenset[Role]]] = [
        # Before /profiles/{profile_id}, which would otherwise match "lookup".
        (f"{PREFIX}/profiles/lookup", profiles.lookup, READ_PROFILES),
        (f"{PREFIX}/profiles/{{profile_id}}", profiles.get, READ_PROFILES),
    ]
    return routes + [
        Route(path, require(tokens, roles, _answering_warehouse_errors(endpoint)), methods=["GET"])
        for path, endpoint, roles in endpoints
    ]
