"""What the identity graph reports back: values for every expected outcome, never exceptions."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from services.identity.domain.identifiers import Identifier, IdType
from services.identity.domain.provenance import LinkRule, Provenance


class RefusalReason(StrEnum):
    CUSTOMER_ID_CONFLICT = "customer_id_conflict"
    """Both sides already hold a customer id: two accounts are two people."""
    SPLIT_BY_OPERATOR = "split_by_operator"
    """An operator removed exactly this link; replaying the old event must not bring it back."""
    DETACHED_BY_OPERATOR = "detached_by_operator"
    """An operator detached one of the identifiers (a shared device): it links nothing any more."""
    LIMIT_EMAIL = "limit:email"
    LIMIT_PHONE = "limit:phone"
    LIMIT_EMAIL_RECIPIENT_ID = "limit:email_recipient_id"
    LIMIT_CHAT_HANDLE = "limit:chat_handle"
    LIMIT_ANONYMOUS_ID = "limit:anonymous_id"

    @classmethod
    def limit(cls, id_type: IdType) -> RefusalReason:
        return cls(f"limit:{id_type.value}")


@dataclass(frozen=True, slots=True)
class Link:
    """A recorded link: the evidence that ``a`` and ``b`` are one person."""

    a: Identifier
    b: Identifier
    provenance: Provenance


@dataclass(frozen=True, slots=True)
class Merge:
    """Profile ``absorbed`` became part of ``survivor`` through ``link``; ``absorbed`` redirects."""

    survivor: str
    absorbed: str
    link: Link

    @property
    def provenance(self) -> Provenance:
        return self.link.provenance

    @property
    def rule(self) -> LinkRule:
        return self.link.provenance.rule


@dataclass(frozen=True, slots=True)
class RefusedLink:
    """A link an event asked for and the safeguards refused. Nothing was changed."""

    a: Identifier
    b: Identifier
    reason: RefusalReason
    provenance: Provenance
    a_profile: str
    b_profile: str


@dataclass(frozen=True, slots=True)
class ObserveResult:
    """The outcome of one event. ``profile_id`` is None only when the event had no identifier."""

    profile_id: str | None
    new_identifiers: tuple[Identifier, ...] = ()
    new_links: tuple[Link, ...] = ()
    merges: tuple[Merge, ...] = ()
    refused: tuple[RefusedLink, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.new_identifiers or self.new_links)


class SplitStatus(StrEnum):
    SPLIT = "split"
    """The profile fell apart: ``profiles`` lists every part, the one keeping the old id first."""
    STILL_CONNECTED = "still_connected"
    """Other recorded links still connect both sides; the profile is unchanged but for the link."""
    NOT_LINKED = "not_linked"
    """There was no such link (or identifier): nothing was removed."""


@dataclass(frozen=True, slots=True)
class SplitResult:
    status: SplitStatus
    profile_id: str | None
    """The id of the profile before the split (it stays with the part holding its best identifier)."""
    profiles: tuple[str, ...] = ()
    removed_links: tuple[Link, ...] = ()


@dataclass(frozen=True, slots=True)
class GraphStats:
    identifiers: int
    profiles: int
    links: int
    forbidden_pairs: int
    detached: int


@dataclass(frozen=True, slots=True)
class EraseResult:
    """What an erasure removed from the graph. It names no identifier, only counts and profile ids."""

    erased_profiles: tuple[str, ...] = ()
    """Every profile id the graph forgot: the erased profiles' current ids and every id absorbed
    into them (merged away earlier, or a former split part), sorted."""
    regrouped: tuple[SplitResult, ...] = ()
    """Profiles of other people that held an erased identifier (it was suppressed but linked
    elsewhere): they lost it and were regrouped from their remaining links, like a detach. Each
    lists its parts (``profiles``); ``removed_links`` is empty (those links named the person)."""
    identifiers: int = 0
    """Identifiers removed."""
    links: int = 0
    """Links removed."""

    @property
    def changed(self) -> bool:
        return self.identifiers > 0
