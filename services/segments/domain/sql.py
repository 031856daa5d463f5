"""Segment rules as ClickHouse SQL: a segment's members computed in the warehouse.

``compile_members_sql`` returns one SELECT of ``profile_id`` over the live current profiles
(``profiles FINAL WHERE live``, what ``profiles_latest`` holds) that gives the members ``evaluate``
finds on the same profiles at the same ``now`` (tests/integration/segments prove it):

* traits and attributes are read from the profiles' JSON text with ``JSONType`` and
  ``JSONExtract*``, so numbers, strings and booleans stay apart exactly as ``evaluate.matches``
  keeps them; ``days_since_*`` attributes are recomputed at ``now``;
* event conditions read each profile's stored events through ``events_current_profile`` (the
  profile an event belongs to now, after merges and splits), reduced to what a profile keeps
  (``recent_events``): per track event name the latest ``RECENT_PER_EVENT`` distinct occurrences
  as (event time in µs, CRC32 of the message id, amount in money units or -1);
* ``segment:`` conditions inline the referenced segment's rule; consents follow ``consents_of``;
* customer value attributes (``abc_class``, ``churn_risk``, ...) come from the latest finished
  refresh in ``customer_value``, joined to each profile's attributes.

Pure string building: ``now`` is written as a literal, strings go through ``quote`` and the
database name must be a plain identifier.

Known differences from ``evaluate``, all from what the warehouse keeps or how it reads:

* event times are stored in milliseconds: one with microseconds can fall across a window edge;
* ``events.properties`` is re-serialised at insert (``JSONExtractRaw`` writes 2.0 as 2), so a line
  item quantity sent as 2.0, which the fold refuses, counts here;
* events stored before the identity pipeline (no profile id, no anchor) belong to no profile here;
* numbers compare as Float64 (integers beyond 2**53 may compare equal where Python's do not), and
  ``toFloat64OrNull`` refuses some amount strings Python's ``float`` reads (``1_000``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.identity.domain.event_time import DAY_MICROS, to_micros
from services.identity.domain.money import MONEY_SCALE
from services.identity.domain.recent_events import NO_AMOUNT, RECENT_PER_EVENT
from services.segments.domain.definition import SegmentCatalog
from services.segments.domain.durations import SECOND_MICROS
from services.segments.domain.evaluate import TIME_ATTRIBUTES
from services.segments.domain.rules import (
    All,
    AnyOf,
    ConsentCondition,
    EventCondition,
    FieldCondition,
    InSegment,
    Not,
    NotFollowedBy,
    Rule,
    event_names,
)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", "\0": "\\0", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
_ISO_DATE = "'^[0-9]{4}-[0-9]{2}-[0-9]{2}'"


def quote(text: str) -> str:
    """A ClickHouse string literal holding exactly ``text``."""
    return "'" + text.translate(_ESCAPES) + "'"


def number(value: float) -> str:
    """A Float64 literal (``evaluate`` compares every number as a number, 2 equals 2.0)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a number: {value!r}")
    as_float = float(value)
    if math.isnan(as_float):
        return "nan"
    if math.isinf(as_float):
        return "inf" if as_float > 0 else "-inf"
    return repr(as_float)


def identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a plain identifier (letters, digits, '_')")
    return name


# -- values -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Value:
    """SQL expressions for one value as ``evaluate`` sees it: is it there, of which kind, and
    its reading as a number, string, boolean or array of raw JSON elements."""

    present: str
    is_number: str
    is_string: str = "0"
    is_bool: str = "0"
    is_array: str = "0"
    as_number: str = "0"
    as_text: str = "''"
    as_bool: str = "0"
    elements: str = "CAST([], 'Array(String)')"


def _json(document: str, path: Iterable[str] = ()) -> _Value:
    """The JSON value at ``path`` in the JSON text ``document``; missing and null are alike."""
    args = ", ".join([document, *(quote(part) for part in path)])
    kind = f"JSONType({args})"
    return _Value(
        present=f"({kind} != 'Null')",
        is_number=f"({kind} IN ('Int64', 'UInt64', 'Double'))",
        is_string=f"({kind} = 'String')",
        is_bool=f"({kind} = 'Bool')",
        is_array=f"({kind} = 'Array')",
        as_number=f"JSONExtractFloat({args})",
        as_text=f"JSONExtractString({args})",
        as_bool=f"JSONExtractBool({args})",
        elements=f"JSONExtractArrayRaw({args})",
    )


