"""Evaluate a rule on one profile at one instant, and say when the answer could change by itself.

``evaluate`` returns a ``Verdict``: whether the profile matches at ``now`` and ``recheck``, the
earliest later instant at which the answer may change with no new event (an event leaving a window,
a cart becoming abandoned, ``days_since_last_order`` ticking over). The segment processor sets a
timer for that instant: time-based exits happen when they are due, not in a nightly job.

Field semantics (the SQL compiler follows them exactly):

* a missing or null value matches nothing except ``exists: false``;
* ``!=`` means "exists and is not equal";
* ``=``/``in`` compare numbers as numbers (2 equals 2.0), strings and booleans by value, and never
  equate values of different kinds;
* ``<``/``<=``/``>``/``>=`` compare number with number or string with string (ISO dates sort);
* ``contains``: a string contains the value, or a list holds an element equal to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.identity.domain.event_time import DAY_MICROS, to_micros
from services.identity.domain.money import MONEY_SCALE
from services.identity.domain.recent_events import NO_AMOUNT, Occurrence, RecentEvents
from services.segments.domain.durations import SECOND_MICROS
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
)

# Attributes that grow with time alone, and the timestamp attribute each counts whole days from.
TIME_ATTRIBUTES: dict[str, str] = {
    "days_since_last_order": "last_order_at",
    "days_since_first_order": "first_order_at",
    "days_since_last_seen": "last_seen_at",
    "days_since_first_seen": "first_seen_at",
    "days_since_last_active": "last_active_at",
}


@dataclass(frozen=True, slots=True)
class Consent:
    granted: bool
    double_opt_in: bool = False


@dataclass(slots=True)
class ProfileView:
    """What rules read of a profile: traits, attributes, recent events and consents."""

    profile_id: str
    traits: Mapping[str, Any] = field(default_factory=dict)
    attributes: Mapping[str, Any] = field(default_factory=dict)
    recent: RecentEvents = field(default_factory=RecentEvents)
    consents: Mapping[str, Consent] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ProfileView:
        """From a ``cdp.profiles`` record (or a ``profiles`` row with the same fields)."""
        attributes = record.get("attributes") or {}
        snapshot = record.get("snapshot") or {}
        return cls(
            record["profileId"],
            record.get("traits") or {},
            attributes,
            RecentEvents.from_snapshot(snapshot.get("recent")),
            consents_of(attributes),
        )


def consents_of(attributes: Mapping[str, Any]) -> dict[str, Consent]:
    """Consent per purpose. The ``consents`` attribute ({purpose: {granted, double_opt_in, ...}},
    folded from consent events by services/identity/domain/consents.py) wins; without an entry,
    email marketing follows the newsletter subscription and its double opt-in."""
    consents = {
        "email_marketing": Consent(
            attributes.get("email_subscription") == "subscribed",
            attributes.get("email_double_opt_in") is True,
        )
    }
    explicit = attributes.get("consents")
    if isinstance(explicit, Mapping):
        for purpose, value in explicit.items():
            if isinstance(value, Mapping):
                consents[purpose] = Consent(value.get("granted") is True, value.get("double_opt_in") is True)
    return consents


@dataclass(frozen=True, slots=True)
class Verdict:
    matches: bool
    recheck: int | None = None  # epoch microseconds


def evaluate(rule: Rule, profile: ProfileView, now: int, segments: Mapping[str, bool]) -> Verdict:
    """``now`` in epoch microseconds; ``segments``: this profile's membership of other segments."""
    if isinstance(rule, All | AnyOf):
        verdicts = [evaluate(r, profile, now, segments) for r in rule.rules]
        wanted = all if isinstance(rule, All) else any
        return Verdict(wanted(v.matches for v in verdicts), _earliest(v.recheck for v in verdicts))
    if isinstance(rule, Not):
        inner = evaluate(rule.rule, profile, now, segments)
        return Verdict(not inner.matches, inner.recheck)
    if isinstance(rule, FieldCondition):
        return _field(rule, profile, now)
    if isinstance(rule, EventCondition):
        return _event(rule, profile.recent.occurrences(rule.event), now)
    if isinstance(rule, NotFollowedBy):
        return _not_followed_by(rule, profile.recent, now)
    if isinstance(rule, ConsentCondition):
        consent = profile.consents.get(rule.purpose)
        ok = consent is not None and consent.granted and (consent.double_opt_in or not rule.double_opt_in)
        return Verdict(ok)
    if isinstance(rule, InSegment):
        return Verdict(segments.get(rule.segment, False))
    raise TypeError(f"not a rule: {rule!r}")


