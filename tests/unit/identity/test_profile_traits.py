"""Traits by event time: last write wins by (event time, message id); set-once keeps the earliest."""

from __future__ import annotations

from typing import Any

import orjson

from services.identity.domain.profile_state import ProfileState
from services.identity.domain.traits import TraitPolicy
from tests.unit.identity.profile_events import Event, event, identify


def traits(*events: Event, policy: TraitPolicy | None = None) -> dict[str, Any]:
    state = ProfileState(policy) if policy else ProfileState()
    for e in events:
        state.apply(e)
    return state.traits()


def test_newer_identify_overwrites_an_older_value():
    assert traits(identify(0, {"city": "Hamburg"}), identify(10, {"city": "Berlin"})) == {"city": "Berlin"}


def test_late_older_identify_does_not_overwrite_a_newer_value():
    assert traits(identify(10, {"city": "Berlin"}), identify(0, {"city": "Hamburg"})) == {"city": "Berlin"}


def test_traits_are_independent_registers():
    assert traits(identify(10, {"city": "Berlin"}), identify(0, {"city": "Hamburg", "plan": "gold"})) == {
        "city": "Berlin",
        "plan": "gold",
    }


def test_same_event_time_is_decided_by_message_id_in_any_order():
    a = identify(10, {"city": "Hamburg"}, message_id="msg-a")
    b = identify(10, {"city": "Berlin"}, message_id="msg-b")
    assert traits(a, b) == traits(b, a) == {"city": "Berlin"}


def test_set_once_trait_keeps_the_earliest_value():
    events = [
        identify(10, {"created_at": "2026-01-01"}),
        identify(20, {"created_at": "2026-03-01"}),
        identify(5, {"created_at": "2025-12-01"}),  # late, but the earliest: it wins
    ]
    assert traits(*events) == traits(*events[::-1]) == {"created_at": "2025-12-01"}


def test_explicit_null_in_a_newer_identify_unsets_the_trait():
    assert traits(identify(0, {"city": "Berlin"}), identify(10, {"city": None})) == {}


def test_older_null_does_not_unset_a_newer_value():
    assert traits(identify(10, {"city": "Berlin"}), identify(0, {"city": None})) == {"city": "Berlin"}


def test_set_once_trait_ignores_nulls():
    events = [
        identify(0, {"created_at": None}),
        identify(10, {"created_at": "x"}),
        identify(20, {"created_at": None}),
    ]
    assert traits(*events) == {"created_at": "x"}


def test_set_once_policy_applies_to_traits_already_folded():
    events = [identify(0, {"city": "Hamburg"}), identify(10, {"city": "Berlin"})]
    state = ProfileState()
    for e in events:
        state.apply(e)
    assert state.traits() == {"city": "Berlin"}
    restored = ProfileState.from_snapshot(state.to_snapshot(), TraitPolicy(set_once=frozenset({"city"})))
    assert restored.traits() == {"city": "Hamburg"}


def test_nested_values_are_replaced_whole():
    events = [
        identify(0, {"address": {"city": "Hamburg", "zip": "20095"}}),
        identify(10, {"address": {"city": "Berlin"}}),
    ]
    assert traits(*events) == {"address": {"city": "Berlin"}}


def test_only_identify_calls_write_traits():
    track = event("Product Viewed", 10, properties={"product_id": "P1"}, traits={"city": "Berlin"})
    assert traits(identify(0, {"city": "Hamburg"}), track) == {"city": "Hamburg"}


def test_context_traits_are_ignored_by_default():
    # A mobile SDK's cached copy of old traits, sent with a newer event time.
    stale = event(
        "Product Viewed", 10, properties={"product_id": "P1"}, context={"traits": {"city": "Hamburg"}}
    )
    assert traits(identify(5, {"city": "Berlin"}), stale) == {"city": "Berlin"}


def test_context_traits_when_enabled_lose_to_the_calls_own_traits():
    policy = TraitPolicy(context_traits=True)
    call = identify(5, {"city": "Berlin"}, context={"traits": {"city": "Hamburg", "plan": "gold"}})
    assert traits(call, policy=policy) == {"city": "Berlin", "plan": "gold"}
    track = event("Product Viewed", 10, properties={"product_id": "P1"}, context={"traits": {"city": "Köln"}})
    assert traits(call, track, policy=policy) == {"city": "Köln", "plan": "gold"}


def test_replayed_identify_changes_nothing():
    state = ProfileState()
    call = identify(0, {"city": "Berlin", "created_at": "2026-01-01"})
    assert state.apply(call)
    assert not state.apply(orjson.loads(orjson.dumps(call)))


def test_merged_profiles_keep_the_newest_and_the_earliest_set_once_value():
    survivor, absorbed = ProfileState(), ProfileState()
    survivor.apply(identify(10, {"city": "Berlin", "created_at": "2026-02-01"}))
    absorbed.apply(identify(0, {"city": "Hamburg", "created_at": "2025-11-11", "first_name": "Anna"}))
    survivor.merge(absorbed)
    assert survivor.traits() == {"city": "Berlin", "created_at": "2025-11-11", "first_name": "Anna"}


def test_trait_snapshot_round_trips_through_json():
    state = ProfileState()
    state.apply(identify(0, {"city": "Hamburg", "tags": ["a", "b"]}))
    state.apply(identify(10, {"city": None}))
    restored = ProfileState.from_snapshot(orjson.loads(orjson.dumps(state.to_snapshot())))
    assert restored.to_snapshot() == state.to_snapshot()
    assert restored.traits() == state.traits() == {"tags": ["a", "b"]}
    restored.apply(identify(5, {"city": "Köln"}))  # older than the unset: stays unset
    assert restored.traits() == {"tags": ["a", "b"]}
