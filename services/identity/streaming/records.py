"""What the streaming identity stages emit: ``OutRecord`` and the JSON value of every record kind.

Values are plain dicts of JSON types (camelCase, ``schemaVersion`` 1), so the faust adapter only
serialises them and moves bytes. ``position`` is the graph stage's position in the observations
topic (its offset there): the one total order of identity decisions. It travels on every record
derived from a decision, which is how the fold stage recognises records overtaken by a split.

A profile id that stops naming a profile (merged away, or left without events by a split) gets a
``profiles`` record with ``live: false`` and its next version, so the compacted topic and a
versioned table (ReplacingMergeTree with ``NOT live`` as is_deleted) never see a version go
backwards, and a merged id keeps saying where it went (``mergedInto``). Only an erasure (GDPR
Art. 17) ends an id with a Kafka tombstone (``OutRecord.tombstone``: the value is null), right
after an ``erased`` record that holds no personal data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from enum import StrEnum
from typing import Any

from services.identity.domain import Link, Merge, Provenance, RefusedLink, SplitResult

SCHEMA_VERSION = 1

Value = dict[str, Any]


class Topic(StrEnum):
    """Logical outputs; the adapter maps them to Kafka topics or warehouse tables."""

    RESOLVED = "resolved"
    """``cdp.identity.resolved`` (internal, N partitions, keyed by profile id): events and control."""
    MERGES = "merges"
    """``cdp.identity.merges`` (public), keyed by the absorbed profile id."""
    PROFILES = "profiles"
    """``cdp.profiles`` (public, compacted), keyed by profile id."""
    REFUSALS = "identity_refusals"
    """Links the safeguards refused (warehouse table ``identity_refusals``), keyed by message id."""
    SPLITS = "identity_splits"
    """Operator corrections and their outcome (warehouse audit table), keyed by the profile id."""
    UNRESOLVED = "unresolved"
    """Events that name no person (warehouse ``events`` with an empty profile id), by message id."""
    REDIRECTS = "redirects"
    """Where an absorbed profile id points now (warehouse ``profile_redirects``), keyed by that id.
    Chains are already followed: every id absorbed into a profile gets a record on each merge."""


class Kind(StrEnum):
    """The ``kind`` of a record on ``resolved``; every such record also has profileId and position."""

    EVENT = "event"
    MERGE = "merge"
    TRANSFER = "transfer"
    SPLIT = "split"
    REDIRECT = "redirect"
    ERASE = "erase"


@dataclass(frozen=True, slots=True)
class OutRecord:
    topic: Topic
    key: str
    value: Value
    tombstone: bool = False
    """A Kafka tombstone: sent with a null value (``value`` is then empty and not sent)."""


def _time(provenance: Provenance) -> str:
    return provenance.timestamp.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _provenance(provenance: Provenance) -> Value:
    return {
        "rule": provenance.rule.value,
        "messageId": provenance.message_id,
        "event": provenance.event,
        "timestamp": _time(provenance),
    }


def _link(link: Link) -> Value:
    return {"linkA": link.a.key, "linkB": link.b.key, **_provenance(link.provenance)}


# -- graph stage ------------------------------------------------------------------------------------


def event_record(
    profile_id: str, position: int, identifiers: list[str], event: Mapping[str, Any]
) -> OutRecord:
    value = {
        "schemaVersion": SCHEMA_VERSION,
        "kind": Kind.EVENT.value,
        "profileId": profile_id,
        "position": position,
        "identifiers": identifiers,
        "event": dict(event),
    }
    return OutRecord(Topic.RESOLVED, profile_id, value)


def merge_records(merge: Merge, position: int) -> tuple[OutRecord, OutRecord]:
    """The control record for the absorbed profile's partition, and the public merge record."""
    fields = {
        "survivor": merge.survivor,
        "absorbed": merge.absorbed,
        "position": position,
        **_link(merge.link),
    }
    control = {
        "schemaVersion": SCHEMA_VERSION,
        "kind": Kind.MERGE.value,
        "profileId": merge.absorbed,
        **fields,
    }
    public = {"schemaVersion": SCHEMA_VERSION, **fields}
    return OutRecord(Topic.RESOLVED, merge.absorbed, control), OutRecord(Topic.MERGES, merge.absorbed, public)


def refusal_record(refused: RefusedLink, position: int) -> OutRecord:
    value = {
        "schemaVersion": SCHEMA_VERSION,
        "a": refused.a.key,
        "b": refused.b.key,
        "reason": refused.reason.value,
        "aProfile": refused.a_profile,
        "bProfile": refused.b_profile,
        "position": position,
        **_provenance(refused.provenance),
    }
    return OutRecord(Topic.REFUSALS, refused.provenance.message_id, value)