def _measured(expression: str) -> _Value:
    """A number that is always there (an event count or sum)."""
    return _Value(present="1", is_number="1", as_number=expression)


def _days_since(stamp: _Value, now: int) -> _Value:
    """Whole days from the ISO timestamp ``stamp`` to ``now``, at least 0 (evaluate._days_since)."""
    parsed = f"parseDateTime64BestEffortOrNull({stamp.as_text}, 6, 'UTC')"
    valid = f"({stamp.is_string} AND match({stamp.as_text}, {_ISO_DATE}) AND isNotNull({parsed}))"
    micros = f"ifNull(toUnixTimestamp64Micro({parsed}), 0)"
    return _Value(
        present=valid, is_number=valid, as_number=f"greatest(0, intDiv({now} - {micros}, {DAY_MICROS}))"
    )


# -- operators (evaluate.matches) -------------------------------------------------------------------


def _any(parts: Iterable[str]) -> str:
    return "(" + " OR ".join(parts) + ")"


def _when(guard: str, test: str) -> str:
    """``test``, where ``guard`` says the value is of the kind ``test`` reads."""
    return f"({test})" if guard == "1" else f"({guard} AND {test})"


def _compare(op: str, value: _Value, operand: Any) -> str:
    """``value op operand`` for values of the operand's kind; false for any other kind."""
    if isinstance(operand, bool):
        return _when(value.is_bool, f"{value.as_bool} {op} {int(operand)}")
    if isinstance(operand, int | float):
        return _when(value.is_number, f"{value.as_number} {op} {number(operand)}")
    if isinstance(operand, str):
        return _when(value.is_string, f"{value.as_text} {op} {quote(operand)}")
    return "0"


def _equals(value: _Value, operand: Any) -> str:
    return _compare("=", value, operand)


def _contains(value: _Value, operand: Any) -> str:
    """A string holding ``operand`` (a string), or a list with an element equal to it."""
    element = _equals(_json("elem"), operand)
    in_list = f"({value.is_array} AND arrayExists(elem -> {element}, {value.elements}))"
    if not isinstance(operand, str):
        return in_list
    return _any([f"({value.is_string} AND position({value.as_text}, {quote(operand)}) > 0)", in_list])


def _matches(op: str, value: _Value, operand: Any) -> str:
    if op == "exists":
        return value.present if operand else f"(NOT {value.present})"
    if op == "=":
        return _equals(value, operand)
    if op == "!=":
        return _when(value.present, f"NOT {_equals(value, operand)}")
    if op == "in":
        return _any(_equals(value, item) for item in operand)
    if op == "contains":
        return _contains(value, operand)
    if op == "between":
        low, high = (number(v) for v in operand)
        return _when(value.is_number, f"{value.as_number} BETWEEN {low} AND {high}")
    if op in ("<", "<=", ">", ">="):
        return _compare(op, value, operand)
    raise ValueError(f"unknown operator {op!r}")


# -- rules ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    now: int  # epoch µs
    events: dict[str, str]  # event name -> column holding its occurrences


def _inline(rule: Rule, catalog: SegmentCatalog) -> Rule:
    """``rule`` with every ``segment:`` condition replaced by that segment's rule."""
    if isinstance(rule, All | AnyOf):
        rules = tuple(_inline(r, catalog) for r in rule.rules)
        return All(rules) if isinstance(rule, All) else AnyOf(rules)
    if isinstance(rule, Not):
        return Not(_inline(rule.rule, catalog))
    if isinstance(rule, InSegment):
        if rule.segment not in catalog:
            raise ValueError(f"the rule refers to unknown segment {rule.segment!r}")
        return _inline(catalog.rule(rule.segment), catalog)
    return rule


def _event_columns(rule: Rule) -> dict[str, str]:
    return {name: f"ev{i}" for i, name in enumerate(sorted(event_names(rule)))}


def _condition(rule: Rule, ctx: _Context) -> str:
    if isinstance(rule, All):
        return "(" + " AND ".join(_condition(r, ctx) for r in rule.rules) + ")"
    if isinstance(rule, AnyOf):
        return _any(_condition(r, ctx) for r in rule.rules)
    if isinstance(rule, Not):
        return f"(NOT {_condition(rule.rule, ctx)})"
    if isinstance(rule, FieldCondition):
        return _field(rule, ctx)
    if isinstance(rule, EventCondition):
        return _event(rule, ctx)
    if isinstance(rule, NotFollowedBy):
        return _not_followed_by(rule, ctx)
    if isinstance(rule, ConsentCondition):
        return _consent(rule)
    raise TypeError(f"not a compilable rule (inline segments first): {rule!r}")


