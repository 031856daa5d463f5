"""The customer value models on the CDNOW data set, checked against the published numbers.

``tests/data/cdnow/CDNOW_sample.txt`` holds the 6,919 purchases of the 2,357 CDNOW customers whose
first purchase fell in the first quarter of 1997 (Fader and Hardie's public sample). Every purchase
goes into the warehouse as an ``Order Completed`` event; the refresh SQL summarises them as of
1997-09-30 in weeks and Python fits the models. The expected values are not ours:

* the summary per customer (x, t_x, T, average repeat spend) is Fader and Hardie's own
  (``cdnow_summary.csv``, as distributed with their data);
* BG/NBD: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4 (Fader, Hardie and Lee 2005,
  "Counting your customers the easy way", section 5);
* a customer with x = 2, t_x = 30.43, T = 38.86 is expected to make 1.226 purchases in the next
  39 weeks (same paper, section 5);
* Gamma-Gamma: p = 6.25, q = 3.74, gamma = 15.44 (Fader, Hardie and Lee 2005, "RFM and CLV: using
  iso-value curves", section 3).
"""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from services.analytics import sql
from services.analytics.domain.bgnbd import BgNbd
from services.analytics.domain.value import ValueOptions
from services.analytics.refresh import fit_models
from services.core.warehouse.migrations import apply_migrations
from services.core.warehouse.port import Warehouse
from tests.integration.analytics.stored_events import EventLog, store

DATA = Path(__file__).resolve().parents[2] / "data" / "cdnow"
UNTIL = date(1997, 9, 30)


def cdnow_log() -> EventLog:
    log = EventLog()
    for number, line in enumerate((DATA / "CDNOW_sample.txt").read_text().splitlines()):
        _master_id, customer, day, _cds, dollars = line.split()
        at = datetime.strptime(day, "%Y%m%d").replace(hour=12, tzinfo=UTC)
        log.order(f"cdnow-{int(customer)}", f"order-{number}", at, float(dollars))
    return log


@pytest.fixture
def cdnow(warehouse: Warehouse) -> Warehouse:
    apply_migrations(warehouse)
    store(warehouse, cdnow_log())
    return warehouse


def published_summary() -> dict[str, tuple[int, float, float, float]]:
    with (DATA / "cdnow_summary.csv").open() as handle:
        return {
            f"cdnow-{int(r['ID'])}": (int(r["x"]), float(r["t_x"]), float(r["T"]), float(r["zbar"]))
            for r in csv.DictReader(handle)
        }


def test_summary_sql_reproduces_the_published_customer_summary(cdnow: Warehouse) -> None:
    options = ValueOptions(UNTIL, "weeks")
    work = sql.work_table(cdnow.database, 1)
    cdnow.command(sql.summary_sql(cdnow.database, work, options))
    try:
        ours = {
            r["profile_id"]: r
            for r in cdnow.query_dicts(
                f"SELECT profile_id, frequency, recency_days, age_days, repeat_value FROM {work}"
            )
        }
    finally:
        cdnow.command(f"DROP TABLE {work}")
    expected = published_summary()
    assert ours.keys() == expected.keys()
    for customer, (x, t_x, big_t, zbar) in expected.items():
        row = ours[customer]
        assert row["frequency"] == x, customer
        assert row["recency_days"] / 7 == pytest.approx(t_x, abs=0.006), customer
        assert row["age_days"] / 7 == pytest.approx(big_t, abs=0.006), customer
        assert (row["repeat_value"] or 0.0) == pytest.approx(zbar, abs=0.006), customer


def test_fit_finds_the_published_parameters(cdnow: Warehouse) -> None:
    fitted = fit_models(cdnow, ValueOptions(UNTIL, "weeks")).as_json()
    assert fitted["customers"] == 2357 and fitted["repeat_customers"] == 946
    bg = fitted["bgnbd"]
    assert bg["converged"]
    assert (bg["r"], bg["alpha"], bg["a"], bg["b"]) == pytest.approx((0.243, 4.414, 0.793, 2.426), abs=0.0015)
    assert bg["log_likelihood"] == pytest.approx(-9582.4, abs=0.05)
    gg = fitted["gamma_gamma"]
    assert gg["converged"] and gg["customers"] == 946
    assert (gg["p"], gg["q"], gg["gamma"]) == pytest.approx((6.25, 3.74, 15.44), abs=0.01)
    assert fitted["converged"] is True


def test_expected_purchases_sql_matches_the_published_example(warehouse: Warehouse) -> None:
    model = BgNbd(0.243, 4.414, 0.793, 2.426)
    options = ValueOptions(UNTIL, "weeks", horizon_days=39 * 7)
    expression = sql.predictions_sql(
        "(SELECT 2 AS frequency, 213 AS recency_days, 272 AS age_days)", options, model
    )
    [(expected, alive)] = warehouse.query(f"SELECT expected, p_alive FROM ({expression})")
    # t_x = 213 / 7 = 30.43 and T = 272 / 7 = 38.86 weeks.
    assert expected == pytest.approx(1.226, abs=0.0006)
    assert 0 < alive < 1
