"""Complaints (Beschwerdemanagement) keyed by complaint id, open or resolved by event time.

A complaint is open when its latest Complaint Opened is later than its latest Complaint Resolved
(a tie counts as resolved). A Resolved that arrives before its Opened therefore closes it all the
same, and a complaint re-opened after its resolution is open again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.identity.domain.event_time import iso_or_none, latest


@dataclass(slots=True)
class Complaint:
    opened_at: int | None = None  # latest Complaint Opened event time
    resolved_at: int | None = None  # latest Complaint Resolved event time

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None and (self.resolved_at is None or self.opened_at > self.resolved_at)


class ComplaintBook:
    __slots__ = ("_complaints", "_last_opened", "_open")

    def __init__(self) -> None:
        self._complaints: dict[str, Complaint] = {}
        self._open = 0
        self._last_opened: int | None = None

    def opened(self, complaint_id: str, stamp: int) -> bool:
        return self._join(complaint_id, stamp, None)

    def resolved(self, complaint_id: str, stamp: int) -> bool:
        return self._join(complaint_id, None, stamp)

    def merge(self, other: ComplaintBook) -> None:
        for complaint_id, theirs in other._complaints.items():
            self._join(complaint_id, theirs.opened_at, theirs.resolved_at)

    def attributes(self) -> dict[str, Any]:
        return {
            "complaints_total": len(self._complaints),
            "open_complaints": self._open,
            "last_complaint_at": iso_or_none(self._last_opened),
        }

    def snapshot(self) -> dict[str, Any]:
        return {cid: [c.opened_at, c.resolved_at] for cid, c in sorted(self._complaints.items())}

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> ComplaintBook:
        book = cls()
        for complaint_id, (opened_at, resolved_at) in snapshot.items():
            book._join(complaint_id, opened_at, resolved_at)
        return book

    def _join(self, complaint_id: str, opened_at: int | None, resolved_at: int | None) -> bool:
        complaint = self._complaints.get(complaint_id)
        if complaint is None:
            complaint = self._complaints[complaint_id] = Complaint()
            was_open, changed = False, True
        else:
            was_open, changed = complaint.is_open, False
        new_opened, new_resolved = (
            latest(complaint.opened_at, opened_at),
            latest(complaint.resolved_at, resolved_at),
        )
        if (new_opened, new_resolved) != (complaint.opened_at, complaint.resolved_at):
            complaint.opened_at, complaint.resolved_at, changed = new_opened, new_resolved, True
        self._open += complaint.is_open - was_open
        self._last_opened = latest(self._last_opened, opened_at)
        return changed
