"""Consent per purpose by event time: the person's latest decision wins (docs/privacy.md#consent).

Fed by Subscribed (email_marketing granted; confirmed only with ``double_opt_in: true``), Double
Opt-In Confirmed (granted and confirmed), Unsubscribed (withdrawn) and Consent Updated (any
purpose). Per purpose three registers, each keeping its latest write by (event time, message id):

* the latest decision (granted, denied or withdrawn) with its legal text version and source;
* the latest double opt-in confirmation;
* the latest revocation (denied or withdrawn);
* the latest grant that named its legal text version (a double opt-in confirmation usually names
  none: the text is the one the person subscribed with).

A grant is confirmed while a confirmation is later than every revocation: a renewed grant keeps an
earlier confirmation, a withdrawal ends it. Every register is a join (max), so the state does not
depend on arrival order, a replayed event changes nothing, and ``merge`` equals folding both
profiles' events into one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.identity.domain.event_time import Stamp, iso_or_none

GRANTED, DENIED, WITHDRAWN = "granted", "denied", "withdrawn"
STATUSES = frozenset({GRANTED, DENIED, WITHDRAWN})
EMAIL_MARKETING = "email_marketing"
CONSENT_EVENTS = frozenset({"Subscribed", "Double Opt-In Confirmed", "Unsubscribed", "Consent Updated"})

# Where a decision came from (``source`` of the consent). How the canonical event says it:
SOURCE_EVENT, SOURCE_WEBHOOK, SOURCE_API = "event", "webhook", "api"
# the canonical ``source`` of events the admin consent API submits (POST /api/v1/privacy/consents)
ADMIN_API_SOURCE = "admin-api"
# the canonical ``source`` of provider webhooks (services/ingest/webhooks) and canonical webhooks
WEBHOOK_PROVIDERS = frozenset({"shopify", "sendgrid", "zendesk"})
WEBHOOK_PREFIX = "webhook-"

# (event time, message id, status, legal text version, source): tuples order by time, then message id.
Decision = tuple[int, str, str, str, str]
# (event time, message id, legal text version)
Text = tuple[int, str, str]


def consent_source(source: object, context: object) -> str:
    """``api``, ``webhook`` or ``event`` for a canonical event's ``source`` and ``context``.

    Only the admin API's own default source counts as ``api``: a client that sets
    ``context.source`` to it is still an event (the canonical source then came from the client).
    The SQL twin is the ``consents_mv`` in schemas/ddl/009_consents.sql.
    """
    text = source if isinstance(source, str) else ""
    client_source = context.get("source") if isinstance(context, Mapping) else None
    if text == ADMIN_API_SOURCE and not client_source:
        return SOURCE_API
    if text.startswith(WEBHOOK_PREFIX) or text in WEBHOOK_PROVIDERS:
        return SOURCE_WEBHOOK
    return SOURCE_EVENT


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """What one event says about one purpose."""

    purpose: str
    status: str
    confirmed: bool  # a double opt-in confirmation comes with it
    legal_text_version: str


def _text(properties: Mapping[str, Any], name: str) -> str:
    value = properties.get(name)
    return value if isinstance(value, str) else ""


def change_of(event_name: str, properties: Mapping[str, Any]) -> ConsentChange | None:
    """The consent decision an event carries, or None (read defensively, as sent)."""
    version = _text(properties, "legal_text_version")
    if event_name == "Subscribed":
        return ConsentChange(EMAIL_MARKETING, GRANTED, properties.get("double_opt_in") is True, version)
    if event_name == "Double Opt-In Confirmed":
        return ConsentChange(EMAIL_MARKETING, GRANTED, True, version)
    if event_name == "Unsubscribed":
        return ConsentChange(EMAIL_MARKETING, WITHDRAWN, False, version)
    if event_name == "Consent Updated":
        purpose, status = _text(properties, "purpose"), _text(properties, "status")
        if not purpose or status not in STATUSES:
            return None
        confirmed = status == GRANTED and properties.get("double_opt_in") is True
        return ConsentChange(purpose, status, confirmed, version)
    return None


def _later(current: Stamp | None, candidate: Stamp) -> bool:
    return current is None or candidate > current


class _Purpose:
    __slots__ = ("confirmed", "decision", "revoked", "text")

    def __init__(
        self,
        decision: Decision | None = None,
        confirmed: Stamp | None = None,
        revoked: Stamp | None = None,
        text: Text | None = None,
    ) -> None:
        self.decision = decision
        self.confirmed = confirmed
        self.revoked = revoked
        self.text = text

    def join(
        self, decision: Decision | None, confirmed: Stamp | None, revoked: Stamp | None, text: Text | None
    ) -> bool:
        changed = False
        if text is not None and (self.text is None or text > self.text):
            self.text, changed = text, True
        if decision is not None and (self.decision is None or decision > self.decision):
            self.decision, changed = decision, True
        if confirmed is not None and _later(self.confirmed, confirmed):
            self.confirmed, changed = confirmed, True
        if revoked is not None and _later(self.revoked, revoked):
            self.revoked, changed = revoked, True
        return changed

    def state(self) -> dict[str, Any] | None:
        if self.decision is None:
            return None
        stamp, message_id, status, version, source = self.decision
        granted = status == GRANTED
        confirmed = self.confirmed is not None and (self.revoked is None or self.confirmed > self.revoked)
        double_opt_in = granted and confirmed
        return {
            "status": status,
            "granted": granted,
            "double_opt_in": double_opt_in,
            "double_opt_in_at": iso_or_none(self.confirmed[0]) if double_opt_in and self.confirmed else None,
            # a grant: the text of the latest grant that named one; else the decision's own
            "legal_text_version": (self.text[2] if self.text else None) if granted else (version or None),
            "source": source,
            "at": iso_or_none(stamp),
            "message_id": message_id,
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "decision": None if self.decision is None else list(self.decision),
            "confirmed": None if self.confirmed is None else list(self.confirmed),
            "revoked": None if self.revoked is None else list(self.revoked),
            "text": None if self.text is None else list(self.text),
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> _Purpose:
        d, c, r, t = data.get("decision"), data.get("confirmed"), data.get("revoked"), data.get("text")
        return cls(
            None if d is None else (int(d[0]), str(d[1]), str(d[2]), str(d[3]), str(d[4])),
            None if c is None else (int(c[0]), str(c[1])),
            None if r is None else (int(r[0]), str(r[1])),
            None if t is None else (int(t[0]), str(t[1]), str(t[2])),
        )


class Consents:
    """Consent per purpose (any purpose name an event carries; rules and the API check them)."""

    __slots__ = ("_purposes",)

    def __init__(self) -> None:
        self._purposes: dict[str, _Purpose] = {}

    def apply(self, event_name: str, stamp: int, message_id: str, properties: Mapping[str, Any],
              source: str) -> bool:  # fmt: skip
        """Fold one event; False when it carries no consent decision or changes nothing."""
        change = change_of(event_name, properties)
        if change is None:
            return False
        return self.decide(change, stamp, message_id, source)

    def decide(self, change: ConsentChange, stamp: int, message_id: str, source: str) -> bool:
        decision: Decision = (stamp, message_id, change.status, change.legal_text_version, source)
        at: Stamp = (stamp, message_id)
        text: Text | None = None
        if change.status == GRANTED and change.legal_text_version:
            text = (stamp, message_id, change.legal_text_version)
        purpose = self._purposes.setdefault(change.purpose, _Purpose())
        return purpose.join(
            decision, at if change.confirmed else None, at if change.status != GRANTED else None, text
        )

    def merge(self, other: Consents) -> None:
        for name, theirs in other._purposes.items():
            self._purposes.setdefault(name, _Purpose()).join(
                theirs.decision, theirs.confirmed, theirs.revoked, theirs.text
            )

    def current(self) -> dict[str, dict[str, Any]]:
        """``{purpose: {status, granted, double_opt_in, double_opt_in_at, legal_text_version, source,
        at, message_id}}``, purposes sorted."""
        out: dict[str, dict[str, Any]] = {}
        for name in sorted(self._purposes):
            state = self._purposes[name].state()
            if state is not None:
                out[name] = state
        return out

    def attributes(self) -> dict[str, Any]:
        return {"consents": self.current()}

    def snapshot(self) -> dict[str, Any]:
        return {name: self._purposes[name].snapshot() for name in sorted(self._purposes)}

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any] | None) -> Consents:
        consents = cls()
        for name, data in (snapshot or {}).items():
            consents._purposes[name] = _Purpose.from_snapshot(data)
        return consents
