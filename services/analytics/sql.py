"""The SQL of a customer value refresh: everything heavy runs inside ClickHouse.

1. ``summary_sql``: one row per customer from the ``orders`` view, as of the observation end
   (``until``): orders, net revenue, and the BG/NBD summary in whole days: ``frequency`` (purchase
   days after the first), ``recency_days`` (first to last purchase day), ``age_days`` (first
   purchase day to ``until``) and the average value of the repeat purchase days.
2. ``fit_input_sql`` / ``spend_input_sql``: those summaries reduced to distinct values with counts,
   the only rows Python reads (the model fit).
3. ``score_sql``: RFM quintiles, ABC classes and the model predictions per customer, inserted into
   ``customer_value`` as one partition. The BG/NBD expectation needs Gauss' hypergeometric function;
   it is summed as a series in SQL, once per distinct ``(frequency, recency_days, age_days)``.

Values are written as literals (dates and numbers only), the database name must be a plain
identifier.
"""

from __future__ import annotations

import math
import re

from services.analytics.domain.bgnbd import BgNbd
from services.analytics.domain.gamma_gamma import GammaGamma
from services.analytics.domain.value import VALUE_ATTRIBUTES, ValueOptions

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Series terms summed per customer summary: enough for the negative-binomial-like weights of the
# hypergeometric series to have passed their mass (see _expected_purchases), and never more.
MAX_SERIES_TERMS = 20_000


def _name(text: str) -> str:
    if not _IDENTIFIER.match(text):
        raise ValueError(f"not a plain identifier: {text!r}")
    return text