def _earliest(stamps: Any) -> int | None:
    known = [s for s in stamps if s is not None]
    return min(known) if known else None


# -- fields -----------------------------------------------------------------------------------------


def _field(rule: FieldCondition, profile: ProfileView, now: int) -> Verdict:
    recheck = None
    if rule.source == "attribute" and len(rule.path) == 1 and rule.path[0] in TIME_ATTRIBUTES:
        value, recheck = _days_since(profile.attributes.get(TIME_ATTRIBUTES[rule.path[0]]), now)
    else:
        value = _lookup(profile.traits if rule.source == "trait" else profile.attributes, rule.path)
    return Verdict(matches(rule.op, value, rule.value), recheck)


def _days_since(stamp: object, now: int) -> tuple[int | None, int | None]:
    if not isinstance(stamp, str):
        return None, None
    try:
        base = to_micros(stamp)
    except ValueError:
        return None, None
    days = max(0, (now - base) // DAY_MICROS)
    return days, max(base + (days + 1) * DAY_MICROS, now + 1)


def _lookup(values: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = values
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _kind(value: object) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _equal(a: object, b: object) -> bool:
    kind = _kind(a)
    return kind is not None and kind == _kind(b) and a == b


def matches(op: str, value: Any, operand: Any) -> bool:
    """Whether ``value`` (a profile's) satisfies ``op operand``."""
    if op == "exists":
        return (value is not None) is bool(operand)
    if value is None:
        return False
    if op == "=":
        return _equal(value, operand)
    if op == "!=":
        return not _equal(value, operand)
    if op == "in":
        return any(_equal(value, item) for item in operand)
    if op == "contains":
        if isinstance(value, str):
            return isinstance(operand, str) and operand in value
        return isinstance(value, list) and any(_equal(item, operand) for item in value)
    kind = _kind(value)
    if op == "between":
        return kind == "number" and bool(operand[0] <= value <= operand[1])
    if kind not in ("number", "string") or kind != _kind(operand):
        return False
    if op == "<":
        return bool(value < operand)
    if op == "<=":
        return bool(value <= operand)
    if op == ">":
        return bool(value > operand)
    if op == ">=":
        return bool(value >= operand)
    raise ValueError(f"unknown operator {op!r}")


# -- events -----------------------------------------------------------------------------------------


def _event(rule: EventCondition, occurrences: list[Occurrence], now: int) -> Verdict:
    start = now - rule.within * SECOND_MICROS
    inside = [o for o in occurrences if o[0] >= start]
    if rule.measure == "count":
        measured: float = len(inside)
    else:
        measured = sum(o[2] for o in inside if o[2] != NO_AMOUNT) / MONEY_SCALE
    # The answer changes by itself only when the oldest occurrence inside leaves the window.
    recheck = inside[0][0] + rule.within * SECOND_MICROS + 1 if inside else None
    return Verdict(matches(rule.op, measured, rule.value), recheck)


def _not_followed_by(rule: NotFollowedBy, recent: RecentEvents, now: int) -> Verdict:
    started = recent.occurrences(rule.event)
    if not started or started[-1][0] < now - rule.lookback * SECOND_MICROS:
        return Verdict(False)
    latest = started[-1][0]
    follow_ups = recent.occurrences(rule.followed_by)
    if follow_ups and follow_ups[-1][0] >= latest:
        return Verdict(False)
    due = latest + rule.within * SECOND_MICROS
    if now < due:
        return Verdict(False, due)
    return Verdict(True, latest + rule.lookback * SECOND_MICROS + 1)
