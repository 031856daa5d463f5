"""The BI views of ``schemas/ddl/007_analytics.sql`` on small data sets computed by hand.

Every test runs twice per adapter: with the events arriving after the migration (in small inserts,
as a sink writes them, so the materialized views keep the state tables part by part) and with the
events stored before the analytics migration (its INSERTs fill the state tables). Profiles in
``profile_redirects`` are merged away; the views must count them as their survivor.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from services.core.warehouse.migrations import apply_migrations, default_ddl_dir
from services.core.warehouse.port import Warehouse
from tests.integration.analytics.stored_events import EventLog, rows, store

Load = Callable[[EventLog], Warehouse]


def at(day: int, hour: int = 0, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2024, month, day, hour, minute, tzinfo=UTC)


def utc(value: Any) -> Any:
    """Datetimes as aware UTC values, whichever way the adapter returns them."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def table(warehouse: Warehouse, sql: str, key: str | tuple[str, ...]) -> dict[Any, dict[str, Any]]:
    keys = (key,) if isinstance(key, str) else key
    found: dict[Any, dict[str, Any]] = {}
    for row in rows(warehouse, sql):
        row = {name: utc(value) for name, value in row.items()}
        k = row[keys[0]] if len(keys) == 1 else tuple(row[name] for name in keys)
        assert k not in found, f"two rows for {k}"
        found[k] = row
    return found


def pick(records: dict[Any, dict[str, Any]], *names: str) -> dict[Any, tuple[Any, ...]]:
    return {k: tuple(r[name] for name in names) for k, r in records.items()}


@pytest.fixture(params=["events-after-migration", "events-before-analytics"])
def load(request: pytest.FixtureRequest, warehouse: Warehouse, tmp_path: Path) -> Load:
    def run(log: EventLog) -> Warehouse:
        if request.param == "events-after-migration":
            apply_migrations(warehouse)
            store(warehouse, log, chunk=5)  # many small inserts: many parts of every state table
        else:
            earlier = tmp_path / "ddl"
            earlier.mkdir()
            for path in default_ddl_dir().glob("*.sql"):
                if path.name < "007":
                    shutil.copy(path, earlier / path.name)
            apply_migrations(warehouse, earlier)
            store(warehouse, log)
            apply_migrations(warehouse)  # 007 fills its tables from the stored events
        return warehouse

    return run


def refund(
    log: EventLog, profile: str, order_id: str, when: datetime, amount: float | None, **more: Any
) -> None:
    if amount is not None:
        more["revenue"] = amount
    log.track(profile, "Order Refunded", when, "shop", order_id=order_id, currency="EUR", **more)


def cancel(log: EventLog, profile: str, order_id: str, when: datetime) -> None:
    log.track(profile, "Order Cancelled", when, "shop", order_id=order_id, reason="test")


def product(product_id: str, price: float, quantity: int | None = None) -> dict[str, Any]:
    line: dict[str, Any] = {"product_id": product_id, "sku": f"sku-{product_id}", "name": f"Product {product_id}",
                            "category": "Shoes", "brand": "Acme", "price": price}  # fmt: skip
    if quantity is not None:
        line["quantity"] = quantity
    return line


# --- orders ------------------------------------------------------------------------------------


