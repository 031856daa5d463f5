"""One order as a join of its events: completions, a cancellation and refunds, in any order.

The record only ever grows by a join (earliest completion time, latest completion values, earliest
cancellation, union of refunds), so the same record results whichever event arrives first, and
applying an event twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from services.identity.domain.event_time import earliest

# (event time, revenue units, currency) of the latest Order Completed event. No message id: two
# completions at the same instant are ordered by their values, which is just as deterministic.
Completion = tuple[int, int, str]
FULL_REFUND = None  # a refund without an amount gives back the whole order


def _join_refund(a: int | None, b: int | None) -> int | None:
    # Two amounts under the same refund key are the same refund seen twice: take the larger, and a
    # full refund covers any partial one.
    return None if a is None or b is None else max(a, b)


class Contribution(NamedTuple):
    """What a counted order adds to the totals."""

    completed_at: int
    currency: str
    revenue: int
    refunded: int


@dataclass(slots=True)
class OrderRecord:
    completed_at: int | None = None
    completion: Completion | None = None
    cancelled_at: int | None = None
    refunds: dict[str, int | None] = field(default_factory=dict)

    def contribution(self) -> Contribution | None:
        """None unless the order was completed and never cancelled (cancelled orders earn nothing)."""
        if self.completion is None or self.completed_at is None or self.cancelled_at is not None:
            return None
        revenue = self.completion[1]
        refunded = 0
        for amount in self.refunds.values():
            if amount is FULL_REFUND:
                refunded = revenue
                break
            refunded += amount
        return Contribution(self.completed_at, self.completion[2], revenue, min(refunded, revenue))

    def join(self, other: OrderRecord) -> bool:
        changed = False
        completed_at = earliest(self.completed_at, other.completed_at)
        if completed_at != self.completed_at:
            self.completed_at, changed = completed_at, True
        if other.completion is not None and (self.completion is None or other.completion > self.completion):
            self.completion, changed = other.completion, True
        cancelled_at = earliest(self.cancelled_at, other.cancelled_at)
        if cancelled_at != self.cancelled_at:
            self.cancelled_at, changed = cancelled_at, True
        for key, amount in other.refunds.items():
            if key not in self.refunds:
                self.refunds[key], changed = amount, True
            elif (joined := _join_refund(self.refunds[key], amount)) != self.refunds[key]:
                self.refunds[key], changed = joined, True
        return changed

    def copy(self) -> OrderRecord:
        return OrderRecord(self.completed_at, self.completion, self.cancelled_at, dict(self.refunds))

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.completion is not None:
            out["completion"] = list(self.completion)
            if self.completed_at != self.completion[0]:  # only after an order was re-sent
                out["completed_at"] = self.completed_at
        if self.cancelled_at is not None:
            out["cancelled_at"] = self.cancelled_at
        if self.refunds:
            out["refunds"] = {key: self.refunds[key] for key in sorted(self.refunds)}
        return out

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> OrderRecord:
        c = snapshot.get("completion")
        return cls(
            snapshot.get("completed_at", None if c is None else c[0]),
            None if c is None else (c[0], c[1], c[2]),
            snapshot.get("cancelled_at"),
            dict(snapshot.get("refunds", {})),
        )
