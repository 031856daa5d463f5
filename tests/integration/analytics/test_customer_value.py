"""Customer value refresh on a small data set computed by hand, and the prediction SQL against scipy.

Customers as of 2026-06-30 (days):

=====  ======================================================  ======  =========  ==========
id     counted orders (net revenue)                            orders  net        days since
=====  ======================================================  ======  =========  ==========
c1     01-10 100, 03-10 50, 06-20 150                          3       300        10
c2     06-29 40                                                1       40         1
c3     02-01 500 and 02-01 100 (one purchase day)              2       600        149
c4     05-01 30, refunded in full                              1       0          60
c5     04-01 80, cancelled: not a customer                     -       -          -
c6     06-01 60, 06-15 60, and c7's 03-01 20 (c7 merged in)    3       140        15
c8     07-05 70: after the observation end, not counted        -       -          -
=====  ======================================================  ======  =========  ==========

RFM (n = 5, score = 1 + floor(5 * (rank - 1) / 5) = rank, ties share the lower rank):
R by days since DESC: c3 1, c4 2, c6 3, c1 4, c2 5. F by orders ASC: c2 and c4 1, c3 3, c1 and c6 4.
M by net revenue ASC: c4 1, c2 2, c6 3, c1 4, c3 5.
ABC over 1,080 of positive revenue, descending: c3 600 (0 before: A), c1 300 (600 = 55.6 %: A),
c6 140 (900 = 83.3 %: B), c2 40 (1,040 = 96.3 %: C), c4 0 (C, no revenue).
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

import numpy as np
import orjson
import pytest

from services.admin.profiles import ProfileReader
from services.analytics import sql
from services.analytics.domain import bgnbd, gamma_gamma
from services.analytics.domain.bgnbd import BgNbd
from services.analytics.domain.gamma_gamma import GammaGamma
from services.analytics.domain.value import ValueOptions
from services.analytics.refresh import refresh_status, run_refresh
from services.core.warehouse.migrations import apply_migrations
from services.core.warehouse.port import Warehouse
from tests.integration.analytics.stored_events import EventLog, insert_records, store
from tests.integration.analytics.test_cdnow import cdnow_log

UNTIL = date(2026, 6, 30)


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 10, tzinfo=UTC)


def hand_made() -> EventLog:
    log = EventLog()
    log.order("c1", "o1", at(1, 10), 100.0)
    log.order("c1", "o2", at(3, 10), 50.0)
    log.order("c1", "o3", at(6, 20), 150.0)
    log.order("c2", "o4", at(6, 29), 40.0)
    log.order("c3", "o5", at(2, 1), 500.0)
    log.order("c3", "o6", at(2, 1).replace(hour=18), 100.0)
    log.order("c4", "o7", at(5, 1), 30.0)
    log.track("c4", "Order Refunded", at(5, 9), "shop", order_id="o7")
    log.order("c5", "o8", at(4, 1), 80.0)
    log.track("c5", "Order Cancelled", at(4, 2), "shop", order_id="o8")
    log.order("c6", "o9", at(6, 1), 60.0)
    log.order("c6", "o10", at(6, 15), 60.0)
    log.order("c7", "o11", at(3, 1), 20.0)
    log.merge("c7", "c6")
    log.order("c8", "o12", at(7, 5), 70.0)
    return log


@pytest.fixture
def valued(warehouse: Warehouse) -> tuple[Warehouse, dict[str, dict[str, object]], dict[str, object]]:
    apply_migrations(warehouse)
    store(warehouse, hand_made())
    status = run_refresh(warehouse, ValueOptions(UNTIL, "days"), trigger="test")
    rows = warehouse.query_dicts(f"SELECT * FROM {warehouse.database}.customer_value_latest")
    return warehouse, {str(r["profile_id"]): r for r in rows}, status


def test_refresh_scores_customers_as_computed_by_hand(valued: tuple[Warehouse, dict, dict]) -> None:
    _, rows, status = valued
    assert status["status"] == "done" and status["customers"] == 5
    assert sorted(rows) == ["c1", "c2", "c3", "c4", "c6"]
    expected = {  # orders, net revenue, days since last order, frequency (purchase days - 1), RFM, ABC
        "c1": (3, 300.0, 10, 2, "444", "A"),
        "c2": (1, 40.0, 1, 0, "512", "C"),
        "c3": (2, 600.0, 149, 0, "135", "A"),
        "c4": (1, 0.0, 60, 0, "211", "C"),
        "c6": (3, 140.0, 15, 2, "343", "B"),
    }
    for pid, (orders, net, since, frequency, rfm, abc) in expected.items():
        row = rows[pid]
        got = (
            row["orders"],
            row["historical_clv"],
            row["days_since_last_order"],
            row["frequency"],
            row["rfm_score"],
            row["abc_class"],
        )
        assert got == (orders, net, since, frequency, rfm, abc), pid
    assert rows["c1"]["r_score"] == 4 and rows["c1"]["f_score"] == 4 and rows["c1"]["m_score"] == 4
    assert rows["c6"]["first_order_at"] == at(3, 1)  # the absorbed profile's order counts for c6
    assert rows["c3"]["revenue_share"] == pytest.approx(600 / 1080, abs=1e-6)
    assert rows["c6"]["cumulative_share"] == pytest.approx(1040 / 1080, abs=1e-6)
    # c1: repeat purchase days 03-10 and 06-20, worth 50 and 150.
    assert rows["c1"]["repeat_order_value"] == 100.0
    assert rows["c1"]["recency"] == 161 and rows["c1"]["age"] == 171


def test_a_model_that_does_not_converge_predicts_nothing(valued: tuple[Warehouse, dict, dict]) -> None:
    _, rows, status = valued
    # Two customers with repeat purchases do not pin down four BG/NBD parameters.
    assert status["model"]["bgnbd"] is None and status["model"]["converged"] is False
    assert status["model"]["problems"] == [
        "BG/NBD not fitted: 2 customers with repeat purchases, at least 20 needed",
        "Gamma-Gamma not fitted: 2 customers with repeat purchases of positive value, at least 20 needed",
    ]
    assert all(r["p_alive"] is None and r["predicted_clv"] is None for r in rows.values())
    assert rows["c1"]["expected_order_value"] == 100.0  # no spend model: the customer's own average


def test_refresh_predictions_follow_the_fitted_models(warehouse: Warehouse) -> None:
    """Every CDNOW customer's predictions from SQL against scipy's, with the refresh's own fit."""
    apply_migrations(warehouse)
    store(warehouse, cdnow_log())
    status = run_refresh(
        warehouse, ValueOptions(date(1997, 9, 30), "weeks", horizon_days=39 * 7), trigger="test"
    )
    model = status["model"]
    assert model["converged"] is True
    params = BgNbd(model["bgnbd"]["r"], model["bgnbd"]["alpha"], model["bgnbd"]["a"], model["bgnbd"]["b"])
    spend = GammaGamma(model["gamma_gamma"]["p"], model["gamma_gamma"]["q"], model["gamma_gamma"]["gamma"])
    rows = warehouse.query_dicts(f"SELECT * FROM {warehouse.database}.customer_value_latest")
    assert len(rows) == 2357
    x = np.array([r["frequency"] for r in rows], dtype=float)
    t_x = np.array([r["recency"] for r in rows])
    big_t = np.array([r["age"] for r in rows])
    m_x = np.array([r["repeat_order_value"] or 0.0 for r in rows])
    alive = bgnbd.p_alive(params, x, t_x, big_t)
    purchases = bgnbd.expected_purchases(params, 39.0, x, t_x, big_t)
    order_value = gamma_gamma.expected_spend(spend, x, m_x)
    assert [r["p_alive"] for r in rows] == pytest.approx(list(alive), abs=1e-4)
    assert [r["churn_risk"] for r in rows] == pytest.approx(list(1 - alive), abs=1e-4)
    assert [r["predicted_purchases"] for r in rows] == pytest.approx(list(purchases), abs=1e-4)
    assert [r["expected_order_value"] for r in rows] == pytest.approx(list(order_value), abs=0.01)
    assert [r["predicted_clv"] for r in rows] == pytest.approx(
        list(purchases * order_value), rel=1e-3, abs=0.01
    )
    # Customer 1 of the paper: 2 repeat purchases, the last at 30.43 of 38.86 weeks.
    first = next(r for r in rows if r["profile_id"] == "cdnow-1")
    assert first["predicted_purchases"] == pytest.approx(1.226, abs=0.002)


