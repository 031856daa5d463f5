"""Membership of one profile in every segment, and the transitions a re-evaluation causes.

Each (segment, profile) has two flags: ``member`` (the rule holds: what ``cdp.segments.membership``
and ClickHouse show) and ``activated`` (member and, for a segment with ``activation``, the matching
consent: what ``cdp.segment.<id>`` shows). A transition is emitted only when a flag flips, and each
flag counts its transitions (``seq``, ``activation_seq``), so a consumer can tell a repeat from a
new transition and the processor can resume exactly where its durable state says it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.segments.domain.definition import SegmentCatalog
from services.segments.domain.evaluate import ProfileView, Verdict, evaluate

ENTERED, EXITED = "entered", "exited"


class Reason:
    EVENT = "event"  # a new version of the profile (events, merge, split)
    TIME = "time"  # only time passed: a window or a waiting period ended
    BACKFILL = "backfill"  # the segment was created or changed
    MERGED = "merged"  # the profile id was merged into another profile (or left empty by a split)
    CONSENT = "consent"  # activation only: the consent the segment requires was granted or withdrawn
    VALUE = "value"  # a customer value refresh changed the profile's value attributes
    DELETED = "segment_deleted"
    ERASED = "erased"  # the person was erased (GDPR Art. 17): every membership ends at once


@dataclass(slots=True)
class MemberState:
    member: bool = False
    activated: bool = False
    seq: int = 0
    activation_seq: int = 0
    segment_version: int = 0

    def to_list(self) -> list[Any]:
        return [self.member, self.activated, self.seq, self.activation_seq, self.segment_version]

    @classmethod
    def from_list(cls, value: list[Any]) -> MemberState:
        return cls(bool(value[0]), bool(value[1]), int(value[2]), int(value[3]), int(value[4]))


@dataclass(frozen=True, slots=True)
class Transition:
    segment_id: str
    segment_version: int
    profile_id: str
    action: str
    reason: str
    activation: bool  # False: membership (cdp.segments.membership), True: activation feed
    seq: int
    exposed: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Evaluation:
    transitions: list[Transition]
    recheck: int | None  # when the profile must be evaluated again with no new event (epoch µs)


def exposed_values(names: list[str], view: ProfileView) -> dict[str, Any]:
    out = {}
    for name in names:
        value = view.traits.get(name, view.attributes.get(name))
        if value is not None:
            out[name] = value
    return out


def reevaluate(
    catalog: SegmentCatalog,
    profile_id: str,
    view: ProfileView | None,
    states: dict[str, MemberState],
    now: int,
    reason: str,
) -> Evaluation:
    """Evaluate every segment for one profile (``view`` None: the id names no profile any more),
    update ``states`` in place and return the transitions, membership before activation per segment."""
    transitions: list[Transition] = []
    members: dict[str, bool] = {}
    rechecks: list[int] = []
    for segment_id in catalog.order:
        stored = catalog.get(segment_id)
        assert stored is not None
        definition = stored.definition
        if view is None:
            verdict, why, consented = Verdict(False), Reason.MERGED, False
        else:
            verdict, why = evaluate(catalog.rule(segment_id), view, now, members), reason
            activation = definition.activation
            consent = None if activation is None else view.consents.get(activation.consent)
            consented = activation is None or (
                consent is not None
                and consent.granted
                and (consent.double_opt_in or not activation.double_opt_in)
            )
        members[segment_id] = verdict.matches
        if verdict.recheck is not None:
            rechecks.append(verdict.recheck)
        state = states.get(segment_id)
        if state is None:
            if not verdict.matches:
                continue  # never a member: keep no state
            state = states[segment_id] = MemberState()
        state.segment_version = stored.version
        exposed = exposed_values(definition.expose, view) if view is not None else {}
        if verdict.matches != state.member:
            state.member, state.seq = verdict.matches, state.seq + 1
            transitions.append(
                Transition(segment_id, stored.version, profile_id, ENTERED if state.member else EXITED,
                           why, False, state.seq, exposed)
            )  # fmt: skip
        activated = verdict.matches and consented
        if activated != state.activated:
            feed_reason = why if transitions and transitions[-1].segment_id == segment_id else Reason.CONSENT
            state.activated, state.activation_seq = activated, state.activation_seq + 1
            transitions.append(
                Transition(segment_id, stored.version, profile_id, ENTERED if activated else EXITED,
                           feed_reason, True, state.activation_seq, exposed)
            )  # fmt: skip
    for segment_id in [sid for sid in states if sid not in catalog]:
        state = states[segment_id]
        if state.member:
            state.member, state.seq = False, state.seq + 1
            transitions.append(Transition(segment_id, state.segment_version, profile_id, EXITED,
                                          Reason.DELETED, False, state.seq, {}))  # fmt: skip
        if state.activated:
            state.activated, state.activation_seq = False, state.activation_seq + 1
            transitions.append(Transition(segment_id, state.segment_version, profile_id, EXITED,
                                          Reason.DELETED, True, state.activation_seq, {}))  # fmt: skip
    return Evaluation(transitions, min(rechecks) if rechecks else None)


def exit_all(profile_id: str, states: Mapping[str, MemberState], reason: str) -> list[Transition]:
    """Exits from every segment the profile is a member of (and every activation feed it is
    activated in), membership before activation per segment, without evaluating any rule: the
    profile is gone (``Reason.ERASED``). ``states`` is updated in place; no values are exposed."""
    transitions: list[Transition] = []
    for segment_id in sorted(states):
        state = states[segment_id]
        if state.member:
            state.member, state.seq = False, state.seq + 1
            transitions.append(Transition(segment_id, state.segment_version, profile_id, EXITED,
                                          reason, False, state.seq, {}))  # fmt: skip
        if state.activated:
            state.activated, state.activation_seq = False, state.activation_seq + 1
            transitions.append(Transition(segment_id, state.segment_version, profile_id, EXITED,
                                          reason, True, state.activation_seq, {}))  # fmt: skip
    return transitions
