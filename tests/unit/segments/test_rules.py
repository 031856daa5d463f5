"""The rule language: every condition kind parses, bad rules fail with the exact path, round trips."""

from __future__ import annotations

from typing import Any

import pytest

from services.identity.domain.recent_events import RECENT_PER_EVENT
from services.segments.domain.rules import (
    MAX_DEPTH,
    All,
    AnyOf,
    ConsentCondition,
    EventCondition,
    FieldCondition,
    InSegment,
    Not,
    NotFollowedBy,
    RuleError,
    dependencies,
    event_names,
    parse_rule,
    to_document,
    walk,
)

HOUR, DAY = 3600, 86_400

# (rule document, path of the error, a fragment of the reason)
# fmt: off
BAD_RULES: list[tuple[Any, str, str]] = [
    # shape
    (None, "rule", "got null"),
    ([], "rule", "got list"),
    ("trait: plan", "rule", "got str"),
    ({}, "rule", "found keys []"),
    ({"op": "="}, "rule", "found keys ['op']"),
    ({"trait": "plan", "segment": "vip"}, "rule", "found trait, segment"),
    ({"all": [{"trait": "a"}], "any": [{"trait": "b"}]}, "rule", "found all, any"),
    # combinators
    ({"all": []}, "rule.all", "non-empty list"),
    ({"any": {"trait": "a"}}, "rule.any", "non-empty list"),
    ({"all": [{"trait": "a"}], "x": 1}, "rule.x", "unexpected key"),
    ({"any": [{"trait": "a"}, 7]}, "rule.any[1]", "got int"),
    ({"any": [{"trait": "a"}, {"trait": ""}]}, "rule.any[1].trait", "trait name"),
    ({"not": [{"trait": "a"}]}, "rule.not", "got list"),
    ({"not": {"trait": "a"}, "op": "="}, "rule.op", "unexpected key"),
    ({"all": [{"not": {"any": [{"segment": "x"}, {"segment": None}]}}]}, "rule.all[0].not.any[1].segment", "segment id"),
    # traits and attributes
    ({"trait": "address..city"}, "rule.trait", "trait name"),
    ({"trait": ".plan"}, "rule.trait", "trait name"),
    ({"attribute": 5}, "rule.attribute", "attribute name"),
    ({"attribute": ""}, "rule.attribute", "attribute name"),
    ({"trait": "plan", "op": "~"}, "rule.op", "unknown operator '~'"),
    ({"trait": "plan", "op": "=="}, "rule.op", "unknown operator"),
    ({"trait": "plan", "op": "="}, "rule.value", "needs a value"),
    ({"trait": "plan", "op": "=", "value": None}, "rule.value", "got null"),
    ({"trait": "plan", "op": "!=", "value": ["a"]}, "rule.value", "got list"),
    ({"trait": "plan", "op": "contains", "value": {"a": 1}}, "rule.value", "got dict"),
    ({"trait": "plan", "op": "in", "value": []}, "rule.value", "non-empty list"),
    ({"trait": "plan", "op": "in", "value": "pro"}, "rule.value", "non-empty list"),
    ({"trait": "plan", "op": "in", "value": ["pro", None]}, "rule.value", "non-empty list"),
    ({"trait": "age", "op": "between", "value": [1]}, "rule.value", "[low, high]"),
    ({"trait": "age", "op": "between", "value": ["a", "z"]}, "rule.value", "[low, high]"),
    ({"trait": "age", "op": "between", "value": [True, 3]}, "rule.value", "[low, high]"),
    ({"trait": "age", "op": "between", "value": [30, 18]}, "rule.value", "low <= high"),
    ({"trait": "age", "op": "<", "value": True}, "rule.value", "compares numbers or strings"),
    ({"trait": "age", "op": ">=", "value": [1]}, "rule.value", "compares numbers or strings"),
    ({"trait": "plan", "op": "exists", "value": "yes"}, "rule.value", "true or false"),
    ({"trait": "plan", "value": 1}, "rule.value", "true or false"),  # op defaults to exists
    ({"trait": "plan", "op": "=", "value": "pro", "unit": "x"}, "rule.unit", "unexpected key"),
    ({"attribute": "orders_count", "within": "7d"}, "rule.within", "unexpected key"),
    # event counts and revenue
    ({"event": "Order Completed"}, "rule.within", "needs a window"),
    ({"event": "", "within": "7d"}, "rule.event", "event name"),
    ({"event": ["Order Completed"], "within": "7d"}, "rule.event", "event name"),
    ({"event": "Order Completed", "within": "90"}, "rule.within", "not a duration"),
    ({"event": "Order Completed", "within": "0d"}, "rule.within", "not a duration"),
    ({"event": "Order Completed", "within": "-1d"}, "rule.within", "not a duration"),
    ({"event": "Order Completed", "within": "3 months"}, "rule.within", "not a duration"),
    ({"event": "Order Completed", "within": 90}, "rule.within", "not a duration"),
    ({"event": "Order Completed", "within": "7d", "measure": "sum"}, "rule.measure", "'count' or 'revenue'"),
    ({"event": "Order Completed", "within": "7d", "op": "contains", "value": 1}, "rule.op", "does not apply to an event count"),
    ({"event": "Order Completed", "within": "7d", "measure": "revenue", "op": "in", "value": [1]}, "rule.op", "does not apply to an event revenue"),
    ({"event": "Order Completed", "within": "7d", "op": "exists"}, "rule.op", "does not apply"),
    ({"event": "Order Completed", "within": "7d", "op": ">=", "value": "3"}, "rule.value", "'>=' compares numbers"),
    ({"event": "Order Completed", "within": "7d", "op": "=", "value": "3"}, "rule.value", "expected a number; got str"),
    ({"event": "Order Completed", "within": "7d", "op": "=", "value": True}, "rule.value", "expected a number; got bool"),
    ({"event": "Order Completed", "within": "7d", "op": ">", "value": None}, "rule.value", "compares numbers"),
    ({"event": "Order Completed", "within": "7d", "value": 2.5}, "rule.value", "whole number"),
    ({"event": "Order Completed", "within": "7d", "op": "between", "value": [1, 2.5]}, "rule.value", "whole number"),
    ({"event": "Order Completed", "within": "7d", "op": "between"}, "rule.value", "[low, high]"),
    ({"event": "Order Completed", "within": "7d", "value": RECENT_PER_EVENT + 1}, "rule.value", "latest 50 occurrences"),
    ({"event": "Order Completed", "within": "7d", "op": "<=", "value": RECENT_PER_EVENT}, "rule.value", "latest 50"),
    ({"event": "Order Completed", "within": "7d", "op": ">", "value": RECENT_PER_EVENT}, "rule.value", "latest 50"),
    ({"event": "Order Completed", "within": "7d", "op": "!=", "value": RECENT_PER_EVENT}, "rule.value", "latest 50"),
    ({"event": "Order Completed", "within": "7d", "op": "between", "value": [1, RECENT_PER_EVENT]}, "rule.value", "latest 50"),
    ({"event": "Order Completed", "within": "7d", "lookback": "30d"}, "rule.lookback", "unexpected key"),
    ({"event": "Order Completed", "within": "7d", "count": 3}, "rule.count", "unexpected key"),
    # not_followed_by
    ({"event": "Product Added", "not_followed_by": "", "within": "1h"}, "rule.not_followed_by", "event name"),
    ({"event": "Product Added", "not_followed_by": 3, "within": "1h"}, "rule.not_followed_by", "event name"),
    ({"event": "Product Added", "not_followed_by": "Order Completed"}, "rule.within", "needs a window"),
    ({"event": "Product Added", "not_followed_by": "Order Completed", "within": "1x"}, "rule.within", "not a duration"),
    ({"event": "Product Added", "not_followed_by": "Order Completed", "within": "1h", "lookback": "7"}, "rule.lookback", "not a duration"),
    ({"event": "Product Added", "not_followed_by": "Order Completed", "within": "2d", "lookback": "2d"}, "rule.lookback", "longer than within"),
    ({"event": "Product Added", "not_followed_by": "Order Completed", "within": "31d"}, "rule.lookback", "longer than within"),  # default 30d
    ({"event": "Product Added", "not_followed_by": "Order Completed", "within": "1h", "op": ">="}, "rule.op", "unexpected key"),
    ({"event": "Product Added", "not_followed_by": "Order Completed", "within": "1h", "measure": "count"}, "rule.measure", "unexpected key"),
    # consents and segments
    ({"consent": "sms"}, "rule.consent", "unknown purpose 'sms'"),
    ({"consent": None}, "rule.consent", "unknown purpose"),
    ({"consent": "email_marketing", "double_opt_in": "yes"}, "rule.double_opt_in", "true or false"),
    ({"consent": "email_marketing", "double_opt_in": 1}, "rule.double_opt_in", "true or false"),
    ({"consent": "email_marketing", "granted": True}, "rule.granted", "unexpected key"),
    ({"segment": ""}, "rule.segment", "segment id"),
    ({"segment": 5}, "rule.segment", "segment id"),
    ({"segment": "vip", "op": "="}, "rule.op", "unexpected key"),
]
# fmt: on