def orders_log() -> EventLog:
    log = EventLog()
    log.order("alice", "O1", at(4, 10), 100.0)
    # one refund re-sent under a new message id but the same refund_id: counted once
    log.order("alice", "O2", at(4, 11), 80.0)
    refund(log, "alice", "O2", at(5, 9), 30.0, refund_id="R-2")
    refund(log, "alice", "O2", at(6, 9), 30.0, refund_id="R-2")
    # two refunds without refund_id: two refund keys (their message ids)
    log.order("alice", "O10", at(4, 9), 50.0)
    refund(log, "alice", "O10", at(5, 10), 10.0)
    refund(log, "alice", "O10", at(5, 11), 10.0)
    # a refund without an amount gives back the whole order
    log.order("bob", "O3", at(4, 10), 50.0)
    refund(log, "bob", "O3", at(5, 9), None)
    # refunds never exceed the order
    log.order("bob", "O4", at(4, 11), 60.0)
    refund(log, "bob", "O4", at(5, 10), 40.0, refund_id="R-a")
    refund(log, "bob", "O4", at(6, 10), 35.0, refund_id="R-b")
    log.order("bob", "O5", at(4, 12), 70.0)
    cancel(log, "bob", "O5", at(5, 12))
    # the order re-sent with new values: earliest time, latest values
    log.order("alice", "O6", at(4, 12), 40.0, total=42.0, products=[product("a", 40.0)])
    log.order("alice", "O6", at(4, 15), 45.0, total=47.0, products=[product("a", 45.0)])
    # a re-send stamped earlier than the first message: still the latest stamp's values win
    log.order("alice", "O11", at(4, 16), 20.0)
    log.order("alice", "O11", at(4, 14), 25.0)
    # revenue defaults to total, else to the line items
    log.order("bob", "O7", at(4, 13), None, total=25.0)
    log.order("bob", "O8", at(4, 14), None, products=[product("b", 10.0, 2), product("c", 5.5)])
    # carol was merged into dave
    log.order("carol", "O9", at(4, 15), 20.0)
    log.merge("carol", "dave")
    return log


def test_orders_status_refunds_and_profiles(load: Load) -> None:
    warehouse = load(orders_log())
    found = table(warehouse, "SELECT * FROM {db}.orders", "order_id")
    columns = ("profile_id", "status", "counted", "revenue", "refunded", "net_revenue", "refunds")
    assert pick(found, *columns) == {
        "O1": ("alice", "completed", True, 100.0, 0.0, 100.0, 0),
        "O2": ("alice", "partially_refunded", True, 80.0, 30.0, 50.0, 1),  # 80 - 30 (R-2 once)
        "O10": ("alice", "partially_refunded", True, 50.0, 20.0, 30.0, 2),  # 50 - (10 + 10)
        "O3": ("bob", "refunded", True, 50.0, 50.0, 0.0, 1),  # no amount: all 50
        "O4": ("bob", "refunded", True, 60.0, 60.0, 0.0, 2),  # 40 + 35 = 75, capped at 60
        "O5": ("bob", "cancelled", False, 70.0, 0.0, 0.0, 0),
        "O6": ("alice", "completed", True, 45.0, 0.0, 45.0, 0),  # the re-sent 45, not 40 + 45
        "O11": ("alice", "completed", True, 20.0, 0.0, 20.0, 0),  # stamped 16:00 beats 14:00
        "O7": ("bob", "completed", True, 25.0, 0.0, 25.0, 0),  # total
        "O8": ("bob", "completed", True, 25.5, 0.0, 25.5, 0),  # 10 * 2 + 5.5 * 1
        "O9": ("dave", "completed", True, 20.0, 0.0, 20.0, 0),  # carol -> dave
    }
    assert found["O6"]["placed_at"] == at(4, 12) and found["O6"]["order_date"] == date(2024, 3, 4)
    assert found["O6"]["total"] == 47.0
    assert found["O11"]["placed_at"] == at(4, 14)
    assert found["O8"]["items"] == 3.0  # 2 + 1
    assert found["O8"]["total"] is None
    assert found["O2"]["last_refunded_at"] == at(5, 9)  # the refund was made on the 5th, re-sent on the 6th
    assert found["O4"]["last_refunded_at"] == at(6, 10)
    assert found["O1"]["last_refunded_at"] is None
    assert found["O5"]["cancelled_at"] == at(5, 12)
    assert found["O1"]["cancelled_at"] is None
    assert found["O1"]["channel"] == "shop" and found["O1"]["currency"] == "EUR"


# --- order lines -------------------------------------------------------------------------------


