"""Email engagement counted per email, so a replayed or repeated event never counts twice.

Each email the profile received is a key (a 64-bit hash of the email tool's ``email_id``, else of
``campaign_id``, else of the event's message id) with one bit per outcome. Counts are therefore
*distinct emails* delivered / opened / clicked / bounced / reported: the "unique opens" email tools
report, which also ignores the repeated opens of image proxies (Apple Mail Privacy Protection).
Hashing keeps the key at 8 bytes and keeps addresses that some tools embed in ids out of the state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from services.identity.domain.event_time import iso_or_none, latest

DELIVERED, OPENED, CLICKED, HARD_BOUNCE, SOFT_BOUNCE, SPAM = 1, 2, 4, 8, 16, 32
# attribute -> the outcome bits an email needs to be counted in it
COUNTED = {
    "emails_delivered": DELIVERED,
    "emails_opened": OPENED,
    "emails_clicked": CLICKED,
    "emails_bounced": HARD_BOUNCE | SOFT_BOUNCE,
    "email_hard_bounces": HARD_BOUNCE,
    "email_soft_bounces": SOFT_BOUNCE,
    "email_spam_reports": SPAM,
}


def email_key(properties: Mapping[str, Any], message_id: str) -> int:
    email_id, campaign_id = properties.get("email_id"), properties.get("campaign_id")
    if isinstance(email_id, str) and email_id:
        key = f"e:{email_id}"
    elif isinstance(campaign_id, str) and campaign_id:
        key = f"c:{campaign_id}"
    else:
        key = f"m:{message_id}"
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


class EmailEngagement:
    __slots__ = ("_counts", "_emails", "_last_clicked", "_last_opened")

    def __init__(self) -> None:
        self._emails: dict[int, int] = {}  # email key -> outcome bits
        self._counts: dict[str, int] = dict.fromkeys(COUNTED, 0)
        self._last_opened: int | None = None
        self._last_clicked: int | None = None

    def record(self, key: int, outcome: int, stamp: int) -> bool:
        changed = self._set(key, outcome)
        if outcome == OPENED and (self._last_opened is None or stamp > self._last_opened):
            self._last_opened, changed = stamp, True
        elif outcome == CLICKED and (self._last_clicked is None or stamp > self._last_clicked):
            self._last_clicked, changed = stamp, True
        return changed

    def merge(self, other: EmailEngagement) -> None:
        for key, bits in other._emails.items():
            self._set(key, bits)
        self._last_opened = latest(self._last_opened, other._last_opened)
        self._last_clicked = latest(self._last_clicked, other._last_clicked)

    def attributes(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self._counts)
        out["last_email_opened_at"] = iso_or_none(self._last_opened)
        out["last_email_clicked_at"] = iso_or_none(self._last_clicked)
        return out

    def snapshot(self) -> dict[str, Any]:
        return {
            "emails": {f"{key:016x}": self._emails[key] for key in sorted(self._emails)},
            "last_opened": self._last_opened,
            "last_clicked": self._last_clicked,
        }

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> EmailEngagement:
        engagement = cls()
        for key, bits in snapshot["emails"].items():
            engagement._set(int(key, 16), bits)
        engagement._last_opened = snapshot["last_opened"]
        engagement._last_clicked = snapshot["last_clicked"]
        return engagement

    def _set(self, key: int, bits: int) -> bool:
        old = self._emails.get(key, 0)
        new = old | bits
        if new == old:
            return False
        self._emails[key] = new
        for name, mask in COUNTED.items():
            if new & mask and not old & mask:
                self._counts[name] += 1
        return True