@pytest.mark.parametrize(("document", "path", "reason"), BAD_RULES)
def test_bad_rules_fail_with_the_exact_path(document: Any, path: str, reason: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule(document)
    assert caught.value.path == path
    assert reason in caught.value.reason
    assert str(caught.value) == f"{path}: {caught.value.reason}"


def test_the_error_path_starts_where_the_caller_says() -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule({"any": [{"trait": "a", "op": "?"}]}, path="segments[3].rule")
    assert caught.value.path == "segments[3].rule.any[0].op"


def test_rule_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match=r"^rule\.all: expected a non-empty list"):
        parse_rule({"all": []})


def _nested_not(levels: int) -> dict[str, Any]:
    rule: dict[str, Any] = {"trait": "plan"}
    for _ in range(levels):
        rule = {"not": rule}
    return rule


def test_rules_nest_at_most_max_depth_levels() -> None:
    parse_rule(_nested_not(MAX_DEPTH))
    with pytest.raises(RuleError) as caught:
        parse_rule(_nested_not(MAX_DEPTH + 1))
    assert caught.value.path == "rule" + ".not" * (MAX_DEPTH + 1)
    assert "at most 16 levels" in caught.value.reason


# --- every condition kind parses ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"trait": "plan"}, FieldCondition("trait", ("plan",), "exists", True)),
        (
            {"trait": "plan", "op": "exists", "value": False},
            FieldCondition("trait", ("plan",), "exists", False),
        ),
        (
            {"trait": "address.city", "op": "=", "value": "Berlin"},
            FieldCondition("trait", ("address", "city"), "=", "Berlin"),
        ),
        ({"trait": "plan", "op": "!=", "value": "free"}, FieldCondition("trait", ("plan",), "!=", "free")),
        (
            {"trait": "tags", "op": "contains", "value": "b2b"},
            FieldCondition("trait", ("tags",), "contains", "b2b"),
        ),
        (
            {"trait": "country", "op": "in", "value": ["DE", "AT", "CH"]},
            FieldCondition("trait", ("country",), "in", ["DE", "AT", "CH"]),
        ),
        (
            {"trait": "birthday", "op": "<", "value": "2000-01-01"},
            FieldCondition("trait", ("birthday",), "<", "2000-01-01"),
        ),
        (
            {"attribute": "orders_count", "op": ">=", "value": 2},
            FieldCondition("attribute", ("orders_count",), ">=", 2),
        ),
        (
            {"attribute": "csat_average", "op": "<=", "value": 2.5},
            FieldCondition("attribute", ("csat_average",), "<=", 2.5),
        ),
        (
            {"attribute": "revenue_net", "op": ">", "value": 0},
            FieldCondition("attribute", ("revenue_net",), ">", 0),
        ),
        (
            {"attribute": "revenue_net", "op": "between", "value": [100, 500.5]},
            FieldCondition("attribute", ("revenue_net",), "between", [100, 500.5]),
        ),
        (
            {"attribute": "email_subscriptions.newsletter-de", "op": "=", "value": "confirmed"},
            FieldCondition("attribute", ("email_subscriptions", "newsletter-de"), "=", "confirmed"),
        ),
        (
            {"event": "Order Completed", "within": "90d"},
            EventCondition("Order Completed", 90 * DAY, "count", ">=", 1),
        ),
        (
            {"event": "Order Completed", "within": "2w", "op": "<", "value": 3},
            EventCondition("Order Completed", 14 * DAY, "count", "<", 3),
        ),
        (
            {"event": "Order Completed", "within": "24h", "op": "between", "value": [2, 5]},
            EventCondition("Order Completed", DAY, "count", "between", [2, 5]),
        ),
        (
            {"event": "Order Completed", "within": "365d", "measure": "revenue", "op": ">", "value": 999.99},
            EventCondition("Order Completed", 365 * DAY, "revenue", ">", 999.99),
        ),
        (
            {"event": "Order Completed", "within": "30m", "measure": "revenue", "value": 5000},
            EventCondition("Order Completed", 1800, "revenue", ">=", 5000),
        ),
        (
            {"event": "Page Viewed", "within": "45s", "op": "=", "value": 49},
            EventCondition("Page Viewed", 45, "count", "=", 49),
        ),
        (
            {
                "event": "Product Added",
                "not_followed_by": "Order Completed",
                "within": "1h",
                "lookback": "7d",
            },
            NotFollowedBy("Product Added", "Order Completed", HOUR, 7 * DAY),
        ),
        (
            {"event": "Product Added", "not_followed_by": "Order Completed", "within": "24h"},
            NotFollowedBy("Product Added", "Order Completed", DAY, 30 * DAY),
        ),
        ({"consent": "email_marketing"}, ConsentCondition("email_marketing", False)),
        ({"consent": "email_marketing", "double_opt_in": True}, ConsentCondition("email_marketing", True)),
        ({"consent": "personalisation"}, ConsentCondition("personalisation", False)),
        ({"consent": "analytics", "double_opt_in": False}, ConsentCondition("analytics", False)),
        ({"segment": "vip"}, InSegment("vip")),
        ({"not": {"segment": "vip"}}, Not(InSegment("vip"))),
        (
            {"all": [{"segment": "a"}, {"trait": "b"}]},
            All((InSegment("a"), FieldCondition("trait", ("b",), "exists", True))),
        ),
        ({"any": [{"segment": "a"}]}, AnyOf((InSegment("a"),))),
    ],
)
def test_every_condition_kind_parses(document: dict[str, Any], expected: object) -> None:
    assert parse_rule(document) == expected