def test_order_lines_are_the_latest_completions_lines(load: Load) -> None:
    log = EventLog()
    log.order(
        "ann", "L1", at(4, 10), None, products=[product("a", 10.0, 2), product("b", 5.5), product("c", 1.0)]
    )
    # re-sent with one line left: lines 2 and 3 are gone
    log.order("ann", "L1", at(4, 11), None, products=[product("a", 10.0, 3)])
    log.order("cat2", "L2", at(4, 12), None, products=[product("x", 19.99, 3), product("y", 0.5)])
    log.merge("cat2", "cat")
    warehouse = load(log)
    found = table(warehouse, "SELECT * FROM {db}.order_lines", ("order_id", "line"))
    assert pick(found, "profile_id", "product_id", "sku", "price", "quantity", "line_total") == {
        ("L1", 1): ("ann", "a", "sku-a", 10.0, 3.0, 30.0),  # 10 * 3
        ("L2", 1): ("cat", "x", "sku-x", 19.99, 3.0, 59.97),  # 19.99 * 3
        ("L2", 2): ("cat", "y", "sku-y", 0.5, 1.0, 0.5),  # quantity defaults to 1
    }
    assert found[("L1", 1)]["timestamp"] == at(4, 11)
    assert (found[("L2", 1)]["name"], found[("L2", 1)]["category"], found[("L2", 1)]["brand"]) == (
        "Product x", "Shoes", "Acme",
    )  # fmt: skip
    # the lines add up to the order's revenue
    revenue = table(warehouse, "SELECT order_id, revenue FROM {db}.orders", "order_id")
    assert revenue["L1"]["revenue"] == 30.0
    assert revenue["L2"]["revenue"] == pytest.approx(60.47)  # 59.97 + 0.5


# --- daily KPIs --------------------------------------------------------------------------------


def kpi_log() -> EventLog:
    log = EventLog()
    # 4 March
    log.track("cat", "Email Opened", at(4, 8), "email", campaign_id="c", campaign_name="C")
    log.track("cat", "Product Viewed", at(4, 9), "shop", product_id="p")
    log.track("cat2", "Product Viewed", at(4, 9, 30), "shop", product_id="p")
    log.order("ann", "A1", at(4, 10), 100.0)
    log.order("ben", "B1", at(4, 11), 50.0)
    log.order("ben", "B1", at(4, 12), 60.0)  # re-sent: the order is worth 60
    log.order("dan", "D1", at(4, 13), 30.0)  # cancelled on the 5th
    # 5 March
    log.track("ben", "Message Sent", at(5, 9), "chat", conversation_id="x", handled_by="bot")
    log.order("ann", "A2", at(5, 10), 40.0)
    log.order("cat2", "C1", at(5, 11), None, total=20.0)
    log.order("cat", "C2", at(5, 12), 10.0)
    refund(log, "ann", "A1", at(5, 13), 30.0, refund_id="k1")
    cancel(log, "dan", "D1", at(5, 14))
    # 6 March
    refund(log, "ann", "A1", at(6, 9), 90.0, refund_id="k2")  # only 100 - 30 = 70 is left
    refund(log, "ben", "B1", at(6, 10), None)  # all of it: 60
    log.merge("cat2", "cat")
    return log


def test_kpi_daily(load: Load) -> None:
    warehouse = load(kpi_log())
    found = table(warehouse, "SELECT * FROM {db}.kpi_daily", ("day", "channel"))
    columns = ("events", "orders", "revenue", "refunds", "net_revenue", "average_order_value",
               "active_customers", "buyers", "new_customers", "returning_customers")  # fmt: skip
    d4, d5, d6 = date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6)
    assert pick(found, *columns) == {
        # shop events: 2 views, A1, B1 twice, D1 = 6. Orders: A1 100 + B1 60 (D1 was cancelled);
        # AOV 160 / 2. Active: ann, ben, cat (with cat2), dan. Buyers ann and ben, both new.
        (d4, "shop"): (6, 2, 160.0, 0.0, 160.0, 80.0, 4, 2, 2, 0),
        (d4, "email"): (1, 0, 0.0, 0.0, 0.0, None, 1, 0, 0, 0),
        (d4, "all"): (7, 2, 160.0, 0.0, 160.0, 80.0, 4, 2, 2, 0),
        # shop events: A2, C1, C2, refund, cancellation = 5. Orders 40 + 20 (total) + 10 = 70 over 3:
        # AOV 23.33. Refund k1 30, net 70 - 30. Active ann, cat (cat2), dan. Buyers ann (returning)
        # and cat (new: C1 and C2 are both cat's first day).
        (d5, "shop"): (5, 3, 70.0, 30.0, 40.0, 23.33, 3, 2, 1, 1),
        (d5, "chat"): (1, 0, 0.0, 0.0, 0.0, None, 1, 0, 0, 0),
        (d5, "all"): (6, 3, 70.0, 30.0, 40.0, 23.33, 4, 2, 1, 1),  # + ben in chat
        # refunds: k2 min(90, 100 - 30) = 70, B1 in full 60: 130 on the day they were made
        (d6, "shop"): (2, 0, 0.0, 130.0, -130.0, None, 2, 0, 0, 0),
        (d6, "all"): (2, 0, 0.0, 130.0, -130.0, None, 2, 0, 0, 0),
    }
    # Over all days the net revenue is what the orders are worth now: 160 + 40 - 130 = 70
    # (A1 and B1 refunded in full, A2 40 + C1 20 + C2 10).
    [(net,)] = warehouse.query(f"SELECT sum(net_revenue) FROM {warehouse.database}.orders")
    assert net == pytest.approx(70.0)


