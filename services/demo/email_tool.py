"""The email tool: newsletter consent (double opt-in), campaigns, transactional and flow mails.

The tool knows a person only by its recipient id and address, so its events carry no customer number
and no anonymous id; joining them to the shop is the platform's identity resolution's job.
"""

from __future__ import annotations

import math
from typing import Any

from services.demo.catalogue import (
    EMAIL_PROVIDER,
    LEGAL_TEXT_VERSION,
    NEWSLETTER_LIST,
    OLD_LEGAL_TEXT_VERSION,
    SHOP_URL,
)
from services.demo.messages import EMAIL_CONTEXT, track
from services.demo.population import NEVER, Newsletter, Person
from services.demo.seasonality import DAY, HOUR, MINUTE, Campaign, next_campaign
from services.demo.simulation import Simulation, Trigger

_SOFT_BOUNCE = 0.01
_SPAM = 0.0005
_CLICK_AFTER_OPEN = 0.18
_UNSUBSCRIBE_AFTER_OPEN = 0.012
_UNSUBSCRIBE_UNOPENED = 0.001  # the List-Unsubscribe button in the mail client
_DOI_CONFIRMED = 0.85


class EmailTool:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        # Insertion-ordered, so campaign fan-out order (and the rng stream) is reproducible.
        self._subscribers: dict[int, Person] = {}
        sim.handlers[Trigger.CAMPAIGN] = self._send_campaign

    def open_list(self, people: list[Person], *, import_events: bool) -> None:
        """Put earlier subscribers on the list; with ``import_events`` the tool syncs their consent."""
        sim, rng = self.sim, self.sim.rng
        for person in people:
            if not person.subscribed_before:
                continue
            person.newsletter, person.newsletter_since = Newsletter.SUBSCRIBED, sim.start
            self._subscribers[person.index] = person
            if import_events:
                consent = {
                    "list_id": NEWSLETTER_LIST,
                    "legal_text_version": OLD_LEGAL_TEXT_VERSION,
                    "double_opt_in": True,
                    "source": "list-import",
                }
                self._mail_event(sim.start + rng.uniform(0, 2 * HOUR), "Subscribed", person, consent)
        campaign = next_campaign(sim.start)
        sim.schedule(campaign.at, Trigger.CAMPAIGN, None, campaign)

    def subscribe(self, t: float, person: Person, via: str) -> None:
        if person.newsletter is not Newsletter.NONE:
            return
        sim, rng = self.sim, self.sim.rng
        consent = {"list_id": NEWSLETTER_LIST, "legal_text_version": LEGAL_TEXT_VERSION}
        self._mail_event(t, "Subscribed", person, {**consent, "double_opt_in": False, "source": via})
        mail = self._mail("transactional-doi", "Bitte bestätige deine Anmeldung", sim.new_id("mail"))
        self._mail_event(t + rng.uniform(5, 60), "Email Delivered", person, mail)
        person.newsletter = Newsletter.PENDING
        if rng.random() < _DOI_CONFIRMED:
            confirmed = t + (rng.uniform(2, 60) * MINUTE if rng.random() < 0.7 else rng.uniform(1, 48) * HOUR)
            self._mail_event(confirmed, "Double Opt-In Confirmed", person, {**consent, "double_opt_in": True})
            person.newsletter, person.newsletter_since = Newsletter.SUBSCRIBED, confirmed
            self._subscribers[person.index] = person

    def order_confirmation(self, t: float, person: Person, order_id: str) -> None:
        rng = self.sim.rng
        index = person.emails.index(person.account_email(t))
        mail = self._mail("transactional-order-confirmation", "Deine Bestellung ist eingegangen", order_id)
        self._mail_event(t, "Email Delivered", person, mail, index)
        if rng.random() < 0.7:
            self._mail_event(t + self._open_delay(), "Email Opened", person, mail, index)

    def cart_reminder(self, t: float, person: Person) -> None:
        """The abandoned-cart flow: only for newsletter subscribers (it is marketing mail)."""
        if not person.receives_newsletter(t):
            return
        rng = self.sim.rng
        mail = self._mail(
            "flow-cart-reminder", "Du hast etwas in deinem Warenkorb vergessen", self.sim.new_id("mail")
        )
        self._mail_event(t, "Email Delivered", person, mail)
        if rng.random() < 0.45:
            opened = t + self._open_delay()
            self._mail_event(opened, "Email Opened", person, mail)
            if rng.random() < 0.3:
                self._click(opened + rng.uniform(5, 60), person, mail, f"{SHOP_URL}/warenkorb")

    def _send_campaign(self, t: float, _person: Person | None, campaign: Any) -> None:
        assert isinstance(campaign, Campaign)
        rng = self.sim.rng
        for person in list(self._subscribers.values()):
            if not person.receives_newsletter(t):
                continue
            mail = {
                **self._mail(campaign.campaign_id, campaign.name, campaign.campaign_id),
                "list_id": NEWSLETTER_LIST,
            }
            self._deliver(t + rng.uniform(0, 30 * MINUTE), person, mail, campaign)
        upcoming = next_campaign(t)
        self.sim.schedule(upcoming.at, Trigger.CAMPAIGN, None, upcoming)

    def _deliver(self, t: float, person: Person, mail: dict[str, Any], campaign: Campaign) -> None:
        rng = self.sim.rng
        if person.bad_address:
            bounce = {**mail, "bounce_type": "hard", "reason": "550 5.1.1 mailbox unavailable"}
            self._mail_event(t, "Email Bounced", person, bounce)
            self._leave(person)
            return
        if rng.random() < _SOFT_BOUNCE:
            bounce = {**mail, "bounce_type": "soft", "reason": "452 4.2.2 mailbox full"}
            self._mail_event(t, "Email Bounced", person, bounce)
            return
        self._mail_event(t, "Email Delivered", person, mail)
        if rng.random() < _SPAM:
            reported = t + rng.uniform(1, 48) * HOUR
            self._mail_event(reported, "Email Marked as Spam", person, mail)
            self._unsubscribe(reported + rng.uniform(1, 60), person, "spam_complaint")
            return
        if rng.random() < min(0.95, person.open_rate * campaign.appeal):
            opened = t + self._open_delay()
            self._mail_event(opened, "Email Opened", person, mail)
            if rng.random() < _CLICK_AFTER_OPEN:
                self._click(opened + rng.uniform(5, 90), person, mail, campaign.link_url)
            elif rng.random() < _UNSUBSCRIBE_AFTER_OPEN:
                self._unsubscribe(opened + rng.uniform(10, 300), person, "Zu viele E-Mails")
        elif rng.random() < _UNSUBSCRIBE_UNOPENED:
            self._unsubscribe(t + rng.uniform(1, 72) * HOUR, person, "Kein Interesse mehr")

    def _click(self, t: float, person: Person, mail: dict[str, Any], url: str) -> None:
        self._mail_event(t, "Email Link Clicked", person, {**mail, "link_url": url})
        self.sim.schedule(t + self.sim.rng.uniform(2, 15), Trigger.EMAIL_VISIT, person, mail["campaign_id"])

    def _unsubscribe(self, t: float, person: Person, reason: str) -> None:
        consent = {"list_id": NEWSLETTER_LIST, "reason": reason}
        self._mail_event(t, "Unsubscribed", person, consent)
        person.newsletter = Newsletter.UNSUBSCRIBED
        self._leave(person)

    def _leave(self, person: Person) -> None:
        person.newsletter_since = NEVER
        self._subscribers.pop(person.index, None)

    def _open_delay(self) -> float:
        rng = self.sim.rng
        if rng.random() < 0.5:
            return rng.expovariate(1 / (20 * MINUTE))
        return min(rng.lognormvariate(math.log(6 * HOUR), 1.0), 4 * DAY)

    @staticmethod
    def _mail(campaign_id: str, name: str, email_key: str) -> dict[str, Any]:
        return {"campaign_id": campaign_id, "campaign_name": name, "email_id": email_key}

    def _mail_event(
        self, t: float, event: str, person: Person, extra: dict[str, Any], index: int | None = None
    ) -> None:
        index = person.newsletter_email if index is None else index
        properties = {
            "email": person.emails[index],
            "recipient_id": person.recipient_ids[index],
            "provider": EMAIL_PROVIDER,
            **extra,
        }
        if "email_id" in properties:
            # One id per recipient and mail, as email tools report it.
            properties["email_id"] = f"{properties['email_id']}-{properties['recipient_id']}"
        self.sim.emit(t, track(event, properties, EMAIL_CONTEXT))
