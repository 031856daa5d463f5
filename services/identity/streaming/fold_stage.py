"""The fold stage: profile state per profile id, on every worker, for the partitions it owns.

Records on ``resolved`` are keyed by profile id, so one partition sees every record of its ids in
the order the graph stage (or another fold partition) produced them. Per record kind:

* ``event``: applied to the profile; if the id was merged away here, forwarded to its survivor.
* ``merge`` (at the absorbed id): the state leaves as a ``transfer`` to the survivor, the id
  redirects from now on, and ``profiles`` gets a ``live: false, mergedInto`` record at once.
* ``transfer``: joined into the survivor, or forwarded again if the survivor was absorbed
  meanwhile, so chained merges A->B->C end in C whatever the interleaving. ``ProfileState.merge``
  is a join: a transfer replayed, or overlapping events that also arrive one by one, change nothing.
* ``split`` (at every part of a split profile): the part is rebuilt from the event store, from the
  events whose best-ranked identifier (their anchor, which picks their profile) is in the part. A
  part left without events is retired (``live: false``, no ``mergedInto``). A split record at or
  below the position the id was last rebuilt at is a replay (graph restart) and changes nothing.
* ``redirect`` (at ids absorbed before a split): they now redirect to the part holding them.
* ``erase`` (GDPR Art. 17, at every id the erased person ever had): the id's state is forgotten
  and ``profiles`` gets an ``erased`` record (no personal data) and then a tombstone. The id is
  remembered as erased: any record that reaches it later (an event, a transfer or forwarded event
  still in flight, a split part) is dropped (``dropped_erased``).

**Records overtaken by a split.** Transfers and forwarded events produced before a split may still
be in flight when the rebuild has happened; they would put events of another part back in. A
rebuild at position S reflects every event observed before S, so any record reaching the id with
a position below S is dropped (``overtaken``). The mark stays on absorbed ids too: a stale record
walking a redirect chain is dropped at the first hop that was rebuilt. A forwarded record carries
``forwardedAt``, the position from which the id it left points here (its merge or redirect): when
that hop is later than S, the record belonged to another profile at S and the rebuild did not cover
it, so it counts as reaching the id at ``forwardedAt`` and is kept.

**Versions.** ``position`` is the highest graph position that reached the profile: a function of
the observation order only, equal on every worker count and interleaving. ``version`` orders the
published records of one id (Kafka compaction, ReplacingMergeTree): each publication takes
``max(previous + 1, position)``, so it strictly increases per id, also across merges, splits and
restarts (``load`` restores it), and jumps ahead with the graph so a revived id outranks its past.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.identity.domain import (
    Identifier,
    IdentifierRules,
    ProfileState,
    TraitPolicy,
    UnfoldableEventError,
    identifiers_of,
)
from services.identity.domain.identifiers import DEFAULT_RULES
from services.identity.domain.traits import DEFAULT_TRAIT_POLICY
from services.identity.streaming.records import (
    Kind,
    OutRecord,
    ProfileStamp,
    erased_profile_record,
    forwarded,
    profile_record,
    profile_tombstone,
    retired_profile_record,
    transfer_record,
)

EventStore = Callable[[Sequence[str]], Iterable[Mapping[str, Any]]]
"""``events_of(identifier keys)``: at least every stored event carrying one of the identifiers (a
superset is fine, duplicates too). It must hold every event the graph stage resolved before the
split being rebuilt, so the adapter waits for the events sink to pass the split's position."""


def anchor_of(event: Mapping[str, Any], rules: IdentifierRules = DEFAULT_RULES) -> str | None:
    """The identifier key that decided the event's profile: the stored one when the event store
    gives it (``identityKeys``, e.g. an order follow-up resolved through its order), else the
    event's best-ranked identifier."""
    stored = event.get("identityKeys")
    if isinstance(stored, list) and stored:
        return str(stored[0])
    anchor = identifiers_of(event, rules)[:1]
    return anchor[0].key if anchor else None


def next_version(version: int, position: int) -> int:
    return max(version + 1, position)


def _by_rank(keys: Iterable[str]) -> list[str]:
    return sorted(keys, key=lambda key: Identifier.parse(key).rank_key)


@dataclass(slots=True, eq=False)
class FoldedProfile:
    state: ProfileState
    identifiers: set[str]
    version: int = 0
    """The version of the last published record (0: never published)."""
    position: int = -1
    cause: tuple[str, str] | None = None
    """(receivedAt, messageId) of the latest-received event that changed it since the last flush."""


@dataclass(frozen=True, slots=True)
class FormerProfile:
    """An id that names no profile here any more: merged into ``merged_into``, or left empty."""

    merged_into: str | None
    version: int
    position: int


