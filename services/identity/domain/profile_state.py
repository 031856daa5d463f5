"""A unified profile folded from its events: any order, any split over workers, replays included.

Every part of the state is a join-semilattice: registers that keep the latest or earliest write by
(event time, message id), bitmaps and flags that only gain bits, and records keyed by order,
conversation, complaint and email id that combine the same way. Applying an event joins the state
of that one event, so

* the result does not depend on arrival order (join is commutative and associative),
* a replayed event changes nothing (join is idempotent) and ``apply`` returns False,
* ``merge`` of two profiles' states equals folding all their events into one.

Counters (orders, revenue, CSAT, open complaints, email counts) are caches over those records,
updated per event from the record's contribution before and after, and rebuilt after a merge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.identity.domain.activity import NON_ENGAGING_EVENTS, Activity
from services.identity.domain.complaints import ComplaintBook
from services.identity.domain.consents import CONSENT_EVENTS, Consents, consent_source
from services.identity.domain.conversations import ChatHistory
from services.identity.domain.email_engagement import EmailEngagement
from services.identity.domain.event_folds import FOLDS, amount_of
from services.identity.domain.event_time import to_micros
from services.identity.domain.orders import OrderBook
from services.identity.domain.recent_events import RecentEvents
from services.identity.domain.subscriptions import Subscriptions
from services.identity.domain.traits import DEFAULT_TRAIT_POLICY, TraitPolicy, TraitRegisters

SNAPSHOT_VERSION = 1
DEFAULT_CHANNEL = "shop"  # what ingest assumes for an event that names no channel
_ENGAGING_TYPES = frozenset({"track", "page", "screen", "identify"})  # alias/group are bookkeeping


class UnfoldableEventError(ValueError):
    """The event lacks what every fold needs (messageId, a parseable timestamp): a bug upstream."""


@dataclass(slots=True, eq=False)
class ProfileState:
    trait_policy: TraitPolicy = DEFAULT_TRAIT_POLICY
    activity: Activity = field(default_factory=Activity)
    trait_registers: TraitRegisters = field(default_factory=TraitRegisters)
    orders: OrderBook = field(default_factory=OrderBook)
    conversations: ChatHistory = field(default_factory=ChatHistory)
    complaints: ComplaintBook = field(default_factory=ComplaintBook)
    email: EmailEngagement = field(default_factory=EmailEngagement)
    subscriptions: Subscriptions = field(default_factory=Subscriptions)
    recent: RecentEvents = field(default_factory=RecentEvents)
    consents: Consents = field(default_factory=Consents)

    def apply(self, event: Mapping[str, Any]) -> bool:
        """Fold one canonical event (camelCase dict); False when the state did not change."""
        try:
            message_id = event["messageId"]
            stamp = to_micros(event["timestamp"])
        except (KeyError, ValueError) as exc:
            raise UnfoldableEventError(f"cannot fold event {event.get('messageId')!r}: {exc}") from exc
        kind = event.get("type")
        name = event.get("event") if kind == "track" else None
        engaging = kind in _ENGAGING_TYPES and name not in NON_ENGAGING_EVENTS
        channel = event.get("channel") or DEFAULT_CHANNEL
        changed = self.activity.apply(stamp, message_id, channel, event.get("source") or "", engaging)
        traits = self._traits_of(kind, event)
        if traits:
            changed |= self.trait_registers.apply(stamp, message_id, traits)
        fold = FOLDS.get(name) if isinstance(name, str) else None
        if name is not None and isinstance(name, str):
            properties = event.get("properties") or {}
            changed |= self.recent.record(name, stamp, message_id, amount_of(properties))
            if fold is not None:
                changed |= fold(self, stamp, message_id, properties)
            if name in CONSENT_EVENTS:
                source = consent_source(event.get("source"), event.get("context"))
                changed |= self.consents.apply(name, stamp, message_id, properties, source)
        return changed

    def merge(self, other: ProfileState) -> None:
        """Absorb ``other`` (e.g. a merged-away profile); ``other`` is left unchanged."""
        self.activity.merge(other.activity)
        self.trait_registers.merge(other.trait_registers)
        self.orders.merge(other.orders)
        self.conversations.merge(other.conversations)
        self.complaints.merge(other.complaints)
        self.email.merge(other.email)
        self.subscriptions.merge(other.subscriptions)
        self.recent.merge(other.recent)
        self.consents.merge(other.consents)

    def traits(self) -> dict[str, Any]:
        return self.trait_registers.values(self.trait_policy)

    def attributes(self, now: datetime) -> dict[str, Any]:
        """Computed attributes; ``now`` only feeds ``days_since_last_order``."""
        return {
            **self.activity.attributes(),
            **self.orders.attributes(now),
            **self.conversations.attributes(),
            **self.complaints.attributes(),
            **self.email.attributes(),
            **self.subscriptions.attributes(),
            **self.consents.attributes(),
        }

    def to_snapshot(self) -> dict[str, Any]:
        """The state as canonical JSON-ready data: equal states give equal (sorted) snapshots."""
        return {
            "version": SNAPSHOT_VERSION,
            "activity": self.activity.snapshot(),
            "traits": self.trait_registers.snapshot(),
            "orders": self.orders.snapshot(),
            "conversations": self.conversations.snapshot(),
            "complaints": self.complaints.snapshot(),
            "email": self.email.snapshot(),
            "subscriptions": self.subscriptions.snapshot(),
            "recent": self.recent.snapshot(),
            "consents": self.consents.snapshot(),
        }

    @classmethod
    def from_snapshot(
        cls, snapshot: Mapping[str, Any], trait_policy: TraitPolicy = DEFAULT_TRAIT_POLICY
    ) -> ProfileState:
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unknown profile snapshot version {snapshot.get('version')!r}")
        return cls(
            trait_policy,
            Activity.from_snapshot(snapshot["activity"]),
            TraitRegisters.from_snapshot(snapshot["traits"]),
            OrderBook.from_snapshot(snapshot["orders"]),
            ChatHistory.from_snapshot(snapshot["conversations"]),
            ComplaintBook.from_snapshot(snapshot["complaints"]),
            EmailEngagement.from_snapshot(snapshot["email"]),
            Subscriptions.from_snapshot(snapshot["subscriptions"]),
            RecentEvents.from_snapshot(snapshot.get("recent")),
            Consents.from_snapshot(snapshot.get("consents")),  # absent in snapshots before consents
        )

    def _traits_of(self, kind: Any, event: Mapping[str, Any]) -> Mapping[str, Any]:
        traits = event.get("traits") if kind == "identify" else None
        if not self.trait_policy.context_traits:
            return traits or {}
        context = event.get("context") or {}
        # Within one event the call's own traits win over the SDK's cached copy in context.
        return {**(context.get("traits") or {}), **(traits or {})}
