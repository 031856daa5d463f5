"""Membership transitions: entries and exits with their sequence numbers, the consent-gated
activation feed, retired profiles and deleted segments."""

from __future__ import annotations

from typing import Any

import pytest

from services.identity.domain.event_time import DAY_MICROS, to_iso, to_micros
from services.segments.domain.definition import SegmentCatalog, parse_definition
from services.segments.domain.evaluate import ProfileView
from services.segments.domain.membership import (
    ENTERED,
    EXITED,
    MemberState,
    Reason,
    Transition,
    exposed_values,
    reevaluate,
)

NOW = to_micros("2026-11-21T12:00:00Z")
APPLIED = "2026-11-01T00:00:00Z"

BUYERS = {
    "id": "buyers",
    "name": "Käufer",
    "rule": {"attribute": "orders_count", "op": ">=", "value": 1},
    "expose": ["email", "orders_count", "first_name"],
    "activation": {"consent": "email_marketing", "double_opt_in": True},
}
LOYAL = {
    "id": "loyal",
    "name": "Stammkunden",
    "rule": {"all": [{"segment": "buyers"}, {"attribute": "orders_count", "op": ">=", "value": 3}]},
}
RECENT = {
    "id": "recent_buyers",
    "name": "Kürzlich gekauft",
    "rule": {"attribute": "days_since_last_order", "op": "<", "value": 30},
    "activation": {"consent": "email_marketing"},
}


def catalog_of(*documents: dict[str, Any]) -> SegmentCatalog:
    catalog = SegmentCatalog()
    return catalog.with_changes(catalog.plan([parse_definition(d) for d in documents], APPLIED))


def view(
    orders: int = 0, subscription: str = "subscribed", double_opt_in: bool = True, **attributes: Any
) -> ProfileView:
    return ProfileView.from_record(
        {
            "profileId": "p1",
            "traits": {"email": "anna@example.de"},
            "attributes": {
                "orders_count": orders,
                "email_subscription": subscription,
                "email_double_opt_in": double_opt_in,
                **attributes,
            },
        }
    )


def summary(transitions: list[Transition]) -> list[tuple[str, str, str, bool, int]]:
    return [(t.segment_id, t.action, t.reason, t.activation, t.seq) for t in transitions]


def test_entry_and_exit_count_their_transitions() -> None:
    catalog = catalog_of(BUYERS)
    states: dict[str, MemberState] = {}
    entered = reevaluate(catalog, "p1", view(orders=1), states, NOW, Reason.EVENT)
    assert summary(entered.transitions) == [
        ("buyers", ENTERED, Reason.EVENT, False, 1),
        ("buyers", ENTERED, Reason.EVENT, True, 1),
    ]
    first = entered.transitions[0]
    assert (first.profile_id, first.segment_version) == ("p1", 1)
    assert first.exposed == {"email": "anna@example.de", "orders_count": 1}  # no first_name: left out
    assert states["buyers"] == MemberState(True, True, 1, 1, 1)

    exited = reevaluate(catalog, "p1", view(orders=0), states, NOW, Reason.EVENT)
    assert summary(exited.transitions) == [
        ("buyers", EXITED, Reason.EVENT, False, 2),
        ("buyers", EXITED, Reason.EVENT, True, 2),
    ]
    assert exited.transitions[0].exposed == {"email": "anna@example.de", "orders_count": 0}
    assert states["buyers"] == MemberState(False, False, 2, 2, 1)

    again = reevaluate(catalog, "p1", view(orders=2), states, NOW, Reason.BACKFILL)
    assert summary(again.transitions) == [
        ("buyers", ENTERED, Reason.BACKFILL, False, 3),
        ("buyers", ENTERED, Reason.BACKFILL, True, 3),
    ]


