"""Export (Art. 15): everything the platform holds about one person, as one JSON document.

The export reads every table with the same rule the erasure deletes by (``tables.py``), so what is
exported is exactly what an erasure would remove: the profile (every stored version), identities,
events, consents, segment memberships and their history, merge history and corrections, orders and
order lines, conversations, complaints, email engagement, daily activity and customer value.
Aggregate-state tables are read through their documented views.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from services.core.warehouse.port import Warehouse
from services.privacy.subject import Subject
from services.privacy.tables import RULES

FORMAT_VERSION = 1
# Columns holding JSON text: exported as JSON values, not strings.
_JSON_COLUMNS = frozenset({"properties", "traits", "context", "attributes", "snapshot", "removed_links"})
# Lineage of the Kafka sinks: where a row came from, nothing about the person.
_LINEAGE = frozenset({"kafka_cluster", "kafka_partition", "kafka_offset", "kafka_topic"})
# Aggregate states are read through the views that finalise them.
_READ_THROUGH = {
    "conversations_state": ("conversations", "conversation_id IN {conversations:Array(String)}"),
    "complaints_state": ("complaints", "complaint_id IN {complaints:Array(String)}"),
}
# Sections in the order a reader expects them; any other ruled table follows under its own name.
_SECTIONS = {
    "profiles": "profile",
    "identities": "identities",
    "events": "events",
    "consents": "consents",
    "segment_membership": "segment_memberships",
    "segment_membership_log": "segment_membership_history",
    "identity_merges": "merge_history",
}


def _value(column: str, value: Any) -> Any:
    if column in _JSON_COLUMNS and isinstance(value, str) and value:
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _rows(warehouse: Warehouse, table: str, where: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    rows = warehouse.query_dicts(f"SELECT * FROM {warehouse.database}.{table} WHERE {where}", parameters)
    return [{k: _value(k, v) for k, v in row.items() if k not in _LINEAGE} for row in rows]


def export_subject(warehouse: Warehouse, subject: Subject) -> dict[str, Any]:
    """The export document (see docs/privacy.md for its shape)."""
    parameters = subject.parameters()
    data: dict[str, Any] = {}
    for rule in RULES:
        table, where = _READ_THROUGH.get(rule.table, (rule.table, rule.where))
        data[_SECTIONS.get(rule.table, table)] = _rows(warehouse, table, where, parameters)
    ordered = {name: data.pop(name) for name in _SECTIONS.values() if name in data}
    return {
        "format_version": FORMAT_VERSION,
        "generated_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "subject": {
            "identifier": subject.named.key,
            "found": subject.found,
            "profile_ids": list(subject.profile_ids),
            "current_profile_id": subject.current_profile_id,
            "identifiers": list(subject.keys),
        },
        **ordered,
        **dict(sorted(data.items())),
    }


def export_json(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
