"""The Consents fold: latest decision per purpose by event time, double opt-in, merge, snapshot."""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from services.identity.domain.consents import Consents, consent_source
from services.identity.domain.profile_state import ProfileState
from tests.unit.identity.profile_events import NOW, at, event


def subscribed(minutes: float, **props: Any) -> dict[str, Any]:
    return event("Subscribed", minutes, properties={"legal_text_version": "nl-1", **props})


def confirmed(minutes: float, **props: Any) -> dict[str, Any]:
    return event("Double Opt-In Confirmed", minutes, properties=props)


def unsubscribed(minutes: float, **props: Any) -> dict[str, Any]:
    return event("Unsubscribed", minutes, properties=props)


def updated(minutes: float, purpose: str, status: str, **props: Any) -> dict[str, Any]:
    properties = {"purpose": purpose, "status": status, "legal_text_version": "v1", **props}
    return event("Consent Updated", minutes, channel="shop", properties=properties)


def consents(*events: dict[str, Any]) -> dict[str, Any]:
    state = ProfileState()
    for e in events:
        state.apply(e)
    result: dict[str, Any] = state.attributes(NOW)["consents"]
    return result


def test_subscribed_grants_email_marketing_pending_double_opt_in():
    c = consents(subscribed(0))["email_marketing"]
    assert (c["status"], c["granted"], c["double_opt_in"], c["legal_text_version"]) == (
        "granted", True, False, "nl-1",
    )  # fmt: skip
    assert c["at"] == at(0) and c["double_opt_in_at"] is None


def test_confirmation_and_a_subscription_that_says_it_was_confirmed():
    c = consents(subscribed(0), confirmed(10))["email_marketing"]
    assert (c["granted"], c["double_opt_in"], c["double_opt_in_at"], c["at"]) == (True, True, at(10), at(10))
    assert c["legal_text_version"] == "nl-1"  # the confirmation names no text: the subscription's
    assert consents(subscribed(0, double_opt_in=True))["email_marketing"]["double_opt_in"] is True


def test_withdraw_after_grant_and_a_new_grant_needs_a_new_confirmation():
    history = [subscribed(0), confirmed(1), unsubscribed(5)]
    c = consents(*history)["email_marketing"]
    assert (c["status"], c["granted"], c["double_opt_in"]) == ("withdrawn", False, False)
    again = consents(*history, subscribed(9))["email_marketing"]
    assert (again["granted"], again["double_opt_in"]) == (True, False)
    assert consents(*history, subscribed(9), confirmed(12))["email_marketing"]["double_opt_in"] is True


def test_a_renewed_grant_keeps_an_earlier_confirmation():
    c = consents(subscribed(0), confirmed(1), subscribed(5, list_id="promo"))["email_marketing"]
    assert (c["granted"], c["double_opt_in"], c["double_opt_in_at"]) == (True, True, at(1))


def test_consent_updated_for_any_purpose():
    c = consents(updated(0, "personalisation", "granted"), updated(3, "analytics", "denied"))
    assert (c["personalisation"]["status"], c["personalisation"]["granted"]) == ("granted", True)
    assert (c["analytics"]["status"], c["analytics"]["granted"]) == ("denied", False)
    assert "email_marketing" not in c


def test_any_arrival_order_gives_the_same_consents():
    history = [
        subscribed(0), confirmed(1), updated(2, "personalisation", "granted"), unsubscribed(4),
        updated(6, "personalisation", "withdrawn", reason="call"), subscribed(8),
        updated(8, "analytics", "granted", double_opt_in=True),
    ]  # fmt: skip
    expected = consents(*history)
    for order in itertools.islice(itertools.permutations(history), 0, 5040, 97):
        assert consents(*order) == expected
    assert expected["personalisation"]["status"] == "withdrawn"
    assert (expected["email_marketing"]["granted"], expected["email_marketing"]["double_opt_in"]) == (
        True,
        False,
    )


def test_ties_at_the_same_time_are_decided_by_message_id_on_every_worker():
    grant = updated(5, "analytics", "granted", message_id="m-a")
    deny = updated(5, "analytics", "denied", message_id="m-b")
    assert (
        consents(grant, deny)["analytics"]["status"]
        == consents(deny, grant)["analytics"]["status"]
        == "denied"
    )


def test_replays_change_nothing():
    state = ProfileState()
    e = updated(0, "personalisation", "granted")
    assert state.apply(e) is True
    assert state.apply(dict(e)) is False


def test_merge_equals_folding_all_events_into_one():
    a_events = [subscribed(0), updated(5, "personalisation", "granted")]
    b_events = [confirmed(2), updated(7, "personalisation", "withdrawn")]
    a, b = ProfileState(), ProfileState()
    for e in a_events:
        a.apply(e)
    for e in b_events:
        b.apply(e)
    a.merge(b)
    assert a.attributes(NOW)["consents"] == consents(*a_events, *b_events)


def test_snapshot_round_trip_and_old_snapshots_without_consents():
    state = ProfileState()
    for e in (subscribed(0), confirmed(1), updated(2, "analytics", "denied")):
        state.apply(e)
    restored = ProfileState.from_snapshot(orjson.loads(orjson.dumps(state.to_snapshot())))
    assert restored.to_snapshot() == state.to_snapshot()
    assert restored.attributes(NOW)["consents"] == state.attributes(NOW)["consents"]
    old = {k: v for k, v in ProfileState().to_snapshot().items() if k != "consents"}
    assert ProfileState.from_snapshot(old).attributes(NOW)["consents"] == {}
    assert Consents.from_snapshot(None).current() == {}


def test_email_subscription_attributes_are_unchanged():
    state = ProfileState()
    for e in (subscribed(0, list_id="a"), confirmed(1, list_id="a")):
        state.apply(e)
    attributes = state.attributes(NOW)
    assert (attributes["email_subscription"], attributes["email_double_opt_in"]) == ("subscribed", True)


def test_odd_consent_events_are_ignored():
    assert consents(updated(0, "analytics", "maybe")) == {}
    assert consents(event("Consent Updated", 0, channel="shop", properties={"status": "granted"})) == {}


def test_source_of_a_decision():
    assert consent_source("admin-api", {}) == "api"
    assert consent_source("admin-api", {"source": "admin-api"}) == "event"  # a client cannot claim it
    assert consent_source("webhook-email", {}) == "webhook"
    assert consent_source("sendgrid", {"source": "sendgrid"}) == "webhook"
    assert consent_source("api", {}) == consent_source("web", {"source": "web"}) == "event"
    api_event = {**updated(0, "analytics", "granted"), "source": "admin-api", "context": {}}
    assert consents(api_event)["analytics"]["source"] == "api"
    assert consents(updated(0, "analytics", "granted"))["analytics"]["source"] == "event"
