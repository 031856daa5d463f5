"""Every admin route the platform mounts, from one function: ``platform_admin_routes``.

``cdp up`` (``services.runtime.build``) mounts exactly this list, and the route enumeration test
(``tests/integration/admin/test_route_policy.py``) builds it the same way from real components and
proves, for every route and method, that no token and an invalid token get 401 and every role
outside the route's policy gets 403. A new admin route therefore belongs in one of the route
functions called here (or in a new component added to ``AdminComponents``): it is then mounted
and tested without further wiring. Every route must be mounted through ``require`` with a role set
of ``services.admin.roles``; ``platform_admin_routes`` refuses a route without one, and ``cdp up``
refuses to start with a route under ``/api/v1`` that did not come from here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from starlette.routing import BaseRoute, Route

from services.access.api import access_routes
from services.access.control import AccessControl
from services.admin.api import PREFIX, admin_routes
from services.admin.auth import AdminTokens, policy_of
from services.admin.corrections import Submit
from services.admin.profiles import ProfileReader
from services.analytics.api import analytics_routes
from services.analytics.refresh import RefreshRunner
from services.core.warehouse.port import Warehouse
from services.segments.api import segment_routes
from services.segments.domain.rules import CONSENT_PURPOSES


class RouteProvider(Protocol):
    """A component with admin routes of its own (the privacy service: consents, export, erasure)."""

    def routes(self, tokens: AdminTokens) -> list[Route]: ...


class UndeclaredRouteError(RuntimeError):
    """An admin route without a declared role policy: it would be reachable without the role check."""


@dataclass(frozen=True)
class AdminComponents:
    """What the admin routes need. Every field is required on purpose: a new component makes the
    route enumeration test fail until the test builds it too (and so covers its routes)."""

    tokens: AdminTokens
    warehouse: Warehouse
    reader: ProfileReader
    submit: Submit | None  # identity corrections (split, detach); None: read-only profile routes
    analytics: RefreshRunner
    access: AccessControl
    privacy: RouteProvider
    # CDP_CONSENT_PURPOSES: the purposes segment rules may name (configuration, not a component)
    consent_purposes: tuple[str, ...] = CONSENT_PURPOSES


def platform_admin_routes(components: AdminComponents) -> list[Route]:
    """Every route under ``/api/v1``, each behind the bearer-token and role check."""
    c = components
    routes = [
        *admin_routes(c.reader, c.tokens, submit=c.submit),
        *segment_routes(c.warehouse, c.tokens, c.consent_purposes),
        *analytics_routes(c.analytics, c.tokens),
        *access_routes(c.access, c.tokens),
        *c.privacy.routes(c.tokens),
    ]
    check_declared(routes)
    return routes


def admin_api_routes(routes: Iterable[BaseRoute]) -> list[Route]:
    """The routes of an app that belong to the admin API (under ``/api/v1``)."""
    return [r for r in routes if isinstance(r, Route) and r.path.startswith(f"{PREFIX}/")]


def check_declared(routes: Iterable[BaseRoute]) -> None:
    """UndeclaredRouteError naming every admin route mounted without ``require``."""
    undeclared = [
        f"{','.join(sorted(route.methods or ()))} {route.path}"
        for route in admin_api_routes(routes)
        if policy_of(route.endpoint) is None
    ]
    if undeclared:
        raise UndeclaredRouteError(
            "admin routes without a role policy (mount them with services.admin.auth.require and a role "
            f"set of services.admin.roles): {'; '.join(undeclared)}"
        )


def check_mounted(app_routes: Iterable[BaseRoute], mounted: Iterable[Route]) -> None:
    """UndeclaredRouteError when the app has an admin route that is not one of ``mounted``
    (the result of ``platform_admin_routes``), so the route enumeration test would not see it."""
    known = {id(route) for route in mounted}
    stray = [route.path for route in admin_api_routes(app_routes) if id(route) not in known]
    if stray:
        raise UndeclaredRouteError(
            f"admin routes mounted outside services.admin.routes.platform_admin_routes: {', '.join(stray)}; "
            "add them there so they are tested"
        )
