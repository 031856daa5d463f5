"""The segment rule language: a tree of conditions, parsed from YAML/JSON with precise errors.

A rule is one mapping. Combinators: ``all: [...]``, ``any: [...]``, ``not: {...}``. Conditions:

* ``{trait: plan, op: "=", value: pro}``: a profile trait (dotted paths reach into objects);
* ``{attribute: orders_count, op: ">=", value: 2}``: a computed attribute (see docs/segments.md);
* ``{event: Order Completed, within: 90d, op: ">=", value: 3}``: how many times the event happened
  in the window (``op``/``value`` default to ">= 1"); ``measure: revenue`` sums the events' amounts
  (revenue, else total, else line items) instead of counting them;
* ``{event: Product Added, not_followed_by: Order Completed, within: 24h, lookback: 7d}``: the
  latest Product Added of the last 7 days is at least 24 h old and no Order Completed came after it;
* ``{consent: email_marketing, double_opt_in: true}``: the profile has granted the purpose (one of
  the configured purposes, ``CDP_CONSENT_PURPOSES``; ``parse_rule(..., purposes=...)``);
* ``{segment: vip}``: the profile is a member of another segment.

Operators: ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in`` (value is a list), ``contains`` (a
string contains the value, or a list holds it), ``exists`` (value true or false, default true) and
``between`` (value is ``[low, high]``, both inclusive).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from schemas.privacy import DEFAULT_CONSENT_PURPOSES, PURPOSE_PATTERN
from services.identity.domain.recent_events import RECENT_PER_EVENT
from services.segments.domain.durations import parse_duration

Operator = Literal["=", "!=", "<", "<=", ">", ">=", "in", "contains", "exists", "between"]
OPERATORS: tuple[str, ...] = ("=", "!=", "<", "<=", ">", ">=", "in", "contains", "exists", "between")
COUNT_OPERATORS: tuple[str, ...] = ("=", "!=", "<", "<=", ">", ">=", "between")
# The default purposes (CDP_CONSENT_PURPOSES); the platform passes the configured ones.
CONSENT_PURPOSES: tuple[str, ...] = DEFAULT_CONSENT_PURPOSES
_PURPOSE = re.compile(PURPOSE_PATTERN)
MAX_DEPTH = 16


class RuleError(ValueError):
    """A rule that cannot be used; ``path`` points at the offending part (``rule.all[1].op``)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class All:
    rules: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    rules: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class Not:
    rule: Rule


@dataclass(frozen=True, slots=True)
class FieldCondition:
    source: Literal["trait", "attribute"]
    path: tuple[str, ...]
    op: Operator
    value: Any


@dataclass(frozen=True, slots=True)
class EventCondition:
    event: str
    within: int  # seconds
    measure: Literal["count", "revenue"]
    op: Operator
    value: Any  # a number, or [low, high] for between


@dataclass(frozen=True, slots=True)
class NotFollowedBy:
    event: str
    followed_by: str
    within: int  # seconds the follow-up may take
    lookback: int  # seconds: only the latest ``event`` of this window counts


@dataclass(frozen=True, slots=True)
class ConsentCondition:
    purpose: str
    double_opt_in: bool


@dataclass(frozen=True, slots=True)
class InSegment:
    segment: str


Rule = All | AnyOf | Not | FieldCondition | EventCondition | NotFollowedBy | ConsentCondition | InSegment

_KINDS = ("all", "any", "not", "trait", "attribute", "event", "consent", "segment")


