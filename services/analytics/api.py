"""Admin API for customer analytics under ``/api/v1/analytics``.

* ``POST /analytics/refresh`` (optional JSON ``{until, unit}``): start a customer value refresh in the
  background; 202 with its id, 409 while another one runs;
* ``GET  /analytics/refreshes/latest`` and ``/analytics/refreshes/{id}``: progress and the model;
* ``GET  /analytics/fit?until=YYYY-MM-DD&unit=days|weeks``: fit BG/NBD and Gamma-Gamma on the orders
  up to ``until`` and answer the parameters, log-likelihoods and convergence (nothing is stored).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.admin.api import PREFIX, _answering_warehouse_errors
from services.admin.auth import AdminTokens, Endpoint, Role, require
from services.admin.http import json_error, json_ok
from services.admin.roles import ADMIN_ONLY, ANALYTICS_READ
from services.analytics.domain.value import UNITS, OptionError, ValueOptions
from services.analytics.refresh import RefreshBusyError, RefreshRunner, fit_models, refresh_status

RUN_ANALYTICS = ADMIN_ONLY
READ_ANALYTICS = ANALYTICS_READ
MAX_BODY = 64 * 1024


class AnalyticsRequestError(ValueError):
    pass


def _options(runner: RefreshRunner, fields: dict[str, Any]) -> ValueOptions:
    unknown = sorted(set(fields) - {"until", "unit"})
    if unknown:
        raise AnalyticsRequestError(f"unknown field {', '.join(unknown)}: only until and unit are accepted")
    until_text, unit = fields.get("until"), fields.get("unit")
    until = None
    if until_text is not None:
        try:
            until = date.fromisoformat(str(until_text))
        except ValueError:
            raise AnalyticsRequestError(f"until must be a date as YYYY-MM-DD, not {until_text!r}") from None
    if unit is not None and unit not in UNITS:
        raise AnalyticsRequestError(f"unit must be one of {', '.join(UNITS)}, not {unit!r}")
    try:
        return runner.options(until, unit)
    except OptionError as exc:
        raise AnalyticsRequestError(str(exc)) from None


class AnalyticsRoutes:
    def __init__(self, runner: RefreshRunner) -> None:
        self._runner = runner

    async def refresh(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return json_error(413, "too_large", f"the body may hold at most {MAX_BODY} bytes")
        try:
            fields = orjson.loads(body) if body.strip() else {}
            if not isinstance(fields, dict):
                raise AnalyticsRequestError('the body must be a JSON object like {"until": "2026-06-30"}')
            options = _options(self._runner, fields)
        except orjson.JSONDecodeError as exc:
            return json_error(400, "invalid_request", f"the body is not JSON: {exc}")
        except AnalyticsRequestError as exc:
            return json_error(400, "invalid_request", str(exc))
        try:
            refresh_id = await run_in_threadpool(self._runner.start, options, "api")
        except RefreshBusyError:
            running = self._runner.running
            return json_error(
                409, "refresh_running", f"refresh {running} is running; follow it at "
                f"{PREFIX}/analytics/refreshes/{running}", refresh_id=running,
            )  # fmt: skip
        accepted = json_ok(
            {
                "refresh_id": refresh_id,
                "status": "running",
                "status_url": f"{PREFIX}/analytics/refreshes/{refresh_id}",
            }
        )
        accepted.status_code = 202
        return accepted

    async def status(self, request: Request) -> Response:
        text = request.path_params["refresh_id"]
        refresh_id: int | None = None
        if text != "latest":
            if not text.isdigit():
                return json_error(400, "invalid_request", "a refresh id is a number, or 'latest'")
            refresh_id = int(text)
        found = await run_in_threadpool(refresh_status, self._runner.warehouse, refresh_id)
        if found is None:
            what = "no refresh yet" if refresh_id is None else f"no refresh {refresh_id}"
            return json_error(404, "not_found", f"{what}; POST {PREFIX}/analytics/refresh starts one")
        return json_ok(found)

    async def fit(self, request: Request) -> Response:
        try:
            fields = dict(request.query_params)
            if "until" not in fields:
                raise AnalyticsRequestError(
                    "give the observation end: ?until=YYYY-MM-DD (and unit=days|weeks)"
                )
            options = _options(self._runner, fields)
        except AnalyticsRequestError as exc:
            return json_error(400, "invalid_request", str(exc))
        fitted = await run_in_threadpool(fit_models, self._runner.warehouse, options)
        return json_ok(fitted.as_json())


def analytics_routes(runner: RefreshRunner, tokens: AdminTokens) -> list[Route]:
    routes = AnalyticsRoutes(runner)

    def guarded(roles: frozenset[Role], endpoint: Endpoint) -> Endpoint:
        return require(tokens, roles, _answering_warehouse_errors(endpoint))

    return [
        Route(f"{PREFIX}/analytics/refresh", guarded(RUN_ANALYTICS, routes.refresh), methods=["POST"]),
        Route(
            f"{PREFIX}/analytics/refreshes/{{refresh_id}}",
            guarded(READ_ANALYTICS, routes.status),
            methods=["GET"],
        ),
        Route(f"{PREFIX}/analytics/fit", guarded(READ_ANALYTICS, routes.fit), methods=["GET"]),
    ]
