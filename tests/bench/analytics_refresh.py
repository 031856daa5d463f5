"""Customer analytics benchmark: the RFM + ABC + CLV refresh over 1M profiles and 10M events.

    .venv/bin/python -m tests.bench.analytics_refresh [--profiles 1000000] [--events 10000000] [--rounds 3]

The warehouse is the embedded chDB engine of this process, a throwaway database with every
migration. The events are generated inside ClickHouse (``INSERT ... SELECT FROM numbers()``) and
inserted the way the events sink inserts ``cdp.identity.resolved`` records: only the JSON record
(``_raw``) and its Kafka lineage, so ClickHouse derives every column and the materialized views of
``schemas/ddl/007_analytics.sql`` fill their tables (order events and lines, the ``*_state``
tables) as in production. One year of data, the 365 days before ``UNTIL``:

* about 60 % of the profiles buy: a geometric number of orders per buyer (a fifth of the buyers are
  heavy buyers with four orders on average), the first on the day they became a customer, the
  others spread over a lifetime after it; 1 to 3 product lines from a catalogue whose prices run
  from 4.95 to about 300 (each customer keeps to a part of it), a coupon on one order in ten;
* 4 % of the orders are refunded (half in full, half in part) and 2 % cancelled;
* weekly email campaigns: one delivery per 8 events, 35 % opened, a quarter of those clicked, a few
  bounces and unsubscribes (these events carry the email address, not the customer id);
* one chat conversation per 100 events, 2 to 8 messages, 40 % rated, 12 % with a complaint;
* the rest shop browsing: page views, product views, cart additions, checkouts.

Identities map every customer id and email address to its profile, and 1 % of the profiles were
merged into another one (their identities rewritten, a redirect), so the ``orders`` view's joins
see a production-like ``identities`` table. The load is timed but not part of the floor.

Then ``run_refresh(ValueOptions(UNTIL, "days"))`` runs ``--rounds`` times (median reported, with
the time of each step from its progress callback; a failure is reported with the steps it reached),
and the daily KPI view is read up to 20 times (at most 30 s of reads once there are 5) for the last
30 days and for the whole year. The results are checked against each other: ``kpi_daily`` over the
year against the ``orders`` view and the events, the customers scored against the buyers.
Not collected by pytest: timings belong to ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from services.analytics.domain.value import ValueOptions
from services.analytics.refresh import run_refresh
from services.core.warehouse.chdb_adapter import ChdbWarehouse
from tests.bench.bench_warehouse import migrated_warehouse

FLOOR_REFRESH_S = 60.0
UNTIL = date(2026, 9, 30)
DAYS = 365
START = UNTIL - timedelta(days=DAYS)
SPAN_S = DAYS * 86_400
BROWSE_CHUNK = 2_000_000  # events per INSERT of the browsing events
INSERT_THREADS = max(2, os.cpu_count() or 2)
KPI_BUDGET_S = 30.0  # seconds of kpi_daily reads per query, at least 5 reads

# The event mix (see the module docstring).
BUYER_SHARE = 0.60
HEAVY_SHARE, HEAVY_P, LIGHT_P = 0.20, 0.25, 0.65  # orders per buyer: 1 + geometric(p)
MAX_ORDERS = 100
REFUND_SHARE, CANCEL_SHARE = 0.04, 0.02
EVENTS_PER_DELIVERY, EVENTS_PER_CONVERSATION = 8, 100
MERGED_EVERY = 100  # profile n with n % 100 = 99 was merged into profile n - 1
CATALOGUE = 5_000

# The profile behind n, in the form the identity pipeline gives it.
PROFILE_ID = "concat('p_', substring(lower(hex(sipHash128(toString({n})))), 1, 22))"
START_SQL = f"toDateTime64('{START.isoformat()} 00:00:00', 3, 'UTC')"


@dataclass(frozen=True, slots=True)
class Plan:
    """How many generated units of each kind make up ``events`` (buyers are per profile)."""

    profiles: int
    events: int
    deliveries: int
    conversations: int

    @property
    def expected_orders(self) -> int:
        per_buyer = HEAVY_SHARE / HEAVY_P + (1 - HEAVY_SHARE) / LIGHT_P
        return round(self.profiles * BUYER_SHARE * per_buyer)

    @property
    def expected_fixed_events(self) -> int:
        """Events other than browsing, about: orders with refunds and cancellations, email, chat."""
        orders = self.expected_orders * (1 + REFUND_SHARE + CANCEL_SHARE)
        return round(orders + self.deliveries * 1.45 + self.conversations * 6.7)


def plan(profiles: int, events: int) -> Plan:
    """The units to generate; browsing fills up to ``events``. Refuses a mix with no room for it."""
    if profiles < MERGED_EVERY:
        raise ValueError(f"at least {MERGED_EVERY} profiles")
    made = Plan(profiles, events, events // EVENTS_PER_DELIVERY, events // EVENTS_PER_CONVERSATION)
    if made.expected_fixed_events > 0.9 * events:
        raise ValueError(
            f"{events:,} events leave no room for browsing: {profiles:,} profiles alone make about "
            f"{made.expected_fixed_events:,} order, email and chat events; use more events per profile"
        )
    return made


def step_durations(marks: Sequence[tuple[str, float]], end: float) -> dict[str, float]:
    """Seconds per refresh step from the (step name, clock) marks of ``on_progress``.

    A step lasts until the next mark; after the last mark ("done") comes the clean-up
    (older partitions dropped, the status read back), until ``end``.
    """
    out: dict[str, float] = {}
    for (name, at), (_, following) in zip(marks, [*marks[1:], ("", end)], strict=True):
        out["finishing" if name == "done" else name] = following - at
    return out


def medians(rounds: Sequence[dict[str, float]]) -> dict[str, float]:
    """The median of each key over the rounds that have it (in the first round's order)."""
    keys = list(dict.fromkeys(k for r in rounds for k in r))
    return {k: statistics.median(r[k] for r in rounds if k in r) for k in keys}


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- SQL of the generated data ------------------------------------------------------------------


def _u(seed: int, salt: str, *args: str) -> str:
    """A uniform number in (0, 1), fixed by the seed, the salt and the arguments."""
    return f"((cityHash64({seed}, '{salt}', {', '.join(args)}) % 1000000 + 0.5) / 1000000)"


def _at(seconds: str) -> str:
    """The moment ``seconds`` after the start of the year of data."""
    return f"({START_SQL} + toIntervalMillisecond(toInt64(({seconds}) * 1000)))"


def _iso(moment: str) -> str:
    return f"concat(replaceOne(toString({moment}), ' ', 'T'), 'Z')"


def _uuid(seed: int, salt: str, *args: str) -> str:
    return f"toString(reinterpretAsUUID(sipHash128({seed}, '{salt}', {', '.join(args)})))"


def _obj(*fields: tuple[str, str]) -> str:
    """SQL of a JSON object from (key, SQL expression of the value's JSON text) pairs."""
    parts: list[str] = []
    for i, (key, value) in enumerate(fields):
        parts.append("'" + ("," if i else "{") + '"' + key + "\":'")
        parts.append(value)
    parts.append("'}'")
    return f"concat({', '.join(parts)})"


def _s(expr: str) -> str:
    """JSON text of a String expression."""
    return f"toJSONString({expr})"


def _lit(text: str) -> str:
    """JSON text of a constant string."""
    return "'" + json.dumps(text) + "'"


def _record(
    *,
    seed: int,
    n: str,
    kind: str,
    key: str,
    position: str,
    at: str,
    event: str,
    channel: str,
    source: str,
    properties: str,
    by_email: bool = False,
    event_type: str = "track",
    name: str | None = None,
) -> str:
    """SQL of a ``cdp.identity.resolved`` record: the canonical event of profile ``n`` at ``at``.

    Shop and chat events name the customer id; email events the address and the recipient id.
    ``event`` is a SQL expression (NULL for a page view), ``key`` the SQL arguments that make the
    message id unique within ``kind``.
    """
    customer = f"concat('C', toString({n}))"
    email = f"concat('kunde', toString({n}), '@example.de')"
    if by_email:
        identifiers = _obj(("email", _s(email)), ("emailRecipientId", _s(f"concat('r', toString({n}))")))
        keys = f"concat('[\"email:', {email}, '\"]')"
        context = '\'{"library":{"name":"email-tool","version":"1.0"}}\''
    else:
        identifiers = _obj(("customerId", _s(customer)))
        keys = f"concat('[\"customer_id:', {customer}, '\"]')"
        context = (
            '\'{"library":{"name":"analytics.js","version":"4.1.0"},"locale":"de-DE",'
            '"userAgent":"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}\''
        )
    fields = [
        ("schemaVersion", "'1'"),
        ("messageId", _s(_uuid(seed, kind, *key.split(",")))),
        ("type", _lit(event_type)),
    ]
    if event_type == "track":
        fields.append(("event", _s(event)))
    if name is not None:
        fields.append(("name", _s(name)))
    fields += [
        ("channel", _lit(channel)),
        ("source", _lit(source)),
        *([] if by_email else [("userId", _s(customer))]),
        ("identifiers", identifiers),
        ("properties", properties),
        ("traits", "'{}'"),
        ("context", context),
        ("timestamp", _s(_iso(at))),
        ("originalTimestamp", _s(_iso(at))),
        ("receivedAt", _s(_iso(f"({at} + toIntervalMillisecond(40 + ({position}) % 900))"))),
    ]
    return _obj(
        ("schemaVersion", "'1'"),
        ("kind", _lit("event")),
        ("profileId", _s(PROFILE_ID.format(n=n))),
        ("position", f"toString({position})"),
        ("identifiers", keys),
        ("event", _obj(*fields)),
    )


def _insert_events(db: str, select: str) -> str:
    """``select`` yields raw, position and n: inserted as the events sink does (the record and its
    Kafka lineage), on every core: deriving the columns from ``_raw`` is most of the load's time."""
    return (
        f"INSERT INTO {db}.events (_raw, kafka_cluster, kafka_topic, kafka_partition, kafka_offset) "
        f"SELECT raw, 'bench', 'cdp.identity.resolved', toUInt32(cityHash64(n) % 8), toUInt64(position) "
        f"FROM ({select}) SETTINGS max_insert_threads = {INSERT_THREADS}, parallel_view_processing = 1"
    )


def _price(product: str) -> str:
    return f"round(4.95 * exp({product} * {math.log(60) / CATALOGUE!r}), 2)"


def _orders(seed: int, profiles: int) -> str:
    """One row per order: buyer n, its i-th order, when, its lines (product, quantity) and amounts."""

    def u(salt: str, *args: str) -> str:
        return _u(seed, salt, *args)

    return f"""SELECT n, i, concat('O-', toString(n), '-', toString(i)) AS order_id,
       {_at("if(i = 0, first_s, first_s + " + u("t", "n", "i") + " * life_s)")} AS placed,
       arrayMap(j -> (toUInt32((centre + cityHash64({seed}, 'product', n, i, j) % 1500) % {CATALOGUE}),
                      toUInt32(1 + (cityHash64({seed}, 'quantity', n, i, j) % 8 = 0))),
                range(toUInt32(1 + ({u("lines", "n", "i")} > 0.5) + ({u("lines", "n", "i")} > 0.8)))) AS lines,
       round(arraySum(l -> {_price("l.1")} * l.2, lines), 2) AS subtotal,
       {u("coupon", "n", "i")} < 0.1 AS coupon,
       if(coupon, round(subtotal * 0.1, 2), 0) AS discount,
       round(subtotal - discount, 2) AS revenue,
       if(revenue < 50, 4.95, 0) AS shipping,
       round(revenue * 0.19, 2) AS tax,
       round(revenue + tax + shipping, 2) AS total,
       {u("fate", "n", "i")} AS fate
FROM
(
    SELECT number AS n,
           {u("first", "n")} * {SPAN_S} AS first_s,
           ({SPAN_S} - first_s) * sqrt({u("life", "n")}) AS life_s,
           if({u("heavy", "n")} < {HEAVY_SHARE}, {HEAVY_P}, {LIGHT_P}) AS p,
           toUInt32(least({MAX_ORDERS}, 1 + floor(log({u("orders", "n")}) / log(1 - p)))) AS orders,
           cityHash64({seed}, 'centre', n) % {CATALOGUE} AS centre
    FROM numbers_mt({profiles})
    WHERE {u("buyer", "n")} < {BUYER_SHARE}
)
ARRAY JOIN range(orders) AS i"""


def _line_json(line: str) -> str:
    product = f"toString({line}.1)"
    return (
        f'concat(\'{{"product_id":"P-\', {product}, \'","sku":"SKU-\', {product}, '
        f'\'","name":"Product \', {product}, \'","category":"\', '
        f"['shoes', 'apparel', 'accessories', 'home', 'beauty'][{line}.1 % 5 + 1], "
        f'\'","brand":"Brand \', toString({line}.1 % 40), \'","price":\', toString({_price(line + ".1")}), '
        f"',\"quantity\":', toString({line}.2), '}}')"
    )


def _order_statements(db: str, seed: int, profiles: int) -> list[str]:
    orders = _orders(seed, profiles)
    common: dict[str, Any] = {"seed": seed, "n": "n", "channel": "shop", "source": "shop-backend"}
    completed_props = _obj(
        ("order_id", _s("order_id")),
        ("revenue", "toString(revenue)"),
        ("subtotal", "toString(subtotal)"),
        ("total", "toString(total)"),
        ("shipping", "toString(shipping)"),
        ("tax", "toString(tax)"),
        ("currency", _lit("EUR")),
        ("products", f"concat('[', arrayStringConcat(arrayMap(l -> {_line_json('l')}, lines), ','), ']')"),
    )
    completed_props = (
        f"if(coupon, concat(substring({completed_props}, 1, length({completed_props}) - 1), "
        f'\',"coupon":"WELCOME10","discount":\', toString(discount), \'}}\'), {completed_props})'
    )
    completed = _record(
        **common, kind="order", key="n,i", position="1000000000000 + n * 1000 + i", at="placed",
        event="'Order Completed'", properties=completed_props,
    )  # fmt: skip
    refunded_at = (
        f"(placed + toIntervalSecond(toInt64(86400 + {_u(seed, 'refund_at', 'n', 'i')} * 19 * 86400)))"
    )
    partial = f"{_u(seed, 'partial', 'n', 'i')} < 0.5"
    refund_props = (
        f"if({partial}, "
        + _obj(
            ("order_id", _s("order_id")),
            ("refund_id", _s("concat('R-', order_id)")),
            ("revenue", f"toString(round(revenue * (0.2 + 0.4 * {_u(seed, 'part', 'n', 'i')}), 2))"),
            ("currency", _lit("EUR")),
            ("reason", _lit("damaged")),
        )
        + ", "
        + _obj(("order_id", _s("order_id")), ("currency", _lit("EUR")), ("reason", _lit("returned")))
        + ")"
    )
    refunded = _record(
        **common, kind="refund", key="n,i", position="2000000000000 + n * 1000 + i", at="refunded_at",
        event="'Order Refunded'", properties=refund_props,
    )  # fmt: skip
    cancelled_at = (
        f"(placed + toIntervalSecond(toInt64(600 + {_u(seed, 'cancel_at', 'n', 'i')} * 2 * 86400)))"
    )
    cancelled = _record(
        **common, kind="cancel", key="n,i", position="3000000000000 + n * 1000 + i", at="cancelled_at",
        event="'Order Cancelled'",
        properties=_obj(("order_id", _s("order_id")), ("currency", _lit("EUR")), ("reason", _lit("customer request"))),
    )  # fmt: skip
    end = f"{START_SQL} + toIntervalSecond({SPAN_S})"
    return [
        _insert_events(
            db, f"SELECT {completed} AS raw, 1000000000000 + n * 1000 + i AS position, n FROM ({orders})"
        ),
        _insert_events(
            db,
            f"SELECT {refunded} AS raw, 2000000000000 + n * 1000 + i AS position, n "
            f"FROM (SELECT *, {refunded_at} AS refunded_at FROM ({orders}) WHERE fate < {REFUND_SHARE}) "
            f"WHERE refunded_at < {end}",
        ),
        _insert_events(
            db,
            f"SELECT {cancelled} AS raw, 3000000000000 + n * 1000 + i AS position, n "
            f"FROM (SELECT *, {cancelled_at} AS cancelled_at FROM ({orders}) "
            f"WHERE fate >= {REFUND_SHARE} AND fate < {REFUND_SHARE + CANCEL_SHARE}) "
            f"WHERE cancelled_at < {end}",
        ),
    ]


def _email_statement(db: str, seed: int, profiles: int, deliveries: int) -> str:
    """Weekly campaigns; per delivery: delivered or bounced, opened, clicked, unsubscribed."""

    def u(salt: str) -> str:
        return _u(seed, salt, "m")

    props = _obj(
        ("campaign_id", _s("concat('cmp-', toString(c))")),
        ("campaign_name", _s("concat('Newsletter week ', toString(c + 1))")),
        ("email", _s("concat('kunde', toString(n), '@example.de')")),
        ("email_id", _s("concat('em-', toString(m))")),
        ("recipient_id", _s("concat('r', toString(n))")),
        ("provider", _lit("email-tool")),
    )
    record = _record(
        seed=seed, n="n", kind="email", key="m,step.1", position="4000000000000 + m * 8 + step.1", at="at",
        event="step.2", channel="email", source="email-tool", properties=props, by_email=True,
    )  # fmt: skip
    bounced = f"{u('bounce')} < 0.01"
    opened = f"NOT ({bounced}) AND {u('open')} < 0.35"
    clicked = f"{opened} AND {u('click')} < 0.25"
    unsubscribed = f"{opened} AND {u('unsubscribe')} < 0.01"
    open_s = f"(300 + {u('open_after')} * 48 * 3600)"
    steps = (
        f"arrayFilter(s -> s.4, [(1, 'Email Delivered', 60, NOT ({bounced})), (2, 'Email Bounced', 60, {bounced}),"
        f" (3, 'Email Opened', {open_s}, {opened}),"
        f" (4, 'Email Link Clicked', {open_s} + 30 + {u('click_after')} * 1800, {clicked}),"
        f" (5, 'Unsubscribed', {open_s} + 120, {unsubscribed})])"
    )
    sent = _at("c * 7 * 86400 + 9 * 3600 + " + u("send") + " * 3600")
    end = f"{START_SQL} + toIntervalSecond({SPAN_S})"
    return _insert_events(
        db,
        f"SELECT {record} AS raw, 4000000000000 + m * 8 + step.1 AS position, n FROM (SELECT *, step, "
        f"sent + toIntervalSecond(toInt64(step.3)) AS at FROM ("
        f"  SELECT number AS m, m % 52 AS c, cityHash64({seed}, 'recipient', m) % {profiles} AS n,"
        f"         {sent} AS sent, {steps} AS steps"
        f"  FROM numbers_mt({deliveries})"
        f") ARRAY JOIN steps AS step) WHERE at < {end}",
    )


def _chat_statement(db: str, seed: int, profiles: int, conversations: int) -> str:
    """Conversations: started, messages back and forth, sometimes rated, sometimes a complaint."""

    def u(salt: str) -> str:
        return _u(seed, salt, "m")

    base = [
        ("conversation_id", _s("concat('conv-', toString(m))")),
        ("handled_by", "if(human, '\"human\"', '\"bot\"')"),
        ("topic", _s("topic")),
    ]
    complaint = [
        ("complaint_id", _s("concat('cmpl-', toString(m))")),
        ("category", _s("category")),
        ("order_id", _s("concat('O-', toString(n), '-0')")),
    ]
    props = (
        "multiIf("
        f"step.2 = 'Conversation Rated', {_obj(*base, ('csat', 'toString(csat)'))}, "
        f"step.2 = 'Complaint Opened', {_obj(*base, *complaint)}, "
        f"step.2 = 'Complaint Resolved', {_obj(*base, *complaint, ('resolution', _s('resolution')))}, "
        f"step.2 IN ('Message Sent', 'Message Received'), "
        f"{_obj(*base, ('message_length', 'toString(20 + cityHash64(m, step.1) % 300)'))}, "
        f"{_obj(*base)})"
    )
    record = _record(
        seed=seed, n="n", kind="chat", key="m,step.1", position="5000000000000 + m * 16 + step.1",
        at="(started + toIntervalSecond(toInt64(step.3)))", event="step.2", channel="chat",
        source="chat-widget", properties=props,
    )  # fmt: skip
    steps = (
        "arrayConcat([(0, 'Conversation Started', 0)],"
        " arrayMap(j -> (j, if(j % 2 = 1, 'Message Received', 'Message Sent'), j * 75), range(1, messages + 1)),"
        " if(rated, [(9, 'Conversation Rated', messages * 75 + 60)], []),"
        " if(complained, [(10, 'Complaint Opened', 300)], []),"
        f" if(complained AND {u('resolved')} < 0.85,"
        f" [(11, 'Complaint Resolved', toUInt32(3600 + {u('resolve_after')} * 72 * 3600))], []))"
    )
    started = _at(u("start") + f" * ({SPAN_S} - 4 * 86400)")
    return _insert_events(
        db,
        f"SELECT {record} AS raw, 5000000000000 + m * 16 + step.1 AS position, n FROM ("
        f"  SELECT number AS m, cityHash64({seed}, 'who', m) % {profiles} AS n,"
        f"         {started} AS started,"
        f"         {u('human')} < 0.3 AS human,"
        f"         ['delivery', 'returns', 'payment', 'product', 'account'][cityHash64({seed}, 'topic', m) % 5 + 1] AS topic,"
        f"         toUInt32(2 + cityHash64({seed}, 'messages', m) % 7) AS messages,"
        f"         {u('rated')} < 0.4 AS rated,"
        f"         toUInt8(least(5, 1 + floor({u('csat')} * if(human, 5.5, 4.5)))) AS csat,"
        f"         {u('complaint')} < 0.12 AS complained,"
        f"         ['delivery', 'product', 'billing', 'service'][cityHash64({seed}, 'category', m) % 4 + 1] AS category,"
        f"         ['refund', 'replacement', 'voucher', 'explained'][cityHash64({seed}, 'resolution', m) % 4 + 1] AS resolution"
        f"  FROM numbers_mt({conversations})"
        f") ARRAY JOIN {steps} AS step",
    )


def _browse_statement(db: str, seed: int, profiles: int, first: int, count: int) -> str:
    """Shop browsing: page views, product views, cart additions and checkouts."""

    def u(salt: str) -> str:
        return _u(seed, salt, "m")

    product = f"(cityHash64({seed}, 'viewed', m) % {CATALOGUE})"
    product_props = _obj(
        ("product_id", _s(f"concat('P-', toString({product}))")),
        ("name", _s(f"concat('Product ', toString({product}))")),
        ("category", _s(f"['shoes', 'apparel', 'accessories', 'home', 'beauty'][{product} % 5 + 1]")),
        ("price", f"toString({_price(product)})"),
        ("currency", _lit("EUR")),
    )
    page_props = _obj(
        ("path", _s("concat('/', page)")), ("url", _s("concat('https://shop.example.de/', page)")),
    )  # fmt: skip
    checkout_props = _obj(
        ("cart_id", _s("concat('cart-', toString(m))")),
        ("revenue", f"toString({_price(product)})"),
        ("currency", _lit("EUR")),
    )
    props = (
        f"multiIf(what = 'page', {page_props}, what = 'Checkout Started', {checkout_props}, {product_props})"
    )
    common: dict[str, Any] = {"seed": seed, "n": "n", "kind": "browse", "key": "m", "position": "6000000000000 + m", "at": "at",
              "channel": "shop", "source": "web", "properties": props}  # fmt: skip
    page = _record(**common, event="''", event_type="page", name="page")
    track = _record(**common, event="what")
    at = _at(u("at") + f" * {SPAN_S}")
    return _insert_events(
        db,
        f"SELECT if(what = 'page', {page}, {track}) AS raw, 6000000000000 + m AS position, n FROM ("
        f"  SELECT number AS m, cityHash64({seed}, 'visitor', m) % {profiles} AS n,"
        f"         {at} AS at,"
        f"         {u('what')} AS w,"
        f"         multiIf(w < 0.35, 'page', w < 0.80, 'Product Viewed', w < 0.93, 'Product Added',"
        f"                 'Checkout Started') AS what,"
        f"         ['home', 'search', 'sale', 'category/shoes', 'category/home'][cityHash64({seed}, 'page', m) % 5 + 1] AS page"
        f"  FROM numbers_mt({first}, {count})"
        f")",
    )


def _identity_statements(db: str, profiles: int) -> list[str]:
    """Each profile's customer id and email address; merged profiles as the graph rewrites them."""
    pid, survivor = PROFILE_ID.format(n="number"), PROFILE_ID.format(n="(number - 1)")
    merged = f"number % {MERGED_EVERY} = {MERGED_EVERY - 1}"
    identifiers = (
        "[concat('customer_id:C', toString(number)), concat('email:kunde', toString(number), '@example.de')]"
    )
    return [
        f"INSERT INTO {db}.identities (identifier, profile_id, version) "
        f"SELECT arrayJoin({identifiers}), {pid}, 1 FROM numbers({profiles})",
        f"INSERT INTO {db}.identities (identifier, profile_id, version) "
        f"SELECT arrayJoin({identifiers}), {survivor}, 2 FROM numbers({profiles}) WHERE {merged}",
        f"INSERT INTO {db}.profile_redirects (absorbed, survivor, version) "
        f"SELECT {pid}, {survivor}, 1 FROM numbers({profiles}) WHERE {merged}",
    ]


def _count(warehouse: ChdbWarehouse, table: str) -> int:
    return int(warehouse.query(f"SELECT count() FROM {warehouse.database}.{table}")[0][0])


def load(
    warehouse: ChdbWarehouse, profiles: int, events: int, seed: int = 7, say: Callable[[str], None] = print
) -> dict[str, float]:
    """Fill ``warehouse`` (migrated, empty); returns seconds per part of the load."""
    db, mix = warehouse.database, plan(profiles, events)
    seconds: dict[str, float] = {}

    def timed(part: str, statements: list[str]) -> None:
        started = time.perf_counter()
        for sql in statements:
            warehouse.command(sql)
        seconds[part] = seconds.get(part, 0.0) + time.perf_counter() - started
        say(f"  {part}: {seconds[part]:.1f} s, {_count(warehouse, 'events'):,} events")

    timed("identities", _identity_statements(db, profiles))
    timed("orders", _order_statements(db, seed, profiles))
    timed("email", [_email_statement(db, seed, profiles, mix.deliveries)])
    timed("chat", [_chat_statement(db, seed, profiles, mix.conversations)])
    browse = max(0, events - _count(warehouse, "events"))
    for first in range(0, browse, BROWSE_CHUNK):
        timed("browsing", [_browse_statement(db, seed, profiles, first, min(BROWSE_CHUNK, browse - first))])
    return seconds


def wait_for_merges(warehouse: ChdbWarehouse, timeout: float = 120.0) -> float:
    """Wait until no merge runs in the database (as after a quiet night); returns the seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        running = warehouse.query(
            "SELECT count() FROM system.merges WHERE database = {db:String}", {"db": warehouse.database}
        )[0][0]
        if int(running) == 0:
            break
        time.sleep(0.5)
    return time.perf_counter() - started


def table_stats(warehouse: ChdbWarehouse) -> dict[str, dict[str, int]]:
    """Rows, bytes on disk and active parts of every table of the database that has rows."""
    rows = warehouse.query(
        "SELECT t.name, t.total_rows, sum(p.bytes_on_disk), countIf(p.active) FROM system.tables AS t "
        "LEFT JOIN (SELECT table, bytes_on_disk, active FROM system.parts WHERE database = {db:String} AND active) AS p "
        "ON t.name = p.table WHERE t.database = {db:String} AND t.engine LIKE '%MergeTree' "
        "GROUP BY t.name, t.total_rows ORDER BY t.name",
        {"db": warehouse.database},
    )
    return {str(t): {"rows": int(r), "bytes_on_disk": int(b), "parts": int(p)} for t, r, b, p in rows if r}


def data_profile(warehouse: ChdbWarehouse) -> dict[str, Any]:
    """What was generated, as the raw events and the ``orders`` view have it."""
    db = warehouse.database
    kinds = warehouse.query(
        f"SELECT if(type = 'page', 'page', event), count() FROM {db}.events GROUP BY 1 ORDER BY 1"
    )
    orders = warehouse.query_dicts(
        f"SELECT count() AS orders, countIf(counted) AS counted_orders, uniqExactIf(profile_id, counted) AS customers,"
        f" countIf(status = 'refunded') AS fully_refunded, countIf(status = 'partially_refunded') AS part_refunded,"
        f" countIf(status = 'cancelled') AS cancelled_orders, round(sumIf(revenue, counted), 2) AS counted_revenue,"
        f" round(sumIf(refunded, counted), 2) AS counted_refunds, round(sum(net_revenue), 2) AS net,"
        f" min(order_date) AS first_day, max(order_date) AS last_day FROM {db}.orders"
    )[0]
    completions = warehouse.query(
        f"SELECT uniqExact(order_id) FROM {db}.order_events WHERE event = 'Order Completed'"
    )
    return {
        "events_by_kind": {str(k): int(v) for k, v in kinds},
        "completed_order_ids": int(completions[0][0]),
        "orders": {k: (v.isoformat() if isinstance(v, date) else v) for k, v in orders.items()},
    }


def view_checks(warehouse: ChdbWarehouse, generated: dict[str, Any], customers_scored: int) -> dict[str, Any]:
    """The year of ``kpi_daily`` (channel 'all') and the refresh against ``orders`` and the events."""
    kpi = warehouse.query_dicts(
        f"SELECT count() AS rows, sumIf(events, channel = 'all') AS events, sumIf(orders, channel = 'all') AS orders,"
        f" round(sumIf(revenue, channel = 'all'), 2) AS revenue, round(sumIf(refunds, channel = 'all'), 2) AS refunds,"
        f" sumIf(new_customers, channel = 'all') AS new_customers FROM {warehouse.database}.kpi_daily"
    )[0]
    orders = generated["orders"]
    pairs = {
        "kpi events = events": (kpi["events"], sum(generated["events_by_kind"].values())),
        "kpi orders = counted orders": (kpi["orders"], orders["counted_orders"]),
        "kpi revenue = revenue of counted orders": (kpi["revenue"], orders["counted_revenue"]),
        "kpi refunds = refunds of counted orders": (kpi["refunds"], orders["counted_refunds"]),
        "kpi new customers = customers with a counted order": (kpi["new_customers"], orders["customers"]),
        "customers scored = customers with a counted order": (customers_scored, orders["customers"]),
    }
    return {
        "kpi_daily_year": kpi,
        "mismatches": {
            name: {"got": got, "expected": expected}
            for name, (got, expected) in pairs.items()
            if abs(float(got) - float(expected)) > 0.5
        },
    }


def _refresh_round(warehouse: ChdbWarehouse, options: ValueOptions) -> dict[str, Any]:
    """One timed refresh: its seconds, the seconds of each step reached, its status or its error."""
    marks: list[tuple[str, float]] = []
    started = time.perf_counter()
    status: dict[str, Any] = {}
    error = None
    try:
        status = run_refresh(
            warehouse,
            options,
            trigger="bench",
            on_progress=lambda _i, name: marks.append((name, time.perf_counter())),
        )
    except Exception as exc:  # reported with the steps it reached, not raised: the bench goes on
        error = f"{type(exc).__name__}: {exc}"[:2000]
    end = time.perf_counter()
    return {"seconds": end - started, "steps": step_durations(marks, end), "status": status, "error": error}


def _latency(warehouse: ChdbWarehouse, sql: str, runs: int, budget_s: float = KPI_BUDGET_S) -> dict[str, Any]:
    """p50/p99/max of up to ``runs`` reads after a warm-up (rows decoded into Python, as a client gets
    them); stops after ``budget_s`` once it has 5, so that a slow view does not hold up the bench."""
    try:
        rows = len(warehouse.query(sql))
        times: list[float] = []
        began = time.perf_counter()
        while len(times) < runs and (len(times) < 5 or time.perf_counter() - began < budget_s):
            started = time.perf_counter()
            warehouse.query(sql)
            times.append((time.perf_counter() - started) * 1000)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    return {"rows": rows, "runs": len(times), "p50_ms": statistics.median(times),
            "p99_ms": percentile(times, 0.99), "max_ms": max(times)}  # fmt: skip


def _scored(warehouse: ChdbWarehouse) -> dict[str, Any]:
    db = warehouse.database
    scored = warehouse.query_dicts(
        f"SELECT count() AS customers, countIf(predicted_clv IS NOT NULL) AS with_predicted_clv,"
        f" round(avg(p_alive), 4) AS mean_p_alive, round(avg(predicted_purchases), 4) AS mean_predicted_purchases,"
        f" round(sum(historical_clv), 2) AS historical_clv_sum, round(sum(predicted_clv), 2) AS predicted_clv_sum"
        f" FROM {db}.customer_value_latest"
    )[0]
    abc = warehouse.query(f"SELECT abc_class, count() FROM {db}.customer_value_latest GROUP BY 1 ORDER BY 1")
    return {**scored, "abc_classes": {str(k): int(v) for k, v in abc}}


def run(
    profiles: int = 1_000_000,
    events: int = 10_000_000,
    rounds: int = 3,
    kpi_runs: int = 20,
    seed: int = 7,
    say: Callable[[str], None] = lambda _text: None,
) -> dict[str, Any]:
    options = ValueOptions(UNTIL, "days")
    refreshes: list[dict[str, Any]] = []
    with migrated_warehouse("cdp-bench-analytics-") as warehouse:
        started = time.perf_counter()
        load_parts = load(warehouse, profiles, events, seed, say)
        load_seconds = time.perf_counter() - started
        merge_wait = wait_for_merges(warehouse)
        say(f"loaded in {load_seconds:.1f} s, merges settled after {merge_wait:.1f} s more")
        generated = data_profile(warehouse)
        for r in range(rounds):
            refreshes.append(_refresh_round(warehouse, options))
            done = refreshes[-1]
            shown = json.dumps({k: round(v, 2) for k, v in done["steps"].items()})
            say(f"refresh round {r + 1}: {done['seconds']:.1f} s {shown} {done['error'] or ''}")
            if done["error"]:
                break
        ok = not refreshes[-1]["error"]
        status = refreshes[-1]["status"]
        scored = _scored(warehouse) if ok else None
        last_30 = (
            f"SELECT * FROM {warehouse.database}.kpi_daily WHERE day >= toDate('{UNTIL.isoformat()}') - 30 "
            "ORDER BY day, channel"
        )
        recent = _latency(warehouse, last_30, kpi_runs)
        say(f"kpi_daily, last 30 days: {json.dumps(recent)[:300]}")
        whole = _latency(warehouse, f"SELECT * FROM {warehouse.database}.kpi_daily", kpi_runs)
        say(f"kpi_daily, the whole year: {json.dumps(whole)[:300]}")
        tables = table_stats(warehouse)
        checks = view_checks(warehouse, generated, int(status.get("customers", 0))) if ok else None
    totals = [r["seconds"] for r in refreshes if not r["error"]]
    return {
        "name": "analytics_refresh",
        "description": (
            f"cdp analytics refresh (RFM, ABC, BG/NBD + Gamma-Gamma CLV) over {profiles:,} profiles and "
            f"{events:,} events of one year in the embedded warehouse; kpi_daily reads"
        ),
        "profiles": profiles,
        "events": events,
        "until": UNTIL.isoformat(),
        "load_seconds": load_seconds,
        "load_seconds_by_part": load_parts,
        "merge_wait_seconds": merge_wait,
        "generated": generated,
        "checks": checks,
        "rows": tables,
        "rounds": rounds,
        "refresh_error": next((r["error"] for r in refreshes if r["error"]), None),
        "refresh_seconds": [r["seconds"] for r in refreshes],
        "refresh_seconds_median": statistics.median(totals) if totals else None,
        "refresh_step_seconds_median": medians([r["steps"] for r in refreshes]),
        "refresh_step_seconds": [r["steps"] for r in refreshes],
        "floor_refresh_s": FLOOR_REFRESH_S,
        "customers_scored": int(status.get("customers", 0)),
        "customer_value": scored,
        "model": status.get("model"),
        "kpi_daily_30_days": recent,
        "kpi_daily_year": whole,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kpi-runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    result = run(args.profiles, args.events, args.rounds, args.kpi_runs, args.seed, say=print)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