def _field(rule: FieldCondition, ctx: _Context) -> str:
    column = "traits" if rule.source == "trait" else "attributes"
    if rule.source == "attribute" and len(rule.path) == 1 and rule.path[0] in TIME_ATTRIBUTES:
        value = _days_since(_json(column, [TIME_ATTRIBUTES[rule.path[0]]]), ctx.now)
    else:
        value = _json(column, rule.path)
    return _matches(rule.op, value, rule.value)


def _event(rule: EventCondition, ctx: _Context) -> str:
    occurrences = ctx.events[rule.event]
    start = ctx.now - rule.within * SECOND_MICROS
    if rule.measure == "count":
        measured = f"arrayCount(o -> o.1 >= {start}, {occurrences})"
    else:
        amount = f"if(o.1 >= {start} AND o.3 != {NO_AMOUNT}, o.3, 0)"
        measured = f"(arraySum(o -> {amount}, {occurrences}) / {MONEY_SCALE})"
    return _matches(rule.op, _measured(measured), rule.value)


def _not_followed_by(rule: NotFollowedBy, ctx: _Context) -> str:
    started, follow_ups = ctx.events[rule.event], ctx.events[rule.followed_by]
    latest = f"{started}[-1].1"
    return (
        f"(length({started}) > 0 AND {latest} >= {ctx.now - rule.lookback * SECOND_MICROS}"
        f" AND NOT (length({follow_ups}) > 0 AND {follow_ups}[-1].1 >= {latest})"
        f" AND {ctx.now} >= {latest} + {rule.within * SECOND_MICROS})"
    )


def _consent(rule: ConsentCondition) -> str:
    """``consents_of``: an explicit ``consents.<purpose>`` object (the profile fold's consent
    record) wins; email marketing otherwise follows the newsletter subscription and its double
    opt-in; other purposes without a record are not granted."""
    explicit = ["consents", rule.purpose]
    if rule.purpose == "email_marketing":
        granted = _equals(_json("attributes", ["email_subscription"]), "subscribed")
        double = _equals(_json("attributes", ["email_double_opt_in"]), True)
    else:
        granted = double = "0"
    is_explicit = f"(JSONType(attributes, {', '.join(map(quote, explicit))}) = 'Object')"
    explicit_granted = _equals(_json("attributes", [*explicit, "granted"]), True)
    granted = f"if({is_explicit}, {explicit_granted}, {granted})"
    if not rule.double_opt_in:
        return granted
    explicit_double = _equals(_json("attributes", [*explicit, "double_opt_in"]), True)
    double = f"if({is_explicit}, {explicit_double}, {double})"
    return f"({granted} AND {double})"


# -- amounts (event_folds.amount_of, money.to_units) ------------------------------------------------


def _sent(value: _Value) -> str:
    """An amount as sent: a number, or a string that parses as one; else NULL."""
    return (
        f"multiIf({value.is_number}, {value.as_number},"
        f" {value.is_string}, toFloat64OrNull(trimBoth({value.as_text})), NULL)"
    )


def _units(amount: str) -> str:
    """A non-negative finite ``amount`` in money units; else NULL."""
    return f"if(isFinite({amount}) AND {amount} >= 0, toInt64(roundBankers({amount} * {MONEY_SCALE})), NULL)"


def _per_item(expression: str) -> str:
    return f"arrayMap(item -> {expression}, JSONExtractArrayRaw(properties, 'products'))"


# Per event: the amounts as sent, and per line item its price as sent and its quantity (an item
# without one counts once; 0 when it is not a whole number >= 1). A non-object item has no price.
_SENT = {
    "revenue_sent": _sent(_json("properties", ["revenue"])),
    "total_sent": _sent(_json("properties", ["total"])),
    "prices_sent": _per_item(_sent(_json("item", ["price"]))),
    "quantities_sent": _per_item(
        "multiIf(NOT JSONHas(item, 'quantity'), 1, "
        "JSONType(item, 'quantity') IN ('Int64', 'UInt64'), JSONExtractInt(item, 'quantity'), 0)"
    ),
}