class FoldProcessor:
    def __init__(
        self,
        now: Callable[[], datetime],
        *,
        events_of: EventStore | None = None,
        trait_policy: TraitPolicy = DEFAULT_TRAIT_POLICY,
        rules: IdentifierRules = DEFAULT_RULES,
    ) -> None:
        self._now = now
        self._events_of = events_of
        self._policy = trait_policy
        self._rules = rules
        self._live: dict[str, FoldedProfile] = {}
        self._former: dict[str, FormerProfile] = {}
        self._rebuilt_at: dict[str, int] = {}
        self._dirty: dict[str, None] = {}  # insertion-ordered set: flush order follows first change
        self._erased: dict[str, int] = {}  # erased id -> the version of its ``erased`` record
        self.overtaken = 0
        self.dropped_erased = 0

    @property
    def live(self) -> Mapping[str, FoldedProfile]:
        return self._live

    @property
    def former(self) -> Mapping[str, FormerProfile]:
        return self._former

    @property
    def erased(self) -> Mapping[str, int]:
        """Erased ids (with the version of their ``erased`` record) of the partitions held here."""
        return self._erased

    def process(self, record: Mapping[str, Any]) -> list[OutRecord]:
        profile_id: str = record["profileId"]
        position: int = record["position"]
        kind = record["kind"]
        if kind == Kind.ERASE:
            return self._erase(profile_id, position)
        if profile_id in self._erased:
            self.dropped_erased += 1
            return []
        if max(position, record.get("forwardedAt", -1)) < self._rebuilt_at.get(profile_id, -1):
            self.overtaken += 1
            return []
        if kind == Kind.EVENT:
            return self._event(profile_id, position, record)
        if kind == Kind.MERGE:
            return self._merge(profile_id, position, record["survivor"])
        if kind == Kind.TRANSFER:
            return self._transfer(profile_id, position, record)
        if kind == Kind.SPLIT:
            return self._split(profile_id, position, record["identifiers"])
        if kind == Kind.REDIRECT:
            return self._redirect(profile_id, position, record["mergedInto"])
        raise ValueError(f"unknown record kind {kind!r} on resolved")

    def flush(self) -> list[OutRecord]:
        """A ``profiles`` record for every profile changed since the last flush (debounce)."""
        now = self._now()
        records = []
        for profile_id in self._dirty:
            profile = self._live[profile_id]
            profile.version = next_version(profile.version, profile.position)
            state = profile.state
            records.append(
                profile_record(
                    profile_id, self._stamp(profile_id, profile.version, profile.position),
                    _by_rank(profile.identifiers), state.traits(), state.attributes(now), state.to_snapshot(),
                    profile.cause,
                )
            )  # fmt: skip
            profile.cause = None
        self._dirty.clear()
        return records

    def load(self, value: Mapping[str, Any]) -> None:
        """Restore one id from its latest ``profiles`` record (restart, rebalance). An ``erased``
        record (or a tombstone, see ``load_erased``) is no profile: the id stays erased."""
        profile_id: str = value["profileId"]
        if value.get("erased"):
            self.load_erased(profile_id, int(value.get("version") or 0))
            return
        self._erased.pop(profile_id, None)
        if value["rebuiltAt"] is not None:
            self._rebuilt_at[profile_id] = value["rebuiltAt"]
        version, position = value["version"], value["position"]
        if value["live"]:
            state = ProfileState.from_snapshot(value["snapshot"], self._policy)
            self._live[profile_id] = FoldedProfile(state, set(value["identifiers"]), version, position)
            self._former.pop(profile_id, None)
        else:
            self._former[profile_id] = FormerProfile(value["mergedInto"], version, position)
            self._live.pop(profile_id, None)

    def load_erased(self, profile_id: str, version: int = 0) -> None:
        """The id's latest ``profiles`` record is a tombstone (or an ``erased`` record): no state."""
        self._live.pop(profile_id, None)
        self._former.pop(profile_id, None)
        self._rebuilt_at.pop(profile_id, None)
        self._dirty.pop(profile_id, None)
        self._erased[profile_id] = max(version, self._erased.get(profile_id, 0))

    def forget(self, keep: Callable[[str], bool]) -> int:
        """Drop the state of every id for which ``keep(id)`` is false (its partition moved away; the
        new owner loads it from ``profiles``). Returns how many ids were dropped."""
        dropped = [pid for pid in (*self._live, *self._former, *self._erased) if not keep(pid)]
        for profile_id in dropped:
            self._live.pop(profile_id, None)
            self._former.pop(profile_id, None)
            self._erased.pop(profile_id, None)
            self._rebuilt_at.pop(profile_id, None)
            self._dirty.pop(profile_id, None)
        return len(dropped)

    # -- record kinds -------------------------------------------------------------------------------

    def _event(self, profile_id: str, position: int, record: Mapping[str, Any]) -> list[OutRecord]:
        onward = self._forwarded(profile_id, record)
        if onward is not None:
            return [onward]
        profile = self._profile(profile_id)
        event = record["event"]
        changed = profile.state.apply(event)
        if changed:
            received, message_id = event.get("receivedAt"), event.get("messageId")
            if isinstance(received, str) and (profile.cause is None or received > profile.cause[0]):
                profile.cause = (received, message_id)
        self._touch(profile_id, profile, position, record["identifiers"], changed)
        return []

    def _merge(self, absorbed: str, position: int, survivor: str) -> list[OutRecord]:
        records = []
        profile = self._live.get(absorbed)
        if profile is not None:
            snapshot = profile.state.to_snapshot()
            records.append(
                transfer_record(survivor, absorbed, position, _by_rank(profile.identifiers), snapshot)
            )
        records.append(self._retire(absorbed, survivor, position))
        return records

    def _transfer(self, profile_id: str, position: int, record: Mapping[str, Any]) -> list[OutRecord]:
        onward = self._forwarded(profile_id, record)
        if onward is not None:
            return [onward]
        profile = self._profile(profile_id)
        profile.state.merge(ProfileState.from_snapshot(record["snapshot"], self._policy))
        self._touch(profile_id, profile, position, record["identifiers"], changed=True)
        return []

    def _split(self, profile_id: str, position: int, members: Sequence[str]) -> list[OutRecord]:
        if self._events_of is None:
            raise RuntimeError("a split record reached a fold stage without an event store (events_of)")
        if self._rebuilt_at.get(profile_id, -1) >= position:
            return []  # a replayed split (graph restart): rebuilding again would lose later transfers
        keep = set(members)
        state, folded = ProfileState(self._policy), False
        for event in self._events_of(members):
            if anchor_of(event, self._rules) in keep:
                try:
                    state.apply(event)
                except UnfoldableEventError:
                    continue  # the graph stage sent it to ``unresolved``: it was never folded
                folded = True
        self._rebuilt_at[profile_id] = position
        if not folded:
            return [self._retire(profile_id, None, position)]
        version = self._last_version(profile_id)
        self._former.pop(profile_id, None)
        self._live[profile_id] = FoldedProfile(state, keep, version, position)
        self._dirty[profile_id] = None
        return []

    def _erase(self, profile_id: str, position: int) -> list[OutRecord]:
        """Forget the id and publish its ``erased`` record and a tombstone (also when repeated: the
        privacy coordinator waits for what follows them)."""
        reached = max(position, self._live[profile_id].position if profile_id in self._live else -1)
        version = next_version(self._last_version(profile_id), reached)
        self.load_erased(profile_id, version)
        stamp = ProfileStamp(version, reached, None)
        return [erased_profile_record(profile_id, stamp), profile_tombstone(profile_id)]

    def _redirect(self, absorbed: str, position: int, survivor: str) -> list[OutRecord]:
        self._rebuilt_at[absorbed] = position
        return [self._retire(absorbed, survivor, position)]

    # -- helpers ----------------------------------------------------------------------------------

    def _forwarded(self, profile_id: str, record: Mapping[str, Any]) -> OutRecord | None:
        """The record sent on to the survivor when ``profile_id`` was merged away (or redirected)
        here, stamped with the position from which it points there; None when it names a profile."""
        former = self._former.get(profile_id)
        if former is None or former.merged_into is None:
            return None
        return forwarded(record, former.merged_into, former.position)

    def _profile(self, profile_id: str) -> FoldedProfile:
        profile = self._live.get(profile_id)
        if profile is None:
            former = self._former.pop(profile_id, None)
            version = 0 if former is None else former.version
            profile = self._live[profile_id] = FoldedProfile(ProfileState(self._policy), set(), version)
        return profile

    def _touch(
        self,
        profile_id: str,
        profile: FoldedProfile,
        position: int,
        identifiers: Iterable[str],
        changed: bool,
    ) -> None:
        known = len(profile.identifiers)
        profile.identifiers.update(identifiers)
        if changed or len(profile.identifiers) != known or position > profile.position:
            profile.position = max(profile.position, position)
            self._dirty[profile_id] = None

    def _last_version(self, profile_id: str) -> int:
        profile = self._live.get(profile_id)
        if profile is not None:
            return profile.version
        former = self._former.get(profile_id)
        return self._erased.get(profile_id, 0) if former is None else former.version

    def _retire(self, profile_id: str, merged_into: str | None, position: int) -> OutRecord:
        """Drop the id's state (its events now live elsewhere) and publish where it went."""
        reached = self._live[profile_id].position if profile_id in self._live else -1
        if profile_id in self._former:
            reached = max(reached, self._former[profile_id].position)
        reached = max(reached, position)
        version = next_version(self._last_version(profile_id), reached)
        self._live.pop(profile_id, None)
        self._dirty.pop(profile_id, None)
        self._former[profile_id] = FormerProfile(merged_into, version, reached)
        return retired_profile_record(profile_id, self._stamp(profile_id, version, reached), merged_into)

    def _stamp(self, profile_id: str, version: int, position: int) -> ProfileStamp:
        return ProfileStamp(version, position, self._rebuilt_at.get(profile_id))
