"""Who may use the admin API: bearer tokens, each standing for a principal with a role.

Tokens are held only as SHA-256 digests: the single-node bootstrap token (``CDP_ADMIN_TOKEN`` or the
one generated into the data directory, always valid, role ``admin``) and the tokens created through
the API, which ``services.access`` loads from the warehouse table ``api_tokens`` and reloads every
``CDP_ACCESS_RELOAD_SECONDS``. Routes name the roles they accept (``services.admin.roles``);
``require`` answers 401 for a missing or wrong token, 403 for a role the route does not accept, and
records every call, allowed or refused, in the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from starlette.requests import Request
from starlette.responses import Response

from services.access.audit import AuditEntry, AuditSink
from services.admin.http import json_error

log = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]

_CHALLENGE = 'Bearer realm="cdp"'
BOOTSTRAP_NAME = "admin"


class Role(StrEnum):
    ADMIN = "admin"  # everything
    ANALYST = "analyst"  # read-only: profiles, segments, analytics
    PRIVACY_OFFICER = "privacy_officer"  # consents, export, erasure, the privacy audit; reads profiles
    SERVICE_AGENT = "service_agent"  # profile lookup only (the profile 360)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a token stands for. ``name`` may appear in logs and audit records; the token never does.
    ``token_id`` names a token created through the API (empty for the bootstrap token)."""

    name: str
    role: Role
    token_id: str = ""


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class AdminTokens:
    """Accepted bearer tokens, held as SHA-256 digests, each granting one principal.

    ``grants`` are fixed (the bootstrap token); ``load`` replaces the others (those of the
    ``api_tokens`` table) as a whole, so a reload never leaves a half-updated set. No tokens means
    no access at all: the admin API fails closed. ``audit`` receives a record of every call.
    """

    def __init__(self, grants: Iterable[tuple[str, Principal]], *, audit: AuditSink | None = None) -> None:
        self._fixed = [(token_digest(token), principal) for token, principal in grants if token]
        self._loaded: list[tuple[bytes, Principal]] = []
        self.audit = audit

    @classmethod
    def single_admin(cls, token: str, *, audit: AuditSink | None = None) -> AdminTokens:
        """The single-node set-up: one token (``CDP_ADMIN_TOKEN``) with the ``admin`` role."""
        return cls([(token, Principal(BOOTSTRAP_NAME, Role.ADMIN))], audit=audit)

    def load(self, grants: Iterable[tuple[bytes, Principal]]) -> None:
        """Replace the loaded grants (digest, principal) by ``grants``; the fixed ones stay."""
        self._loaded = [(digest, principal) for digest, principal in grants if len(digest) == 32]

    def principal(self, token: str | None) -> Principal | None:
        if not token:
            return None
        candidate = token_digest(token)
        found: Principal | None = None
        # Compare against every grant, so timing tells nothing about which one nearly matched.
        for digest, principal in (*self._fixed, *self._loaded):
            if hmac.compare_digest(candidate, digest):
                found = principal
        return found


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None when absent or another scheme."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


# The roles each guarded endpoint accepts, so the policy of a mounted route can be read back
# (start-up check, route enumeration test). Weak keys: a dropped route leaves nothing behind.
_POLICIES: weakref.WeakKeyDictionary[Endpoint, frozenset[Role]] = weakref.WeakKeyDictionary()


def policy_of(endpoint: object) -> frozenset[Role] | None:
    """The roles a route's endpoint accepts, or None when it was not mounted through ``require``."""
    try:
        return _POLICIES.get(endpoint)  # type: ignore[call-overload,no-any-return]
    except TypeError:  # not weak-referenceable: certainly not a guarded endpoint
        return None


def _route_template(request: Request) -> str:
    """The matched route's path template (``/api/v1/profiles/{profile_id}``), never the concrete path."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "(unmatched)"


def require(tokens: AdminTokens, roles: frozenset[Role], endpoint: Endpoint) -> Endpoint:
    """``endpoint`` behind the bearer-token check; the caller is in ``request.state.principal``.

    Every call is audited (``tokens.audit``) with its route template, principal, status and outcome.
    """
    if not roles:
        raise ValueError("a route needs at least one role")
    allowed = ", ".join(sorted(roles))

    async def guarded(request: Request) -> Response:
        request_id = uuid.uuid4().hex
        request.state.request_id = request_id
        header = request.headers.get("authorization")
        token = bearer_token(header)
        principal = tokens.principal(token)
        response: Response | None = None
        outcome = "allowed"
        try:
            if principal is None:
                outcome = "unauthenticated"
                if token is None:
                    message = "missing bearer token: send 'Authorization: Bearer <admin token>'"
                    challenge = _CHALLENGE
                else:
                    message = "invalid bearer token (unknown or revoked)"
                    challenge = f'{_CHALLENGE}, error="invalid_token"'
                response = json_error(401, "unauthorized", message, {"WWW-Authenticate": challenge})
            elif principal.role not in roles:
                outcome = "forbidden"
                response = json_error(
                    403,
                    "forbidden",
                    f"the role {principal.role} may not use this route: it needs one of {allowed}",
                )
            else:
                request.state.principal = principal
                response = await endpoint(request)
            response.headers["X-Request-Id"] = request_id
            return response
        finally:
            _audit(tokens, request, request_id, principal, outcome, response)

    _POLICIES[guarded] = roles
    return guarded


def _audit(
    tokens: AdminTokens,
    request: Request,
    request_id: str,
    principal: Principal | None,
    outcome: str,
    response: Response | None,
) -> None:
    if tokens.audit is None:
        return
    entry = AuditEntry(
        at=time.time(),
        request_id=request_id,
        principal=principal.name if principal else "",
        role=str(principal.role) if principal else "",
        token_id=principal.token_id if principal else "",
        method=request.method,
        route=_route_template(request),
        status=response.status_code if response is not None else 500,
        outcome=outcome,
    )
    try:
        tokens.audit(entry)
    except Exception:  # the audit never fails a request
        log.exception("admin audit: could not queue the record of request %s", request_id)
