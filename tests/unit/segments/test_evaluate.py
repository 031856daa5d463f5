"""Evaluation: operators, missing values, time attributes, event windows, waiting periods, consents,
combinators and segment references, each with the instant at which the answer may change."""

from __future__ import annotations

from typing import Any

import pytest

from services.identity.domain.event_time import DAY_MICROS, to_iso, to_micros
from services.identity.domain.money import MONEY_SCALE
from services.identity.domain.recent_events import RecentEvents
from services.segments.domain.evaluate import (
    TIME_ATTRIBUTES,
    Consent,
    ProfileView,
    Verdict,
    consents_of,
    evaluate,
    matches,
)
from services.segments.domain.rules import parse_rule

NOW = to_micros("2026-11-21T12:00:00Z")
SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = DAY_MICROS


def check(
    rule: dict[str, Any], profile: ProfileView, now: int = NOW, segments: dict[str, bool] | None = None
) -> Verdict:
    return evaluate(parse_rule(rule), profile, now, segments or {})


def with_events(*occurrences: tuple[str, int] | tuple[str, int, float]) -> ProfileView:
    """A profile whose recent events are (name, event time[, amount in currency])."""
    recent = RecentEvents()
    for n, occurrence in enumerate(occurrences):
        name, stamp = occurrence[0], occurrence[1]
        amount = round(occurrence[2] * MONEY_SCALE) if len(occurrence) == 3 else None
        recent.record(name, stamp, f"msg-{n}", amount)
    return ProfileView("p1", recent=recent)


# --- operators ------------------------------------------------------------------------------------

OPERATOR_CASES: list[tuple[str, Any, Any, bool]] = [
    # = compares numbers as numbers, never across kinds
    ("=", 2, 2.0, True),
    ("=", "pro", "pro", True),
    ("=", True, True, True),
    ("=", "pro", "Pro", False),
    ("=", 1, True, False),
    ("=", True, 1, False),
    ("=", "2", 2, False),
    ("=", 0, False, False),
    ("=", None, "pro", False),
    ("=", ["pro"], "pro", False),
    ("=", {"a": 1}, "a", False),
    # != is "exists and is not equal"
    ("!=", "free", "pro", True),
    ("!=", "pro", "pro", False),
    ("!=", 2.0, 2, False),
    ("!=", "2", 2, True),
    ("!=", False, 0, True),
    ("!=", None, "pro", False),
    ("!=", ["pro"], "pro", True),
    # in
    ("in", "AT", ["DE", "AT", "CH"], True),
    ("in", 3, [1.0, 3.0], True),
    ("in", "FR", ["DE", "AT"], False),
    ("in", True, [1, 0], False),
    ("in", 1, [True], False),
    ("in", "1", [1], False),
    ("in", None, ["DE"], False),
    ("in", ["DE"], ["DE"], False),
    # contains: substring, or a list element equal to it
    ("contains", "Berlin-Mitte", "Mitte", True),
    ("contains", "Berlin-Mitte", "mitte", False),
    ("contains", "12345", 123, False),
    ("contains", ["vip", "b2b"], "b2b", True),
    ("contains", [1, 2], 2.0, True),
    ("contains", [True], 1, False),
    ("contains", ["1"], 1, False),
    ("contains", [], "vip", False),
    ("contains", {"vip": True}, "vip", False),
    ("contains", 12345, 123, False),
    ("contains", None, "vip", False),
    # exists
    ("exists", "pro", True, True),
    ("exists", "", True, True),
    ("exists", 0, True, True),
    ("exists", False, True, True),
    ("exists", None, True, False),
    ("exists", None, False, True),
    ("exists", 0, False, False),
    # between: numbers only, both ends inclusive
    ("between", 1, [1, 5], True),
    ("between", 5, [1, 5], True),
    ("between", 2.5, [1, 5], True),
    ("between", 0.99, [1, 5], False),
    ("between", 5.01, [1, 5], False),
    ("between", "3", [1, 5], False),
    ("between", True, [0, 1], False),
    ("between", None, [1, 5], False),
    # ordering: number with number, string with string
    ("<", 1, 2, True),
    ("<", 2, 2, False),
    ("<", 1.5, 2, True),
    ("<", "2026-01-01", "2026-02-01", True),
    ("<", "2026-03-01T00:00:00Z", "2026-02-01", False),
    ("<", 1, "2", False),
    ("<", "1", 2, False),
    ("<", True, 2, False),
    ("<", None, 2, False),
    ("<", [1], 2, False),
    ("<=", 2, 2.0, True),
    ("<=", 3, 2, False),
    ("<=", "b", "b", True),
    (">", 3, 2, True),
    (">", 2, 2, False),
    (">", "b", "a", True),
    (">", False, -1, False),
    (">=", 2, 2, True),
    (">=", 1, 2, False),
    (">=", "a", 1, False),
    (">=", None, 0, False),
]