def parse_rule(
    data: object, path: str = "rule", depth: int = 0, purposes: Collection[str] | None = CONSENT_PURPOSES
) -> Rule:
    """The rule ``data`` describes, or RuleError. ``consent`` conditions must name one of
    ``purposes``; None accepts any purpose name (definitions stored before a purpose was removed)."""
    if depth > MAX_DEPTH:
        raise RuleError(path, f"rules nest at most {MAX_DEPTH} levels deep")
    if not isinstance(data, Mapping):
        raise RuleError(path, f"expected a mapping with one of {', '.join(_KINDS)}; got {_type(data)}")
    kinds = [k for k in _KINDS if k in data]
    if len(kinds) != 1:
        found = f"found {', '.join(kinds)}" if kinds else f"found keys {sorted(map(str, data))}"
        raise RuleError(path, f"a condition needs exactly one of {', '.join(_KINDS)}; {found}")
    kind = kinds[0]
    if kind in ("all", "any"):
        _only(data, path, {kind})
        items = data[kind]
        if not isinstance(items, list) or not items:
            raise RuleError(f"{path}.{kind}", "expected a non-empty list of conditions")
        rules = tuple(
            parse_rule(item, f"{path}.{kind}[{i}]", depth + 1, purposes) for i, item in enumerate(items)
        )
        return All(rules) if kind == "all" else AnyOf(rules)
    if kind == "not":
        _only(data, path, {"not"})
        return Not(parse_rule(data["not"], f"{path}.not", depth + 1, purposes))
    if kind == "trait":
        return _field(data, path, "trait")
    if kind == "attribute":
        return _field(data, path, "attribute")
    if kind == "event":
        return _event(data, path)
    if kind == "consent":
        _only(data, path, {"consent", "double_opt_in"})
        purpose = data["consent"]
        check_purpose(purpose, purposes, f"{path}.consent")
        double = data.get("double_opt_in", False)
        if not isinstance(double, bool):
            raise RuleError(f"{path}.double_opt_in", "expected true or false")
        return ConsentCondition(purpose, double)
    _only(data, path, {"segment"})
    segment = data["segment"]
    if not isinstance(segment, str) or not segment:
        raise RuleError(f"{path}.segment", "expected a segment id")
    return InSegment(segment)


def check_purpose(purpose: object, purposes: Collection[str] | None, path: str) -> str:
    """``purpose`` if it is one of ``purposes`` (None: any purpose name), else RuleError."""
    if purposes is None:
        if isinstance(purpose, str) and _PURPOSE.match(purpose):
            return purpose
        raise RuleError(path, f"expected a purpose name (lower-case letters, digits, '_'); got {purpose!r}")
    if not isinstance(purpose, str) or purpose not in purposes:
        raise RuleError(path, f"unknown purpose {purpose!r}; use one of {', '.join(purposes)}")
    return purpose


def dependencies(rule: Rule) -> set[str]:
    """The ids of the segments ``rule`` refers to."""
    if isinstance(rule, All | AnyOf):
        return set().union(*(dependencies(r) for r in rule.rules))
    if isinstance(rule, Not):
        return dependencies(rule.rule)
    return {rule.segment} if isinstance(rule, InSegment) else set()


def event_names(rule: Rule) -> set[str]:
    if isinstance(rule, All | AnyOf):
        return set().union(*(event_names(r) for r in rule.rules))
    if isinstance(rule, Not):
        return event_names(rule.rule)
    if isinstance(rule, EventCondition):
        return {rule.event}
    if isinstance(rule, NotFollowedBy):
        return {rule.event, rule.followed_by}
    return set()


# -- parsers ----------------------------------------------------------------------------------------


def _field(data: Mapping[str, Any], path: str, kind: Literal["trait", "attribute"]) -> FieldCondition:
    _only(data, path, {kind, "op", "value"})
    name = data[kind]
    if not isinstance(name, str) or not name or any(not part for part in name.split(".")):
        raise RuleError(f"{path}.{kind}", f"expected a {kind} name such as 'plan' or 'address.city'")
    op = data.get("op", "exists")
    if op not in OPERATORS:
        raise RuleError(f"{path}.op", f"unknown operator {op!r}; use one of {', '.join(OPERATORS)}")
    value = _operand(op, data, path, numeric=False)
    return FieldCondition(kind, tuple(name.split(".")), op, value)


def _event(data: Mapping[str, Any], path: str) -> EventCondition | NotFollowedBy:
    name = data["event"]
    if not isinstance(name, str) or not name:
        raise RuleError(f"{path}.event", "expected an event name such as 'Order Completed'")
    if "within" not in data:
        raise RuleError(f"{path}.within", "an event condition needs a window, e.g. within: 90d")
    within = _duration(data["within"], f"{path}.within")
    if "not_followed_by" in data:
        _only(data, path, {"event", "not_followed_by", "within", "lookback"})
        follow = data["not_followed_by"]
        if not isinstance(follow, str) or not follow:
            raise RuleError(f"{path}.not_followed_by", "expected an event name such as 'Order Completed'")
        lookback = _duration(data.get("lookback", "30d"), f"{path}.lookback")
        if lookback <= within:
            raise RuleError(
                f"{path}.lookback", "must be longer than within (the time the follow-up may take)"
            )
        return NotFollowedBy(name, follow, within, lookback)
    _only(data, path, {"event", "within", "measure", "op", "value"})
    measure = data.get("measure", "count")
    if measure not in ("count", "revenue"):
        raise RuleError(f"{path}.measure", f"expected 'count' or 'revenue'; got {measure!r}")
    op = data.get("op", ">=")
    if op not in COUNT_OPERATORS:
        raise RuleError(
            f"{path}.op",
            f"{op!r} does not apply to an event {measure}; use one of {', '.join(COUNT_OPERATORS)}",
        )
    value = _operand(op, {"value": 1, **data}, path, numeric=True)
    if measure == "count":
        largest = max(value) if isinstance(value, list) else value
        if not all(isinstance(v, int) for v in (value if isinstance(value, list) else [value])):
            raise RuleError(f"{path}.value", "an event count must be a whole number")
        # "count = N", "<= N" or "!= N" needs up to N + 1 occurrences to be decided exactly.
        if largest + (op in ("=", "<=", ">", "!=", "between")) > RECENT_PER_EVENT:
            raise RuleError(
                f"{path}.value",
                f"profiles keep the latest {RECENT_PER_EVENT} occurrences of each event, so counts "
                f"above {RECENT_PER_EVENT - 1} cannot be evaluated exactly",
            )
    return EventCondition(name, within, measure, op, value)