def test_values_reach_profiles_as_attributes(valued: tuple[Warehouse, dict, dict]) -> None:
    warehouse, _, _ = valued
    [(text,)] = warehouse.query(
        f"SELECT attributes FROM {warehouse.database}.customer_value WHERE profile_id = 'c1'"
    )
    attributes = orjson.loads(text)
    assert attributes["abc_class"] == "A" and attributes["rfm_score"] == "444"
    assert attributes["historical_clv"] == 300.0 and attributes["churn_risk"] is None  # too few to fit


def test_a_second_refresh_replaces_the_first_and_old_partitions_go(
    valued: tuple[Warehouse, dict, dict],
) -> None:
    warehouse, _, first = valued
    db = warehouse.database
    second = run_refresh(warehouse, ValueOptions(date(2026, 7, 31), "weeks"), trigger="test")
    third = run_refresh(warehouse, ValueOptions(date(2026, 7, 31), "days"), trigger="test")
    latest = warehouse.query_dicts(
        f"SELECT profile_id, days_since_last_order FROM {db}.customer_value_latest"
    )
    assert {r["profile_id"] for r in latest} == {"c1", "c2", "c3", "c4", "c6", "c8"}  # c8's order now counts
    assert {r["refresh_id"] for r in [first, second, third]} == {
        int(r[0])
        for r in warehouse.query(
            f"SELECT refresh_id FROM {db}.analytics_refreshes FINAL WHERE status = 'done'"
        )
    }
    kept = {int(r[0]) for r in warehouse.query(f"SELECT DISTINCT refresh_id FROM {db}.customer_value")}
    assert kept == {second["refresh_id"], third["refresh_id"]}
    assert refresh_status(warehouse)["refresh_id"] == third["refresh_id"]  # type: ignore[index]