@pytest.mark.parametrize(("op", "value", "operand", "expected"), OPERATOR_CASES)
def test_operators(op: str, value: Any, operand: Any, expected: bool) -> None:
    assert matches(op, value, operand) is expected


def test_unknown_operator_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown operator"):
        matches("~", 1, 1)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"trait": "plan", "op": "=", "value": "pro"}, True),
        ({"trait": "address.city", "op": "=", "value": "Berlin"}, True),
        ({"trait": "address.zip", "op": "exists"}, False),
        ({"trait": "address.zip", "op": "exists", "value": False}, True),
        ({"trait": "plan.level", "op": "exists", "value": False}, True),  # plan is no object
        ({"trait": "nickname", "op": "!=", "value": "x"}, False),  # missing: only exists false matches
        ({"trait": "nickname", "op": "exists", "value": False}, True),  # null counts as missing
        ({"trait": "tags", "op": "contains", "value": "b2b"}, True),
        ({"trait": "age", "op": "between", "value": [30, 40]}, True),
        ({"trait": "orders_count", "op": "exists"}, False),  # an attribute, not a trait
        ({"attribute": "orders_count", "op": ">=", "value": 3}, True),
        ({"attribute": "orders_count", "op": "=", "value": "3"}, False),
        ({"attribute": "email_subscriptions.newsletter-de", "op": "=", "value": "confirmed"}, True),
        ({"attribute": "email_subscriptions.promo", "op": "exists"}, False),
        ({"attribute": "plan", "op": "exists"}, False),  # a trait, not an attribute
    ],
)
def test_field_conditions_read_traits_and_attributes(rule: dict[str, Any], expected: bool) -> None:
    profile = ProfileView(
        "p1",
        traits={
            "plan": "pro",
            "address": {"city": "Berlin"},
            "tags": ["vip", "b2b"],
            "age": 34,
            "nickname": None,
        },
        attributes={"orders_count": 3, "email_subscriptions": {"newsletter-de": "confirmed"}},
    )
    assert check(rule, profile) == Verdict(expected, None)


# --- time attributes ------------------------------------------------------------------------------


@pytest.mark.parametrize(("attribute", "stamp_attribute"), sorted(TIME_ATTRIBUTES.items()))
def test_time_attributes_count_whole_days_and_recheck_when_the_next_day_begins(
    attribute: str, stamp_attribute: str
) -> None:
    base = NOW - 20 * DAY - 3 * HOUR
    profile = ProfileView("p1", attributes={stamp_attribute: to_iso(base), attribute: 0})  # stale value
    at_least_20 = {"attribute": attribute, "op": ">=", "value": 20}
    under_21 = {"attribute": attribute, "op": "<", "value": 21}
    assert check(at_least_20, profile) == Verdict(True, base + 21 * DAY)
    assert check(under_21, profile) == Verdict(True, base + 21 * DAY)
    assert check(under_21, profile, base + 21 * DAY - 1) == Verdict(True, base + 21 * DAY)
    assert check(under_21, profile, base + 21 * DAY) == Verdict(False, base + 22 * DAY)
    assert check({"attribute": attribute, "op": "=", "value": 0}, profile, base) == Verdict(True, base + DAY)


def test_time_attribute_of_a_missing_or_broken_stamp_is_missing() -> None:
    rule = {"attribute": "days_since_last_order", "op": ">=", "value": 0}
    assert check(rule, ProfileView("p1")) == Verdict(False, None)
    assert check(rule, ProfileView("p1", attributes={"last_order_at": None})) == Verdict(False, None)
    assert check(rule, ProfileView("p1", attributes={"last_order_at": "yesterday"})) == Verdict(False, None)
    assert check(rule, ProfileView("p1", attributes={"last_order_at": 12345})) == Verdict(False, None)
    missing = {"attribute": "days_since_last_order", "op": "exists", "value": False}
    assert check(missing, ProfileView("p1")) == Verdict(True, None)


def test_time_attribute_of_a_future_stamp_is_zero_days() -> None:
    base = NOW + 2 * HOUR  # a clock ahead of ours
    profile = ProfileView("p1", attributes={"last_seen_at": to_iso(base)})
    assert check({"attribute": "days_since_last_seen", "op": "=", "value": 0}, profile) == Verdict(
        True, base + DAY
    )


