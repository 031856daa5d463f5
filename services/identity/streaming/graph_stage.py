"""The graph stage: the one active consumer of the single-partition observations topic.

It turns each observation into identity decisions, in one total order, and emits them as records:

* an ``event`` record keyed by the event's profile id, carrying the event's identifiers that belong
  to that profile (so profile records can list identifiers without asking the graph);
* per merge, a ``merge`` control record keyed by the *absorbed* id (its partition holds the state
  to move) and a public record on ``merges``;
* per refused link, an ``identity_refusals`` record;
* an order follow-up that names only its order (a refund or cancellation as Shopify sends it,
  ``properties.order_id``) belongs to the profile of the order: the stage remembers the anchor of
  the first event that carried each order id with a person on it, and resolves the follow-up
  through that identifier (it links nothing);
* an event that names no person (every identifier junk) goes to ``unresolved`` and creates no
  profile: a profile nobody can look up, activate, export or erase is noise, and a profile per
  message id would flood segments with one-event ghosts. The warehouse still stores the event.
  A record that is not a canonical event (no messageId or timestamp) goes there too, as
  ``malformed_event``, instead of stopping the partition.

Splits and detaches arrive on the same topic (the admin API produces them), so they take their
place in the same order. See ``fold_stage`` for what the control records make the fold stage do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.identity.domain import (
    Identifier,
    IdentifierRules,
    IdentityGraph,
    ObserveResult,
    SplitResult,
    SplitStatus,
    identifiers_of,
    provenance_of,
)
from services.identity.domain.identifiers import DEFAULT_RULES
from services.identity.streaming.records import (
    OutRecord,
    correction_record,
    event_record,
    merge_records,
    profile_redirect_record,
    redirect_record,
    refusal_record,
    split_record,
    unresolved_record,
)

NO_IDENTIFIER = "no_identifier"
MALFORMED_EVENT = "malformed_event"


def _order_id(event: Mapping[str, Any]) -> str | None:
    properties = event.get("properties")
    order_id = properties.get("order_id") if isinstance(properties, dict) else None
    return order_id if isinstance(order_id, str) and order_id else None


class StaleObservationError(ValueError):
    """An observation older than the graph state: replaying it would decide against a later state.

    Safeguards are order dependent (the first link wins), so an observation must meet exactly the
    graph state its predecessors left. After a crash the worker must restore the snapshot taken at
    the offset it resumes from (and pass that offset as ``position``), not a newer one.
    """


class GraphProcessor:
    """Pure: observations in, records out. ``position`` is the observation's offset when the
    adapter passes one (replays after a restore then give equal positions), else the next number.
    ``position`` at construction is the offset the graph state was snapshotted at."""

    def __init__(
        self, graph: IdentityGraph, *, rules: IdentifierRules = DEFAULT_RULES, position: int = 0
    ) -> None:
        self.graph = graph
        self._rules = rules
        self._next = position
        self._order_anchor: dict[str, str] = {}  # order id -> identifier key of its first anchor

    def process(self, event: Mapping[str, Any], position: int | None = None) -> list[OutRecord]:
        at = self._advance(position)
        try:
            provenance = provenance_of(event)
        except (KeyError, ValueError, TypeError) as exc:
            return [unresolved_record(event, at, MALFORMED_EVENT, f"{type(exc).__name__}: {exc}")]
        identifiers = identifiers_of(event, self._rules)
        order_id = _order_id(event)
        if order_id is not None:
            if identifiers:
                self._order_anchor.setdefault(order_id, identifiers[0].key)
            elif order_id in self._order_anchor:
                identifiers = [Identifier.parse(self._order_anchor[order_id])]
        result = self.graph.observe(identifiers, provenance)
        if result.profile_id is None:
            return [unresolved_record(event, at, NO_IDENTIFIER)]
        records = [event_record(result.profile_id, at, self._members(identifiers, result), event)]
        for merge in result.merges:
            records.extend(merge_records(merge, at))
        if result.merges:
            records.extend(self._redirects(result.profile_id, at))
        records.extend(refusal_record(refused, at) for refused in result.refused)
        return records

    def split(
        self, a: Identifier, b: Identifier, reason: str = "", position: int | None = None
    ) -> list[OutRecord]:
        at = self._advance(position)
        result = self.graph.split(a, b, reason)
        return self._corrected("split", f"{a.key} {b.key}", reason, result, at)

    def detach(
        self, identifier: Identifier, reason: str = "", position: int | None = None
    ) -> list[OutRecord]:
        at = self._advance(position)
        result = self.graph.detach(identifier, reason)
        return self._corrected("detach", identifier.key, reason, result, at)

    @property
    def next_position(self) -> int:
        """The position the next observation must have (or exceed)."""
        return self._next

    def skip(self, position: int | None = None) -> int:
        """Use up a position without a decision (an observation that is no event nor correction)."""
        return self._advance(position)

    def _advance(self, position: int | None) -> int:
        if position is not None and position < self._next:
            raise StaleObservationError(
                f"observation {position} is older than the graph state ({self._next})"
            )
        at = self._next if position is None else position
        self._next = at + 1
        return at

    def _members(self, identifiers: list[Identifier], result: ObserveResult) -> list[str]:
        """The event's identifiers that are in its profile: all of them unless a link was refused."""
        if not result.refused:
            return [identifier.key for identifier in identifiers]
        profile_of = self.graph.profile_of
        return [i.key for i in identifiers if profile_of(i) == result.profile_id]

    def _corrected(
        self, action: str, subject: str, reason: str, result: SplitResult, at: int
    ) -> list[OutRecord]:
        records = [correction_record(action, subject, reason, result, at)]
        if result.status is not SplitStatus.SPLIT or result.profile_id is None:
            return records  # nothing regrouped: every event still belongs where it was
        graph = self.graph
        for part in result.profiles:
            members = [identifier.key for identifier in graph.identifiers_of_profile(part)]
            records.append(split_record(part, at, members, result.profile_id))
            # Ids absorbed long ago may now live in another part: their redirects must follow.
            records.extend(
                redirect_record(absorbed, part, at) for absorbed in graph.absorbed_profile_ids(part)
            )
            records.append(profile_redirect_record(part, part, at))  # a part may be a revived id
            records.extend(self._redirects(part, at))
        return records

    def _redirects(self, survivor: str, at: int) -> list[OutRecord]:
        """Every id absorbed into ``survivor`` points straight at it (chains collapse to one hop)."""
        absorbed = self.graph.absorbed_profile_ids(survivor)
        return [profile_redirect_record(profile_id, survivor, at) for profile_id in absorbed]
