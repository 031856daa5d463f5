"""A small identity story, inserted into a real warehouse the way the identity sinks write it.

Anna (p_anna) has every identifier type and a newer profile version. An anonymous visitor
(p_visitor) was absorbed into her: one of the visitor's identifiers was already rewritten to
p_anna, the other still points to p_visitor (the redirect must be followed). Ben (p_ben) got an
identifier that used to be Anna's (split off with a newer version), and p_moved, first merged into
Anna, was moved to Ben by a newer redirect (written in a later insert, so only FINAL tells). p_new is known to the identity graph only; p_gone's
newest version says it was merged, with no redirect yet.
"""

from __future__ import annotations

from typing import Any

import orjson

from services.core.warehouse.port import Warehouse

TOKEN = "adm_test-token-0123456789"

PROFILES = [
    {"profileId": "p_anna", "version": 1, "traits": {"email": "anna@example.de", "first_name": "Anna"},
     "attributes": {"orders_count": 1}},
    {"profileId": "p_anna", "version": 2, "traits": {"email": "anna@example.de", "first_name": "Anna",
     "last_name": "Schmidt"}, "attributes": {"orders_count": 2, "revenue_net": 119.8, "preferred_channel": "shop",
     "open_complaints": 1}},
    {"profileId": "p_visitor", "version": 1, "attributes": {"first_seen_at": "2026-11-18T08:00:00Z"}},
    {"profileId": "p_visitor", "version": 2, "mergedInto": "p_anna"},
    {"profileId": "p_ben", "version": 1, "traits": {"email": "ben@example.de"}, "attributes": {}},
    {"profileId": "p_gone", "version": 1, "traits": {"first_name": "Gone"}},
    {"profileId": "p_gone", "version": 2, "mergedInto": "p_ben"},  # its redirect is not written yet
]  # fmt: skip

IDENTITIES = [
    ("customer_id:C100042", "p_anna", 1),
    ("email:anna@example.de", "p_anna", 1),
    ("phone:+4915112345678", "p_anna", 1),
    ("chat_handle:@anna", "p_anna", 1),
    ("email_recipient_id:r-77", "p_anna", 1),
    ("anonymous_id:anon-visitor-1", "p_visitor", 1),
    ("anonymous_id:anon-visitor-1", "p_anna", 2),  # rewritten after the merge
    ("anonymous_id:anon-visitor-2", "p_visitor", 1),  # not rewritten yet: the redirect decides
    ("anonymous_id:anon-moved", "p_anna", 1),
    ("anonymous_id:anon-moved", "p_ben", 2),  # split off to Ben
    ("email:ben@example.de", "p_ben", 1),
    ("customer_id:C200", "p_ben", 1),
    ("email:new@example.de", "p_new", 1),  # resolved, but its first profile snapshot is not written yet
]

EVENTS = [
    ("e-order", "p_anna", "2026-11-20T10:00:00.000Z", "track", "Order Completed", "", "shop",
     {"order_id": "O-1", "revenue": 59.9, "currency": "EUR"}),
    ("e-chat", "p_anna", "2026-11-21T09:00:00.000Z", "track", "Conversation Started", "", "chat",
     {"conversation_id": "k1"}),
    ("e-mail", "p_anna", "2026-11-19T07:30:00.000Z", "track", "Email Opened", "", "email",
     {"campaign_id": "nl-47"}),
    ("e-visit", "p_visitor", "2026-11-18T08:00:00.000Z", "page", "", "Startseite", "shop",
     {"url": "https://shop.example.de/"}),
    ("e-ben", "p_ben", "2026-11-21T12:00:00.000Z", "track", "Product Viewed", "", "shop", {"product_id": "P-1"}),
    ("e-moved", "p_moved", "2026-11-17T08:00:00.000Z", "track", "Product Viewed", "", "shop", {}),
    ("e-unresolved", "", "2026-11-21T13:00:00.000Z", "track", "Product Viewed", "", "shop", {}),
]  # fmt: skip


# Each event's identity keys as the resolved record lists them: the first is its anchor, which
# decides the profile it belongs to now.
ANCHORS = {
    "e-order": ["customer_id:C100042", "email:anna@example.de"],
    "e-chat": ["chat_handle:@anna"],
    "e-mail": ["email_recipient_id:r-77"],
    "e-visit": ["anonymous_id:anon-visitor-2"],
    "e-ben": ["customer_id:C200"],
    "e-moved": ["anonymous_id:anon-moved"],
}


def raw_rows(records: list[dict[str, Any]]) -> bytes:
    """JSONEachRow rows carrying each record as ``_raw``, as the topic sinks insert them."""
    return b"\n".join(orjson.dumps({"_raw": record}) for record in records)


def insert_story(warehouse: Warehouse) -> None:
    warehouse.insert_json_rows("profiles", raw_rows(PROFILES), columns=["_raw"])
    identities = [{"identifier": key, "profileId": pid, "version": v} for key, pid, v in IDENTITIES]
    warehouse.insert_json_rows("identities", raw_rows(identities), columns=["_raw"])
    redirects = [
        {"absorbed": "p_visitor", "survivor": "p_anna", "version": 1},
        {"absorbed": "p_moved", "survivor": "p_anna", "version": 1},
    ]
    warehouse.insert_json_rows("profile_redirects", raw_rows(redirects), columns=["_raw"])
    moved = [{"absorbed": "p_moved", "survivor": "p_ben", "version": 2}]
    warehouse.insert_json_rows("profile_redirects", raw_rows(moved), columns=["_raw"])
    events = [
        {"messageId": mid, "profileId": pid, "timestamp": ts, "type": kind, "event": event, "name": name,
         "channel": channel, "source": "api", "properties": props, "identifiers": ANCHORS.get(mid, [])}
        for mid, pid, ts, kind, event, name, channel, props in EVENTS
    ]  # fmt: skip
    warehouse.insert_json_rows("events", raw_rows(events), columns=["_raw"])