@pytest.mark.parametrize(
    ("op", "value"),
    [(">=", RECENT_PER_EVENT), ("<", RECENT_PER_EVENT), (">", RECENT_PER_EVENT - 1), ("<=", RECENT_PER_EVENT - 1),
     ("!=", RECENT_PER_EVENT - 1), ("between", [0, RECENT_PER_EVENT - 1])],
)  # fmt: skip
def test_event_counts_up_to_the_kept_occurrences_are_accepted(op: str, value: Any) -> None:
    rule = parse_rule({"event": "Page Viewed", "within": "7d", "op": op, "value": value})
    assert isinstance(rule, EventCondition)


def test_revenue_is_not_limited_to_whole_numbers_or_the_kept_occurrences() -> None:
    rule = parse_rule(
        {"event": "Order Completed", "within": "7d", "measure": "revenue", "op": ">", "value": 10_000.5}
    )
    assert rule == EventCondition("Order Completed", 7 * DAY, "revenue", ">", 10_000.5)


# --- round trip and helpers -----------------------------------------------------------------------

ROUND_TRIP = [
    {"trait": "plan"},
    {"trait": "address.city", "op": "in", "value": ["Berlin", "Hamburg"]},
    {"attribute": "revenue_net", "op": "between", "value": [100, 500]},
    {"event": "Order Completed", "within": "90d"},
    {"event": "Order Completed", "within": "14d", "measure": "revenue", "op": "<", "value": 20.5},
    {"event": "Email Opened", "within": "90s", "op": "=", "value": 0},
    {"event": "Product Added", "not_followed_by": "Order Completed", "within": "90m", "lookback": "7d"},
    {"consent": "email_marketing", "double_opt_in": True},
    {"segment": "vip"},
    {
        "all": [
            {"any": [{"segment": "vip"}, {"attribute": "orders_count", "op": ">=", "value": 3}]},
            {"not": {"consent": "analytics"}},
            {"not": {"not": {"trait": "tags", "op": "contains", "value": "b2b"}}},
        ]
    },
]