def unresolved_record(event: Mapping[str, Any], position: int, reason: str, detail: str = "") -> OutRecord:
    message_id = event.get("messageId")
    key = message_id if isinstance(message_id, str) else ""
    value = {
        "schemaVersion": SCHEMA_VERSION,
        "reason": reason,
        "detail": detail,
        "position": position,
        "event": dict(event),
    }
    return OutRecord(Topic.UNRESOLVED, key, value)


def correction_record(
    action: str, subject: str, reason: str, result: SplitResult, position: int
) -> OutRecord:
    """The audit record of a split or detach, whatever its outcome."""
    value = {
        "schemaVersion": SCHEMA_VERSION,
        "action": action,
        "subject": subject,
        "reason": reason,
        "status": result.status.value,
        "profileId": result.profile_id,
        "profiles": list(result.profiles),
        "removedLinks": [_link(link) for link in result.removed_links],
        "position": position,
    }
    return OutRecord(Topic.SPLITS, result.profile_id or subject, value)


def split_record(
    profile_id: str, position: int, identifiers: list[str], split_from: str, unstored: int = 0
) -> OutRecord:
    """Rebuild ``profile_id`` from the stored events anchored in ``identifiers`` (its whole part).
    ``unstored``: positions since the epoch that leave no row in the warehouse (events of erased
    persons, dropped): the rebuild's wait for the events sink must not count on them."""
    value = {
        "schemaVersion": SCHEMA_VERSION,
        "kind": Kind.SPLIT.value,
        "profileId": profile_id,
        "position": position,
        "identifiers": identifiers,
        "splitFrom": split_from,
    }
    if unstored:
        value["unstored"] = unstored
    return OutRecord(Topic.RESOLVED, profile_id, value)


ERASE_REASON = "erasure request"


def erase_correction_record(request_id: str, status: str, position: int) -> OutRecord:
    """The audit record of an erasure (``identity_corrections``): it names no identifier and no
    profile, only the request."""
    value = {
        "schemaVersion": SCHEMA_VERSION,
        "action": "erase",
        "subject": request_id,
        "reason": ERASE_REASON,
        "status": status,
        "profileId": "",
        "profiles": [],
        "removedLinks": [],
        "position": position,
    }
    return OutRecord(Topic.SPLITS, request_id, value)


def erase_record(profile_id: str, position: int, request_id: str) -> OutRecord:
    """Tell the fold partition of ``profile_id`` to forget it (GDPR erasure)."""
    value = {
        "schemaVersion": SCHEMA_VERSION,
        "kind": Kind.ERASE.value,
        "profileId": profile_id,
        "position": position,
        "requestId": request_id,
    }
    return OutRecord(Topic.RESOLVED, profile_id, value)


def redirect_record(absorbed: str, survivor: str, position: int) -> OutRecord:
    """After a split: the absorbed id ``absorbed`` now belongs to ``survivor``."""
    value = {
        "schemaVersion": SCHEMA_VERSION,
        "kind": Kind.REDIRECT.value,
        "profileId": absorbed,
        "position": position,
        "mergedInto": survivor,
    }
    return OutRecord(Topic.RESOLVED, absorbed, value)


def profile_redirect_record(absorbed: str, survivor: str, position: int) -> OutRecord:
    """``absorbed`` now belongs to ``survivor`` (``absorbed == survivor``: it names a profile again)."""
    value = {
        "schemaVersion": SCHEMA_VERSION,
        "absorbed": absorbed,
        "survivor": survivor,
        "version": position,
        "position": position,
    }
    return OutRecord(Topic.REDIRECTS, absorbed, value)


# -- fold stage -------------------------------------------------------------------------------------


def forwarded(record: Mapping[str, Any], survivor: str, at: int) -> OutRecord:
    """An event or transfer that reached an absorbed id, sent on to its survivor. ``forwardedFrom``
    lets a sink reading ``resolved`` skip copies of events it already stored (it stays the last
    field). ``at`` (``forwardedAt``): the position from which the absorbed id points at the survivor,
    which tells the survivor whether its last split rebuild already covered the record."""
    value = {**record, "profileId": survivor, "forwardedAt": at, "forwardedFrom": record["profileId"]}
    return OutRecord(Topic.RESOLVED, survivor, value)


