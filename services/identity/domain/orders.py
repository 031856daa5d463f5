"""A profile's orders keyed by order id, with running totals per currency.

Totals change per event by the order's contribution before and after it (O(refunds of that order));
only a merge, a restore or a cancelled first/last order rescans the orders.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from services.identity.domain.event_time import DAY_MICROS, iso_or_none, to_micros
from services.identity.domain.money import to_amount
from services.identity.domain.order_record import Contribution, OrderRecord


class OrderBook:
    """Every order of a profile plus running totals per currency and first/last counted order."""

    __slots__ = ("_first", "_last", "_orders", "_totals")

    def __init__(self) -> None:
        self._orders: dict[str, OrderRecord] = {}
        self._totals: dict[str, list[int]] = {}  # currency -> [orders, gross units, refunded units]
        self._first: tuple[int, str] | None = None  # (completed_at, order id) of counted orders
        self._last: tuple[int, str] | None = None

    def complete(self, order_id: str, stamp: int, revenue: int, currency: str) -> bool:
        return self._join(order_id, OrderRecord(stamp, (stamp, revenue, currency)))

    def cancel(self, order_id: str, stamp: int) -> bool:
        return self._join(order_id, OrderRecord(cancelled_at=stamp))

    def refund(self, order_id: str, refund_key: str, amount: int | None) -> bool:
        return self._join(order_id, OrderRecord(refunds={refund_key: amount}))

    def merge(self, other: OrderBook) -> None:
        for order_id, record in other._orders.items():
            mine = self._orders.get(order_id)
            if mine is None:
                self._orders[order_id] = record.copy()
            else:
                mine.join(record)
        self._rebuild()

    def attributes(self, now: datetime) -> dict[str, Any]:
        orders = sum(t[0] for t in self._totals.values())
        currency = min(self._totals, key=lambda c: (-self._totals[c][0], c)) if self._totals else None
        count, gross, refunded = self._totals[currency] if currency is not None else (0, 0, 0)
        last_at = None if self._last is None else self._last[0]
        return {
            "orders_count": orders,
            "currency": currency,
            "revenue_gross": to_amount(gross),
            "refunds_total": to_amount(refunded),
            "revenue_net": to_amount(gross - refunded),
            "average_order_value": to_amount(round((gross - refunded) / count)) if count else None,
            "revenue_net_by_currency": {c: to_amount(t[1] - t[2]) for c, t in sorted(self._totals.items())},
            "first_order_at": iso_or_none(None if self._first is None else self._first[0]),
            "last_order_at": iso_or_none(last_at),
            "last_order_id": None if self._last is None else self._last[1],
            "days_since_last_order": None
            if last_at is None
            else max(0, (to_micros(now) - last_at) // DAY_MICROS),
        }

    def snapshot(self) -> dict[str, Any]:
        return {order_id: self._orders[order_id].snapshot() for order_id in sorted(self._orders)}

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> OrderBook:
        book = cls()
        book._orders = {order_id: OrderRecord.from_snapshot(r) for order_id, r in snapshot.items()}
        book._rebuild()
        return book

    def _join(self, order_id: str, update: OrderRecord) -> bool:
        record = self._orders.get(order_id)
        if record is None:
            record = self._orders[order_id] = OrderRecord()
        before = record.contribution()
        if not record.join(update):
            return False
        after = record.contribution()
        if before != after:
            self._account(order_id, before, after)
        return True

    def _account(self, order_id: str, before: Contribution | None, after: Contribution | None) -> None:
        if before is not None:
            totals = self._totals[before.currency]
            totals[0] -= 1
            totals[1] -= before.revenue
            totals[2] -= before.refunded
            if totals[0] == 0:
                del self._totals[before.currency]
        if after is not None:
            totals = self._totals.setdefault(after.currency, [0, 0, 0])
            totals[0] += 1
            totals[1] += after.revenue
            totals[2] += after.refunded
        was = None if before is None else (before.completed_at, order_id)
        if was is not None and was in (self._first, self._last):
            # The first or last order moved or stopped counting (cancelled): rare, so rescan.
            self._rebuild_bounds()
        elif after is not None:
            key = (after.completed_at, order_id)
            self._first = key if self._first is None or key < self._first else self._first
            self._last = key if self._last is None or key > self._last else self._last

    def _rebuild(self) -> None:
        self._totals = {}
        for record in self._orders.values():
            if (c := record.contribution()) is not None:
                totals = self._totals.setdefault(c.currency, [0, 0, 0])
                totals[0] += 1
                totals[1] += c.revenue
                totals[2] += c.refunded
        self._rebuild_bounds()

    def _rebuild_bounds(self) -> None:
        keys = [
            (c.completed_at, order_id)
            for order_id, record in self._orders.items()
            if (c := record.contribution()) is not None
        ]
        self._first = min(keys, default=None)
        self._last = max(keys, default=None)
