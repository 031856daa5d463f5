"""Computed attributes, hand-computed: orders, chat, complaints, email, subscription, activity."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from services.identity.domain.profile_state import ProfileState, UnfoldableEventError
from tests.unit.identity.profile_events import (
    NOW,
    Event,
    at,
    chat,
    complaint,
    email,
    event,
    identify,
    order_cancelled,
    order_completed,
    order_refunded,
    page,
    rated,
    subscription,
)

DAY = 24 * 60


def fold(*events: Event) -> ProfileState:
    state = ProfileState()
    for e in events:
        state.apply(e)
    return state


def attrs(*events: Event) -> dict[str, Any]:
    return fold(*events).attributes(NOW)


# --- orders and revenue -----------------------------------------------------------------------


def test_orders_revenue_net_of_refunds_and_order_dates():
    a = attrs(
        order_completed("o1", 100.0, 0),
        order_completed("o2", 50.0, 60),
        order_refunded("o1", 120, revenue=20.0),
    )
    assert a["orders_count"] == 2
    assert a["currency"] == "EUR"
    assert a["revenue_gross"] == 150.0
    assert a["refunds_total"] == 20.0
    assert a["revenue_net"] == 130.0
    assert a["average_order_value"] == 65.0  # net revenue / orders
    assert a["revenue_net_by_currency"] == {"EUR": 130.0}
    assert a["first_order_at"] == at(0)
    assert a["last_order_at"] == at(60)
    assert a["last_order_id"] == "o2"
    assert a["days_since_last_order"] == 19  # 20 days minus one hour, whole days


def test_no_orders_gives_zero_revenue_and_no_dates():
    a = attrs(page(0))
    assert a["orders_count"] == 0
    assert a["currency"] is None
    assert a["revenue_net"] == 0.0
    assert a["average_order_value"] is None
    assert a["first_order_at"] is None
    assert a["last_order_id"] is None
    assert a["days_since_last_order"] is None


def test_refund_arriving_before_its_order_counts_once_the_order_arrives():
    state = fold(order_refunded("o1", 10, revenue=30.0))
    assert state.attributes(NOW)["refunds_total"] == 0.0  # no order yet: nothing to refund from
    state.apply(order_completed("o1", 100.0, 0))
    a = state.attributes(NOW)
    assert (a["orders_count"], a["revenue_gross"], a["refunds_total"], a["revenue_net"]) == (
        1,
        100.0,
        30.0,
        70.0,
    )


def test_full_refund_without_amount_refunds_the_whole_order():
    a = attrs(order_completed("o1", 80.0, 0), order_refunded("o1", 5))
    assert (a["orders_count"], a["refunds_total"], a["revenue_net"], a["average_order_value"]) == (
        1,
        80.0,
        0.0,
        0.0,
    )


def test_refund_amount_falls_back_to_total_then_line_items():
    a = attrs(
        order_completed("o1", 100.0, 0),
        order_refunded("o1", 5, extra={"total": 12.5}),
        order_refunded("o1", 6, extra={"products": [{"product_id": "P1", "price": 2.5, "quantity": 2}]}),
    )
    assert a["refunds_total"] == 17.5


def test_refunds_are_capped_at_the_order_revenue():
    a = attrs(
        order_completed("o1", 50.0, 0),
        order_refunded("o1", 5, revenue=30.0),
        order_refunded("o1", 6, revenue=40.0),
    )
    assert (a["refunds_total"], a["revenue_net"]) == (50.0, 0.0)


def test_refund_id_deduplicates_a_refund_resent_under_a_new_message_id():
    a = attrs(
        order_completed("o1", 50.0, 0),
        order_refunded("o1", 5, revenue=10.0, extra={"refund_id": "r1"}),
        order_refunded("o1", 7, revenue=10.0, extra={"refund_id": "r1"}),
    )
    assert a["refunds_total"] == 10.0


def test_cancelled_order_is_not_an_order_whichever_arrives_first():
    events = [order_completed("o1", 100.0, 0), order_completed("o2", 40.0, 30), order_cancelled("o2", 40)]
    for ordering in (events, events[::-1]):
        a = attrs(*ordering)
        assert (a["orders_count"], a["revenue_gross"], a["revenue_net"]) == (1, 100.0, 100.0)
        assert (a["last_order_at"], a["last_order_id"]) == (at(0), "o1")


def test_refund_of_a_cancelled_order_is_not_counted():
    a = attrs(order_completed("o1", 100.0, 0), order_cancelled("o1", 10), order_refunded("o1", 20))
    assert (a["orders_count"], a["refunds_total"], a["revenue_net"]) == (0, 0.0, 0.0)


def test_order_completed_twice_under_new_message_ids_counts_once_with_latest_values():
    # An edited order is re-sent: the latest values count, the order date is the first completion.
    a = attrs(order_completed("o1", 100.0, 0), order_completed("o1", 120.0, 30))
    assert (a["orders_count"], a["revenue_gross"], a["first_order_at"], a["last_order_at"]) == (
        1,
        120.0,
        at(0),
        at(0),
    )


def test_money_attributes_are_in_the_most_common_currency():
    a = attrs(
        order_completed("o1", 100.0, 0),
        order_completed("o2", 50.0, 10),
        order_completed("o3", 999.0, 20, currency="CHF"),
    )
    assert a["orders_count"] == 3
    assert a["currency"] == "EUR"
    assert (a["revenue_net"], a["average_order_value"]) == (150.0, 75.0)
    assert a["revenue_net_by_currency"] == {"CHF": 999.0, "EUR": 150.0}


def test_amounts_add_exactly():
    a = attrs(*(order_completed(f"o{i}", 0.1, i) for i in range(10)))
    assert a["revenue_gross"] == 1.0  # floats would give 0.9999999999999999


def test_order_without_order_id_counts_only_as_activity():
    state = fold(event("Order Completed", 0, properties={"revenue": 10.0}))
    assert state.attributes(NOW)["orders_count"] == 0
    assert state.attributes(NOW)["last_seen_at"] == at(0)


# --- chat and complaints ----------------------------------------------------------------------


def test_conversations_are_counted_once_and_a_handover_makes_them_human():
    a = attrs(
        chat("Conversation Started", "c1", 0, "bot"),
        chat("Message Sent", "c1", 1, "bot"),
        chat("Message Received", "c1", 2, "human"),
        chat("Conversation Started", "c2", 10, "bot"),
        chat("Message Sent", "c2", 11, "bot"),
        chat("Message Sent", "c3", 20),
    )
    assert (a["chat_conversations"], a["bot_conversations"], a["human_conversations"]) == (3, 1, 1)


def test_csat_averages_each_conversations_latest_rating():
    events = [rated("c1", 2, 10), rated("c1", 4, 20), rated("c2", 5, 15)]
    for ordering in (events, events[::-1]):
        a = attrs(*ordering)
        assert (a["csat_count"], a["csat_average"], a["last_csat"]) == (2, 4.5, 4)


def test_no_ratings_means_no_csat():
    a = attrs(chat("Conversation Started", "c1", 0))
    assert (a["csat_count"], a["csat_average"], a["last_csat"]) == (0, None, None)


def test_open_complaints_are_decided_by_event_time():
    a = attrs(
        complaint("Complaint Opened", "k1", 0),
        complaint("Complaint Resolved", "k1", 30),
        complaint("Complaint Opened", "k2", 10),
        complaint("Complaint Resolved", "k3", 50),  # arrives before its opening
        complaint("Complaint Opened", "k3", 40),
        complaint("Complaint Opened", "k4", 0),
        complaint("Complaint Resolved", "k4", 5),
        complaint("Complaint Opened", "k4", 60),  # re-opened after its resolution
    )
    assert (a["complaints_total"], a["open_complaints"], a["last_complaint_at"]) == (4, 2, at(60))


def test_complaint_resolved_at_the_same_instant_it_was_opened_is_closed():
    a = attrs(complaint("Complaint Opened", "k1", 0), complaint("Complaint Resolved", "k1", 0))
    assert (a["complaints_total"], a["open_complaints"]) == (1, 0)


def test_complaint_in_a_conversation_counts_the_conversation():
    a = attrs(complaint("Complaint Opened", "k1", 0, conversation_id="c9", handled_by="human"))
    assert (a["chat_conversations"], a["human_conversations"], a["open_complaints"]) == (1, 1, 1)


# --- email ------------------------------------------------------------------------------------


def test_email_counts_are_distinct_emails_per_outcome():
    a = attrs(
        email("Email Delivered", 0, "e1"),
        email("Email Opened", 5, "e1"),
        email("Email Opened", 6, "e1"),  # a second open of the same email (image proxy, re-read)
        email("Email Link Clicked", 7, "e1"),
        email("Email Marked as Spam", 8, "e1"),
        email("Email Delivered", 10, "e2"),
        email("Email Opened", 12, "e2"),
        email("Email Bounced", 20, "e3", bounce_type="soft"),
        email("Email Bounced", 21, "e3", bounce_type="soft"),
        email("Email Bounced", 30, "e4", bounce_type="hard"),
    )
    assert a["emails_delivered"] == 2
    assert a["emails_opened"] == 2
    assert a["emails_clicked"] == 1
    assert (a["emails_bounced"], a["email_hard_bounces"], a["email_soft_bounces"]) == (2, 1, 1)
    assert a["email_spam_reports"] == 1
    assert (a["last_email_opened_at"], a["last_email_clicked_at"]) == (at(12), at(7))


def test_bounce_without_type_is_hard():
    assert attrs(email("Email Bounced", 0, "e1"))["email_hard_bounces"] == 1


def test_email_without_id_is_keyed_by_campaign_then_by_message():
    a = attrs(
        email("Email Opened", 0, campaign_id="cmp-1"),
        email("Email Opened", 1, campaign_id="cmp-1"),
        email("Email Opened", 2),
        email("Email Opened", 3),
    )
    assert a["emails_opened"] == 3  # one for the campaign, one per event without any id


# --- subscription -----------------------------------------------------------------------------


def test_subscription_is_unknown_without_decisions():
    a = attrs(page(0))
    assert (a["email_subscription"], a["email_subscriptions"], a["email_double_opt_in"]) == (
        "unknown",
        {},
        False,
    )


def test_subscription_follows_the_latest_decision_by_event_time():
    state = fold(subscription("Unsubscribed", 10), subscription("Subscribed", 0))  # arrival order reversed
    assert state.attributes(NOW)["email_subscription"] == "unsubscribed"
    state.apply(subscription("Subscribed", 20))
    assert state.attributes(NOW)["email_subscription"] == "subscribed"


def test_unsubscribe_without_list_leaves_every_list_known_until_then():
    a = attrs(
        subscription("Subscribed", 0),
        subscription("Subscribed", 5, list_id="promo"),
        subscription("Unsubscribed", 10, list_id=None),
        subscription("Subscribed", 20, list_id="promo"),
    )
    assert a["email_subscription"] == "subscribed"
    assert a["email_subscriptions"] == {
        "": "unsubscribed",
        "newsletter-de": "unsubscribed",
        "promo": "subscribed",
    }


def test_double_opt_in_confirms_the_current_subscription_only():
    state = fold(subscription("Subscribed", 0))
    assert (state.attributes(NOW)["email_subscription"], state.attributes(NOW)["email_double_opt_in"]) == (
        "subscribed",
        False,
    )
    state.apply(subscription("Double Opt-In Confirmed", 5))
    a = state.attributes(NOW)
    assert (a["email_double_opt_in"], a["email_double_opt_in_at"]) == (True, at(5))
    assert a["email_subscriptions"] == {"newsletter-de": "confirmed"}
    state.apply(subscription("Unsubscribed", 10))
    a = state.attributes(NOW)
    assert (a["email_subscription"], a["email_double_opt_in"], a["email_double_opt_in_at"]) == (
        "unsubscribed",
        False,
        at(5),
    )


def test_subscribed_with_confirmed_double_opt_in_counts_as_confirmation():
    a = attrs(subscription("Subscribed", 0, double_opt_in=True))
    assert (a["email_double_opt_in"], a["email_double_opt_in_at"]) == (True, at(0))


# --- activity and channels --------------------------------------------------------------------


def test_first_and_last_seen_by_event_time_not_arrival():
    a = attrs(page(30), email("Email Delivered", 0, "e1"), page(90), page(10))
    assert (a["first_seen_at"], a["first_seen_channel"], a["first_seen_source"]) == (
        at(0),
        "email",
        "email-tool",
    )
    assert a["last_seen_at"] == at(90)


def test_events_that_happen_to_the_customer_are_not_activity():
    a = attrs(email("Email Delivered", 0, "e1"), chat("Message Received", "c1", 5, "bot"))
    assert a["first_seen_at"] == at(0)
    assert (a["last_active_at"], a["active_days"], a["preferred_channel"]) == (None, 0, None)
    assert a["active_days_by_channel"] == {}


def test_preferred_channel_has_the_most_active_days():
    a = attrs(
        page(0),
        page(1),
        page(2),
        page(DAY),
        email("Email Opened", 5, "e1"),
        email("Email Opened", 2 * DAY, "e2"),
        email("Email Link Clicked", 3 * DAY, "e3"),
    )
    assert a["active_days_by_channel"] == {"email": 3, "shop": 2}
    assert a["active_days"] == 4
    assert a["preferred_channel"] == "email"
    assert a["last_active_at"] == at(3 * DAY)
    assert a["last_active_at_by_channel"] == {"email": at(3 * DAY), "shop": at(DAY)}


def test_preferred_channel_tie_goes_to_the_most_recent_channel():
    a = attrs(page(0), chat("Message Sent", "c1", DAY))
    assert a["preferred_channel"] == "chat"
    a = attrs(page(0), chat("Message Sent", "c1", 0, message_id="a"), page(0, message_id="z"))
    assert a["preferred_channel"] == "chat"  # same day and time: the channel name decides


# --- replays, merges, snapshots -----------------------------------------------------------------


def _history() -> list[Event]:
    return [
        identify(0, {"first_name": "Anna", "created_at": "2026-01-05"}),
        page(1),
        order_completed("o1", 83.11, 2),
        order_refunded("o1", 3 * DAY, revenue=15.12),
        chat("Conversation Started", "c1", DAY, "bot"),
        rated("c1", 4, DAY + 5, "bot"),
        complaint("Complaint Opened", "k1", DAY + 6, conversation_id="c1"),
        email("Email Delivered", 2 * DAY, "e1"),
        email("Email Opened", 2 * DAY + 30, "e1"),
        subscription("Subscribed", 0, double_opt_in=True),
    ]


_HISTORY = _history()


def test_replaying_every_event_changes_nothing_and_apply_says_so():
    state = fold(*_HISTORY)
    before, attributes = state.to_snapshot(), state.attributes(NOW)
    replayed = [orjson.loads(orjson.dumps(e)) for e in _HISTORY]  # as read back from the topic
    assert [state.apply(e) for e in replayed] == [False] * len(_HISTORY)
    assert state.to_snapshot() == before
    assert state.attributes(NOW) == attributes


def test_apply_reports_new_information():
    state = ProfileState()
    assert state.apply(page(10))
    assert state.apply(page(0))  # an earlier first_seen
    assert not state.apply(page(5))  # a new event, but no new fact: not first or last, same day
    assert state.apply(order_completed("o1", 10.0, 5))


def test_event_without_a_timestamp_is_refused():
    broken = page(0)
    del broken["timestamp"]
    with pytest.raises(UnfoldableEventError):
        ProfileState().apply(broken)


def test_merged_profiles_combine_an_order_and_its_refund():
    survivor = fold(order_completed("o1", 100.0, 0), page(0))
    absorbed = fold(order_refunded("o1", 10, revenue=40.0), email("Email Opened", 20, "e1"))
    survivor.merge(absorbed)
    a = survivor.attributes(NOW)
    assert (a["revenue_net"], a["emails_opened"], a["preferred_channel"]) == (60.0, 1, "email")


def test_merge_leaves_the_absorbed_state_untouched():
    absorbed = fold(*_HISTORY)
    before = absorbed.to_snapshot()
    survivor = ProfileState()
    survivor.merge(absorbed)
    survivor.apply(order_refunded("o1", 4 * DAY))
    survivor.apply(rated("c1", 1, 5 * DAY))
    survivor.apply(email("Email Link Clicked", 6 * DAY, "e1"))
    assert absorbed.to_snapshot() == before


def test_snapshot_is_json_and_restores_the_same_profile():
    state = fold(*_HISTORY)
    restored = ProfileState.from_snapshot(orjson.loads(orjson.dumps(state.to_snapshot())))
    assert restored.to_snapshot() == state.to_snapshot()
    assert restored.attributes(NOW) == state.attributes(NOW)
    assert restored.traits() == state.traits() == {"created_at": "2026-01-05", "first_name": "Anna"}


def test_snapshot_of_another_version_is_refused():
    with pytest.raises(ValueError, match="version"):
        ProfileState.from_snapshot({**ProfileState().to_snapshot(), "version": 99})


def test_attribute_names_are_the_documented_contract():
    # Segment rules and BI views are written against these names: renaming one needs a migration note.
    assert list(ProfileState().attributes(NOW)) == [
        "first_seen_at",
        "first_seen_channel",
        "first_seen_source",
        "last_seen_at",
        "last_active_at",
        "active_days",
        "active_days_by_channel",
        "last_active_at_by_channel",
        "preferred_channel",
        "orders_count",
        "currency",
        "revenue_gross",
        "refunds_total",
        "revenue_net",
        "average_order_value",
        "revenue_net_by_currency",
        "first_order_at",
        "last_order_at",
        "last_order_id",
        "days_since_last_order",
        "chat_conversations",
        "bot_conversations",
        "human_conversations",
        "csat_count",
        "csat_average",
        "last_csat",
        "complaints_total",
        "open_complaints",
        "last_complaint_at",
        "emails_delivered",
        "emails_opened",
        "emails_clicked",
        "emails_bounced",
        "email_hard_bounces",
        "email_soft_bounces",
        "email_spam_reports",
        "last_email_opened_at",
        "last_email_clicked_at",
        "email_subscription",
        "email_subscriptions",
        "email_double_opt_in",
        "email_double_opt_in_at",
        "consents",
    ]