def transfer_record(
    survivor: str, absorbed: str, position: int, identifiers: list[str], snapshot: Value
) -> OutRecord:
    value = {
        "schemaVersion": SCHEMA_VERSION,
        "kind": Kind.TRANSFER.value,
        "profileId": survivor,
        "from": absorbed,
        "position": position,
        "identifiers": identifiers,
        "snapshot": snapshot,
    }
    return OutRecord(Topic.RESOLVED, survivor, value)


@dataclass(frozen=True, slots=True)
class ProfileStamp:
    """What orders a profile's records: see ``fold_stage`` for how each number is kept."""

    version: int
    position: int
    rebuilt_at: int | None


def _stamped(profile_id: str, stamp: ProfileStamp) -> Value:
    return {
        "schemaVersion": SCHEMA_VERSION,
        "profileId": profile_id,
        "version": stamp.version,
        "position": stamp.position,
        "rebuiltAt": stamp.rebuilt_at,
    }


def profile_record(
    profile_id: str,
    stamp: ProfileStamp,
    identifiers: Iterable[str],
    traits: Value,
    attributes: Value,
    snapshot: Value,
    cause: tuple[str, str] | None = None,
) -> OutRecord:
    """``cause``: (receivedAt, messageId) of the latest-received event behind this version, so
    segment transitions can name the event that caused them and measure their latency."""
    value = {
        **_stamped(profile_id, stamp),
        "live": True,
        "mergedInto": None,
        "identifiers": list(identifiers),
        "traits": traits,
        "attributes": attributes,
        "snapshot": snapshot,
    }
    if cause is not None:
        value["cause"] = {"receivedAt": cause[0], "messageId": cause[1]}
    return OutRecord(Topic.PROFILES, profile_id, value)


def erased_profile_record(profile_id: str, stamp: ProfileStamp) -> OutRecord:
    """The id's last record before its tombstone: it was erased. No personal data: no identifiers,
    traits, attributes or state. ``erased`` comes right after the id, so a sink can tell the record
    by its first bytes (``is_erased_profile``)."""
    value = {
        "schemaVersion": SCHEMA_VERSION,
        "profileId": profile_id,
        "erased": True,
        "live": False,
        "version": stamp.version,
        "position": stamp.position,
        "rebuiltAt": None,
        "mergedInto": None,
        "identifiers": [],
        "traits": {},
        "attributes": {},
        "snapshot": None,
    }
    return OutRecord(Topic.PROFILES, profile_id, value)


def profile_tombstone(profile_id: str) -> OutRecord:
    return OutRecord(Topic.PROFILES, profile_id, {}, tombstone=True)


_ERASED_MARK = b',"erased":true,'


def is_erased_profile(value: bytes | None) -> bool:
    """A ``cdp.profiles`` value that is no profile: a tombstone (null) or an ``erased`` record.
    Checked on the first bytes only: a live record's traits come long after its first 96 bytes."""
    return value is None or value.find(_ERASED_MARK, 0, 96) >= 0


_POSITION = re.compile(rb',"position":(-?\d+)')


def stored_position(value: bytes) -> int | None:
    """The graph position of an ``event`` or ``unresolved`` record, read from its bytes. Every field
    before ``position`` in those records is a scalar, and a JSON string cannot hold an unescaped
    quote, so the first match is the record's own position."""
    found = _POSITION.search(value, 0, 512)
    return int(found.group(1)) if found else None


_MESSAGE_ID = re.compile(rb'"messageId":"((?:[^"\\]|\\.)*)"')


def stored_message_id(value: bytes) -> bytes | None:
    """The messageId of the event in an ``event`` or ``unresolved`` record, read from its bytes (as
    JSON text). The fields before the event are scalars and identifier keys, so the first match is
    the event's."""
    found = _MESSAGE_ID.search(value)
    return found.group(1) if found else None


def is_profile_record(value: Any) -> bool:
    """A decoded ``cdp.profiles`` value that names a profile and its version: what every reader of
    the topic relies on. Anything else was not written by the identity worker."""
    if not isinstance(value, dict):
        return False
    profile_id, version = value.get("profileId"), value.get("version")
    return isinstance(profile_id, str) and bool(profile_id) and type(version) is int


def retired_profile_record(profile_id: str, stamp: ProfileStamp, merged_into: str | None) -> OutRecord:
    """The id names no profile now: merged into ``merged_into``, or (None) left without events."""
    value = {
        **_stamped(profile_id, stamp),
        "live": False,
        "mergedInto": merged_into,
        "identifiers": [],
        "traits": {},
        "attributes": {},
        "snapshot": None,
    }
    return OutRecord(Topic.PROFILES, profile_id, value)
