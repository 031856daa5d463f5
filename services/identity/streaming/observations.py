"""What arrives on the observations topic, and how the graph stage takes it (pure).

An observation is a canonical event, or an operator correction the admin API sent through the
same topic so that it takes its place in the one total order of identity decisions:

* ``{"kind": "split", "a": KEY, "b": KEY, "reason": ...}``: remove the links between two identifiers;
* ``{"kind": "detach", "identifier": KEY, "reason": ...}``: cut one identifier loose;
* ``{"kind": "erase", "requestId": ..., "profileIds": [...], "suppress": [HASH, ...]}``: forget a
  person (GDPR Art. 17, from the privacy coordinator): every profile id they ever had, and the
  keyed hashes (``services/privacy/hashing.py``) of their identifiers. It names no identifier.

Keys are identifier keys (``email:anna@example.de``). The request's ``requestId``,
``requestedBy`` and ``requestedAt`` travel on to the correction's audit record.

A warehouse replay also meets positions that are no decision any more (``{"kind": "void"}``: an
erasure's audit row, which names nobody, or the row the coordinator left where it deleted an
erased person's event): they only use up their position.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from services.identity.domain import Identifier
from services.identity.streaming.fold_stage import FoldProcessor
from services.identity.streaming.graph_stage import GraphProcessor
from services.identity.streaming.records import OutRecord, Topic, unresolved_record

CORRECTIONS = ("split", "detach", "erase")
VOID = "void"
REQUEST_FIELDS = ("requestId", "requestedBy", "requestedAt")
INVALID_CORRECTION = "invalid_correction"


def is_correction(record: Mapping[str, Any]) -> bool:
    return record.get("kind") in CORRECTIONS


def apply_observation(
    stage: GraphProcessor, record: Mapping[str, Any], position: int | None = None
) -> list[OutRecord]:
    """The graph stage's records for one observation (at ``position``, else the stage's next one)."""
    if not is_correction(record):
        if record.get("kind") == VOID:
            stage.skip(position)
            return []
        return stage.process(record, position=position)
    if record["kind"] == "erase":
        return _erase(stage, record, position)
    reason = str(record.get("reason") or "")
    try:
        if record["kind"] == "split":
            a, b = Identifier.parse(record["a"]), Identifier.parse(record["b"])
            records = stage.split(a, b, reason, position=position)
        else:
            records = stage.detach(Identifier.parse(record["identifier"]), reason, position=position)
    except (KeyError, ValueError, TypeError) as exc:
        # The admin API validates requests; a record that still cannot be read must not stop the
        # graph. It keeps its position, so the order stays the same on every replay.
        return stage_skip(stage, record, position, f"{type(exc).__name__}: {exc}")
    request = {name: record[name] for name in REQUEST_FIELDS if name in record}
    if request:
        records = [
            OutRecord(r.topic, r.key, {**r.value, **request}) if r.topic is Topic.SPLITS else r
            for r in records
        ]
    return records


def _erase(stage: GraphProcessor, record: Mapping[str, Any], position: int | None) -> list[OutRecord]:
    request_id, profile_ids, suppress = (
        record.get("requestId"), record.get("profileIds"), record.get("suppress"),
    )  # fmt: skip
    if not (
        isinstance(request_id, str)
        and isinstance(profile_ids, list)
        and isinstance(suppress, list)
        and all(isinstance(v, str) for v in (*profile_ids, *suppress))
    ):
        # Keep nothing of an unreadable erase record but its request id: it may hold hashes and ids.
        kept = {"kind": "erase", "requestId": request_id if isinstance(request_id, str) else ""}
        return stage_skip(stage, kept, position, "erase record without requestId, profileIds or suppress")
    records = stage.erase(request_id, profile_ids, suppress, position=position)
    request = {name: record[name] for name in REQUEST_FIELDS if name in record}
    return [
        OutRecord(r.topic, r.key, {**r.value, **request}) if r.topic is Topic.SPLITS else r for r in records
    ]


def stage_skip(
    stage: GraphProcessor, record: Mapping[str, Any], position: int | None, detail: str
) -> list[OutRecord]:
    at = stage.skip(position)
    return [unresolved_record(record, at, INVALID_CORRECTION, detail)]


def fold_all(fold: FoldProcessor, records: Iterable[OutRecord]) -> list[OutRecord]:
    """Feed the graph's ``resolved`` records through one fold stage that owns every partition, until
    nothing is left in flight (forwards and transfers included); returns the other records."""
    pending = deque(records)
    out: list[OutRecord] = []
    while pending:
        record = pending.popleft()
        if record.topic is Topic.RESOLVED:
            pending.extend(fold.process(record.value))
        else:
            out.append(record)
    return out
