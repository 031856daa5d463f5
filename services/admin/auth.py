"""Who may use the admin API: bearer tokens, each standing for a principal with a role.

Today there is one role, ``admin`` (the single-node ``CDP_ADMIN_TOKEN``). Routes name the roles
they accept, so finer roles (a service agent who may read profiles but not erase them, a privacy
officer, ...) are new ``Role`` members and new token grants, not a new mechanism.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from starlette.requests import Request
from starlette.responses import Response

from services.admin.http import json_error

Endpoint = Callable[[Request], Awaitable[Response]]

_CHALLENGE = 'Bearer realm="cdp"'


class Role(StrEnum):
    ADMIN = "admin"  # everything
    ANALYST = "analyst"  # read-only: profiles, segments, analytics
    PRIVACY_OFFICER = "privacy_officer"  # consents, export, erasure, the privacy audit; reads profiles
    SERVICE_AGENT = "service_agent"  # profile lookup only (the profile 360)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a token stands for. ``name`` may appear in logs and audit records; the token never does."""

    name: str
    role: Role


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class AdminTokens:
    """Accepted bearer tokens, held as SHA-256 digests, each granting one principal.

    No tokens means no access at all: the admin API fails closed.
    """

    def __init__(self, grants: Iterable[tuple[str, Principal]]) -> None:
        self._grants = [(_digest(token), principal) for token, principal in grants if token]

    @classmethod
    def single_admin(cls, token: str) -> AdminTokens:
        """The single-node set-up: one token (``CDP_ADMIN_TOKEN``) with the ``admin`` role."""
        return cls([(token, Principal("admin", Role.ADMIN))])

    def principal(self, token: str | None) -> Principal | None:
        if not token:
            return None
        candidate = _digest(token)
        found: Principal | None = None
        # Compare against every grant, so timing tells nothing about which one nearly matched.
        for digest, principal in self._grants:
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


def require(tokens: AdminTokens, roles: frozenset[Role], endpoint: Endpoint) -> Endpoint:
    """``endpoint`` behind the bearer-token check; the caller is in ``request.state.principal``."""

    async def guarded(request: Request) -> Response:
        header = request.headers.get("authorization")
        token = bearer_token(header)
        principal = tokens.principal(token)
        if principal is None:
            if token is None:
                message = "missing bearer token: send 'Authorization: Bearer <admin token>'"
                challenge = _CHALLENGE
            else:
                message = "invalid bearer token"
                challenge = f'{_CHALLENGE}, error="invalid_token"'
            return json_error(401, "unauthorized", message, {"WWW-Authenticate": challenge})
        if principal.role not in roles:
            allowed = ", ".join(sorted(roles))
            return json_error(403, "forbidden", f"this route needs the role {allowed}")
        request.state.principal = principal
        return await endpoint(request)

    return guarded