def _num(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    return repr(float(value))


def work_table(db: str, refresh_id: int) -> str:
    return f"{_name(db)}.analytics_customers_{int(refresh_id)}"


def summary_sql(db: str, work: str, options: ValueOptions) -> str:
    until = f"toDate('{options.until.isoformat()}')"
    return f"""CREATE TABLE {work} ENGINE = MergeTree ORDER BY profile_id AS
SELECT
    profile_id,
    toUInt32(sum(day_orders)) AS orders,
    min(first_at) AS first_order_at,
    max(last_at) AS last_order_at,
    min(order_date) AS first_day,
    max(order_date) AS last_day,
    toUInt32(count() - 1) AS frequency,
    toUInt32(dateDiff('day', first_day, last_day)) AS recency_days,
    toUInt32(dateDiff('day', first_day, {until})) AS age_days,
    sum(day_value) AS revenue_net,
    if(frequency > 0, (revenue_net - argMin(day_value, order_date)) / frequency, NULL) AS repeat_value
FROM
(
    SELECT profile_id, order_date, count() AS day_orders, sum(net_revenue) AS day_value,
           min(placed_at) AS first_at, max(placed_at) AS last_at
    FROM {_name(db)}.orders
    WHERE counted AND order_date <= {until} AND profile_id != ''
    GROUP BY profile_id, order_date
)
GROUP BY profile_id"""


def fit_input_sql(work: str) -> str:
    # Ordered: the optimiser then sees the same rows in the same order, and the fit is repeatable.
    return f"SELECT frequency, recency_days, age_days, count() FROM {work} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"


def spend_input_sql(work: str) -> str:
    return (
        f"SELECT frequency, round(repeat_value, 2) AS m, count() FROM {work}"
        " WHERE frequency > 0 AND repeat_value > 0 GROUP BY 1, 2 ORDER BY 1, 2"
    )


def _expected_purchases(model: BgNbd, horizon: float) -> str:
    """SQL of E[Y(t) | x, t_x, T] over columns ``x``, ``tx``, ``tt`` (in the fit's unit).

    (1 - z)^(r+x) * 2F1(r+x, b+x; a+b+x-1; z) with z = t / (alpha + T + t) is summed term by term in
    logs: each term is a negative binomial weight (mean A z / (1 - z)) times a ratio of Pochhammer
    symbols (growing at most polynomially), so the sum runs well past that mean and on until z^k
    is below 1e-15.
    """
    r, alpha, a, b = (_num(v) for v in (model.r, model.alpha, model.a, model.b))
    t = _num(horizon)
    big_a, big_b, big_c = f"({r} + x)", f"({b} + x)", f"({a} + {b} + x - 1)"
    z = f"({t} / ({alpha} + tt + {t}))"
    terms = (
        f"toUInt32(least({MAX_SERIES_TERMS}, ceil({big_a} * {z} / (1 - {z})"
        f" + 12 * sqrt({big_a} * {z}) / (1 - {z}) + 35 / -log({z}) + 10)))"
    )
    term = (
        f"exp({big_a} * log(1 - {z}) + lgamma({big_a} + k) - lgamma({big_a}) + lgamma({big_b} + k)"
        f" - lgamma({big_b}) - lgamma({big_c} + k) + lgamma({big_c}) - lgamma(k + 1) + k * log({z}))"
    )
    series = f"arraySum(k -> {term}, range({terms}))"
    odds = f"if(x > 0, ({a} / ({b} + x - 1)) * pow(({alpha} + tt) / ({alpha} + tx), {big_a}), 0)"
    return f"if({big_c} > 0, ({big_c} / ({a} - 1)) * (1 - {series}) / (1 + {odds}), NULL)"


def _p_alive(model: BgNbd) -> str:
    r, alpha, a, b = (_num(v) for v in (model.r, model.alpha, model.a, model.b))
    return f"if(x > 0, 1 / (1 + ({a} / ({b} + x - 1)) * pow(({alpha} + tt) / ({alpha} + tx), {r} + x)), 1.0)"


def predictions_sql(work: str, options: ValueOptions, model: BgNbd | None) -> str:
    """Per distinct summary: ``p_alive`` and ``expected`` (purchases within the horizon)."""
    unit = _num(options.unit_days)
    if model is None:
        return (
            f"SELECT DISTINCT frequency, recency_days, age_days, CAST(NULL, 'Nullable(Float64)') AS p_alive,"
            f" CAST(NULL, 'Nullable(Float64)') AS expected FROM {work}"
        )
    return f"""SELECT frequency, recency_days, age_days,
       toNullable({_p_alive(model)}) AS p_alive,
       toNullable({_expected_purchases(model, options.horizon)}) AS expected_raw,
       if(expected_raw IS NULL, NULL, greatest(0, expected_raw)) AS expected
FROM
(
    SELECT DISTINCT frequency, recency_days, age_days,
           toFloat64(frequency) AS x, recency_days / {unit} AS tx, age_days / {unit} AS tt
    FROM {work}
)"""


def _spend(spend: GammaGamma | None) -> str:
    if spend is None or not spend.q > 1:
        # No spend model: a customer's own average order value.
        return "toNullable(revenue_net / orders)"
    p, q, g = _num(spend.p), _num(spend.q), _num(spend.gamma)
    return (
        f"toNullable(if(frequency > 0 AND repeat_value > 0,"
        f" {p} * ({g} + frequency * repeat_value) / ({p} * frequency + {q} - 1),"
        f" {p} * {g} / ({q} - 1)))"
    )


def _score(order_by: str) -> str:
    """Quintile 1-5 by rank: the best fifth scores 5, ties share the lower score."""
    return f"toUInt8(1 + intDiv(5 * (rank() OVER (ORDER BY {order_by}) - 1), count() OVER ()))"


def score_sql(
    db: str, work: str, refresh_id: int, options: ValueOptions, model: BgNbd | None, spend: GammaGamma | None
) -> str:
    until = f"toDate('{options.until.isoformat()}')"
    a_share, ab_share = _num(options.abc_a), _num(options.abc_a + options.abc_b)
    margin = _num(options.margin)
    attributes = ", ".join(f"{name} AS {name}" for name in VALUE_ATTRIBUTES)
    return f"""INSERT INTO {_name(db)}.customer_value
SELECT
    {int(refresh_id)} AS refresh_id, profile_id, now64(3) AS computed_at, orders, first_order_at,
    last_order_at, days_since_last_order, historical_clv, average_order_value, frequency, recency, age,
    repeat_order_value, rfm_recency_score AS r_score, rfm_frequency_score AS f_score,
    rfm_monetary_score AS m_score, rfm_score, abc_class, revenue_share, cumulative_share, p_alive, churn_risk,
    predicted_purchases, expected_order_value, predicted_clv,
    toJSONString(CAST(tuple({attributes}), 'Tuple(rfm_recency_score UInt8, rfm_frequency_score UInt8,
        rfm_monetary_score UInt8, rfm_score String, abc_class String, historical_clv Float64,
        predicted_clv Nullable(Float64), predicted_purchases Nullable(Float64),
        expected_order_value Nullable(Float64), p_alive Nullable(Float64),
        churn_risk Nullable(Float64))')) AS attributes
FROM
(
    SELECT
        w.profile_id AS profile_id, orders, first_order_at, last_order_at,
        toUInt32(dateDiff('day', last_day, {until})) AS days_since_last_order,
        round(revenue_net, 2) AS historical_clv,
        round(revenue_net / orders, 2) AS average_order_value,
        w.frequency AS frequency,
        w.recency_days / {_num(options.unit_days)} AS recency,
        w.age_days / {_num(options.unit_days)} AS age,
        if(repeat_value IS NULL, NULL, round(repeat_value, 2)) AS repeat_order_value,
        {_score("days_since_last_order DESC")} AS rfm_recency_score,
        {_score("orders ASC")} AS rfm_frequency_score,
        {_score("revenue_net ASC")} AS rfm_monetary_score,
        concat(toString(rfm_recency_score), toString(rfm_frequency_score),
               toString(rfm_monetary_score)) AS rfm_score,
        greatest(revenue_net, 0) AS positive,
        sum(positive) OVER () AS total_positive,
        sum(positive) OVER (ORDER BY revenue_net DESC, w.profile_id ASC
                            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running,
        if(total_positive > 0, round(positive / total_positive, 6), 0) AS revenue_share,
        if(total_positive > 0, round(running / total_positive, 6), 0) AS cumulative_share,
        multiIf(revenue_net <= 0 OR total_positive <= 0, 'C',
                running - positive < {a_share} * total_positive, 'A',
                running - positive < {ab_share} * total_positive, 'B', 'C') AS abc_class,
        if(p.p_alive IS NULL, NULL, round(p.p_alive, 4)) AS p_alive,
        if(p.p_alive IS NULL, NULL, round(1 - p.p_alive, 4)) AS churn_risk,
        if(p.expected IS NULL, NULL, round(p.expected, 4)) AS predicted_purchases,
        round({_spend(spend)}, 2) AS expected_order_value,
        if(p.expected IS NULL, NULL, round(p.expected * expected_order_value * {margin}, 2)) AS predicted_clv
    FROM {work} AS w
    LEFT JOIN ({predictions_sql(work, options, model)}) AS p
        ON w.frequency = p.frequency AND w.recency_days = p.recency_days AND w.age_days = p.age_days
)"""