def _operand(op: str, data: Mapping[str, Any], path: str, *, numeric: bool) -> Any:
    where = f"{path}.value"
    if op == "exists":
        value = data.get("value", True)
        if not isinstance(value, bool):
            raise RuleError(where, "exists takes true or false")
        return value
    if "value" not in data:
        raise RuleError(where, f"operator {op!r} needs a value")
    value = data["value"]
    if op == "in":
        if not isinstance(value, list) or not value or not all(_scalar(v) for v in value):
            raise RuleError(where, "'in' takes a non-empty list of strings, numbers or booleans")
        return value
    if op == "between":
        if not isinstance(value, list) or len(value) != 2 or not all(_number(v) for v in value):
            raise RuleError(where, "'between' takes [low, high], two numbers")
        if value[0] > value[1]:
            raise RuleError(where, f"'between' needs low <= high; got {value}")
        return value
    if op in ("<", "<=", ">", ">="):
        if not (_number(value) or (not numeric and isinstance(value, str))):
            raise RuleError(where, f"{op!r} compares numbers{'' if numeric else ' or strings (dates)'}")
        return value
    if numeric and not _number(value):
        raise RuleError(where, f"expected a number; got {_type(value)}")
    if not _scalar(value):
        raise RuleError(where, f"expected a string, number or boolean; got {_type(value)}")
    return value


def _duration(value: object, path: str) -> int:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise RuleError(path, str(exc)) from None


def _only(data: Mapping[str, Any], path: str, allowed: set[str]) -> None:
    extra = sorted(str(k) for k in data if k not in allowed)
    if extra:
        raise RuleError(f"{path}.{extra[0]}", f"unexpected key here; allowed: {', '.join(sorted(allowed))}")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


def _type(value: object) -> str:
    return "null" if value is None else type(value).__name__


def to_document(rule: Rule) -> dict[str, Any]:
    """The rule back as a document (what ``parse_rule`` reads)."""
    from services.segments.domain.durations import format_duration

    if isinstance(rule, All):
        return {"all": [to_document(r) for r in rule.rules]}
    if isinstance(rule, AnyOf):
        return {"any": [to_document(r) for r in rule.rules]}
    if isinstance(rule, Not):
        return {"not": to_document(rule.rule)}
    if isinstance(rule, FieldCondition):
        return {rule.source: ".".join(rule.path), "op": rule.op, "value": rule.value}
    if isinstance(rule, EventCondition):
        return {
            "event": rule.event, "within": format_duration(rule.within), "measure": rule.measure,
            "op": rule.op, "value": rule.value,
        }  # fmt: skip
    if isinstance(rule, NotFollowedBy):
        return {
            "event": rule.event, "not_followed_by": rule.followed_by,
            "within": format_duration(rule.within), "lookback": format_duration(rule.lookback),
        }  # fmt: skip
    if isinstance(rule, ConsentCondition):
        return {"consent": rule.purpose, "double_opt_in": rule.double_opt_in}
    return {"segment": rule.segment}


def walk(rule: Rule) -> Sequence[Rule]:
    """Every node of ``rule``, parents first."""
    out: list[Rule] = [rule]
    if isinstance(rule, All | AnyOf):
        for child in rule.rules:
            out.extend(walk(child))
    elif isinstance(rule, Not):
        out.extend(walk(rule.rule))
    return out
