"""The suppression list and the keyed hashes (pure: no warehouse)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.privacy.hashing import IdentifierHasher
from services.privacy.requests import PrivacyRequest
from services.privacy.suppression import SuppressionList

KEY = "test-key"


def event(**identifiers: str) -> dict[str, object]:
    return {"type": "track", "event": "Product Viewed", "identifiers": identifiers}


def test_hashes_are_keyed_and_stable() -> None:
    a, b = IdentifierHasher(KEY), IdentifierHasher("another-key")
    assert a.hash("email:anna@example.de") == IdentifierHasher(KEY).hash("email:anna@example.de")
    assert a.hash("email:anna@example.de") != b.hash("email:anna@example.de")
    assert len(a.hash("email:anna@example.de")) == 64 and "anna" not in a.hash("email:anna@example.de")
    with pytest.raises(ValueError, match="CDP_PRIVACY_HASH_KEY"):
        IdentifierHasher("")


def test_events_carrying_a_suppressed_identifier_in_any_spelling_are_suppressed() -> None:
    hasher = IdentifierHasher(KEY)
    suppressions = SuppressionList(hasher)
    assert not suppressions.suppresses(event(email="anna@example.de"))  # empty list: nothing
    suppressions.add([hasher.hash("email:anna@example.de"), hasher.hash("phone:+4917055501234")])
    assert suppressions.suppresses(event(email="Anna@Example.DE"))
    assert suppressions.suppresses(event(anonymousId="a-1", phone="0170 55501234"))
    assert not suppressions.suppresses(event(email="bert@example.org", customerId="C1"))
    assert not suppressions.suppresses(event())
    assert len(suppressions) == 2


def test_the_audit_record_holds_no_identifier() -> None:
    hasher = IdentifierHasher(KEY)
    request = PrivacyRequest(
        request_id="r1", kind="erase", requested_by="dpo", requested_role="privacy_officer",
        requested_at=datetime(2026, 11, 23, tzinfo=UTC), subject_type="email",
        subject_hash=hasher.hash("email:anna@example.de"),
    ).finished("completed", counts={"events": 3})  # fmt: skip
    row = request.row()
    assert "anna" not in str(row)
    assert row["status"] == "completed" and row["duration_seconds"] is not None
    assert request.as_json()["requested_at"] == "2026-11-23T00:00:00Z"