def test_prediction_sql_matches_scipy_across_customers(warehouse: Warehouse) -> None:
    """The series in SQL against scipy's hyp2f1, including heavy buyers and brand-new customers."""
    grid = [(x, t_x, big_t) for x, t_x, big_t in itertools.product(
        [0, 1, 2, 5, 20, 60, 150], [0, 3, 40, 200], [0, 1, 10, 45, 200, 400]) if (t_x <= big_t and (x == 0) == (t_x == 0)) or (x > 0 and 0 < t_x <= big_t)]  # fmt: skip
    grid = [(x, t, tt) for x, t, tt in grid if (x == 0 and t == 0) or (x > 0 and 0 < t <= tt and x <= t + 1)]
    rows = " UNION ALL ".join(
        f"SELECT toUInt32({x}) AS frequency, toUInt32({t}) AS recency_days, toUInt32({tt}) AS age_days"
        for x, t, tt in grid
    )
    for params in (BgNbd(0.25, 30.0, 0.8, 2.4), BgNbd(1.7, 12.0, 3.1, 6.5)):
        options = ValueOptions(UNTIL, "days", horizon_days=365)
        got = warehouse.query(
            f"SELECT frequency, recency_days, age_days, expected, p_alive FROM ({sql.predictions_sql(f'({rows})', options, params)})"
        )
        assert len(got) == len(grid)
        for x, t, tt, expected, alive in got:
            want = float(bgnbd.expected_purchases(params, 365.0, [x], [t], [tt])[0])
            assert np.isfinite(want)
            assert expected == pytest.approx(want, rel=1e-6, abs=1e-9), (params, x, t, tt)
            assert alive == pytest.approx(float(bgnbd.p_alive(params, [x], [t], [tt])[0]), rel=1e-9), (
                x,
                t,
                tt,
            )


def test_profile_360_shows_the_customer_value(valued: tuple[Warehouse, dict, dict]) -> None:
    warehouse, _, _ = valued
    profiles = [{"profileId": pid, "version": 1, "live": True, "identifiers": [f"customer_id:{pid}"],
                 "traits": {}, "attributes": {}} for pid in ("c1", "c6")]  # fmt: skip
    insert_records(warehouse, "profiles", profiles)
    reader = ProfileReader(warehouse)
    anna = reader.get("c1")
    assert anna is not None and anna["value"] is not None
    assert anna["value"]["abc_class"] == "A" and anna["value"]["rfm_score"] == "444"
    assert anna["value"]["computed_at"].endswith("Z")
    merged = reader.get("c6")
    assert merged is not None and merged["value"]["historical_clv"] == 140.0  # type: ignore[index]
