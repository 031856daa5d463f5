"""The segment processor's state and decisions, free of Kafka: profiles in, records out.

Per profile it keeps what rules read (a compact copy of the latest ``cdp.profiles`` record), the
membership state of every segment, the profile version that state reflects and the instant the
profile must be evaluated again because time alone may change an answer (a timer).

* **Profile changes** (a newer version on ``cdp.profiles``) evaluate every segment: reason ``event``.
* **Timers**: ``due(now)`` gives the profiles whose recheck instant has come: reason ``time``.
* **Definition changes**: ``set_catalog`` then ``reevaluate`` of every known profile: reason
  ``backfill``.

* **Erasure** (a ``cdp.profiles`` record with ``erased: true``): exits from every segment and feed
  the profile is in (reason ``erased``), then its state is forgotten and ``cdp.segments.state``
  gets a tombstone, always (the privacy coordinator waits for it). The id stays marked as erased:
  an older profile record redelivered later is ignored, so nothing of the person comes back. A
  tombstone on ``cdp.profiles`` only forgets the id (no transitions).

Every change of state yields an ``Output``: the transitions and the profile's new state record for
``cdp.segments.state`` (or its tombstone). The adapter publishes both in one Kafka transaction, so
the durable state and the published transitions never disagree, and a version at or below the one
the state reflects is not evaluated again: a redelivered profile record cannot repeat a transition.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from services.identity.domain.event_time import to_iso
from services.segments.domain.definition import SegmentCatalog
from services.segments.domain.evaluate import ProfileView
from services.segments.domain.membership import (
    MemberState,
    Reason,
    Transition,
    exit_all,
    reevaluate,
)

SCHEMA_VERSION = 1
MEMBERSHIP, ACTIVATION = "membership", "activation"


@dataclass(slots=True)
class Output:
    profile_id: str
    transitions: list[Transition]
    state: dict[str, Any] | None
    """The profile's record for ``cdp.segments.state`` (its whole membership state); None: a
    tombstone (the profile was erased and its state forgotten)."""
    at: int  # epoch microseconds of the evaluation
    cause: Mapping[str, Any] | None = None
    """``{messageId, receivedAt}`` of the event behind the profile version evaluated, if known."""
    due: int | None = None  # the timer instant that triggered the evaluation (reason time)


@dataclass(slots=True)
class _Profile:
    view: bytes | None  # compact JSON of what rules read; None: the id names no profile
    version: int = 0  # the last profile version evaluated
    seen: bool = False  # a profile record was applied (not only a loaded state)
    states: dict[str, MemberState] = field(default_factory=dict)
    values: bytes | None = None  # customer value attributes of the latest analytics refresh (JSON)


def _compact(record: Mapping[str, Any]) -> bytes:
    snapshot = record.get("snapshot") or {}
    return orjson.dumps({
        "profileId": record["profileId"],
        "traits": record.get("traits") or {},
        "attributes": record.get("attributes") or {},
        "snapshot": {"recent": snapshot.get("recent") or {}},
    })  # fmt: skip


class SegmentProcessor:
    def __init__(self, catalog: SegmentCatalog, now: Callable[[], int]) -> None:
        self._catalog = catalog
        self._now = now
        self._profiles: dict[str, _Profile] = {}
        self._timers: list[tuple[int, str]] = []
        self._due: dict[str, int] = {}
        self._members: dict[str, int] = {}
        # Erased ids -> the version of their ``erased`` record (None: not known, e.g. restored from a
        # state tombstone): a profile record at or below it is a stale copy and is ignored.
        self._erased: dict[str, int | None] = {}
        self.evaluations = 0  # segment rules evaluated

    @property
    def catalog(self) -> SegmentCatalog:
        return self._catalog

    def set_catalog(self, catalog: SegmentCatalog) -> list[str]:
        """Use ``catalog`` from now on; returns the ids of segments that are new or changed (or
        gone), whose every profile must be evaluated again (``reevaluate`` with reason backfill)."""
        old = self._catalog
        changed = [s.id for s in catalog.all() if (o := old.get(s.id)) is None or o.version != s.version]
        changed += [s.id for s in old.all() if s.id not in catalog]
        self._catalog = catalog
        return changed

    def profile_ids(self) -> list[str]:
        return list(self._profiles)

    def members(self) -> dict[str, int]:
        """Current members per segment among the profiles held here."""
        return {sid: self._members.get(sid, 0) for sid in self._catalog.order}

    def __len__(self) -> int:
        return len(self._profiles)

    # -- inputs -------------------------------------------------------------------------------------

    def profile(self, record: Mapping[str, Any], *, replay: bool = False) -> Output | None:
        """A ``cdp.profiles`` record. An older version than the one evaluated is ignored, and so is
        the same version unless ``replay`` (a reload after a restart: time may have passed)."""
        profile_id: str = record["profileId"]
        version: int = record["version"]
        if record.get("erased"):
            return self.erase(profile_id, version)
        if profile_id in self._erased:
            erased_at = self._erased[profile_id]
            if erased_at is None or version <= erased_at:
                return None  # a copy from before the erasure
            del self._erased[profile_id]  # the id names a (new) profile again
        current = self._profiles.get(profile_id)
        if current is not None and (version < current.version or (version == current.version and not replay)):
            return None
        if current is None:
            current = self._profiles[profile_id] = _Profile(None)
        reason = Reason.EVENT if version > current.version else Reason.TIME
        current.version, current.seen = version, True
        current.view = _compact(record) if record.get("live") else None
        cause = record.get("cause") if reason == Reason.EVENT else None
        return self._evaluate(profile_id, current, reason, cause)

    def erase(self, profile_id: str, version: int | None = None) -> Output:
        """The profile was erased: exit every segment and feed (reason ``erased``), forget its state
        and publish a state tombstone. Always an output, also without any state here: the
        tombstone tells the privacy coordinator the processor has let go of the person."""
        current = self._profiles.get(profile_id)
        transitions = [] if current is None else exit_all(profile_id, current.states, Reason.ERASED)
        for transition in transitions:
            if not transition.activation:
                self._members[transition.segment_id] = self._members.get(transition.segment_id, 0) - 1
        self._drop(profile_id)
        known = self._erased.get(profile_id)
        self._erased[profile_id] = version if known is None else max(known, version or 0)
        return Output(profile_id, transitions, None, self._now())

    def deleted(self, profile_id: str) -> None:
        """A tombstone on ``cdp.profiles``: forget the profile (no transitions)."""
        self._drop(profile_id)
        self._erased.setdefault(profile_id, None)

    def load_tombstone(self, profile_id: str) -> None:
        """The latest ``cdp.segments.state`` record of the id is a tombstone: no state (not even
        what the warehouse still holds), and it stays erased."""
        self.deleted(profile_id)

    def _drop(self, profile_id: str) -> None:
        current = self._profiles.pop(profile_id, None)
        if current is not None:
            for segment_id, state in current.states.items():
                if state.member:
                    self._members[segment_id] = self._members.get(segment_id, 0) - 1
        self._due.pop(profile_id, None)

    def values(self, profile_id: str, attributes: bytes | None) -> Output | None:
        """The customer value attributes a refresh computed for the profile (None: it has none).
        They join its attributes; a known profile whose values changed is evaluated again."""
        if profile_id in self._erased:
            return None
        current = self._profiles.get(profile_id)
        if current is None:
            if attributes is None:
                return None
            current = self._profiles[profile_id] = _Profile(None)
        if current.values == attributes:
            return None
        current.values = attributes
        if not current.seen:
            return None
        return self._evaluate(profile_id, current, Reason.VALUE, None)

    def valued(self) -> list[str]:
        """Profiles holding customer value attributes."""
        return [pid for pid, p in self._profiles.items() if p.values is not None]

    def due(self, now: int) -> list[tuple[str, int]]:
        """Profiles whose recheck instant is at or before ``now``, with that instant."""
        out = []
        while self._timers and self._timers[0][0] <= now:
            instant, profile_id = heapq.heappop(self._timers)
            if self._due.get(profile_id) == instant:
                del self._due[profile_id]
                out.append((profile_id, instant))
        return out

    def reevaluate(self, profile_id: str, reason: str, due: int | None = None) -> Output | None:
        current = self._profiles.get(profile_id)
        if current is None or not current.seen:
            return None
        output = self._evaluate(profile_id, current, reason, None)
        if output is not None:
            output.due = due
        return output

    def next_due(self) -> int | None:
        while self._timers and self._due.get(self._timers[0][1]) != self._timers[0][0]:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    # -- durable state ------------------------------------------------------------------------------

    def load_state(self, record: Mapping[str, Any]) -> None:
        """A ``cdp.segments.state`` record (or one rebuilt from the warehouse). Each flag keeps the
        copy with more transitions, so a stale copy never rolls a newer one back. A state record
        after a tombstone means the id names a profile again."""
        self._erased.pop(record["profileId"], None)
        current = self._holder(record["profileId"])
        current.version = max(current.version, int(record.get("profileVersion") or 0))
        for segment_id, value in (record.get("segments") or {}).items():
            loaded = MemberState.from_list(value)
            self._join(current, segment_id, loaded.member, loaded.seq, activation=False)
            self._join(current, segment_id, loaded.activated, loaded.activation_seq, activation=True)
            state = current.states[segment_id]
            state.segment_version = max(state.segment_version, loaded.segment_version)

    def load_transition(self, record: Mapping[str, Any]) -> None:
        """A published transition (``cdp.segments.membership`` or a feed): it counts even if the
        state record of its batch never made it (a crash between the two). Transitions of an
        erased id are ignored: its state is gone."""
        if record["profileId"] in self._erased:
            return
        current = self._holder(record["profileId"])
        activation = record.get("feed") == ACTIVATION
        self._join(
            current, record["segmentId"], record["action"] == "entered", int(record["seq"]), activation
        )

    def _holder(self, profile_id: str) -> _Profile:
        current = self._profiles.get(profile_id)
        if current is None:
            current = self._profiles[profile_id] = _Profile(None)
        return current

    def _join(self, current: _Profile, segment_id: str, flag: bool, seq: int, activation: bool) -> None:
        state = current.states.get(segment_id)
        if state is None:
            state = current.states[segment_id] = MemberState()
        if activation:
            if seq > state.activation_seq:
                state.activated, state.activation_seq = flag, seq
            return
        if seq > state.seq:
            delta = int(flag) - int(state.member)
            state.member, state.seq = flag, seq
            self._members[segment_id] = self._members.get(segment_id, 0) + delta

    def forget(self, keep: Callable[[str], bool]) -> int:
        """Drop every profile for which ``keep`` is false (its partition moved to another worker)."""
        gone = [pid for pid in self._profiles if not keep(pid)]
        for profile_id in gone:
            self._drop(profile_id)
        for profile_id in [pid for pid in self._erased if not keep(pid)]:
            del self._erased[profile_id]
        return len(gone)

    # -- evaluation ---------------------------------------------------------------------------------

    def _evaluate(
        self, profile_id: str, current: _Profile, reason: str, cause: Mapping[str, Any] | None
    ) -> Output | None:
        now = self._now()
        view = None
        if current.view is not None:
            record = orjson.loads(current.view)
            if current.values is not None:
                record["attributes"] = {**record["attributes"], **orjson.loads(current.values)}
            view = ProfileView.from_record(record)
        before = {sid: s.member for sid, s in current.states.items()}
        evaluation = reevaluate(self._catalog, profile_id, view, current.states, now, reason)
        self.evaluations += len(self._catalog)
        self._schedule(profile_id, evaluation.recheck)
        if not evaluation.transitions:
            return None
        for transition in evaluation.transitions:
            if not transition.activation:
                was = before.get(transition.segment_id, False)
                delta = (transition.action == "entered") - was
                self._members[transition.segment_id] = self._members.get(transition.segment_id, 0) + delta
                before[transition.segment_id] = transition.action == "entered"
        state = state_record(profile_id, current.version, current.states, now)
        return Output(profile_id, evaluation.transitions, state, now, cause)

    def _schedule(self, profile_id: str, instant: int | None) -> None:
        if instant is None:
            self._due.pop(profile_id, None)
            return
        if self._due.get(profile_id) == instant:
            return
        self._due[profile_id] = instant
        heapq.heappush(self._timers, (instant, profile_id))


# -- records ----------------------------------------------------------------------------------------


def state_record(
    profile_id: str, profile_version: int, states: Mapping[str, MemberState], at: int
) -> dict[str, Any]:
    return {
        "schemaVersion": SCHEMA_VERSION,
        "profileId": profile_id,
        "profileVersion": profile_version,
        "at": to_iso(at),
        "segments": {sid: states[sid].to_list() for sid in sorted(states)},
    }


def transition_value(transition: Transition, output: Output) -> dict[str, Any]:
    """The JSON of one transition, the same on ``cdp.segments.membership`` and the feeds."""
    return {
        "schemaVersion": SCHEMA_VERSION,
        "segmentId": transition.segment_id,
        "segmentVersion": transition.segment_version,
        "profileId": transition.profile_id,
        "action": transition.action,
        "reason": transition.reason,
        "at": to_iso(output.at),
        "seq": transition.seq,
        "feed": ACTIVATION if transition.activation else MEMBERSHIP,
        "traits": dict(transition.exposed),
        "cause": dict(output.cause) if output.cause else None,
    }


def membership_rows(value: bytes) -> list[bytes]:
    """One ``segment_membership`` row per segment of a ``cdp.segments.state`` record."""
    record = orjson.loads(value)
    rows = []
    for segment_id, state in (record.get("segments") or {}).items():
        member, activated, seq, activation_seq, segment_version = state
        rows.append(orjson.dumps({
            "segmentId": segment_id, "profileId": record["profileId"], "member": member,
            "activated": activated, "seq": seq, "activationSeq": activation_seq,
            "segmentVersion": segment_version, "profileVersion": record.get("profileVersion", 0),
            "at": record.get("at"),
        }))  # fmt: skip
    return rows


def state_from_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``cdp.segments.state`` records rebuilt from ``segment_membership`` rows (a restart on a
    broker that kept nothing)."""
    records: dict[str, dict[str, Any]] = {}
    for row in rows:
        record = records.setdefault(
            row["profile_id"], {"profileId": row["profile_id"], "profileVersion": 0, "segments": {}}
        )
        record["profileVersion"] = max(record["profileVersion"], int(row["profile_version"]))
        record["segments"][row["segment_id"]] = [
            bool(row["member"]), bool(row["activated"]), int(row["seq"]), int(row["activation_seq"]),
            int(row["segment_version"]),
        ]  # fmt: skip
    return records
