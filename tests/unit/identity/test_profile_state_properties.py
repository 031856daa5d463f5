"""Properties of profile folding over generated histories: order, partitioning and replays do not matter."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from services.identity.domain.profile_state import ProfileState
from tests.unit.identity.profile_events import NOW, Event, profile_histories

settings.register_profile("profile-folding", max_examples=200, deadline=None)
folding = settings.get_profile("profile-folding")


def fold(events: list[Event]) -> ProfileState:
    state = ProfileState()
    for e in events:
        state.apply(e)
    return state


def view(state: ProfileState) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    """Everything observable: the snapshot bytes, the computed attributes and the traits."""
    return orjson.dumps(state.to_snapshot()), state.attributes(NOW), state.traits()


@folding
@given(st.data())
def test_any_arrival_order_gives_the_same_profile(data: st.DataObject) -> None:
    events = data.draw(profile_histories())
    shuffled = data.draw(st.permutations(events))
    assert view(fold(shuffled)) == view(fold(events))


@folding
@given(st.data())
def test_splitting_over_two_workers_and_merging_equals_one_worker(data: st.DataObject) -> None:
    events = data.draw(profile_histories())
    # Each event goes to one worker, the other, or both (a replay after a rebalance).
    sides = data.draw(
        st.lists(st.sampled_from(["a", "b", "both"]), min_size=len(events), max_size=len(events))
    )
    left = [e for e, side in zip(events, sides, strict=True) if side != "b"]
    right = [e for e, side in zip(events, sides, strict=True) if side != "a"]
    expected = view(fold(events))
    for first, second in ((left, right), (right, left)):
        survivor = fold(first)
        survivor.merge(fold(second))
        assert view(survivor) == expected


@folding
@given(profile_histories(max_size=20), profile_histories(max_size=20), profile_histories(max_size=20))
def test_merge_is_associative(a: list[Event], b: list[Event], c: list[Event]) -> None:
    left = fold(a)
    left.merge(fold(b))
    left.merge(fold(c))
    bc = fold(b)
    bc.merge(fold(c))
    right = fold(a)
    right.merge(bc)
    assert view(left) == view(right)


@folding
@given(profile_histories())
def test_snapshot_round_trips_exactly_and_keeps_folding_the_same(events: list[Event]) -> None:
    head, tail = events[: len(events) // 2], events[len(events) // 2 :]
    state = fold(head)
    restored = ProfileState.from_snapshot(orjson.loads(orjson.dumps(state.to_snapshot())))
    assert view(restored) == view(state)
    for e in tail:
        assert restored.apply(e) == state.apply(e)
    assert view(restored) == view(fold(events))


@folding
@given(profile_histories())
def test_replaying_a_history_is_a_no_op(events: list[Event]) -> None:
    state = fold(events)
    before = view(state)
    assert not any(state.apply(orjson.loads(orjson.dumps(e))) for e in events)
    assert view(state) == before


@folding
@given(profile_histories())
def test_counters_match_a_recount_from_scratch(events: list[Event]) -> None:
    assert _project(fold(events).attributes(NOW)) == _recount(events)


# --- an independent, non-incremental recount of the counters -----------------------------------


def _project(attributes: dict[str, Any]) -> dict[str, Any]:
    return {key: attributes[key] for key in _recount([])}


def _recount(events: list[Event]) -> dict[str, Any]:
    unique = list({e["messageId"]: e for e in events}.values())
    completions: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    cancelled: set[str] = set()
    refunds: dict[str, dict[str, list[int | None]]] = defaultdict(lambda: defaultdict(list))
    ratings: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    complaints: dict[str, dict[str, list[datetime]]] = defaultdict(lambda: defaultdict(list))
    emails: dict[str, set[str]] = defaultdict(set)
    conversations: set[str] = set()
    for e in unique:
        name, props, when = e.get("event"), e["properties"], datetime.fromisoformat(e["timestamp"])
        if name == "Order Completed":
            completions[props["order_id"]].append((when, round(props["revenue"] * 10_000), props["currency"]))
        elif name == "Order Cancelled":
            cancelled.add(props["order_id"])
        elif name == "Order Refunded":
            amount = round(props["revenue"] * 10_000) if "revenue" in props else None
            refunds[props["order_id"]][props.get("refund_id", e["messageId"])].append(amount)
        if props.get("conversation_id"):
            conversations.add(props["conversation_id"])
        if name == "Conversation Rated":
            ratings[props["conversation_id"]].append((when, props["csat"]))
        if name in ("Complaint Opened", "Complaint Resolved"):
            complaints[props["complaint_id"]][name].append(when)
        if name and name.startswith("Email "):
            key = props.get("email_id") or props.get("campaign_id") or e["messageId"]
            emails[name if name != "Email Bounced" else f"bounce-{props['bounce_type']}"].add(key)
    per_currency: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for order_id, done in completions.items():
        if order_id in cancelled:
            continue
        _, revenue, currency = max(done)  # the latest completion; same instant: by value
        amounts = [None if None in a else max(a) for a in refunds[order_id].values()]  # type: ignore[type-var]
        refunded = revenue if None in amounts else min(revenue, sum(a for a in amounts if a is not None))
        totals = per_currency[currency]
        totals[0], totals[1], totals[2] = totals[0] + 1, totals[1] + revenue, totals[2] + refunded
    main = min(per_currency, key=lambda c: (-per_currency[c][0], c)) if per_currency else None
    _, gross, refunded = per_currency[main] if main else (0, 0, 0)
    latest_ratings = [max(r)[1] for r in ratings.values()]  # same instant: the higher rating
    open_complaints = sum(
        1
        for c in complaints.values()
        if c["Complaint Opened"]
        and (not c["Complaint Resolved"] or max(c["Complaint Opened"]) > max(c["Complaint Resolved"]))
    )
    return {
        "orders_count": sum(t[0] for t in per_currency.values()),
        "currency": main,
        "revenue_gross": gross / 10_000,
        "refunds_total": refunded / 10_000,
        "revenue_net": (gross - refunded) / 10_000,
        "chat_conversations": len(conversations),
        "csat_count": len(latest_ratings),
        "csat_average": round(sum(latest_ratings) / len(latest_ratings), 2) if latest_ratings else None,
        "complaints_total": len(complaints),
        "open_complaints": open_complaints,
        "emails_delivered": len(emails["Email Delivered"]),
        "emails_opened": len(emails["Email Opened"]),
        "emails_clicked": len(emails["Email Link Clicked"]),
        "email_hard_bounces": len(emails["bounce-hard"]),
        "email_soft_bounces": len(emails["bounce-soft"]),
        "email_spam_reports": len(emails["Email Marked as Spam"]),
    }
