"""The acceptance test of access control: every admin route the platform mounts refuses
unauthenticated and wrong-role calls.

The routes come from ``platform_admin_routes``, the function ``cdp up`` mounts them with, built from
real components (a migrated chDB warehouse, the real broker, the privacy service) with real tokens
created through the token store, one per role. A route added to the platform later is covered
without touching this test; a route without a declared role policy fails it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.routing import Match, Route

from services.access.audit import AuditLog
from services.access.control import AccessControl
from services.admin.auth import AdminTokens, Role, policy_of
from services.admin.corrections import kafka_submit
from services.admin.profiles import ProfileReader
from services.admin.routes import (
    AdminComponents,
    UndeclaredRouteError,
    admin_api_routes,
    check_declared,
    platform_admin_routes,
)
from services.analytics.domain.value import ValueOptions
from services.analytics.refresh import RefreshRunner
from services.core.kafka.broker import TansuBroker
from services.core.kafka.producer import AsyncProducer
from services.core.metrics import AnalyticsMetrics, IngestMetrics
from services.core.settings import Settings
from services.core.warehouse.chdb_adapter import ChdbWarehouse
from services.core.warehouse.migrations import apply_migrations
from services.ingest.auth import WriteKeys
from services.ingest.dedup import MessageIdWindow
from services.ingest.pipeline import IngestPipeline
from services.privacy.consent_api import WithConsentRoutes
from services.privacy.wiring import build_privacy
from tests.integration.servers import serve_app

BOOTSTRAP_TOKEN = "adm_route-policy-bootstrap-0123456789"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
PROFILE_READS = {("GET", "/api/v1/profiles/lookup"), ("GET", "/api/v1/profiles/{profile_id}")}


@dataclass
class MountedAPI:
    url: str
    routes: list[Route]
    tokens: dict[Role, str]
    audit: AuditLog
    warehouse: ChdbWarehouse


@pytest.fixture(scope="module")
def mounted(
    chdb_engine: ChdbWarehouse, broker: TansuBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MountedAPI]:
    database = f"t_routes_{int(time.time() * 1000) % 10**9}"
    warehouse = ChdbWarehouse.for_path(chdb_engine.data_dir, database)
    apply_migrations(warehouse)
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("routes"), privacy_hash_key=SecretStr("route-policy-key")
    )
    audit = AuditLog(warehouse)
    tokens = AdminTokens.single_admin(BOOTSTRAP_TOKEN, audit=audit)
    access = AccessControl(warehouse, tokens, WriteKeys(["wk-route-policy"]))
    # Real tokens, one per role, created and loaded the way the platform does it.
    issued = {role: access.token_store.create(f"probe-{role}", role, "test")[1] for role in Role}
    assert access.reload()
    producer = AsyncProducer(broker.bootstrap)
    registry = CollectorRegistry()
    analytics = RefreshRunner(
        warehouse,
        lambda until: ValueOptions(until, "days", 365, 1.0, 0.8, 0.95),
        AnalyticsMetrics.create(registry),
    )
    privacy = build_privacy(settings, warehouse, broker.bootstrap, registry)
    pipeline = IngestPipeline(producer, IngestMetrics.create(registry), MessageIdWindow(60, 1000))
    reader = ProfileReader(warehouse)
    # As cdp up wires it (services/runtime.py): the privacy service's routes plus the consent routes.
    with_consents = WithConsentRoutes(privacy, pipeline, reader, warehouse)
    components = AdminComponents(
        tokens=tokens,
        warehouse=warehouse,
        reader=reader,
        submit=kafka_submit(producer),
        analytics=analytics,
        access=access,
        privacy=with_consents,
    )
    routes = platform_admin_routes(components)
    assert any(route.path == "/api/v1/privacy/consents" for route in routes)
    try:
        with serve_app(Starlette(routes=routes)) as url:
            yield MountedAPI(url, routes, issued, audit, warehouse)
    finally:
        privacy.stop()
        producer.close()
        warehouse.command(f"DROP DATABASE IF EXISTS {database} SYNC")
        warehouse.close()


def _concrete(path: str) -> str:
    """The template with its parameters filled in (``{id:int}`` -> 1, anything else -> probe)."""
    return re.sub(r"\{[^}:]+:int\}", "1", re.sub(r"\{[^}:]+(:(str|path|uuid))?\}", "probe", path))


def _cases(routes: list[Route]) -> list[tuple[str, Route]]:
    return [(method, route) for route in routes for method in sorted((route.methods or set()) - {"HEAD"})]


def _call(api: MountedAPI, method: str, route: Route, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    # Write routes get a body with an unknown field: an allowed caller is answered by the route's own
    # validation (400) and nothing changes; the point here is that the role check let it through.
    content = b'{"probe": true}' if method in WRITE_METHODS else None
    if content is not None:
        headers["Content-Type"] = "application/json"
    return httpx.request(
        method, f"{api.url}{_concrete(route.path)}", headers=headers, content=content, timeout=30
    )


def test_every_route_under_api_v1_has_a_declared_policy(mounted: MountedAPI) -> None:
    assert mounted.routes == admin_api_routes(mounted.routes), "every admin route lives under /api/v1"
    for route in mounted.routes:
        policy = policy_of(route.endpoint)
        assert policy, f"{route.path}: no role policy declared"
        assert Role.ADMIN in policy, f"{route.path}: admin may use every route"


def test_each_probe_reaches_the_route_it_is_meant_for(mounted: MountedAPI) -> None:
    """The enumeration would prove nothing if a filled-in path were answered by another route."""
    for method, route in _cases(mounted.routes):
        scope = {"type": "http", "method": method, "path": _concrete(route.path)}
        first = next(r for r in mounted.routes if r.matches(scope)[0] == Match.FULL)
        assert first is route, f"{method} {route.path} is shadowed by {first.path}"


def test_no_token_and_invalid_tokens_get_401(mounted: MountedAPI) -> None:
    for method, route in _cases(mounted.routes):
        missing = _call(mounted, method, route, None)
        assert missing.status_code == 401, (method, route.path, missing.text)
        assert missing.headers["www-authenticate"] == 'Bearer realm="cdp"'
        assert missing.json()["error"] == "unauthorized"
        for wrong in ("wrong-token", f"{BOOTSTRAP_TOKEN}x", mounted.tokens[Role.ADMIN][:-1]):
            invalid = _call(mounted, method, route, wrong)
            assert invalid.status_code == 401, (method, route.path, wrong)
            assert 'error="invalid_token"' in invalid.headers["www-authenticate"]
            assert wrong not in invalid.text


def test_every_role_outside_a_routes_policy_gets_403_and_every_role_inside_gets_through(
    mounted: MountedAPI,
) -> None:
    checked = 0
    for method, route in _cases(mounted.routes):
        policy = policy_of(route.endpoint)
        assert policy is not None
        for role, token in mounted.tokens.items():
            response = _call(mounted, method, route, token)
            where = (method, route.path, str(role), response.status_code, response.text[:300])
            if role in policy:
                assert response.status_code not in (401, 403), where
                assert response.status_code < 500, where
            else:
                assert response.status_code == 403, where
                assert response.json()["error"] == "forbidden", where
            checked += 1
    # The bootstrap admin token of single-node mode works everywhere too.
    for method, route in _cases(mounted.routes):
        assert _call(mounted, method, route, BOOTSTRAP_TOKEN).status_code not in (401, 403)
    assert checked == len(_cases(mounted.routes)) * len(Role)


def test_the_policies_follow_the_role_model(mounted: MountedAPI) -> None:
    """What each role may do (docs/access.md), checked against every mounted route's policy."""
    for method, route in _cases(mounted.routes):
        policy = policy_of(route.endpoint) or frozenset()
        path = route.path
        privacy = path.startswith("/api/v1/privacy/")
        if Role.SERVICE_AGENT in policy:
            assert (method, path) in PROFILE_READS, (
                f"service agents may only look profiles up: {method} {path}"
            )
        if Role.ANALYST in policy:
            assert method == "GET", f"analysts are read-only: {method} {path}"
            assert not privacy, f"analysts may not use privacy routes: {path}"
            assert not path.startswith(("/api/v1/tokens", "/api/v1/write-keys", "/api/v1/audit")), path
        if Role.PRIVACY_OFFICER in policy:
            assert privacy or path == "/api/v1/audit" or (method, path) in PROFILE_READS, (
                f"privacy officers: privacy routes, the audit and profile reads only: {method} {path}"
            )
        if privacy:
            assert Role.PRIVACY_OFFICER in policy, f"privacy officers may use every privacy route: {path}"
        if (method, path) in PROFILE_READS:
            assert policy == frozenset(Role), f"every role may look profiles up: {path}"


