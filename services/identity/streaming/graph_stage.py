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
place in the same order. So do erasures (GDPR Art. 17, from the privacy coordinator): the graph
forgets the person's profiles and identifiers (``IdentityGraph.erase``), keeps the keyed hashes
of their identifiers in a suppression set, and tells every fold partition holding one of their
profile ids to forget it (an ``erase`` record per id). From then on an event carrying a suppressed
identifier is dropped entirely: no record at all, not even ``unresolved`` (which would store it
again); it still uses up its position. See ``fold_stage`` for what the control records make the
fold stage do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from services.identity.domain import (
    EraseResult,
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
    erase_correction_record,
    erase_record,
    event_record,
    merge_records,
    profile_redirect_record,
    redirect_record,
    refusal_record,
    split_record,
    unresolved_record,
)
from services.privacy.hashing import IdentifierHasher

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
    ``position`` at construction is the offset the graph state was snapshotted at.

    ``hasher`` hashes identifier keys for the suppression set (``suppressed``: hex hashes of erased
    persons' identifiers). Events are hashed only while the set is non-empty. ``unstored_from``:
    from this position on, dropped events are counted in ``unstored`` (the epoch: positions the
    warehouse count of a split rebuild covers)."""

    def __init__(
        self,
        graph: IdentityGraph,
        *,
        rules: IdentifierRules = DEFAULT_RULES,
        position: int = 0,
        hasher: IdentifierHasher | None = None,
        suppressed: Iterable[str] = (),
        unstored_from: int = 0,
    ) -> None:
        self.graph = graph
        self._rules = rules
        self._next = position
        self._order_anchor: dict[str, str] = {}  # order id -> identifier key of its first anchor
        self._hasher = hasher
        self._suppressed: set[str] = set(suppressed)
        self._unstored_from = unstored_from
        self.unstored = 0
        """Positions from ``unstored_from`` on that leave no record (dropped, suppressed events)."""
        self.suppressed_events = 0
        """Events dropped because they carry a suppressed identifier."""

    @property
    def suppressed(self) -> frozenset[str]:
        return frozenset(self._suppressed)

    def suppress(self, hashes: Iterable[str]) -> None:
        """Add hashes to the suppression set (the ``suppressions`` table, reloaded)."""
        self._suppressed.update(hashes)

    def process(self, event: Mapping[str, Any], position: int | None = None) -> list[OutRecord]:
        at = self._advance(position)
        identifiers = identifiers_of(event, self._rules)
        if self._suppressed and self._names_suppressed(identifiers):
            self.suppressed_events += 1
            if at >= self._unstored_from:
                self.unstored += 1
            return []
        try:
            provenance = provenance_of(event)
        except (KeyError, ValueError, TypeError) as exc:
            return [unresolved_record(event, at, MALFORMED_EVENT, f"{type(exc).__name__}: {exc}")]
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

    def erase(
        self,
        request_id: str,
        profile_ids: Iterable[str],
        suppress: Iterable[str],
        position: int | None = None,
    ) -> list[OutRecord]:
        """Forget a person: ``profile_ids`` (every id they ever had) and every identifier whose
        hash is in ``suppress`` (or already suppressed). Emits the audit record, an ``erase`` record
        for each listed id and each id the graph forgot, and the rebuild of any other profile that
        lost a suppressed identifier. No record names an identifier of the person."""
        at = self._advance(position)
        listed = list(dict.fromkeys(profile_ids))
        self._suppressed.update(suppress)
        matches = self._key_suppressed if self._suppressed and self._hasher is not None else None
        result = self.graph.erase(listed, matches)
        if self._order_anchor:
            knows = self.graph.knows
            self._order_anchor = {o: key for o, key in self._order_anchor.items() if knows(key)}
        status = "erased" if result.changed else "not_linked"
        records = [erase_correction_record(request_id, status, at)]
        records.extend(
            erase_record(pid, at, request_id) for pid in dict.fromkeys([*listed, *result.erased_profiles])
        )
        records.extend(self._regrouped(result, at))
        return records

    def _regrouped(self, result: EraseResult, at: int) -> list[OutRecord]:
        records: list[OutRecord] = []
        for regrouped in result.regrouped:
            assert regrouped.profile_id is not None
            records.extend(self._parts(regrouped.profile_id, regrouped.profiles, at))
        return records

    def _key_suppressed(self, key: str) -> bool:
        assert self._hasher is not None
        return self._hasher.hash(key) in self._suppressed

    def _names_suppressed(self, identifiers: list[Identifier]) -> bool:
        hasher = self._hasher
        if hasher is None:
            return False  # no key: the worker logs that it cannot honour the suppression list
        suppressed, hash_of = self._suppressed, hasher.hash
        return any(hash_of(identifier.key) in suppressed for identifier in identifiers)

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
        records.extend(self._parts(result.profile_id, result.profiles, at))
        return records

    def _parts(self, split_from: str, parts: tuple[str, ...], at: int) -> list[OutRecord]:
        """Rebuild every part of a regrouped profile, and point its absorbed ids at it."""
        graph = self.graph
        records: list[OutRecord] = []
        for part in parts:
            members = [identifier.key for identifier in graph.identifiers_of_profile(part)]
            records.append(split_record(part, at, members, split_from, self.unstored))
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