def test_no_transition_when_nothing_changed() -> None:
    catalog = catalog_of(BUYERS)
    states: dict[str, MemberState] = {}
    reevaluate(catalog, "p1", view(orders=1), states, NOW, Reason.EVENT)
    before = MemberState.from_list(states["buyers"].to_list())
    unchanged = reevaluate(catalog, "p1", view(orders=5), states, NOW, Reason.EVENT)
    assert unchanged.transitions == []
    assert states["buyers"] == before


def test_profiles_that_never_matched_keep_no_state() -> None:
    states: dict[str, MemberState] = {}
    evaluation = reevaluate(catalog_of(BUYERS, LOYAL), "p1", view(orders=0), states, NOW, Reason.EVENT)
    assert evaluation.transitions == []
    assert states == {}


def test_activation_needs_the_consent_and_withdrawal_exits_with_reason_consent() -> None:
    catalog = catalog_of(BUYERS)
    states: dict[str, MemberState] = {}
    single = reevaluate(catalog, "p1", view(orders=1, double_opt_in=False), states, NOW, Reason.EVENT)
    # No double opt-in yet: a member, but not in the activation feed.
    assert summary(single.transitions) == [("buyers", ENTERED, Reason.EVENT, False, 1)]
    assert states["buyers"] == MemberState(True, False, 1, 0, 1)

    confirmed = reevaluate(catalog, "p1", view(orders=1), states, NOW, Reason.EVENT)
    assert summary(confirmed.transitions) == [("buyers", ENTERED, Reason.CONSENT, True, 1)]

    withdrawn = reevaluate(
        catalog, "p1", view(orders=1, subscription="unsubscribed"), states, NOW, Reason.EVENT
    )
    assert summary(withdrawn.transitions) == [("buyers", EXITED, Reason.CONSENT, True, 2)]
    assert states["buyers"] == MemberState(True, False, 1, 2, 1)

    exited = reevaluate(catalog, "p1", view(orders=0, subscription="unsubscribed"), states, NOW, Reason.EVENT)
    assert summary(exited.transitions) == [("buyers", EXITED, Reason.EVENT, False, 2)]  # feed already out


def test_segments_without_activation_publish_every_member() -> None:
    catalog = catalog_of(BUYERS, LOYAL)
    states: dict[str, MemberState] = {}
    evaluation = reevaluate(catalog, "p1", view(orders=3, subscription="unknown"), states, NOW, Reason.EVENT)
    assert summary(evaluation.transitions) == [
        ("buyers", ENTERED, Reason.EVENT, False, 1),
        ("loyal", ENTERED, Reason.EVENT, False, 1),
        ("loyal", ENTERED, Reason.EVENT, True, 1),
    ]


def test_segment_references_see_this_evaluation() -> None:
    catalog = catalog_of(LOYAL, BUYERS)
    assert catalog.order == ["buyers", "loyal"]
    states: dict[str, MemberState] = {}
    reevaluate(catalog, "p1", view(orders=3), states, NOW, Reason.EVENT)
    assert states["loyal"].member
    evaluation = reevaluate(catalog, "p1", view(orders=0), states, NOW, Reason.EVENT)
    assert [(t.segment_id, t.action, t.activation) for t in evaluation.transitions] == [
        ("buyers", EXITED, False),
        ("buyers", EXITED, True),
        ("loyal", EXITED, False),
        ("loyal", EXITED, True),
    ]


def test_a_retired_profile_exits_everything_with_reason_merged() -> None:
    catalog = catalog_of(BUYERS, LOYAL)
    states: dict[str, MemberState] = {}
    reevaluate(catalog, "p1", view(orders=3, double_opt_in=False), states, NOW, Reason.EVENT)
    evaluation = reevaluate(catalog, "p1", None, states, NOW, Reason.EVENT)
    assert summary(evaluation.transitions) == [
        ("buyers", EXITED, Reason.MERGED, False, 2),
        ("loyal", EXITED, Reason.MERGED, False, 2),
        ("loyal", EXITED, Reason.MERGED, True, 2),
    ]
    assert all(t.exposed == {} for t in evaluation.transitions)
    assert evaluation.recheck is None
    assert reevaluate(catalog, "p1", None, states, NOW, Reason.EVENT).transitions == []