def test_time_attribute_recheck_is_always_after_now() -> None:
    base = NOW - 5 * DAY
    profile = ProfileView("p1", attributes={"first_seen_at": to_iso(base)})
    verdict = check({"attribute": "days_since_first_seen", "op": "=", "value": 5}, profile)
    assert verdict == Verdict(True, base + 6 * DAY)
    assert verdict.recheck is not None and verdict.recheck > NOW


def test_other_attributes_are_read_as_stored() -> None:
    profile = ProfileView(
        "p1", attributes={"last_order_at": to_iso(NOW - 30 * DAY), "days_since_last_visit": 4}
    )
    assert check({"attribute": "days_since_last_visit", "op": "=", "value": 4}, profile) == Verdict(
        True, None
    )


# --- event counts and revenue -------------------------------------------------------------------


def test_event_count_in_a_window_and_recheck_when_the_oldest_occurrence_leaves() -> None:
    profile = with_events(
        ("Order Completed", NOW - 10 * DAY),
        ("Order Completed", NOW - 5 * DAY),
        ("Order Completed", NOW - DAY),
    )
    rule = {"event": "Order Completed", "within": "7d", "op": ">=", "value": 2}
    leaves = NOW - 5 * DAY + 7 * DAY + 1
    assert check(rule, profile) == Verdict(True, leaves)
    assert check(rule, profile, leaves - 1) == Verdict(True, leaves)
    assert check(rule, profile, leaves) == Verdict(False, NOW - DAY + 7 * DAY + 1)
    assert check(rule, profile, NOW + 6 * DAY) == Verdict(False, NOW + 6 * DAY + 1)
    assert check(rule, profile, NOW + 6 * DAY + 1) == Verdict(False, None)  # nothing left inside


def test_the_window_includes_its_start() -> None:
    profile = with_events(("Email Opened", NOW - 30 * DAY))
    assert check({"event": "Email Opened", "within": "30d"}, profile) == Verdict(True, NOW + 1)
    assert check({"event": "Email Opened", "within": "30d"}, profile, NOW + 1) == Verdict(False, None)


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [("=", 3, True), ("!=", 3, False), ("<", 3, False), ("<=", 3, True), (">", 2, True), (">=", 4, False),
     ("between", [3, 3], True), ("between", [4, 9], False)],
)  # fmt: skip
def test_event_count_operators(op: str, value: Any, expected: bool) -> None:
    profile = with_events(*[("Product Viewed", NOW - n * HOUR) for n in (1, 2, 3, 100)])
    rule = {"event": "Product Viewed", "within": "1d", "op": op, "value": value}
    assert check(rule, profile) == Verdict(expected, NOW - 3 * HOUR + DAY + 1)


def test_event_that_never_happened_counts_zero() -> None:
    profile = with_events(("Email Opened", NOW - DAY))
    assert check({"event": "Order Completed", "within": "90d"}, profile) == Verdict(False, None)
    assert check({"event": "Order Completed", "within": "90d", "op": "=", "value": 0}, profile) == Verdict(
        True, None
    )
    assert check({"not": {"event": "Order Completed", "within": "90d"}}, profile) == Verdict(True, None)


def test_revenue_sums_amounts_inside_the_window() -> None:
    profile = with_events(
        ("Order Completed", NOW - 400 * DAY, 5000.0),  # outside
        ("Order Completed", NOW - 300 * DAY, 600.25),
        ("Order Completed", NOW - 10 * DAY),  # no amount: counts nothing
        ("Order Completed", NOW - DAY, 400.5),
    )
    leaves = NOW - 300 * DAY + 365 * DAY + 1
    revenue = {"event": "Order Completed", "within": "365d", "measure": "revenue"}
    assert check({**revenue, "op": "=", "value": 1000.75}, profile) == Verdict(True, leaves)
    assert check({**revenue, "op": ">", "value": 1000}, profile) == Verdict(True, leaves)
    assert check({**revenue, "op": ">=", "value": 1000.76}, profile) == Verdict(False, leaves)
    assert check({**revenue, "op": "between", "value": [1000, 1001]}, profile) == Verdict(True, leaves)
    assert check({**revenue, "op": ">", "value": 1000}, profile, leaves) == Verdict(
        False, NOW + 355 * DAY + 1
    )
    count = {"event": "Order Completed", "within": "365d", "op": "=", "value": 3}
    assert check(count, profile) == Verdict(True, leaves)