# --- retention cohorts -------------------------------------------------------------------------


def test_retention_cohorts(load: Load) -> None:
    log = EventLog()
    log.order("u1", "a", at(10, 12, month=1), 10.0)
    log.order("u1", "b", at(5, 12, month=2), 10.0)
    log.order("u1", "c", at(20, 12, month=3), 10.0)
    log.order("u2", "d", at(20, 12, month=1), 10.0)
    log.order("u2", "e", at(3, 12, month=3), 10.0)
    log.order("u3", "f", at(1, 12, month=2), 10.0)
    log.order("u3", "g", at(15, 12, month=2), 10.0)
    log.order("u4", "h", at(5, 12, month=1), 10.0)  # cancelled: u4's first order is in February
    cancel(log, "u4", "h", at(6, 12, month=1))
    log.order("u4", "i", at(10, 12, month=2), 10.0)
    log.order("u5", "j", at(25, 12, month=1), 10.0)  # u5 is u1 now
    log.order("u5", "k", at(2, 12, month=4), 10.0)
    log.order("u6", "l", at(15, 12, month=1), 10.0)
    log.order("u6", "l", at(2, 12, month=2), 12.0)  # the same order re-sent: no order in February
    log.merge("u5", "u1")
    warehouse = load(log)
    found = table(warehouse, "SELECT * FROM {db}.retention_cohorts", ("cohort_month", "month"))
    jan, feb, mar, apr = (date(2024, m, 1) for m in (1, 2, 3, 4))
    assert pick(found, "months_since_first", "customers", "cohort_size", "retention") == {
        # January: u1 (with u5), u2, u6
        (jan, jan): (0, 3, 3, 1.0),
        (jan, feb): (1, 1, 3, 0.3333),  # u1: 1 / 3
        (jan, mar): (2, 2, 3, 0.6667),  # u1, u2: 2 / 3
        (jan, apr): (3, 1, 3, 0.3333),  # u1 (as u5)
        # February: u3 (twice in the month), u4
        (feb, feb): (0, 2, 2, 1.0),
    }


# --- email funnel ------------------------------------------------------------------------------


def email(log: EventLog, profile: str, event: str, when: datetime, campaign: str = "c1", **more: Any) -> None:
    names = {"c1": "Spring", "c2": "Summer"}
    more.setdefault("campaign_name", names[campaign])
    log.track(profile, event, when, "email", campaign_id=campaign, **more)


