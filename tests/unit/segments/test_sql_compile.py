"""The shape and quoting of the SQL segment rules compile to (tests/integration/segments runs it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.identity.domain.event_time import to_micros
from services.segments.domain.definition import SegmentCatalog, parse_definition
from services.segments.domain.rules import parse_rule
from services.segments.domain.sql import compile_condition_sql, compile_members_sql, number, quote

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
_UNESCAPE = {"\\": "\\", "'": "'", "n": "\n", "r": "\r", "t": "\t", "0": "\0"}


def catalog(**rules: dict[str, Any]) -> SegmentCatalog:
    definitions = [parse_definition({"id": sid, "name": sid, "rule": rule}) for sid, rule in rules.items()]
    return SegmentCatalog().with_changes(SegmentCatalog().plan(definitions, NOW.isoformat()))


def condition(rule: dict[str, Any], segments: SegmentCatalog | None = None) -> str:
    return compile_condition_sql(parse_rule(rule), segments or catalog(), NOW)


def split_literals(sql: str) -> tuple[str, list[str]]:
    """The SQL outside string literals, and the literals' values, read as ClickHouse reads them."""
    code, literals, i = [], [], 0
    while i < len(sql):
        if sql[i] != "'":
            code.append(sql[i])
            i += 1
            continue
        value, i = [], i + 1
        while sql[i] != "'":
            if sql[i] == "\\":
                value.append(_UNESCAPE[sql[i + 1]])
                i += 2
            else:
                value.append(sql[i])
                i += 1
        literals.append("".join(value))
        i += 1
    return "".join(code), literals


@pytest.mark.parametrize(
    "text",
    ["plain", "it's", "back\\slash", "\\'", "x' OR 1=1 --", "end\\", "new\nline\ttab\0nul", "{x:String} %s"],
)
def test_quote_reads_back_as_exactly_the_text(text: str):
    code, literals = split_literals(quote(text))
    assert code == ""
    assert literals == [text]


def test_a_quote_in_a_value_cannot_break_out_of_its_literal():
    payload = "x' OR 1=1 OR '"
    sql = condition({"trait": "plan", "op": "in", "value": [payload, "pro"]})
    code, literals = split_literals(sql)
    assert payload in literals and "pro" in literals
    assert "1=1" not in code


def test_names_with_quotes_are_literals_too():
    sql = condition({"trait": "o'brien.x\\y", "op": "exists"})
    code, literals = split_literals(sql)
    assert {"o'brien", "x\\y"} <= set(literals)
    assert "brien" not in code


def test_event_names_are_quoted_in_the_members_query():
    segments = catalog(s={"event": "Order' Completed", "within": "7d"})
    code, literals = split_literals(compile_members_sql("s", segments, NOW))
    assert "Order' Completed" in literals
    assert "Completed" not in code


def test_the_database_name_must_be_an_identifier():
    segments = catalog(s={"trait": "plan", "op": "exists"})
    assert "FROM analytics.profiles AS p FINAL" in compile_members_sql("s", segments, NOW, "analytics")
    for bad in ("cdp; DROP TABLE x", "c`d", "", "1cdp", "cdp.profiles"):
        with pytest.raises(ValueError, match="identifier"):
            compile_members_sql("s", segments, NOW, bad)


def test_values_keep_their_kind():
    as_string = condition({"trait": "plan", "op": "=", "value": "1"})
    as_number = condition({"trait": "plan", "op": "=", "value": 1})
    as_bool = condition({"trait": "plan", "op": "=", "value": True})
    assert "= 'String'" in as_string and "JSONExtractString(traits, 'plan') = '1'" in as_string
    assert (
        "'Int64', 'UInt64', 'Double'" in as_number and "JSONExtractFloat(traits, 'plan') = 1.0" in as_number
    )
    assert "= 'Bool'" in as_bool and "JSONExtractBool(traits, 'plan') = 1" in as_bool


def test_number_literals():
    assert number(2) == "2.0"
    assert number(2.5) == "2.5"
    assert number(float("inf")) == "inf" and number(float("-inf")) == "-inf"
    with pytest.raises(TypeError):
        number(True)


def test_not_equal_needs_the_value_to_exist():
    sql = condition({"trait": "plan", "op": "!=", "value": "free"})
    assert sql.startswith("((JSONType(traits, 'plan') != 'Null') AND NOT ")


def test_now_is_a_literal_so_the_sql_is_reproducible():
    rule = parse_rule({"event": "Email Opened", "within": "1d"})
    first = compile_condition_sql(rule, catalog(), NOW)
    assert first == compile_condition_sql(rule, catalog(), NOW)
    assert str(to_micros(NOW) - 86_400_000_000) in first
    assert first != compile_condition_sql(rule, catalog(), NOW + timedelta(seconds=1))
    assert "now()" not in first.lower() and "today()" not in first.lower()


def test_time_attributes_are_recomputed_at_now():
    sql = condition({"attribute": "days_since_last_order", "op": "<", "value": 30})
    assert "'last_order_at'" in sql and str(to_micros(NOW)) in sql
    assert "'days_since_last_order'" not in sql


def test_segment_conditions_inline_the_referenced_rule():
    segments = catalog(
        vip={"trait": "plan", "op": "=", "value": "pro"},
        loyal={"all": [{"segment": "vip"}, {"attribute": "orders_count", "op": ">=", "value": 2}]},
    )
    vip = condition({"trait": "plan", "op": "=", "value": "pro"})
    assert condition({"segment": "vip"}, segments) == vip
    assert vip in condition({"not": {"segment": "loyal"}}, segments)
    with pytest.raises(ValueError, match="unknown segment"):
        condition({"segment": "nope"}, segments)


def test_events_come_from_the_current_profile_of_each_stored_event():
    segments = catalog(
        cart={
            "event": "Product Added",
            "not_followed_by": "Order Completed",
            "within": "1h",
            "lookback": "7d",
        },
        plain={"trait": "plan", "op": "exists"},
    )
    sql = compile_members_sql("cart", segments, NOW)
    assert "FROM cdp.profiles AS p FINAL" in sql
    assert "FROM cdp.events_current_profile" in sql and "GROUP BY current_profile_id" in sql
    assert "type = 'track'" in sql and "event IN ('Order Completed', 'Product Added')" in sql
    assert "), -50) AS ev0" in sql  # the latest 50 occurrences, as profiles keep them
    assert "events_current_profile" not in compile_members_sql("plain", segments, NOW)