def test_revenue_without_occurrences_is_zero() -> None:
    rule = {"event": "Order Completed", "within": "30d", "measure": "revenue", "op": "<", "value": 1}
    assert check(rule, ProfileView("p1")) == Verdict(True, None)


def test_counts_read_the_latest_occurrences_only() -> None:
    profile = with_events(*[("Page Viewed", NOW - n * MINUTE) for n in range(1, 61)])
    assert len(profile.recent.occurrences("Page Viewed")) == 50
    assert check({"event": "Page Viewed", "within": "1d", "op": ">=", "value": 50}, profile).matches
    assert not check({"event": "Page Viewed", "within": "1d", "op": "<", "value": 50}, profile).matches


# --- not_followed_by --------------------------------------------------------------------------------

ABANDONED = {"event": "Product Added", "not_followed_by": "Order Completed", "within": "1h", "lookback": "7d"}


def test_not_followed_by_waits_for_the_waiting_period() -> None:
    added = NOW - 30 * MINUTE
    profile = with_events(("Product Added", added))
    assert check(ABANDONED, profile) == Verdict(False, added + HOUR)
    assert check(ABANDONED, profile, added + HOUR - 1) == Verdict(False, added + HOUR)
    assert check(ABANDONED, profile, added + HOUR) == Verdict(True, added + 7 * DAY + 1)
    assert check(ABANDONED, profile, added + 7 * DAY) == Verdict(True, added + 7 * DAY + 1)
    assert check(ABANDONED, profile, added + 7 * DAY + 1) == Verdict(False, None)  # outside the lookback


def test_not_followed_by_ends_with_the_follow_up() -> None:
    added = NOW - 3 * HOUR
    in_time = with_events(("Product Added", added), ("Order Completed", added + 10 * MINUTE))
    assert check(ABANDONED, in_time) == Verdict(False, None)
    late = with_events(("Product Added", added), ("Order Completed", added + 2 * HOUR))
    assert check(ABANDONED, late) == Verdict(False, None)  # ordered after all: no longer abandoned
    same_instant = with_events(("Product Added", added), ("Order Completed", added))
    assert check(ABANDONED, same_instant) == Verdict(False, None)


def test_not_followed_by_ignores_follow_ups_before_the_latest_start() -> None:
    added = NOW - 3 * HOUR
    profile = with_events(("Order Completed", added - DAY), ("Product Added", added))
    assert check(ABANDONED, profile) == Verdict(True, added + 7 * DAY + 1)


def test_not_followed_by_reads_the_latest_start_only() -> None:
    first, latest = NOW - 3 * DAY, NOW - 10 * MINUTE
    profile = with_events(
        ("Product Added", first), ("Order Completed", NOW - 2 * DAY), ("Product Added", latest)
    )
    assert check(ABANDONED, profile) == Verdict(False, latest + HOUR)  # a new cart: wait again
    ordered = with_events(
        ("Product Added", first), ("Product Added", NOW - 2 * DAY), ("Order Completed", NOW - DAY)
    )
    assert check(ABANDONED, ordered) == Verdict(False, None)


def test_not_followed_by_outside_the_lookback_or_without_start() -> None:
    assert check(ABANDONED, with_events(("Product Added", NOW - 8 * DAY))) == Verdict(False, None)
    assert check(ABANDONED, with_events(("Order Completed", NOW - HOUR))) == Verdict(False, None)
    assert check(ABANDONED, ProfileView("p1")) == Verdict(False, None)


def test_not_of_not_followed_by_keeps_the_deadline() -> None:
    added = NOW - 30 * MINUTE
    assert check({"not": ABANDONED}, with_events(("Product Added", added))) == Verdict(True, added + HOUR)


# --- consents -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "plain", "double"),
    [
        ({"email_subscription": "subscribed", "email_double_opt_in": True}, True, True),
        ({"email_subscription": "subscribed", "email_double_opt_in": False}, True, False),
        ({"email_subscription": "subscribed"}, True, False),
        ({"email_subscription": "unsubscribed", "email_double_opt_in": True}, False, False),
        ({"email_subscription": "unknown"}, False, False),
        ({}, False, False),
        # Only the boolean true confirms a double opt-in.
        ({"email_subscription": "subscribed", "email_double_opt_in": "true"}, True, False),
    ],
)
def test_email_marketing_consent_follows_the_subscription(
    attributes: dict[str, Any], plain: bool, double: bool
) -> None:
    profile = ProfileView.from_record({"profileId": "p1", "attributes": attributes})
    assert check({"consent": "email_marketing"}, profile) == Verdict(plain, None)
    assert check({"consent": "email_marketing", "double_opt_in": True}, profile) == Verdict(double, None)