def test_a_route_without_a_policy_is_refused() -> None:
    async def unguarded(request: object) -> None:  # pragma: no cover - never called
        raise AssertionError

    with pytest.raises(UndeclaredRouteError, match="/api/v1/new-thing"):
        check_declared([Route("/api/v1/new-thing", unguarded, methods=["GET"])])  # type: ignore[arg-type]
    check_declared([Route("/healthz", unguarded, methods=["GET"])])  # type: ignore[arg-type]


def test_every_call_is_audited_by_route_template(mounted: MountedAPI) -> None:
    start = time.time() - 1
    route = next(r for r in mounted.routes if r.path == "/api/v1/profiles/{profile_id}")
    _call(mounted, "GET", route, None)
    _call(mounted, "GET", route, mounted.tokens[Role.SERVICE_AGENT])
    _call(mounted, "DELETE", next(r for r in mounted.routes if r.path == "/api/v1/tokens/{token_id}"),
          mounted.tokens[Role.ANALYST])  # fmt: skip
    mounted.audit.flush()
    rows = mounted.warehouse.query_dicts(
        f"SELECT principal, role, method, route, status, outcome FROM {mounted.warehouse.database}.admin_audit "
        "WHERE at >= fromUnixTimestamp64Milli({start:Int64}) ORDER BY at",
        {"start": int(start * 1000)},
    )
    records = {(r["principal"], r["role"], r["method"], r["route"], r["status"], r["outcome"]) for r in rows}
    assert ("", "", "GET", "/api/v1/profiles/{profile_id}", 401, "unauthenticated") in records
    assert (
        "probe-service_agent",
        "service_agent",
        "GET",
        "/api/v1/profiles/{profile_id}",
        404,
        "allowed",
    ) in records
    assert ("probe-analyst", "analyst", "DELETE", "/api/v1/tokens/{token_id}", 403, "forbidden") in records
    everything = mounted.warehouse.query(
        f"SELECT DISTINCT route FROM {mounted.warehouse.database}.admin_audit"
    )
    assert {route for (route,) in everything} <= {route.path for route in mounted.routes}, (
        "only route templates, never concrete paths"
    )
