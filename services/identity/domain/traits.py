"""Traits by event time: a late, older identify never overwrites a newer value.

Every trait keeps two registers: the latest write (by event time, then message id) and the earliest
non-null write. Which one a trait shows is decided when reading, by ``TraitPolicy``: so changing the
set-once list needs no re-fold, and states folded on different workers merge the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

# Traits whose first value is the true one: a later signup form or CRM sync must not move them.
DEFAULT_SET_ONCE = frozenset(
    {
        "created_at",
        "createdAt",
        "signup_date",
        "first_source",
        "first_referrer",
        "first_utm_source",
        "first_utm_medium",
        "first_utm_campaign",
    }
)

# (event time in epoch microseconds, message id, value); value None means "unset".
TraitWrite = tuple[int, str, Any]


@dataclass(frozen=True, slots=True)
class TraitPolicy:
    """How traits are read and which event fields write them.

    ``context_traits`` is off by default: Segment's mobile SDKs copy their cached traits into
    ``context.traits`` of every event, so a phone that missed a change on the web would write the
    old value back with a newer event time. Only ``identify`` calls' ``traits`` are taken as facts.
    """

    set_once: frozenset[str] = DEFAULT_SET_ONCE
    context_traits: bool = False


DEFAULT_TRAIT_POLICY = TraitPolicy()


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _after(a: TraitWrite, b: TraitWrite) -> bool:
    """Total order of writes; the value only decides between two writes of the same message."""
    if a[0] != b[0]:
        return a[0] > b[0]
    if a[1] != b[1]:
        return a[1] > b[1]
    if type(a[2]) is type(b[2]) and a[2] == b[2]:
        return False  # the usual case: a replay of the same write
    return _canonical(a[2]) > _canonical(b[2])


class TraitRegisters:
    """Latest and earliest-non-null write per trait; ``_earliest`` only holds keys where they differ."""

    __slots__ = ("_earliest", "_latest")

    def __init__(self) -> None:
        self._latest: dict[str, TraitWrite] = {}
        self._earliest: dict[str, TraitWrite] = {}

    def apply(self, stamp: int, message_id: str, traits: Mapping[str, Any]) -> bool:
        changed = False
        for key, value in traits.items():
            changed |= self._write(key, (stamp, message_id, value))
        return changed

    def merge(self, other: TraitRegisters) -> None:
        for key, latest in other._latest.items():
            self._write(key, latest)
        for key, earliest in other._earliest.items():
            self._write(key, earliest)

    def values(self, policy: TraitPolicy) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in sorted(self._latest):
            write = self._first_non_null(key) if key in policy.set_once else self._latest[key]
            if write is not None and write[2] is not None:
                out[key] = write[2]
        return out

    def snapshot(self) -> dict[str, Any]:
        return {
            "latest": {key: list(self._latest[key]) for key in sorted(self._latest)},
            "earliest": {key: list(self._earliest[key]) for key in sorted(self._earliest)},
        }

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> TraitRegisters:
        registers = cls()
        registers._latest = {key: (w[0], w[1], w[2]) for key, w in snapshot["latest"].items()}
        registers._earliest = {key: (w[0], w[1], w[2]) for key, w in snapshot["earliest"].items()}
        return registers

    def _first_non_null(self, key: str) -> TraitWrite | None:
        earliest = self._earliest.get(key)
        if earliest is not None:
            return earliest
        latest = self._latest.get(key)
        return latest if latest is not None and latest[2] is not None else None

    def _write(self, key: str, write: TraitWrite) -> bool:
        latest = self._latest.get(key)
        earliest = self._first_non_null(key)
        new_latest = write if latest is None or _after(write, latest) else latest
        new_earliest = earliest
        if write[2] is not None and (earliest is None or _after(earliest, write)):
            new_earliest = write
        if new_latest is latest and new_earliest is earliest:
            return False
        self._latest[key] = new_latest
        if new_earliest is not None and new_earliest != new_latest:
            self._earliest[key] = new_earliest
        else:
            self._earliest.pop(key, None)
        return True
