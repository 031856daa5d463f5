"""Consent records in the running platform (issue 6, consent): subscription events over the tracking
API, a consent granted through the admin API, a withdrawal; the profile 360, the consent API, the
``consents`` table, the CLI and a consent-gated segment all agree."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from schemas import topics
from services.core.kafka.broker import free_port
from tests.e2e.cdp_process import CDP, CdpProcess, wait_for
from tests.e2e.test_segments_e2e import apply, read_all

CONSENTS = "/api/v1/privacy/consents"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CdpProcess]:
    root = tmp_path_factory.mktemp("consents")
    handle = CdpProcess(root / "data", free_port(), free_port(), free_port(), "consents-write-key")
    handle.start()
    yield handle
    if handle.process is not None:
        handle.stop()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def profile(platform: CdpProcess, email: str) -> dict[str, Any] | None:
    response = platform.admin("GET", "/api/v1/profiles/lookup", params={"email": email})
    return response.json() if response.status_code == 200 else None


def consents_of(platform: CdpProcess, email: str) -> dict[str, Any] | None:
    response = platform.admin("GET", CONSENTS, params={"email": email})
    return response.json() if response.status_code == 200 else None


def current(platform: CdpProcess, email: str) -> dict[str, dict[str, Any]]:
    found = profile(platform, email)
    return {c["purpose"]: c for c in (found or {}).get("consents", [])}


def test_consents_from_events_and_the_admin_api(platform: CdpProcess) -> None:
    run = uuid.uuid4().hex[:8]
    email, user = f"anna-{run}@example.de", f"{run}-anna"
    segment = f"e2e_personal_{run}"
    apply(platform, {"id": segment, "name": "Personalised offers", "rule": {"trait": "run", "op": "=", "value": run},
                     "activation": {"consent": "personalisation"}})  # fmt: skip
    now = datetime.now(UTC)
    batch = [
        {"type": "identify", "userId": user, "messageId": f"{run}-1", "timestamp": iso(now),
         "traits": {"email": email, "run": run}},
        {"type": "track", "event": "Subscribed", "userId": user, "messageId": f"{run}-2", "timestamp": iso(now),
         "properties": {"list_id": "newsletter", "legal_text_version": "nl-2026-01", "email": email}},
        {"type": "track", "event": "Double Opt-In Confirmed", "userId": user, "messageId": f"{run}-3",
         "timestamp": iso(now + timedelta(seconds=1)), "properties": {"list_id": "newsletter", "email": email}},
    ]  # fmt: skip
    assert platform.post("/v1/batch", {"batch": batch}).status_code == 200

    # The profile: email marketing granted and confirmed by double opt-in, from the events.
    mail = wait_for(
        lambda: current(platform, email).get("email_marketing", {}).get("double_opt_in"), timeout=30
    )
    assert mail is True
    state = current(platform, email)["email_marketing"]
    assert (state["status"], state["granted"], state["legal_text_version"], state["source"]) == (
        "granted", True, "nl-2026-01", "event",
    )  # fmt: skip

    # A member of the segment, but not activated: no consent for personalisation yet.
    def membership() -> dict[str, Any] | None:
        found = profile(platform, email) or {}
        return next((s for s in found.get("segments", []) if s["segment_id"] == segment), None)

    assert wait_for(membership, timeout=30)["activated"] is False

    # Granted through the admin API (source api).
    response = platform.admin("POST", CONSENTS, json={
        "identifier": f"email:{email}", "purpose": "personalisation", "status": "granted",
        "legal_text_version": "pers-3", "reason": "asked at the till",
    })  # fmt: skip
    assert response.status_code == 202, response.text
    granted_id = response.json()["messageId"]
    assert wait_for(lambda: (membership() or {}).get("activated"), timeout=30) is True
    state = current(platform, email)["personalisation"]
    assert (state["status"], state["granted"], state["source"], state["message_id"]) == (
        "granted", True, "api", granted_id,
    )  # fmt: skip

    # Withdrawn by the customer in the shop (a tracking event).
    withdrawal = {"type": "track", "event": "Consent Updated", "userId": user, "messageId": f"{run}-4",
                  "timestamp": iso(datetime.now(UTC) + timedelta(seconds=1)),
                  "properties": {"purpose": "personalisation", "status": "withdrawn", "reason": "settings page"}}  # fmt: skip
    assert platform.post("/v1/track", withdrawal).status_code == 200
    assert wait_for(lambda: (membership() or {}).get("activated") is False, timeout=30)
    assert current(platform, email)["personalisation"]["status"] == "withdrawn"

    # GET consents: the current state and the complete history with its sources.
    def complete() -> dict[str, Any] | None:
        answer = consents_of(platform, email)
        return answer if answer and len(answer["history"]) == 4 else None

    answer = wait_for(complete, timeout=30)
    assert answer["identifier"] == f"email:{email}"
    assert answer["profile_id"] == profile(platform, email)["profile_id"]  # type: ignore[index]
    history = [
        (h["event"], h["purpose"], h["status"], h["double_opt_in"], h["source"]) for h in answer["history"]
    ]
    assert history == [
        ("Subscribed", "email_marketing", "granted", False, "event"),
        ("Double Opt-In Confirmed", "email_marketing", "granted", True, "event"),
        ("Consent Updated", "personalisation", "granted", False, "api"),
        ("Consent Updated", "personalisation", "withdrawn", False, "event"),
    ]
    assert answer["history"][2]["legal_text_version"] == "pers-3"
    assert answer["history"][2]["reason"] == "asked at the till"
    now_state = answer["current"]
    assert (now_state["email_marketing"]["granted"], now_state["email_marketing"]["double_opt_in"]) == (
        True,
        True,
    )
    assert (now_state["personalisation"]["status"], now_state["personalisation"]["source"]) == (
        "withdrawn",
        "event",
    )

    # The activation feed: entered when the consent was granted, exited when it was withdrawn.
    feed = [r for r in read_all(platform.bootstrap, topics.segment_feed(segment), quiet=1.0)
            if r["segmentId"] == segment]  # fmt: skip
    assert [(r["action"], r["reason"]) for r in feed] == [("entered", "consent"), ("exited", "consent")]

    # BI: the history in the consents table, through the read-only endpoint.
    client = platform.clickhouse()
    try:
        found = client.query(
            "SELECT purpose, status, source FROM cdp.consent_history WHERE current_profile_id = {p:String} "
            "ORDER BY occurred_at, message_id",
            parameters={"p": answer["profile_id"]},
        ).result_rows
    finally:
        client.close()
    assert [tuple(r) for r in found] == [(p, s, src) for _, p, s, _, src in history]


def test_the_cli_records_and_shows_consents(platform: CdpProcess) -> None:
    run = uuid.uuid4().hex[:8]
    email = f"ben-{run}@example.de"
    common = ["--url", platform.url, "--data-dir", str(platform.data_dir)]
    record = subprocess.run(
        [CDP, "privacy", "consent", f"email:{email}", "--purpose", "analytics", "--status", "granted",
         "--legal-text-version", "cb-7", *common],
        env=platform.env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert record.returncode == 0, record.stderr
    assert "recorded" in record.stdout

    def shown() -> str | None:
        out = subprocess.run([CDP, "privacy", "consents", f"email:{email}", *common], env=platform.env(),
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        return out.stdout if out.returncode == 0 and "cb-7" in out.stdout else None

    table = wait_for(shown, timeout=30)
    assert "analytics" in table and "granted" in table and "api" in table
    refused = subprocess.run(
        [CDP, "privacy", "consent", f"email:{email}", "--purpose", "sms", "--status", "granted", *common],
        env=platform.env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "unknown purpose 'sms'" in refused.stderr


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"purpose": "analytics", "status": "granted", "legal_text_version": "v"}, "identifier missing"),
        ({"identifier": "email:x@example.de", "purpose": "sms", "status": "granted", "legal_text_version": "v"},
         "unknown purpose 'sms': use one of email_marketing, personalisation, analytics"),
        ({"identifier": "email:x@example.de", "purpose": "analytics", "status": "granted"},
         "legal_text_version missing"),
        ({"identifier": "email:x@example.de", "purpose": "analytics", "status": "ok"},
         "status must be one of granted, denied, withdrawn"),
        ({"identifier": "email:nope", "purpose": "analytics", "status": "denied"}, "not a usable email address"),
    ],
)  # fmt: skip
def test_bad_bodies_get_400_with_the_message(
    platform: CdpProcess, body: dict[str, Any], message: str
) -> None:
    response = platform.admin("POST", CONSENTS, content=orjson.dumps(body))
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]


def test_a_bad_query_and_an_unknown_person(platform: CdpProcess) -> None:
    assert platform.admin("GET", CONSENTS).status_code == 400
    assert platform.admin("GET", CONSENTS, params={"email": "nobody-known@example.de"}).status_code == 404


def test_a_missing_token_is_refused(platform: CdpProcess) -> None:
    for method in ("GET", "POST"):
        response = httpx.request(
            method, f"{platform.url}{CONSENTS}", params={"email": "a@example.de"}, timeout=10
        )
        assert response.status_code == 401
        assert "missing bearer token" in response.json()["message"]
