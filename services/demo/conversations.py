"""The chat widget and help desk: bot and agent conversations, CSAT ratings, complaints.

The chat tool knows a person by its chat handle; the customer number only when the widget runs in a
logged-in session or the agent looks the order up, the email only when the customer types it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.demo import orders
from services.demo.catalogue import (
    CHAT_TOPICS,
    COMPLAINT_CATEGORIES,
    COMPLAINT_CATEGORY_WEIGHTS,
    COMPLAINT_TOPICS,
    RESOLUTIONS,
)
from services.demo.messages import track
from services.demo.orders import PlacedOrder
from services.demo.population import NEVER, Person
from services.demo.seasonality import DAY, HOUR
from services.demo.simulation import Simulation

_SCORES = (1, 2, 3, 4, 5)
_CSAT_HUMAN = (0.03, 0.05, 0.12, 0.35, 0.45)
_CSAT_BOT = (0.08, 0.10, 0.20, 0.32, 0.30)
_CSAT_UNHAPPY = (0.45, 0.30, 0.15, 0.07, 0.03)
_CSAT_AFTER_RESOLUTION = (0.10, 0.15, 0.25, 0.30, 0.20)
_COMMENTS = {1: "Sehr enttäuscht", 2: "Hat viel zu lange gedauert", 5: "Super schnelle Hilfe, danke!"}
_RESOLVED_SHARE = {"delivery": 0.8, "product": 0.75, "billing": 0.85}
_RESOLUTION_DAYS = {"delivery": (0.3, 2.0), "product": (1.0, 7.0), "billing": (0.5, 4.0)}
_AGENTS = 12


@dataclass(slots=True)
class _Conversation:
    t: float
    user_id: str | None
    context: dict[str, Any]
    properties: dict[str, Any] = field(default_factory=dict)


class ChatDesk:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim

    def advice(self, t: float, person: Person, user_id: str | None) -> None:
        rng = self.sim.rng
        talk = self._talk(t, person, rng.choice(CHAT_TOPICS), user_id, handoff=0.3, rounds=rng.randint(1, 4))
        if rng.random() < 0.4:
            self._rate(talk, person, None)

    def order_question(self, t: float, person: Person, order: PlacedOrder) -> None:
        rng = self.sim.rng
        user_id = order.user_id if rng.random() < 0.5 else None
        talk = self._talk(t, person, "Lieferstatus", user_id, handoff=0.25, rounds=rng.randint(1, 3))
        talk.properties = {**talk.properties, "order_id": order.order_id}
        if rng.random() < 0.4:
            self._rate(talk, person, None)

    def complaint(self, t: float, person: Person, order: PlacedOrder) -> None:
        """Beschwerdemanagement: opened in the chat, resolved later by the help desk (not always)."""
        sim, rng = self.sim, self.sim.rng
        category = rng.choices(COMPLAINT_CATEGORIES, COMPLAINT_CATEGORY_WEIGHTS)[0]
        user_id = order.user_id if rng.random() < 0.7 else None
        # Complaints always end up with a person: the bot only takes the first message.
        talk = self._talk(
            t, person, COMPLAINT_TOPICS[category], user_id, handoff=1.0, rounds=rng.randint(2, 5)
        )
        complaint = {
            **talk.properties,
            "complaint_id": sim.new_id("complaint"),
            "category": category,
            "order_id": order.order_id,
        }
        talk.t += rng.uniform(10, 60)
        sim.emit(talk.t, track("Complaint Opened", complaint, talk.context, user_id=user_id))
        person.unhappy_until = NEVER
        if rng.random() < 0.6:
            self._rate(talk, person, _CSAT_UNHAPPY)
        if rng.random() >= _RESOLVED_SHARE[category]:
            return
        low, high = _RESOLUTION_DAYS[category]
        resolved_at = talk.t + rng.uniform(low, high) * DAY
        resolution = rng.choice(RESOLUTIONS[category])
        desk = {"channel": "chat", "source": "helpdesk"}
        sim.emit(
            resolved_at,
            track("Complaint Resolved", {**complaint, "resolution": resolution}, desk, user_id=order.user_id),
        )
        person.unhappy_until = resolved_at + 30 * DAY
        refund_at = resolved_at + rng.uniform(0.5, 6) * HOUR
        if resolution == "Kaufpreis erstattet":
            sim.emit(
                refund_at, orders.refunded(order, [rng.choice(order.items)], "Reklamation: Artikel defekt")
            )
        elif resolution == "Versandkosten erstattet" and order.shipping > 0:
            sim.emit(refund_at, orders.shipping_refunded(order))
        if rng.random() < 0.5:
            talk.t = resolved_at + rng.uniform(1, 24) * HOUR
            self._rate(talk, person, _CSAT_AFTER_RESOLUTION)

    def _talk(
        self, t: float, person: Person, topic: str, user_id: str | None, *, handoff: float, rounds: int
    ) -> _Conversation:
        sim, rng = self.sim, self.sim.rng
        context: dict[str, Any] = {"channel": "chat", "source": "chat-widget"}
        if rng.random() < 0.35:
            email = person.emails[-1] if rng.random() < 0.3 else person.emails[0]
            context["traits"] = {"email": email}
        props: dict[str, Any] = {
            "conversation_id": sim.new_id("conv"),
            "handled_by": "bot",
            "chat_handle": person.chat_handle,
            "topic": topic,
        }
        talk = _Conversation(t, user_id, context, props)
        sim.emit(t, track("Conversation Started", dict(props), context, user_id=user_id))
        for turn in range(rounds):
            talk.t += rng.uniform(8, 60)
            said = {**talk.properties, "message_length": rng.randint(12, 240)}
            sim.emit(talk.t, track("Message Sent", said, context, user_id=user_id))
            if talk.properties["handled_by"] == "bot" and turn >= 1 and rng.random() < handoff:
                agent = f"agent-{rng.randrange(1, _AGENTS + 1):02d}"
                talk.properties = {**talk.properties, "handled_by": "human", "agent_id": agent}
                talk.t += rng.uniform(30, 240)  # waiting in the agents' queue
            human = talk.properties["handled_by"] == "human"
            talk.t += rng.uniform(20, 180) if human else rng.uniform(1, 4)
            answer = {**talk.properties, "message_length": rng.randint(40, 600)}
            sim.emit(talk.t, track("Message Received", answer, context, user_id=user_id))
        return talk

    def _rate(self, talk: _Conversation, person: Person, weights: tuple[float, ...] | None) -> None:
        rng = self.sim.rng
        if weights is None:
            if person.unhappy_until > talk.t:
                weights = _CSAT_UNHAPPY
            else:
                weights = _CSAT_HUMAN if talk.properties["handled_by"] == "human" else _CSAT_BOT
        csat = rng.choices(_SCORES, weights)[0]
        rating: dict[str, Any] = {**talk.properties, "csat": csat}
        if csat in _COMMENTS and rng.random() < 0.3:
            rating["comment"] = _COMMENTS[csat]
        talk.t += rng.uniform(5, 60)
        self.sim.emit(talk.t, track("Conversation Rated", rating, talk.context, user_id=talk.user_id))
