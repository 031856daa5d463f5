"""Profile 360 over HTTP against a real warehouse (both adapters): lookup, merges, errors."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from services.admin.api import admin_routes
from services.admin.auth import AdminTokens
from services.admin.profiles import ProfileReader
from services.core.kafka.broker import free_port
from services.core.warehouse.chdb_adapter import ChdbWarehouse
from services.core.warehouse.connect_adapter import ConnectWarehouse
from services.core.warehouse.port import Warehouse
from services.identity.domain.identifiers import IdType
from tests.integration.admin.admin_story import TOKEN
from tests.integration.servers import serve_app


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("email", "anna@example.de"),
        ("phone", "+4915112345678"),
        ("customer_id", "C100042"),
        ("anonymous_id", "anon-visitor-1"),
        ("chat_handle", "@anna"),
        ("email_recipient_id", "r-77"),
    ],
)
def test_lookup_by_each_identifier_type_finds_the_profile(admin: httpx.Client, parameter, value):
    response = admin.get("/api/v1/profiles/lookup", params={parameter: value})
    assert response.status_code == 200, response.text
    assert response.json()["profile_id"] == "p_anna"


@pytest.mark.parametrize(
    ("parameter", "value"),
    [("email", "  ANNA@Example.DE "), ("email", "mailto:anna@example.de"), ("phone", "0151 12345678"),
     ("phone", "+49 (151) 123-456-78"), ("customer_id", " C100042 ")],
)  # fmt: skip
def test_lookup_normalises_the_identifier_like_ingest_does(admin: httpx.Client, parameter, value):
    response = admin.get("/api/v1/profiles/lookup", params={parameter: value})
    assert response.status_code == 200, response.text
    assert response.json()["profile_id"] == "p_anna"


def test_profile_carries_the_whole_contract(admin: httpx.Client):
    response = admin.get("/api/v1/profiles/lookup", params={"email": "anna@example.de"})
    profile = response.json()
    assert set(profile) == {"profile_id", "identities", "traits", "attributes", "recent_events", "consents",
                            "segments", "value", "merged_from", "updated_at"}  # fmt: skip
    assert profile["traits"]["last_name"] == "Schmidt"  # the newest version
    assert profile["attributes"]["orders_count"] == 2
    assert profile["consents"] == [] and profile["segments"] == []
    assert profile["value"] is None  # no customer value refresh in this warehouse
    assert profile["merged_from"] == ["p_visitor"]
    assert profile["updated_at"].endswith("Z")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"


def test_identities_are_current_and_best_ranked_first(admin: httpx.Client):
    identities = admin.get("/api/v1/profiles/p_anna").json()["identities"]
    assert identities == [
        {"type": "customer_id", "value": "C100042"},
        {"type": "email", "value": "anna@example.de"},
        {"type": "phone", "value": "+4915112345678"},
        {"type": "email_recipient_id", "value": "r-77"},
        {"type": "chat_handle", "value": "@anna"},
        {"type": "anonymous_id", "value": "anon-visitor-1"},
        {"type": "anonymous_id", "value": "anon-visitor-2"},  # still under the absorbed id
    ]  # anon-moved was split off to Ben


def test_identifier_split_off_belongs_to_its_new_profile_only(admin: httpx.Client):
    profile = admin.get("/api/v1/profiles/lookup", params={"anonymous_id": "anon-moved"}).json()
    assert profile["profile_id"] == "p_ben"
    assert {"type": "anonymous_id", "value": "anon-moved"} in profile["identities"]


def test_a_redirect_moved_later_counts_only_for_its_newest_survivor(admin: httpx.Client):
    ben = admin.get("/api/v1/profiles/p_moved").json()
    assert ben["profile_id"] == "p_ben"
    assert ben["merged_from"] == ["p_moved"]
    assert [e["message_id"] for e in ben["recent_events"]] == ["e-ben", "e-moved"]
    anna = admin.get("/api/v1/profiles/p_anna").json()
    assert "p_moved" not in anna["merged_from"]
    assert "e-moved" not in [e["message_id"] for e in anna["recent_events"]]


def test_identifier_of_an_absorbed_profile_finds_the_survivor(admin: httpx.Client):
    response = admin.get("/api/v1/profiles/lookup", params={"anonymous_id": "anon-visitor-2"})
    assert response.status_code == 200
    assert response.json()["profile_id"] == "p_anna"


def test_absorbed_profile_id_answers_with_the_survivor(admin: httpx.Client):
    profile = admin.get("/api/v1/profiles/p_visitor").json()
    assert profile["profile_id"] == "p_anna"
    assert profile["merged_from"] == ["p_visitor"]


def test_recent_events_span_channels_and_absorbed_profiles_newest_first(admin: httpx.Client):
    events = admin.get("/api/v1/profiles/lookup", params={"customer_id": "C100042"}).json()["recent_events"]
    assert [e["message_id"] for e in events] == ["e-chat", "e-order", "e-mail", "e-visit"]
    assert {e["channel"] for e in events} == {"shop", "chat", "email"}
    visit = events[-1]
    assert visit["profile_id"] == "p_visitor"
    assert (visit["type"], visit["name"], visit["timestamp"]) == (
        "page",
        "Startseite",
        "2026-11-18T08:00:00.000Z",
    )
    assert events[1]["properties"] == {"order_id": "O-1", "revenue": 59.9, "currency": "EUR"}


def test_a_profile_not_yet_snapshotted_answers_with_its_identities(admin: httpx.Client):
    profile = admin.get("/api/v1/profiles/lookup", params={"email": "new@example.de"}).json()
    assert profile["profile_id"] == "p_new"
    assert profile["identities"] == [{"type": "email", "value": "new@example.de"}]
    assert (profile["traits"], profile["attributes"], profile["updated_at"]) == ({}, {}, None)


def test_a_merged_profile_is_not_served_as_itself(admin: httpx.Client):
    assert admin.get("/api/v1/profiles/p_gone").status_code == 404


def test_recent_events_are_capped(story):
    profile = ProfileReader(story, recent_events=2).get("p_anna")
    assert profile is not None
    assert [e["message_id"] for e in profile["recent_events"]] == ["e-chat", "e-order"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", "give exactly one identifier: one of email, phone"),
        ("email=anna@example.de&phone=%2B4915112345678", "give exactly one identifier, got 2 (email, phone)"),
        ("email=anna@example.de&email=b@example.de", "give exactly one identifier, got 2 (email, email)"),
        ("mail=anna@example.de", "unknown parameter mail: use exactly one of email, phone, customer_id"),
        ("email=", "email is empty"),
        ("phone=0123", "phone '0123' is not a valid phone number"),
        ("email=anna-at-example.de", "email 'anna-at-example.de' is not a usable email address"),
        ("customer_id=undefined", "customer_id 'undefined' is not a usable identifier"),
    ],
)
def test_bad_lookup_requests_are_400_with_a_precise_message(admin: httpx.Client, query, expected):
    response = admin.get(f"/api/v1/profiles/lookup?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] in ("invalid_request", "invalid_identifier")
    assert body["message"].startswith(expected), body["message"]


@pytest.mark.parametrize(
    "path",
    ["/api/v1/profiles/lookup?email=nobody@example.de", "/api/v1/profiles/lookup?customer_id=C404",
     "/api/v1/profiles/p_unknown"],
)  # fmt: skip
def test_unknown_profiles_are_404_json(admin: httpx.Client, path):
    response = admin.get(path)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_reader_refuses_junk_identifiers_without_querying(reader: ProfileReader):
    with pytest.raises(ValueError, match="not a valid phone number"):
        reader.lookup(IdType.PHONE, "12")


def _status_over(warehouse: Warehouse) -> httpx.Response:
    app = Starlette(routes=admin_routes(ProfileReader(warehouse), AdminTokens.single_admin(TOKEN)))
    with serve_app(app) as url:
        return httpx.get(f"{url}/api/v1/profiles/p_anna", headers={"Authorization": f"Bearer {TOKEN}"})


def test_warehouse_failures_are_json_errors(chdb_engine, database):
    unmigrated = ChdbWarehouse.for_path(chdb_engine.data_dir, database)
    try:
        failed = _status_over(unmigrated)
    finally:
        unmigrated.close()
    assert failed.status_code == 500
    assert failed.json()["error"] == "warehouse_error"
    down = ConnectWarehouse(f"http://127.0.0.1:{free_port()}", "cdp")
    try:
        unreachable = _status_over(down)
    finally:
        down.close()
    assert unreachable.status_code == 503
    assert unreachable.headers["retry-after"] == "1"


def test_a_profile_retired_by_a_split_is_not_served(story, admin: httpx.Client):
    # A split can leave an id with no events: its last record says live=false without mergedInto.
    story.insert_json_rows(
        "profiles",
        b'{"_raw": {"profileId": "p_ben", "version": 9, "live": false, "mergedInto": null}}',
        columns=["_raw"],
    )
    assert admin.get("/api/v1/profiles/p_ben").status_code == 404