def test_explicit_consents_win_and_other_purposes_need_them() -> None:
    attributes = {
        "email_subscription": "subscribed",
        "email_double_opt_in": True,
        "consents": {
            "email_marketing": {"granted": False},
            "personalisation": {"granted": True},
            "analytics": {"granted": True, "double_opt_in": True},
            "odd": "yes",
        },
    }
    assert consents_of(attributes) == {
        "email_marketing": Consent(False, False),
        "personalisation": Consent(True, False),
        "analytics": Consent(True, True),
    }
    profile = ProfileView.from_record({"profileId": "p1", "attributes": attributes})
    assert not check({"consent": "email_marketing"}, profile).matches
    assert check({"consent": "personalisation"}, profile).matches
    assert not check({"consent": "personalisation", "double_opt_in": True}, profile).matches
    assert check({"consent": "analytics", "double_opt_in": True}, profile).matches
    assert not check({"consent": "analytics"}, ProfileView("p1")).matches


# --- combinators and segment references -----------------------------------------------------------


def test_all_any_not_combine_matches_and_take_the_earliest_recheck() -> None:
    profile = with_events(("Email Opened", NOW - 20 * DAY), ("Order Completed", NOW - 80 * DAY))
    profile.attributes = {"orders_count": 2}
    opened = {"event": "Email Opened", "within": "30d"}  # recheck in 10 days
    ordered = {"event": "Order Completed", "within": "85d"}  # recheck in 5 days
    repeat = {"attribute": "orders_count", "op": ">=", "value": 2}
    never = {"attribute": "orders_count", "op": ">=", "value": 5}
    opened_leaves, ordered_leaves = NOW + 10 * DAY + 1, NOW + 5 * DAY + 1
    assert check({"all": [opened, repeat]}, profile) == Verdict(True, opened_leaves)
    assert check({"all": [opened, never]}, profile) == Verdict(False, opened_leaves)
    assert check({"any": [never, repeat]}, profile) == Verdict(True, None)
    assert check({"any": [never, {"not": repeat}]}, profile) == Verdict(False, None)
    assert check({"not": {"all": [opened, ordered]}}, profile) == Verdict(False, ordered_leaves)
    short = {"event": "Order Completed", "within": "81d"}
    assert check({"any": [opened, short, never]}, profile) == Verdict(True, NOW + DAY + 1)
    nested = {"all": [{"any": [never, {"not": {"not": opened}}]}, {"not": never}]}
    assert check(nested, profile) == Verdict(True, opened_leaves)


def test_segment_references_read_the_memberships_given() -> None:
    profile = ProfileView("p1")
    assert check({"segment": "vip"}, profile, segments={"vip": True}) == Verdict(True, None)
    assert check({"segment": "vip"}, profile, segments={"vip": False}) == Verdict(False, None)
    assert check({"segment": "vip"}, profile, segments={}) == Verdict(False, None)
    rule = {"all": [{"segment": "vip"}, {"not": {"segment": "unhappy_customers"}}]}
    assert check(rule, profile, segments={"vip": True, "unhappy_customers": False}).matches
    assert not check(rule, profile, segments={"vip": True, "unhappy_customers": True}).matches


def test_evaluate_refuses_what_is_not_a_rule() -> None:
    with pytest.raises(TypeError, match="not a rule"):
        evaluate("vip", ProfileView("p1"), NOW, {})  # type: ignore[arg-type]


def test_profile_view_from_a_profile_record() -> None:
    recent = RecentEvents()
    recent.record("Order Completed", NOW - DAY, "m1", 100 * MONEY_SCALE)
    view = ProfileView.from_record(
        {
            "profileId": "p1",
            "traits": {"first_name": "Anna"},
            "attributes": {"orders_count": 1, "email_subscription": "subscribed"},
            "snapshot": {"recent": recent.snapshot()},
        }
    )
    assert view.profile_id == "p1"
    assert view.traits == {"first_name": "Anna"}
    assert view.recent.occurrences("Order Completed") == recent.occurrences("Order Completed")
    assert view.consents["email_marketing"] == Consent(True, False)
    empty = ProfileView.from_record({"profileId": "p2", "traits": None, "attributes": None, "snapshot": None})
    assert (empty.traits, empty.attributes, empty.recent.snapshot()) == ({}, {}, {})
