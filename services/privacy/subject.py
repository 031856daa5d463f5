"""The data subject of a privacy request: every profile id and identifier of one person.

A person named by one identifier (``email:anna@example.de``) is found through the identity tables:

1. the identifier's profile (``identities``, newest version; else a profile row that lists it);
2. the current profile through ``profile_redirects`` (one hop: chains are stored collapsed), and
   every profile id merged into it (redirects pointing at it, profile rows whose newest version
   is ``merged_into`` it);
3. every identifier whose newest assignment is one of those ids, and those the profile rows list;
4. the ids of the person's orders, conversations and complaints, which some aggregate tables are
   keyed by.

Identifiers that a split moved to another profile belong to another person now and are left out.
Parameters are bound server-side: no identifier appears in SQL text or logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.core.warehouse.port import Warehouse
from services.identity.domain.identifiers import Identifier

PROFILE_OF_IDENTIFIER = """
SELECT argMax(profile_id, version) FROM {db}.identities
WHERE identifier = {key:String} GROUP BY identifier"""

PROFILE_LISTING = """
SELECT profile_id FROM {db}.profiles WHERE has(identifiers, {key:String})
ORDER BY version DESC LIMIT 1"""

SURVIVOR = "SELECT survivor FROM {db}.profile_redirects FINAL WHERE absorbed = {id:String} AND survivor != ''"

# Current state only: a split can revive an absorbed id as another person's profile (its redirect
# then points at itself), so merge records alone do not prove an id is still this person's.
ABSORBED = """
SELECT absorbed FROM {db}.profile_redirects FINAL
WHERE survivor IN {ids:Array(String)} AND absorbed != survivor
UNION DISTINCT
SELECT profile_id FROM {db}.profiles GROUP BY profile_id
HAVING argMax(merged_into, version) IN {ids:Array(String)}"""

IDENTIFIERS = """
SELECT identifier FROM (
    SELECT identifier, argMax(profile_id, version) AS current FROM {db}.identities
    WHERE identifier IN (SELECT identifier FROM {db}.identities WHERE profile_id IN {ids:Array(String)})
    GROUP BY identifier HAVING current IN {ids:Array(String)}
)
UNION DISTINCT
SELECT arrayJoin(argMax(identifiers, version)) FROM {db}.profiles
WHERE profile_id IN {ids:Array(String)} GROUP BY profile_id"""

ORDERS = """
SELECT DISTINCT order_id FROM {db}.order_events
WHERE (profile_id IN {ids:Array(String)} OR anchor IN {keys:Array(String)}) AND order_id != ''"""

CONVERSATIONS = "SELECT conversation_id FROM {db}.conversations WHERE profile_id IN {ids:Array(String)}"

COMPLAINTS = "SELECT complaint_id FROM {db}.complaints WHERE profile_id IN {ids:Array(String)}"

MAX_ROUNDS = 10


@dataclass(frozen=True, slots=True)
class Subject:
    """One person: ``profile_ids`` (current first), identifier ``keys`` (the one asked for first)."""

    named: Identifier
    profile_ids: tuple[str, ...]
    keys: tuple[str, ...]
    orders: tuple[str, ...] = ()
    conversations: tuple[str, ...] = ()
    complaints: tuple[str, ...] = ()
    found: bool = field(default=True)

    @property
    def current_profile_id(self) -> str | None:
        return self.profile_ids[0] if self.profile_ids else None

    def parameters(self) -> dict[str, list[str]]:
        """The bound parameters of the erasure rules (services/privacy/tables.py)."""
        return {
            "pids": list(self.profile_ids),
            "keys": list(self.keys),
            "orders": list(self.orders),
            "conversations": list(self.conversations),
            "complaints": list(self.complaints),
        }


def _column(warehouse: Warehouse, sql: str, parameters: dict[str, object]) -> list[str]:
    rows = warehouse.query(sql.replace("{db}", warehouse.database), parameters)
    return [str(row[0]) for row in rows if row and row[0]]


def _current(warehouse: Warehouse, profile_id: str) -> str:
    survivor = _column(warehouse, SURVIVOR, {"id": profile_id})
    return survivor[0] if survivor else profile_id


def resolve_subject(warehouse: Warehouse, identifier: Identifier) -> Subject:
    """Everything that names the person holding ``identifier``; ``found`` False when nobody does."""
    key = identifier.key
    first = _column(warehouse, PROFILE_OF_IDENTIFIER, {"key": key}) or _column(
        warehouse, PROFILE_LISTING, {"key": key}
    )
    if not first:
        return Subject(identifier, (), (key,), found=False)
    current = _current(warehouse, first[0])
    ids: dict[str, None] = {current: None}
    frontier = [current]
    for _ in range(MAX_ROUNDS):  # merged-into-merged chains, normally collapsed to one hop
        found = [pid for pid in _column(warehouse, ABSORBED, {"ids": frontier}) if pid not in ids]
        if not found:
            break
        ids.update(dict.fromkeys(found))
        frontier = found
    profile_ids = list(ids)
    keys: dict[str, None] = {key: None}
    keys.update(dict.fromkeys(sorted(_column(warehouse, IDENTIFIERS, {"ids": profile_ids}))))
    key_list = list(keys)
    return Subject(
        identifier,
        tuple(profile_ids),
        tuple(key_list),
        orders=tuple(sorted(_column(warehouse, ORDERS, {"ids": profile_ids, "keys": key_list}))),
        conversations=tuple(sorted(_column(warehouse, CONVERSATIONS, {"ids": profile_ids}))),
        complaints=tuple(sorted(_column(warehouse, COMPLAINTS, {"ids": profile_ids}))),
    )
