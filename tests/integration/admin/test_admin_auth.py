"""Every admin route refuses requests without the right bearer token."""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.routing import Route

from services.admin.api import admin_routes
from services.admin.auth import AdminTokens, Principal, Role, bearer_token
from tests.integration.admin.admin_story import TOKEN


def route_paths(reader) -> list[str]:
    """Every admin route, its path parameters filled in: a new route is covered automatically."""
    routes = admin_routes(reader, AdminTokens.single_admin(TOKEN))
    assert routes and all(isinstance(route, Route) for route in routes)
    return [re.sub(r"\{[^}]+\}", "p_anna", route.path) for route in routes]


REFUSED = [
    ({}, "missing"),
    ({"Authorization": "Bearer wrong-token"}, "invalid"),
    ({"Authorization": f"Bearer {TOKEN}x"}, "invalid"),
    ({"Authorization": "Bearer"}, "missing"),
    ({"Authorization": f"Basic {TOKEN}"}, "missing"),
    ({"Authorization": TOKEN}, "missing"),
]


@pytest.mark.parametrize(("headers", "kind"), REFUSED)
def test_every_route_refuses_missing_or_wrong_tokens(reader, admin_url, headers, kind):
    for path in route_paths(reader):
        response = httpx.get(f"{admin_url}{path}", headers=headers)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert ('error="invalid_token"' in response.headers["www-authenticate"]) == (kind == "invalid")
        body = response.json()
        assert body["error"] == "unauthorized"
        assert body["message"].startswith(kind)
        assert "wrong-token" not in response.text and TOKEN not in response.text


def test_every_route_answers_with_the_token(reader, admin_url):
    for path in route_paths(reader):
        response = httpx.get(
            f"{admin_url}{path}?email=anna@example.de", headers={"authorization": f"bearer {TOKEN}"}
        )
        assert response.status_code == 200, (path, response.text)


def test_tokens_are_checked_before_the_request_is_validated(admin_url):
    response = httpx.get(f"{admin_url}/api/v1/profiles/lookup?nonsense=1")
    assert response.status_code == 401


def test_no_configured_token_refuses_everyone():
    assert AdminTokens([]).principal("") is None
    assert AdminTokens([("", Principal("admin", Role.ADMIN))]).principal("") is None


def test_each_token_stands_for_its_principal():
    agent = Principal("agent-1", Role.ADMIN)
    tokens = AdminTokens([("t-admin", Principal("admin", Role.ADMIN)), ("t-agent", agent)])
    assert tokens.principal("t-agent") == agent
    assert tokens.principal("t-agent ") is None
    assert tokens.principal("t-other") is None


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
    ],
)
def test_bearer_token_parsing(header, token):
    assert bearer_token(header) == token
