"""Profile 360: one person's profile, identities, merges and recent events, read from the warehouse.

Statements use the sort keys (``identities`` by identifier, ``profiles`` by profile id,
``events_by_anchor`` by anchor identifier), except two filters on unindexed columns:
``profile_redirects.survivor`` (a small table) and ``identities.profile_id`` (a column scan that
grows with the table; docs/admin-api.md has the numbers and the skip index that removes it).
A lookup runs five statements:

1. identifier -> profile id                      (``identities``, latest version)
2. profile id -> current id and absorbed ids      (``profile_redirects`` FINAL; twice for an absorbed id)
3. the profile row                                (``profiles``, newest version, as ``profiles_latest``)
4. the profile's identifiers                      (``identities``, latest version each)
5. the newest events anchored in the profile's identifiers (``events_by_anchor``)

``get`` runs 2-5. Parameters are bound server-side, so no identifier appears in SQL text or logs.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, TypedDict

from services.admin.profile_rows import (
    IdentityEntry,
    RecentEvent,
    identity_entries,
    json_object,
    recent_event,
    utc_text,
)
from services.core.warehouse.port import Warehouse
from services.identity.domain.identifiers import (
    DEFAULT_RULES,
    IdentifierRules,
    IdType,
    normalise_identifier,
)

RECENT_EVENTS = 50

# ``{db}`` is the warehouse database; ``{name:Type}`` are bound server-side.
PROFILE_OF_IDENTIFIER = """
SELECT argMax(profile_id, version) FROM {db}.identities
WHERE identifier = {key:String} GROUP BY identifier"""

# Redirects are stored with chains already followed: one hop reaches the survivor. FINAL keeps the
# newest version of each redirect before the filter on survivor applies (an undone or moved merge
# is a newer version pointing elsewhere).
REDIRECTS = """
SELECT absorbed, survivor FROM {db}.profile_redirects FINAL
WHERE absorbed = {id:String} OR survivor = {id:String}"""

# The segments the profile is a member of now (segment_membership, one row per segment, FINAL).
SEGMENTS = """
SELECT segment_id, activated, segment_version, updated_at FROM {db}.segment_membership FINAL
WHERE profile_id = {id:String} AND member ORDER BY segment_id"""

# Customer value of the latest finished refresh (docs/bi/customer_value.md), if it is a customer.
VALUE = """
SELECT attributes, computed_at FROM {db}.customer_value
WHERE refresh_id = (SELECT max(refresh_id) FROM {db}.analytics_refreshes FINAL WHERE status = 'done')
  AND profile_id = {id:String}"""

# The newest version of the profile, as ``profiles_latest`` defines it (ReplacingMergeTree(version),
# merged profiles excluded). argMax reads only these columns of the matching rows; the view's FINAL
# merges every column of the granule: 1.5x slower at 100k profiles, 4x at 1M (docs/admin-api.md).
PROFILE = """
SELECT argMax((traits, attributes, updated_at, live), version) FROM {db}.profiles
WHERE profile_id = {id:String} GROUP BY profile_id"""

# identities is ordered by identifier: the inner filter reads the profile_id column, the outer
# one keeps only identifiers whose newest row still points here (a split moves an identifier
# away with a newer row).
IDENTIFIERS = """
SELECT identifier, argMax(profile_id, version) AS current FROM {db}.identities
WHERE identifier IN (SELECT identifier FROM {db}.identities WHERE profile_id IN {ids:Array(String)})
GROUP BY identifier HAVING current IN {ids:Array(String)}"""

# An event belongs to the profile that holds its anchor (its best-ranked identifier) now, so merges
# and splits need no rewrite of stored events. Keep each event once.
RECENT = """
SELECT profile_id, timestamp, message_id, type, event, name, channel, source, properties
FROM {db}.events_by_anchor WHERE anchor IN {keys:Array(String)}
ORDER BY timestamp DESC, message_id DESC LIMIT 1 BY message_id LIMIT {limit:UInt32}"""


class InvalidIdentifierError(ValueError):
    """The value cannot identify anyone (unparsable phone, email without a domain, placeholder)."""


class Profile360(TypedDict):
    profile_id: str
    identities: list[IdentityEntry]
    traits: dict[str, Any]
    attributes: dict[str, Any]
    recent_events: list[RecentEvent]
    consents: list[dict[str, Any]]
    segments: list[dict[str, Any]]
    value: dict[str, Any] | None
    merged_from: list[str]
    updated_at: str | None


def why_invalid(id_type: IdType, rules: IdentifierRules) -> str:
    """Why ``normalise_identifier`` refused a value of this type, for an error message."""
    if id_type is IdType.EMAIL:
        return "not a usable email address (expected name@domain.tld)"
    if id_type is IdType.PHONE:
        return (
            "not a valid phone number (e.g. +4915112345678; a number without country code "
            f"is read as {rules.default_region})"
        )
    return "not a usable identifier (empty, a placeholder such as 'unknown', or too long)"


def current_consents(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    """The current consent per purpose, from the profile's ``consents`` attribute (folded from
    Subscribed, Double Opt-In Confirmed, Unsubscribed and Consent Updated; docs/privacy.md)."""
    consents = attributes.get("consents")
    if not isinstance(consents, dict):
        return []
    return [
        {"purpose": purpose, **state}
        for purpose, state in sorted(consents.items())
        if isinstance(state, dict)
    ]


class Retired(Enum):
    RETIRED = "retired"


RETIRED = Retired.RETIRED


class ProfileReader:
    """Reads unified profiles through the warehouse port (blocking: call it from a worker thread)."""

    def __init__(
        self,
        warehouse: Warehouse,
        *,
        rules: IdentifierRules = DEFAULT_RULES,
        recent_events: int = RECENT_EVENTS,
    ) -> None:
        self._warehouse = warehouse
        self._db = warehouse.database
        self._rules = rules
        self._recent_events = recent_events

    @property
    def rules(self) -> IdentifierRules:
        """How identifiers are normalised: corrections must normalise as lookups do."""
        return self._rules

    def lookup(self, id_type: IdType, raw_value: str) -> Profile360 | None:
        """The profile the identifier belongs to now; raises InvalidIdentifierError for junk values."""
        identifier = normalise_identifier(id_type, raw_value, self._rules)
        if identifier is None:
            why = why_invalid(id_type, self._rules)
            raise InvalidIdentifierError(f"{id_type} {raw_value!r} is {why}")
        rows = self._query(PROFILE_OF_IDENTIFIER, key=identifier.key)
        if not rows or not rows[0][0]:
            return None
        return self.get(str(rows[0][0]))

    def get(self, profile_id: str) -> Profile360 | None:
        """The profile with this id, or the one that absorbed it; None when nothing knows the id."""
        current, merged_from = self._current_id(profile_id)
        ids = [current, *merged_from]
        profile = self._profile_row(current)
        if profile is RETIRED:
            return None  # merged away without a redirect yet, or left empty by a split
        identities = self._identities(ids)
        if profile is None and not identities:
            return None
        traits, attributes, updated_at = profile or ("{}", "{}", None)
        attribute_values = json_object(attributes)
        return {
            "profile_id": current,
            "identities": identities,
            "traits": json_object(traits),
            "attributes": attribute_values,
            "recent_events": self._recent([f"{i['type']}:{i['value']}" for i in identities]),
            "consents": current_consents(attribute_values),
            "segments": self._segments(current),
            "value": self._value(current),
            "merged_from": merged_from,
            "updated_at": utc_text(updated_at) if isinstance(updated_at, datetime) else None,
        }

    def _segments(self, profile_id: str) -> list[dict[str, Any]]:
        return [
            {
                "segment_id": segment_id,
                "activated": bool(activated),
                "segment_version": int(version),
                "since": utc_text(since) if isinstance(since, datetime) else None,
            }
            for segment_id, activated, version, since in self._query(SEGMENTS, id=profile_id)
        ]

    def _value(self, profile_id: str) -> dict[str, Any] | None:
        rows = self._query(VALUE, id=profile_id)
        if not rows:
            return None
        attributes, computed_at = rows[0]
        computed = utc_text(computed_at) if isinstance(computed_at, datetime) else None
        return {**json_object(attributes), "computed_at": computed}

    def _current_id(self, profile_id: str) -> tuple[str, list[str]]:
        """The id the profile has now, and the ids it absorbed."""
        redirects = dict(self._query(REDIRECTS, id=profile_id))
        survivor = str(redirects.get(profile_id, ""))
        if survivor not in ("", profile_id):
            # An absorbed id (rare: an old id, or an identifier not yet rewritten): ask again.
            redirects = dict(self._query(REDIRECTS, id=survivor))
            profile_id = survivor
        merged_from = sorted(str(a) for a, s in redirects.items() if s == profile_id and a != profile_id)
        return profile_id, merged_from

    def _profile_row(self, profile_id: str) -> tuple[str, str, datetime | None] | Retired | None:
        """The newest snapshot; None when none was written yet, RETIRED when the id names no profile."""
        rows = self._query(PROFILE, id=profile_id)
        if not rows:
            return None
        traits, attributes, updated_at, live = rows[0][0]
        return (str(traits), str(attributes), updated_at) if live else RETIRED

    def _identities(self, ids: list[str]) -> list[IdentityEntry]:
        rows = self._query(IDENTIFIERS, ids=ids)
        return identity_entries(str(row[0]) for row in rows)

    def _recent(self, keys: list[str]) -> list[RecentEvent]:
        """Events anchored in the profile's identifiers (``profile_id``: the id each resolved to)."""
        if not keys:
            return []
        rows = self._query(RECENT, keys=keys, limit=self._recent_events)
        return [recent_event(row) for row in rows]

    def _query(self, sql: str, **parameters: Any) -> list[tuple[Any, ...]]:
        return self._warehouse.query(sql.replace("{db}", self._db), parameters)