@pytest.mark.parametrize("document", ROUND_TRIP)
def test_to_document_round_trips(document: dict[str, Any]) -> None:
    rule = parse_rule(document)
    again = to_document(rule)
    assert parse_rule(again) == rule
    assert to_document(parse_rule(again)) == again


def test_to_document_spells_out_the_defaults() -> None:
    assert to_document(parse_rule({"trait": "plan"})) == {"trait": "plan", "op": "exists", "value": True}
    assert to_document(parse_rule({"event": "Order Completed", "within": "168h"})) == {
        "event": "Order Completed", "within": "1w", "measure": "count", "op": ">=", "value": 1,
    }  # fmt: skip
    assert to_document(parse_rule({"event": "A", "not_followed_by": "B", "within": "3600s"})) == {
        "event": "A", "not_followed_by": "B", "within": "1h", "lookback": "30d",
    }  # fmt: skip
    assert to_document(parse_rule({"consent": "analytics"})) == {
        "consent": "analytics",
        "double_opt_in": False,
    }


def test_dependencies_event_names_and_walk() -> None:
    rule = parse_rule(
        {
            "all": [
                {"segment": "vip"},
                {"not": {"any": [{"segment": "churned"}, {"event": "Email Opened", "within": "30d"}]}},
                {
                    "event": "Product Added",
                    "not_followed_by": "Order Completed",
                    "within": "1h",
                    "lookback": "7d",
                },
                {"trait": "plan"},
            ]
        }
    )
    assert dependencies(rule) == {"vip", "churned"}
    assert event_names(rule) == {"Email Opened", "Product Added", "Order Completed"}
    kinds = [type(node).__name__ for node in walk(rule)]
    assert kinds == [
        "All",
        "InSegment",
        "Not",
        "AnyOf",
        "InSegment",
        "EventCondition",
        "NotFollowedBy",
        "FieldCondition",
    ]
    assert dependencies(parse_rule({"trait": "plan"})) == set()