def test_email_funnel(load: Load) -> None:
    log = EventLog()
    # e1 clicks on the 1st at 12:00: orders until the 8th 12:00 count
    email(log, "e1", "Email Delivered", at(1, 10))
    email(log, "e1", "Email Opened", at(1, 11))
    email(log, "e1", "Email Link Clicked", at(1, 12))
    email(log, "e1", "Email Link Clicked", at(3, 12))  # the first click counts
    log.order("e1", "x1", at(1, 9), 20.0)  # before the click
    log.order("e1", "x2", at(5, 10), 100.0)
    log.order("e1", "x3", at(8, 13), 50.0)  # 7 days and 1 hour after the first click
    email(log, "e1", "Email Delivered", at(10, 10), campaign="c2")
    # e2 opens, e3 only receives, e4 bounces
    email(log, "e2", "Email Delivered", at(1, 10))
    email(log, "e2", "Email Opened", at(2, 10))
    email(log, "e3", "Email Delivered", at(1, 10, 5))
    email(log, "e4", "Email Bounced", at(1, 10), bounce_type="hard")
    # e5 clicked as e5a (merged into e5); the order re-sent with new values counts once
    email(log, "e5", "Email Delivered", at(1, 10))
    email(log, "e5", "Email Opened", at(1, 11))
    email(log, "e5a", "Email Link Clicked", at(2, 10))
    log.order("e5", "x5", at(2, 12), 30.0)
    log.order("e5", "x5", at(2, 13), 35.0)
    log.merge("e5a", "e5")
    # e6 orders one minute before the 7 days are up, and unsubscribes
    email(log, "e6", "Email Delivered", at(1, 9))
    email(log, "e6", "Email Opened", at(1, 10))
    email(log, "e6", "Email Link Clicked", at(1, 12))
    email(log, "e6", "Unsubscribed", at(1, 13))
    log.order("e6", "x6", at(8, 11, 59), 10.0)
    # e7's order was cancelled
    email(log, "e7", "Email Delivered", at(1, 10))
    email(log, "e7", "Email Link Clicked", at(1, 11), campaign_name="")  # the latest name that is not empty
    log.order("e7", "x7", at(3, 10), 40.0)
    cancel(log, "e7", "x7", at(3, 11))
    warehouse = load(log)
    found = table(warehouse, "SELECT * FROM {db}.email_funnel", "campaign_id")
    columns = ("campaign_name", "delivered", "opened", "clicked", "ordered", "ordered_revenue", "bounced",
               "unsubscribed", "open_rate", "click_rate", "click_to_order_rate")  # fmt: skip
    assert pick(found, *columns) == {
        # delivered e1 e2 e3 e5 e6 e7 = 6; opened e1 e2 e5 e6 = 4; clicked e1 e5 e6 e7 = 4;
        # ordered e1 (100), e5 (35), e6 (10) = 3, 145; rates 4/6, 4/6, 3/4
        "c1": ("Spring", 6, 4, 4, 3, 145.0, 1, 1, 0.6667, 0.6667, 0.75),
        "c2": ("Summer", 1, 0, 0, 0, 0.0, 0, 0, 0.0, 0.0, None),
    }
    assert found["c1"]["first_delivered_at"] == at(1, 9)
    assert found["c2"]["first_delivered_at"] == at(10, 10)


# --- service KPIs ------------------------------------------------------------------------------


def chat(
    log: EventLog, profile: str, event: str, when: datetime, conversation: str, by: str, **more: Any
) -> None:
    log.track(profile, event, when, "chat", conversation_id=conversation, handled_by=by, **more)


def complaint(log: EventLog, event: str, when: datetime, complaint_id: str, **more: Any) -> None:
    if event == "Complaint Opened":
        more.setdefault("category", "delivery")
    log.track("p9", event, when, "chat", complaint_id=complaint_id, **more)


