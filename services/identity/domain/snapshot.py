"""The identity graph as plain rows, for restarts and for the warehouse (``identities`` etc.).

Links are the source of truth; the other rows let a restore check itself (every identifier must
land in the profile it was in) and keep absorbed profile ids resolvable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict


class IdentifierRow(TypedDict):
    identifier: str
    profile_id: str


class LinkRow(TypedDict):
    a: str
    b: str
    message_id: str
    event: str
    timestamp: str
    rule: str


class RedirectRow(TypedDict):
    absorbed: str
    survivor: str


class ForbiddenPairRow(TypedDict):
    a: str
    b: str
    reason: str


class DetachedRow(TypedDict):
    identifier: str
    reason: str


@dataclass(frozen=True, slots=True)
class GraphSnapshot:
    """Identifier keys (``email:anna@example.de``), ISO-8601 timestamps: JSON- and SQL-ready."""

    identifiers: tuple[IdentifierRow, ...]
    links: tuple[LinkRow, ...]
    redirects: tuple[RedirectRow, ...]
    forbidden_pairs: tuple[ForbiddenPairRow, ...]
    detached: tuple[DetachedRow, ...]