def test_a_deleted_segment_exits_its_members() -> None:
    states: dict[str, MemberState] = {}
    reevaluate(catalog_of(BUYERS, LOYAL), "p1", view(orders=3), states, NOW, Reason.EVENT)
    without_loyal = catalog_of(BUYERS)
    evaluation = reevaluate(without_loyal, "p1", view(orders=3), states, NOW, Reason.EVENT)
    assert [
        (t.segment_id, t.segment_version, t.action, t.reason, t.activation, t.seq, t.exposed)
        for t in evaluation.transitions
    ] == [
        ("loyal", 1, EXITED, Reason.DELETED, False, 2, {}),
        ("loyal", 1, EXITED, Reason.DELETED, True, 2, {}),
    ]
    assert reevaluate(without_loyal, "p1", view(orders=3), states, NOW, Reason.EVENT).transitions == []


def test_a_deleted_segment_without_activation_entry_exits_membership_only() -> None:
    states = {"gone": MemberState(True, False, 5, 2, 3)}
    evaluation = reevaluate(catalog_of(BUYERS), "p1", view(orders=0), states, NOW, Reason.TIME)
    assert [
        (t.segment_id, t.segment_version, t.reason, t.activation, t.seq) for t in evaluation.transitions
    ] == [("gone", 3, Reason.DELETED, False, 6)]


def test_a_new_segment_version_is_recorded_on_the_state() -> None:
    states: dict[str, MemberState] = {}
    reevaluate(catalog_of(BUYERS), "p1", view(orders=1), states, NOW, Reason.EVENT)
    catalog = catalog_of(BUYERS)
    catalog = catalog.with_changes(catalog.plan([parse_definition({**BUYERS, "name": "Kunden"})], APPLIED))
    evaluation = reevaluate(catalog, "p1", view(orders=1), states, NOW, Reason.BACKFILL)
    assert evaluation.transitions == []
    assert states["buyers"].segment_version == 2


def test_time_based_exit_and_the_next_recheck() -> None:
    catalog = catalog_of(RECENT, BUYERS)
    last_order = NOW - 10 * DAY_MICROS
    states: dict[str, MemberState] = {}
    profile = view(orders=1, double_opt_in=False, last_order_at=to_iso(last_order))
    evaluation = reevaluate(catalog, "p1", profile, states, NOW, Reason.EVENT)
    assert summary(evaluation.transitions) == [
        ("buyers", ENTERED, Reason.EVENT, False, 1),
        ("recent_buyers", ENTERED, Reason.EVENT, False, 1),
        ("recent_buyers", ENTERED, Reason.EVENT, True, 1),  # single opt-in is enough here
    ]
    assert evaluation.recheck == last_order + 11 * DAY_MICROS
    due = last_order + 30 * DAY_MICROS
    later = reevaluate(catalog, "p1", profile, states, due, Reason.TIME)
    assert summary(later.transitions) == [
        ("recent_buyers", EXITED, Reason.TIME, False, 2),
        ("recent_buyers", EXITED, Reason.TIME, True, 2),
    ]
    assert later.recheck == last_order + 31 * DAY_MICROS


@pytest.mark.parametrize("state", [MemberState(), MemberState(True, False, 7, 4, 2)])
def test_member_state_round_trips_as_a_list(state: MemberState) -> None:
    assert MemberState.from_list(state.to_list()) == state


def test_exposed_values_prefer_traits_and_skip_missing() -> None:
    profile = ProfileView(
        "p1", traits={"email": "a@x.de", "tier": "gold"}, attributes={"tier": "silver", "orders_count": 0}
    )
    assert exposed_values(["tier", "orders_count", "phone"], profile) == {"tier": "gold", "orders_count": 0}