def _amount() -> str:
    """The event's amount in money units, or -1: revenue, else total, else its line items (all
    usable) over the ``_SENT`` columns."""
    usable = f"arrayAll((p, q) -> isNotNull({_units('p')}) AND q >= 1, prices_sent, quantities_sent)"
    line_items = (
        f"if(notEmpty(prices_sent) AND {usable},"
        f" arraySum((p, q) -> ifNull({_units('p')}, 0) * q, prices_sent, quantities_sent), NULL)"
    )
    return f"coalesce({_units('revenue_sent')}, {_units('total_sent')}, {line_items}, {NO_AMOUNT})"


# -- queries ----------------------------------------------------------------------------------------


def compile_condition_sql(rule: Rule, catalog: SegmentCatalog, now: datetime) -> str:
    """The boolean SQL expression of ``rule`` at ``now`` over the columns ``traits`` and
    ``attributes`` (JSON text) and, per event name the rule uses (sorted), ``ev0``, ``ev1``, ...:
    the profile's occurrences as ``compile_members_sql`` builds them."""
    inlined = _inline(rule, catalog)
    return _condition(inlined, _Context(to_micros(now), _event_columns(inlined)))


def compile_members_sql(
    segment_id: str, catalog: SegmentCatalog, now: datetime, database: str = "cdp"
) -> str:
    """One SELECT of ``profile_id``, one row per member of ``segment_id`` at ``now``."""
    if segment_id not in catalog:
        raise ValueError(f"unknown segment {segment_id!r}")
    db = identifier(database)
    rule = _inline(catalog.rule(segment_id), catalog)
    columns = _event_columns(rule)
    condition = _condition(rule, _Context(to_micros(now), columns))
    profiles = _profiles(db)
    if not columns:
        return f"SELECT profile_id FROM {profiles}\nWHERE {condition}"
    return (
        f"SELECT profile_id FROM {profiles}\n"
        f"LEFT JOIN {_recent_events(db, columns)} AS recent ON profile.profile_id = recent.pid\n"
        f"WHERE {condition}\n"
        "SETTINGS join_use_nulls = 0"
    )


def _profiles(db: str) -> str:
    """Live profiles; the latest customer value refresh's attributes join their own (as
    ``SegmentProcessor.values`` does), by splicing the two JSON objects."""
    values = (
        f"SELECT profile_id, attributes FROM {db}.customer_value WHERE refresh_id = "
        f"(SELECT max(refresh_id) FROM {db}.analytics_refreshes FINAL WHERE status = 'done')"
    )
    merged = (
        "if(v.attributes = '', p.attributes, if(p.attributes IN ('', '{}'), v.attributes,"
        " concat(substring(p.attributes, 1, length(p.attributes) - 1), ',', substring(v.attributes, 2))))"
    )
    return (
        f"(SELECT p.profile_id AS profile_id, p.traits AS traits, {merged} AS attributes\n"
        f" FROM {db}.profiles AS p FINAL LEFT JOIN ({values}) AS v ON p.profile_id = v.profile_id\n"
        " WHERE p.live SETTINGS join_use_nulls = 0) AS profile"
    )


def _recent_events(db: str, columns: dict[str, str]) -> str:
    """Per current profile, one column per event name: its latest distinct occurrences ascending,
    at most ``RECENT_PER_EVENT`` (what ``RecentEvents`` keeps)."""
    latest = "arraySlice(arraySort(groupUniqArrayIf(occurrence, event = {})), -{}) AS {}"
    kept = ",\n    ".join(
        latest.format(quote(name), RECENT_PER_EVENT, column) for name, column in columns.items()
    )
    sent = "".join(f",\n          {expression} AS {alias}" for alias, expression in _SENT.items())
    occurrence = f"(toUnixTimestamp64Micro(timestamp), CRC32(message_id), {_amount()})"
    names = ", ".join(quote(name) for name in columns)
    return (
        f"(SELECT current_profile_id AS pid,\n    {kept}\n"
        f"  FROM (SELECT current_profile_id, event{sent},\n          {occurrence} AS occurrence\n"
        f"        FROM {db}.events_current_profile\n"
        f"        WHERE current_profile_id != '' AND type = 'track' AND event IN ({names}))\n"
        "  GROUP BY current_profile_id)"
    )
