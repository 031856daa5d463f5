"""The demo shop's history: reproducible, valid Segment messages with a realistic shape."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

import pytest

from schemas.catalog import CATALOG
from schemas.events import IncomingMessage
from services.demo.generator import DemoConfig, estimate_total, generate_history

# 70 days up to 20 December 2024: covers Black Friday (29 November) and the Christmas run-up.
END = datetime(2024, 12, 20, tzinfo=UTC)
CONFIG = DemoConfig(customers=600, days=70, seed=7, end=END)
Message = dict[str, Any]


@pytest.fixture(scope="module")
def history() -> list[Message]:
    return list(generate_history(CONFIG))


def _events(history: list[Message], name: str) -> list[Message]:
    return [m for m in history if m.get("event") == name]


def _ts(message: Message) -> datetime:
    return datetime.fromisoformat(message["timestamp"])


def test_same_seed_yields_identical_messages() -> None:
    config = DemoConfig(customers=60, days=20, seed=3, end=END)
    assert list(generate_history(config)) == list(generate_history(config))


def test_different_seed_yields_different_messages() -> None:
    first = list(islice(generate_history(DemoConfig(60, 20, 3, END)), 200))
    second = list(islice(generate_history(DemoConfig(60, 20, 4, END)), 200))
    assert first != second
    assert {m["messageId"] for m in first}.isdisjoint(m["messageId"] for m in second)


def test_config_requires_an_aware_end() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        DemoConfig(10, 10, 1, datetime(2024, 12, 20))


def test_every_message_validates_against_envelope_and_catalog(history: list[Message]) -> None:
    for message in history:
        parsed = IncomingMessage.model_validate(message)
        assert parsed.timestamp is not None
        assert parsed.context.channel in ("shop", "chat", "email")
        assert parsed.context.source
        if message["type"] == "track" and message["event"] in CATALOG:
            CATALOG[message["event"]].properties.model_validate(message["properties"])


def test_messages_come_in_event_time_order_inside_the_window(history: list[Message]) -> None:
    times = [_ts(m) for m in history]
    assert times == sorted(times)
    assert CONFIG.start <= times[0]
    assert times[-1] < END
    assert len({m["messageId"] for m in history}) == len(history)


def test_all_three_channels_with_plausible_shares(history: list[Message]) -> None:
    channels = Counter(m["context"]["channel"] for m in history)
    share = {channel: count / len(history) for channel, count in channels.items()}
    assert share["shop"] > 0.5
    assert 0.1 < share["email"] < 0.4
    assert 0.01 < share["chat"] < 0.1
    sources = {m["context"]["source"] for m in history}
    assert {"web", "shop-backend", "chat-widget", "helpdesk", "email-tool"} <= sources
    assert sources & {"ios", "android"}


def test_sessions_start_anonymous_and_log_in_later(history: list[Message]) -> None:
    first_seen_anonymous: set[str] = set()
    seen: set[str] = set()
    logged_in_later = 0
    for message in history:
        anonymous_id = message.get("anonymousId")
        if anonymous_id is None:
            continue
        if anonymous_id not in seen and "userId" not in message:
            first_seen_anonymous.add(anonymous_id)
        seen.add(anonymous_id)
        if message["type"] == "identify" and anonymous_id in first_seen_anonymous:
            assert message["userId"].startswith("C")
            assert {"email", "first_name", "last_name"} <= message["traits"].keys()
            logged_in_later += 1
    assert logged_in_later > 50


def test_guests_never_log_in(history: list[Message]) -> None:
    identified = {m["anonymousId"] for m in history if m.get("userId") and m.get("anonymousId")}
    anonymous = {m["anonymousId"] for m in history if m.get("anonymousId")}
    assert len(anonymous - identified) > 20


def test_people_use_several_devices_and_email_addresses(history: list[Message]) -> None:
    devices: defaultdict[str, set[str]] = defaultdict(set)
    emails: defaultdict[str, set[str]] = defaultdict(set)
    for message in history:
        user_id = message.get("userId")
        if user_id is None:
            continue
        if "anonymousId" in message:
            devices[user_id].add(message["anonymousId"])
        email = message.get("traits", {}).get("email") or message["context"].get("traits", {}).get("email")
        if email:
            emails[user_id].add(email.lower())
    assert sum(len(ids) >= 2 for ids in devices.values()) > 30
    assert sum(len(addresses) >= 2 for addresses in emails.values()) >= 3


def test_email_tool_knows_people_by_recipient_id_and_address(history: list[Message]) -> None:
    mails = [m for m in history if m["context"]["channel"] == "email"]
    for message in mails:
        assert message["properties"]["recipient_id"].startswith("rcp_")
        assert "@" in message["properties"]["email"]
        assert "userId" not in message
        assert "anonymousId" not in message
    delivered = Counter(m["properties"]["campaign_id"] for m in _events(history, "Email Delivered"))
    opened = Counter(m["properties"]["campaign_id"] for m in _events(history, "Email Opened"))
    clicked = Counter(m["properties"]["campaign_id"] for m in _events(history, "Email Link Clicked"))
    newsletters = [c for c in delivered if c.startswith("cmp-")]
    assert len(newsletters) >= 15
    open_rate = sum(opened[c] for c in newsletters) / sum(delivered[c] for c in newsletters)
    click_rate = sum(clicked[c] for c in newsletters) / sum(delivered[c] for c in newsletters)
    assert 0.15 < open_rate < 0.45
    assert 0.01 < click_rate < open_rate / 2


def test_the_unhappy_paths_are_present(history: list[Message]) -> None:
    refunds = _events(history, "Order Refunded")
    assert any("revenue" in r["properties"] for r in refunds), "partial refunds"
    assert any("revenue" not in r["properties"] for r in refunds), "full refunds"
    assert _events(history, "Order Cancelled")
    bounces = {m["properties"]["bounce_type"] for m in _events(history, "Email Bounced")}
    assert bounces == {"hard", "soft"}
    assert _events(history, "Unsubscribed")
    assert _events(history, "Double Opt-In Confirmed")
    opened = _events(history, "Complaint Opened")
    resolved = {m["properties"]["complaint_id"] for m in _events(history, "Complaint Resolved")}
    assert opened
    assert resolved
    assert {m["properties"]["category"] for m in opened} == {"delivery", "product", "billing"}
    assert len(resolved) < len(opened), "not every complaint gets resolved"


def test_checkouts_are_sometimes_abandoned(history: list[Message]) -> None:
    ordered = {m["properties"]["checkout_id"] for m in _events(history, "Order Completed")}
    started = {m["properties"]["checkout_id"] for m in _events(history, "Checkout Started")}
    abandoned = started - ordered
    assert 0.1 < len(abandoned) / len(started) < 0.6


def test_ratings_are_worse_right_after_a_complaint(history: list[Message]) -> None:
    opened_at = {m["properties"]["conversation_id"]: _ts(m) for m in _events(history, "Complaint Opened")}
    after_complaint: list[int] = []
    others: list[int] = []
    for rating in _events(history, "Conversation Rated"):
        conversation, csat = rating["properties"]["conversation_id"], rating["properties"]["csat"]
        if conversation not in opened_at:
            others.append(csat)
        elif _ts(rating) - opened_at[conversation] < timedelta(hours=1):
            after_complaint.append(csat)
    assert len(after_complaint) >= 5
    assert statistics.mean(after_complaint) + 0.8 < statistics.mean(others)


def test_black_friday_and_evenings_are_busier(history: list[Message]) -> None:
    orders = _events(history, "Order Completed")
    per_day = Counter(_ts(m).date().isoformat() for m in orders)
    ordinary = [per_day[(CONFIG.start + timedelta(days=d)).date().isoformat()] for d in range(1, 40)]
    black_weekend = [per_day[f"2024-{day}"] for day in ("11-29", "11-30", "12-01", "12-02")]
    assert statistics.mean(black_weekend) > 2 * statistics.median(ordinary)
    assert per_day["2024-11-29"] > 2 * statistics.median(ordinary)
    # Berlin is UTC+1 in winter: 19-22 h local against 2-5 h local.
    hours = Counter(_ts(m).hour for m in orders)
    assert sum(hours[h] for h in range(18, 21)) > 5 * sum(hours[h] for h in range(1, 4))


def test_revenue_is_skewed_enough_for_an_abc_analysis(history: list[Message]) -> None:
    revenue: Counter[str] = Counter()
    for order in _events(history, "Order Completed"):
        revenue[order["userId"]] += order["properties"]["revenue"]
    ranked = sorted(revenue.values(), reverse=True)
    top = ranked[: len(ranked) // 5]
    assert sum(top) / sum(ranked) > 0.55
    orders_per_buyer = Counter(m["userId"] for m in _events(history, "Order Completed"))
    assert sum(n >= 3 for n in orders_per_buyer.values()) > 10, "repeat buyers"


def test_order_money_adds_up(history: list[Message]) -> None:
    for order in _events(history, "Order Completed"):
        p = order["properties"]
        items = sum(item["price"] * item["quantity"] for item in p["products"])
        assert p["subtotal"] == pytest.approx(items, abs=0.01)
        assert p["total"] == pytest.approx(p["subtotal"] - p["discount"] + p["shipping"], abs=0.01)
        assert p["revenue"] == pytest.approx((p["subtotal"] - p["discount"]) / 1.19, abs=0.01)


def test_estimate_total_is_close_to_the_real_count(history: list[Message]) -> None:
    assert estimate_total(CONFIG) == pytest.approx(len(history), rel=0.25)
