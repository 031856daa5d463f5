"""Provenance of the recorded links, kept as columns (one row per event that added a link).

Links far outnumber the fields worth keeping about their events, and most events that link
several identifiers share one row. Message ids sit back to back in one buffer, event names and
rules as small codes, timestamps as UTC microseconds.
"""

from __future__ import annotations

from array import array
from datetime import UTC, datetime, timedelta

from services.identity.domain.provenance import LinkRule, Provenance

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RULES: tuple[LinkRule, ...] = tuple(LinkRule)
_RULE_CODES: dict[LinkRule, int] = {rule: code for code, rule in enumerate(_RULES)}


def _micros(timestamp: datetime) -> int:
    delta = timestamp - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class ProvenanceLog:
    __slots__ = (
        "_event_codes",
        "_event_names",
        "_events",
        "_message_id_ends",
        "_message_ids",
        "_micros",
        "_rules",
    )

    def __init__(self) -> None:
        self._message_ids = bytearray()
        self._message_id_ends = array("Q", [0])
        self._event_names: list[str] = []
        self._event_codes: dict[str, int] = {}
        self._events = array("I")
        self._micros = array("q")
        self._rules = bytearray()

    def __len__(self) -> int:
        return len(self._rules)

    def append(self, provenance: Provenance) -> int:
        row = len(self._rules)
        self._message_ids += provenance.message_id.encode()
        self._message_id_ends.append(len(self._message_ids))
        code = self._event_codes.get(provenance.event)
        if code is None:
            code = self._event_codes[provenance.event] = len(self._event_names)
            self._event_names.append(provenance.event)
        self._events.append(code)
        self._micros.append(_micros(provenance.timestamp))
        self._rules.append(_RULE_CODES[provenance.rule])
        return row

    def __getitem__(self, row: int) -> Provenance:
        start, end = self._message_id_ends[row], self._message_id_ends[row + 1]
        return Provenance(
            message_id=self._message_ids[start:end].decode(),
            event=self._event_names[self._events[row]],
            timestamp=_EPOCH + timedelta(microseconds=self._micros[row]),
            rule=_RULES[self._rules[row]],
        )