def service_log() -> EventLog:
    log = EventLog()
    # 4 March: k1 bot only (rated 4), k2 handed to a person (rated 2, then 5), k3 a person (unrated)
    chat(log, "p1", "Conversation Started", at(4, 9), "k1", "bot", topic="returns")
    chat(log, "p1", "Message Sent", at(4, 9, 1), "k1", "bot")
    chat(log, "p1", "Message Received", at(4, 9, 2), "k1", "bot")
    chat(log, "p1", "Conversation Rated", at(4, 9, 5), "k1", "bot", csat=4)
    chat(log, "p2", "Conversation Started", at(4, 10), "k2", "bot")
    chat(log, "p2", "Message Sent", at(4, 10, 1), "k2", "bot")
    chat(log, "p2", "Message Received", at(4, 10, 5), "k2", "human")
    chat(log, "p2", "Conversation Rated", at(4, 10, 10), "k2", "human", csat=2)
    chat(log, "p2", "Conversation Rated", at(4, 10, 20), "k2", "human", csat=5)
    chat(log, "p3", "Conversation Started", at(4, 11), "k3", "human")
    # 5 March: k4 bot only, rated 3
    chat(log, "p1", "Conversation Started", at(5, 9), "k4", "bot")
    chat(log, "p1", "Message Received", at(5, 9, 1), "k4", "bot")
    chat(log, "p1", "Conversation Rated", at(5, 9, 2), "k4", "bot", csat=3)
    # complaints
    complaint(log, "Complaint Opened", at(3, 9), "q6")
    complaint(log, "Complaint Resolved", at(5, 9), "q6")  # 48 h
    complaint(log, "Complaint Opened", at(4, 10), "q1", category="billing", order_id="o-1")
    complaint(log, "Complaint Resolved", at(4, 12), "q1", resolution="refund")  # 2 h
    complaint(log, "Complaint Opened", at(4, 11), "q2")
    complaint(log, "Complaint Resolved", at(5, 9), "q2")  # 22 h
    complaint(log, "Complaint Opened", at(4, 12), "q3")
    complaint(log, "Complaint Resolved", at(5, 16), "q3")  # 28 h
    complaint(log, "Complaint Opened", at(5, 8), "q4")  # still open
    complaint(log, "Complaint Resolved", at(5, 10), "q5", category="billing")  # its opening was never seen
    complaint(log, "Complaint Opened", at(5, 7), "q7")
    complaint(log, "Complaint Resolved", at(5, 11), "q7")  # 4 h
    return log


def test_conversations_complaints_and_service_kpis(load: Load) -> None:
    warehouse = load(service_log())
    conversations = table(warehouse, "SELECT * FROM {db}.conversations", "conversation_id")
    assert pick(conversations, "profile_id", "started_at", "last_at", "handled_by", "messages", "csat") == {
        "k1": ("p1", at(4, 9), at(4, 9, 5), "bot", 2, 4.0),
        "k2": ("p2", at(4, 10), at(4, 10, 20), "human", 2, 5.0),  # handed over; the latest rating
        "k3": ("p3", at(4, 11), at(4, 11), "human", 0, None),
        "k4": ("p1", at(5, 9), at(5, 9, 2), "bot", 1, 3.0),
    }
    assert conversations["k1"]["topic"] == "returns"
    complaints = table(warehouse, "SELECT * FROM {db}.complaints", "complaint_id")
    # the resolutions name no category: the opening's stays
    assert pick(complaints, "opened_at", "resolved_at", "hours_to_resolve", "category") == {
        "q1": (at(4, 10), at(4, 12), 2.0, "billing"),
        "q2": (at(4, 11), at(5, 9), 22.0, "delivery"),
        "q3": (at(4, 12), at(5, 16), 28.0, "delivery"),
        "q4": (at(5, 8), None, None, "delivery"),
        "q5": (None, at(5, 10), None, "billing"),
        "q6": (at(3, 9), at(5, 9), 48.0, "delivery"),
        "q7": (at(5, 7), at(5, 11), 4.0, "delivery"),
    }
    assert (complaints["q1"]["resolution"], complaints["q1"]["order_id"]) == ("refund", "o-1")
    assert complaints["q1"]["profile_id"] == "p9"

    found = table(warehouse, "SELECT * FROM {db}.service_kpi_daily", "day")
    columns = ("conversations", "bot_only", "with_human", "bot_share", "human_share", "rated", "csat_average",
               "complaints_opened", "complaints_resolved", "average_hours_to_resolve", "median_hours_to_resolve")  # fmt: skip
    assert pick(found, *columns) == {
        # only q6 opened
        date(2024, 3, 3): (0, 0, 0, None, None, 0, None, 1, 0, None, None),
        # k1 bot, k2 (handed over) and k3 human: 1/3, 2/3; csat (4 + 5) / 2; opened q1 q2 q3,
        # resolved q1 in 2 h
        date(2024, 3, 4): (3, 1, 2, 0.3333, 0.6667, 2, 4.5, 3, 1, 2.0, 2.0),
        # k4 bot, rated 3; opened q4 q7; resolved q2 q3 q5 q6 q7, timed 22 28 48 4 (q5 has no
        # opening): average 102 / 4 = 25.5, median (22 + 28) / 2 = 25
        date(2024, 3, 5): (1, 1, 0, 1.0, 0.0, 1, 3.0, 2, 5, 25.5, 25.0),
    }
