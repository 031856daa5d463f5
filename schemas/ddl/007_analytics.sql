-- Customer analytics for BI tools (docs/bi/): orders, order lines, daily KPIs, retention cohorts,
-- the email funnel, service KPIs and customer value (RFM, ABC, CLV, churn risk).
-- Tables named *_state are kept by materialized views from `events` as events arrive; the views
-- over them are what BI tools query. Each materialized view is followed by the INSERT that fills
-- its table from the events stored before this migration.

-- Every order event: completions, refunds and cancellations, one row per message.
CREATE TABLE IF NOT EXISTS {db}.order_events
(
    order_id     String,
    event        LowCardinality(String),
    -- a refund's key: the shop's refund_id, else its message id (a re-sent refund counts once)
    refund_key   String,
    message_id   String,
    timestamp    DateTime64(3, 'UTC'),
    profile_id   String,
    anchor       String,
    channel      LowCardinality(String),
    source       LowCardinality(String),
    -- revenue, else total, else the line items; NULL on a refund means the whole order
    amount       Nullable(Float64),
    total        Nullable(Float64),
    subtotal     Nullable(Float64),
    shipping     Nullable(Float64),
    tax          Nullable(Float64),
    discount     Nullable(Float64),
    coupon       String,
    currency     LowCardinality(String),
    items        Float64,
    reason       String
)
ENGINE = ReplacingMergeTree
ORDER BY (order_id, event, refund_key, message_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.order_events_mv TO {db}.order_events AS
SELECT
    order_id,
    event,
    if(event = 'Order Refunded',
       if(JSONExtractString(properties, 'refund_id') != '', JSONExtractString(properties, 'refund_id'), message_id),
       '') AS refund_key,
    message_id, timestamp, profile_id, anchor, channel, source,
    coalesce(
        JSONExtract(properties, 'revenue', 'Nullable(Float64)'),
        JSONExtract(properties, 'total', 'Nullable(Float64)'),
        if(JSONLength(properties, 'products') > 0,
           arraySum(p -> JSONExtractFloat(p, 'price') * if(JSONHas(p, 'quantity'), JSONExtractFloat(p, 'quantity'), 1),
                    JSONExtractArrayRaw(properties, 'products')),
           NULL)) AS amount,
    JSONExtract(properties, 'total', 'Nullable(Float64)') AS total,
    JSONExtract(properties, 'subtotal', 'Nullable(Float64)') AS subtotal,
    JSONExtract(properties, 'shipping', 'Nullable(Float64)') AS shipping,
    JSONExtract(properties, 'tax', 'Nullable(Float64)') AS tax,
    JSONExtract(properties, 'discount', 'Nullable(Float64)') AS discount,
    JSONExtractString(properties, 'coupon') AS coupon,
    currency,
    arraySum(p -> if(JSONHas(p, 'quantity'), JSONExtractFloat(p, 'quantity'), 1),
             JSONExtractArrayRaw(properties, 'products')) AS items,
    JSONExtractString(properties, 'reason') AS reason
FROM {db}.events
WHERE event IN ('Order Completed', 'Order Refunded', 'Order Cancelled') AND order_id != '';

INSERT INTO {db}.order_events
SELECT
    order_id, event,
    if(event = 'Order Refunded',
       if(JSONExtractString(properties, 'refund_id') != '', JSONExtractString(properties, 'refund_id'), message_id),
       ''),
    message_id, timestamp, profile_id, anchor, channel, source,
    coalesce(
        JSONExtract(properties, 'revenue', 'Nullable(Float64)'),
        JSONExtract(properties, 'total', 'Nullable(Float64)'),
        if(JSONLength(properties, 'products') > 0,
           arraySum(p -> JSONExtractFloat(p, 'price') * if(JSONHas(p, 'quantity'), JSONExtractFloat(p, 'quantity'), 1),
                    JSONExtractArrayRaw(properties, 'products')),
           NULL)),
    JSONExtract(properties, 'total', 'Nullable(Float64)'),
    JSONExtract(properties, 'subtotal', 'Nullable(Float64)'),
    JSONExtract(properties, 'shipping', 'Nullable(Float64)'),
    JSONExtract(properties, 'tax', 'Nullable(Float64)'),
    JSONExtract(properties, 'discount', 'Nullable(Float64)'),
    JSONExtractString(properties, 'coupon'),
    currency,
    arraySum(p -> if(JSONHas(p, 'quantity'), JSONExtractFloat(p, 'quantity'), 1), JSONExtractArrayRaw(properties, 'products')),
    JSONExtractString(properties, 'reason')
FROM {db}.events
WHERE event IN ('Order Completed', 'Order Refunded', 'Order Cancelled') AND order_id != '';

-- One row per order, as the profile fold counts it (docs/bi/orders.md): the earliest completion
-- time, the latest completion's values, refunds per refund key (a refund without an amount gives
-- back the whole order, refunds never exceed the order), cancelled orders earn nothing. The
-- profile is the one the order belongs to now, after merges and splits (as events_current_profile).
CREATE OR REPLACE VIEW {db}.orders AS
SELECT
    o.order_id AS order_id,
    if(a.current != '', if(r2.survivor != '', r2.survivor, a.current),
       if(r.survivor != '', r.survivor, o.resolved_profile_id)) AS profile_id,
    o.placed_at AS placed_at,
    toDate(o.placed_at) AS order_date,
    multiIf(o.cancelled, 'cancelled',
            o.revenue > 0 AND refunded >= o.revenue, 'refunded',
            refunded > 0, 'partially_refunded',
            'completed') AS status,
    NOT o.cancelled AS counted,
    o.revenue AS revenue,
    if(f.full_refund, o.revenue, least(f.refunded_amount, o.revenue)) AS refunded,
    if(o.cancelled, 0, round(o.revenue - refunded, 2)) AS net_revenue,
    o.total AS total, o.subtotal AS subtotal, o.shipping AS shipping, o.tax AS tax, o.discount AS discount,
    o.coupon AS coupon, o.currency AS currency, o.items AS items, o.channel AS channel, o.source AS source,
    if(o.cancelled, o.cancelled_at, NULL) AS cancelled_at,
    if(f.refunds > 0, f.last_refund_at, NULL) AS last_refunded_at,
    f.refunds AS refunds,
    o.first_message_id AS message_id
FROM
(
    SELECT
        order_id,
        minIf(timestamp, event = 'Order Completed') AS placed_at,
        argMinIf(profile_id, timestamp, event = 'Order Completed') AS resolved_profile_id,
        argMinIf(anchor, timestamp, event = 'Order Completed') AS anchor,
        argMinIf(message_id, timestamp, event = 'Order Completed') AS first_message_id,
        argMaxIf(ifNull(amount, 0), (timestamp, ifNull(amount, 0), message_id), event = 'Order Completed') AS revenue,
        argMaxIf(total, (timestamp, ifNull(amount, 0), message_id), event = 'Order Completed') AS total,
        argMaxIf(subtotal, (timestamp, ifNull(amount, 0), message_id), event = 'Order Completed') AS subtotal,
        argMaxIf(shipping, (timestamp, ifNull(amount, 0), message_id), event = 'Order Completed') AS shipping,
        argMaxIf(tax, (timestamp, ifNull(amount, 0), message_id), event = 'Order Completed') AS tax,
        argMaxIf(discount, (timestamp, ifNull(amount, 0), message_id), event = 'Order Completed') AS discount,
        argMaxIf(coupon, (timestamp, ifNull(amount, 0), message_id), event = 'Order Completed') AS coupon,
        argMaxIf(currency, (timestamp, ifNull(amount, 0), message_id), event = 'Order Completed') AS currency,
        argMaxIf(items, (timestamp, ifNull(amount, 0), message_id), event = 'Order Completed') AS items,
        argMinIf(channel, timestamp, event = 'Order Completed') AS channel,
        argMinIf(source, timestamp, event = 'Order Completed') AS source,
        countIf(event = 'Order Cancelled') > 0 AS cancelled,
        minIf(timestamp, event = 'Order Cancelled') AS cancelled_at
    FROM {db}.order_events
    WHERE event IN ('Order Completed', 'Order Cancelled')
    GROUP BY order_id
    HAVING countIf(event = 'Order Completed') > 0
) AS o
LEFT JOIN
(
    SELECT order_id, max(is_full) AS full_refund, sum(key_amount) AS refunded_amount, count() AS refunds,
           max(refunded_at) AS last_refund_at
    FROM
    (
        -- a refund was made when its key was first seen (a re-sent refund is not a new one)
        SELECT order_id, refund_key, max(isNull(amount)) AS is_full, max(ifNull(amount, 0)) AS key_amount,
               min(timestamp) AS refunded_at
        FROM {db}.order_events
        WHERE event = 'Order Refunded'
        GROUP BY order_id, refund_key
    )
    GROUP BY order_id
) AS f ON o.order_id = f.order_id
LEFT JOIN
(
    SELECT identifier, argMax(profile_id, version) AS current
    FROM {db}.identities
    WHERE identifier IN (SELECT anchor FROM {db}.order_events WHERE event = 'Order Completed')
    GROUP BY identifier
) AS a ON o.anchor = a.identifier
LEFT JOIN (SELECT absorbed, survivor FROM {db}.profile_redirects FINAL) AS r ON o.resolved_profile_id = r.absorbed
LEFT JOIN (SELECT absorbed, survivor FROM {db}.profile_redirects FINAL) AS r2 ON a.current = r2.absorbed;

-- Every product line of every Order Completed message (a re-sent order has the lines of each message).
CREATE TABLE IF NOT EXISTS {db}.order_completion_lines
(
    order_id     String,
    line         UInt16,
    message_id   String,
    timestamp    DateTime64(3, 'UTC'),
    profile_id   String,
    product_id   String,
    sku          String,
    name         String,
    category     LowCardinality(String),
    brand        LowCardinality(String),
    variant      String,
    price        Float64,
    quantity     Float64,
    line_total   Float64,
    currency     LowCardinality(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (order_id, message_id, line);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.order_completion_lines_mv TO {db}.order_completion_lines AS
SELECT
    order_id, toUInt16(line) AS line, message_id, timestamp, profile_id,
    JSONExtractString(product, 'product_id') AS product_id,
    JSONExtractString(product, 'sku') AS sku,
    JSONExtractString(product, 'name') AS name,
    JSONExtractString(product, 'category') AS category,
    JSONExtractString(product, 'brand') AS brand,
    JSONExtractString(product, 'variant') AS variant,
    JSONExtractFloat(product, 'price') AS price,
    if(JSONHas(product, 'quantity'), JSONExtractFloat(product, 'quantity'), 1) AS quantity,
    round(price * quantity, 2) AS line_total,
    currency
FROM {db}.events
ARRAY JOIN JSONExtractArrayRaw(properties, 'products') AS product, arrayEnumerate(JSONExtractArrayRaw(properties, 'products')) AS line
WHERE event = 'Order Completed' AND order_id != '';

INSERT INTO {db}.order_completion_lines
SELECT
    order_id, toUInt16(line), message_id, timestamp, profile_id,
    JSONExtractString(product, 'product_id'), JSONExtractString(product, 'sku'), JSONExtractString(product, 'name'),
    JSONExtractString(product, 'category'), JSONExtractString(product, 'brand'), JSONExtractString(product, 'variant'),
    JSONExtractFloat(product, 'price'),
    if(JSONHas(product, 'quantity'), JSONExtractFloat(product, 'quantity'), 1),
    round(JSONExtractFloat(product, 'price') * if(JSONHas(product, 'quantity'), JSONExtractFloat(product, 'quantity'), 1), 2),
    currency
FROM {db}.events
ARRAY JOIN JSONExtractArrayRaw(properties, 'products') AS product, arrayEnumerate(JSONExtractArrayRaw(properties, 'products')) AS line
WHERE event = 'Order Completed' AND order_id != '';

-- Every product line of every completed order: the lines of its latest completion (the one whose
-- values `orders` shows), with the profile the order belongs to now (as in `orders`).
CREATE OR REPLACE VIEW {db}.order_lines AS
SELECT
    l.order_id AS order_id, l.line AS line, l.message_id AS message_id, l.timestamp AS timestamp,
    o.profile_id AS profile_id,
    l.product_id AS product_id, l.sku AS sku, l.name AS name, l.category AS category, l.brand AS brand,
    l.variant AS variant, l.price AS price, l.quantity AS quantity, l.line_total AS line_total,
    l.currency AS currency
FROM {db}.order_completion_lines AS l
INNER JOIN
(
    SELECT order_id, argMax(message_id, (timestamp, ifNull(amount, 0), message_id)) AS latest
    FROM {db}.order_events
    WHERE event = 'Order Completed' AND order_id IN (SELECT order_id FROM {db}.order_completion_lines)
    GROUP BY order_id
) AS c ON l.order_id = c.order_id AND l.message_id = c.latest
INNER JOIN
(
    SELECT order_id, profile_id FROM {db}.orders
    WHERE order_id IN (SELECT order_id FROM {db}.order_completion_lines)
) AS o ON l.order_id = o.order_id
LIMIT 1 BY l.order_id, l.line;

-- Daily activity per channel, kept as events arrive: the events of each profile (as resolved when
-- the event arrived, '' for events without a person). One row per day, channel and profile, so
-- that active customers can follow merges when counted.
CREATE TABLE IF NOT EXISTS {db}.kpi_daily_state
(
    day         Date,
    channel     LowCardinality(String),
    profile_id  String,
    events      UInt64
)
ENGINE = SummingMergeTree
ORDER BY (day, channel, profile_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.kpi_daily_state_mv TO {db}.kpi_daily_state AS
SELECT toDate(timestamp) AS day, channel, profile_id, count() AS events
FROM {db}.events
GROUP BY day, channel, profile_id;

INSERT INTO {db}.kpi_daily_state
SELECT toDate(timestamp) AS day, channel, profile_id, count()
FROM {db}.events
GROUP BY day, channel, profile_id;

-- Daily KPIs per channel and for all channels together (channel 'all'), consistent with `orders`:
-- orders, revenue (the order amount: `revenue`, else `total`, else the line items) and buyers are
-- the counted orders (not cancelled) by the day they were placed, with the latest completion's values; refunds are counted on the day they were made,
-- never more than the order in all; new customers placed their first counted order that day.
-- Customers follow merges (an absorbed profile counts as its survivor).
CREATE OR REPLACE VIEW {db}.kpi_daily AS
WITH
    (SELECT groupArray(absorbed), groupArray(survivor) FROM {db}.profile_redirects FINAL) AS redirects
SELECT
    k.day AS day,
    k.channel AS channel,
    k.events AS events,
    ifNull(o.orders, 0) AS orders,
    round(ifNull(o.revenue, 0), 2) AS revenue,
    round(ifNull(f.refunds, 0), 2) AS refunds,
    round(ifNull(o.revenue, 0) - ifNull(f.refunds, 0), 2) AS net_revenue,
    if(ifNull(o.orders, 0) > 0, round(o.revenue / o.orders, 2), NULL) AS average_order_value,
    k.active AS active_customers,
    ifNull(o.buyers, 0) AS buyers,
    ifNull(o.new_customers, 0) AS new_customers,
    ifNull(o.buyers, 0) - ifNull(o.new_customers, 0) AS returning_customers
FROM
(
    SELECT day, channel, sum(events) AS events,
           uniqExactIf(transform(profile_id, redirects.1, redirects.2, profile_id), profile_id != '') AS active
    FROM {db}.kpi_daily_state
    GROUP BY day, channel
    UNION ALL
    SELECT day, 'all' AS channel, sum(events),
           uniqExactIf(transform(profile_id, redirects.1, redirects.2, profile_id), profile_id != '')
    FROM {db}.kpi_daily_state
    GROUP BY day
) AS k
LEFT JOIN
(
    -- a new customer placed their first counted order on that day (in that channel)
    SELECT order_date AS day, channel, count() AS orders, sum(revenue) AS revenue,
           uniqExactIf(profile_id, profile_id != '') AS buyers,
           uniqExactIf(profile_id, profile_id != '' AND placed_at = first_at) AS new_customers
    FROM
    (
        SELECT order_date, placed_at, channel AS order_channel, revenue, profile_id,
               min(placed_at) OVER (PARTITION BY profile_id) AS first_at
        FROM {db}.orders
        WHERE counted
    )
    ARRAY JOIN [order_channel, 'all'] AS channel
    GROUP BY day, channel
) AS o ON k.day = o.day AND k.channel = o.channel
LEFT JOIN
(
    SELECT day, channel, sum(refund) AS refunds
    FROM
    (
        -- each refund in the order they were made gives back at most what is left of the order
        SELECT toDate(refunded_at) AS day, refund_channel,
               greatest(0, least(amount, revenue - sum(amount) OVER (
                   PARTITION BY order_id ORDER BY refunded_at, refund_key
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING))) AS refund
        FROM
        (
            SELECT r.order_id AS order_id, r.refund_key AS refund_key, r.refunded_at AS refunded_at,
                   r.refund_channel AS refund_channel, o.revenue AS revenue,
                   if(r.is_full, o.revenue, r.key_amount) AS amount
            FROM
            (
                SELECT order_id, refund_key, max(isNull(amount)) AS is_full, max(ifNull(amount, 0)) AS key_amount,
                       min(timestamp) AS refunded_at, argMin(channel, timestamp) AS refund_channel
                FROM {db}.order_events
                WHERE event = 'Order Refunded'
                GROUP BY order_id, refund_key
            ) AS r
            INNER JOIN
            (
                -- the refunded orders that count, with their revenue as in `orders`
                SELECT order_id,
                       argMaxIf(ifNull(amount, 0), (timestamp, ifNull(amount, 0), message_id), event = 'Order Completed')
                           AS revenue
                FROM {db}.order_events
                WHERE event IN ('Order Completed', 'Order Cancelled')
                  AND order_id IN (SELECT order_id FROM {db}.order_events WHERE event = 'Order Refunded')
                GROUP BY order_id
                HAVING countIf(event = 'Order Completed') > 0 AND countIf(event = 'Order Cancelled') = 0
            ) AS o ON r.order_id = o.order_id
        )
    )
    ARRAY JOIN [refund_channel, 'all'] AS channel
    GROUP BY day, channel
) AS f ON k.day = f.day AND k.channel = f.channel;

-- Monthly retention cohorts: customers by the month of their first counted order (as `orders`
-- counts them: cancelled orders do not count, a re-sent order is placed when first sent), and how
-- many of them ordered again in each later month. Customers follow merges.
CREATE OR REPLACE VIEW {db}.retention_cohorts AS
SELECT
    cohort_month,
    dateDiff('month', cohort_month, month) AS months_since_first,
    month,
    uniqExact(customer) AS customers,
    -- every customer of a cohort ordered in its first month, and only they
    max(uniqExact(customer)) OVER (PARTITION BY cohort_month) AS cohort_size,
    round(customers / cohort_size, 4) AS retention
FROM
(
    SELECT customer, month, min(month) OVER (PARTITION BY customer) AS cohort_month
    FROM
    (
        SELECT DISTINCT profile_id AS customer, toStartOfMonth(placed_at) AS month
        FROM {db}.orders
        WHERE counted AND profile_id != ''
    )
)
GROUP BY cohort_month, month
ORDER BY cohort_month, month;

-- Email engagement per campaign and profile: when each funnel step first happened.
CREATE TABLE IF NOT EXISTS {db}.email_engagement_state
(
    campaign_id    String,
    profile_id     String,
    campaign_name  AggregateFunction(argMaxIf, String, DateTime64(3, 'UTC'), UInt8),
    delivered_at   AggregateFunction(minIf, DateTime64(3, 'UTC'), UInt8),
    opened_at      AggregateFunction(minIf, DateTime64(3, 'UTC'), UInt8),
    clicked_at     AggregateFunction(minIf, DateTime64(3, 'UTC'), UInt8),
    bounced        AggregateFunction(maxIf, UInt8, UInt8),
    unsubscribed   AggregateFunction(maxIf, UInt8, UInt8)
)
ENGINE = AggregatingMergeTree
ORDER BY (campaign_id, profile_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.email_engagement_state_mv TO {db}.email_engagement_state AS
SELECT
    JSONExtractString(properties, 'campaign_id') AS campaign_id,
    profile_id,
    argMaxIfState(JSONExtractString(properties, 'campaign_name'), timestamp, JSONExtractString(properties, 'campaign_name') != '') AS campaign_name,
    minIfState(timestamp, event = 'Email Delivered') AS delivered_at,
    minIfState(timestamp, event = 'Email Opened') AS opened_at,
    minIfState(timestamp, event = 'Email Link Clicked') AS clicked_at,
    maxIfState(toUInt8(1), event = 'Email Bounced') AS bounced,
    maxIfState(toUInt8(1), event = 'Unsubscribed') AS unsubscribed
FROM {db}.events
WHERE channel = 'email' AND profile_id != '' AND JSONExtractString(properties, 'campaign_id') != ''
GROUP BY campaign_id, profile_id;

INSERT INTO {db}.email_engagement_state
SELECT
    JSONExtractString(properties, 'campaign_id') AS campaign_id,
    profile_id,
    argMaxIfState(JSONExtractString(properties, 'campaign_name'), timestamp, JSONExtractString(properties, 'campaign_name') != ''),
    minIfState(timestamp, event = 'Email Delivered'),
    minIfState(timestamp, event = 'Email Opened'),
    minIfState(timestamp, event = 'Email Link Clicked'),
    maxIfState(toUInt8(1), event = 'Email Bounced'),
    maxIfState(toUInt8(1), event = 'Unsubscribed')
FROM {db}.events
WHERE channel = 'email' AND profile_id != '' AND JSONExtractString(properties, 'campaign_id') != ''
GROUP BY campaign_id, profile_id;

-- The email funnel per campaign: recipients delivered, opened, clicked, and who placed a counted
-- order (as `orders` has it: not cancelled, the latest completion's revenue) within 7 days after
-- their first click (with that revenue). Profiles follow merges.
CREATE OR REPLACE VIEW {db}.email_funnel AS
WITH
    (SELECT groupArray(absorbed), groupArray(survivor) FROM {db}.profile_redirects FINAL) AS redirects,
    engagement AS
    (
        SELECT campaign_id, customer,
               anyIf(name, name != '') AS campaign_name,
               min(delivered) AS delivered_at, min(opened) AS opened_at, min(clicked) AS clicked_at,
               max(b) AS bounced, max(u) AS unsubscribed
        FROM
        (
            SELECT campaign_id, transform(profile_id, redirects.1, redirects.2, profile_id) AS customer,
                   argMaxIfMerge(campaign_name) AS name,
                   nullIf(minIfMerge(delivered_at), toDateTime64(0, 3, 'UTC')) AS delivered,
                   nullIf(minIfMerge(opened_at), toDateTime64(0, 3, 'UTC')) AS opened,
                   nullIf(minIfMerge(clicked_at), toDateTime64(0, 3, 'UTC')) AS clicked,
                   maxIfMerge(bounced) AS b, maxIfMerge(unsubscribed) AS u
            FROM {db}.email_engagement_state
            GROUP BY campaign_id, profile_id
        )
        GROUP BY campaign_id, customer
    ),
    attributed AS
    (
        SELECT e.campaign_id AS campaign_id, e.customer AS customer, sum(x.revenue) AS revenue
        FROM engagement AS e
        INNER JOIN
        (
            SELECT profile_id AS customer, placed_at, revenue
            FROM {db}.orders
            WHERE counted AND profile_id != ''
        ) AS x ON e.customer = x.customer
        WHERE e.clicked_at IS NOT NULL AND x.placed_at >= e.clicked_at AND x.placed_at < e.clicked_at + INTERVAL 7 DAY
        GROUP BY e.campaign_id, e.customer
    )
SELECT
    e.campaign_id AS campaign_id,
    anyIf(e.campaign_name, e.campaign_name != '') AS campaign_name,
    min(e.delivered_at) AS first_delivered_at,
    countIf(e.delivered_at IS NOT NULL) AS delivered,
    countIf(e.opened_at IS NOT NULL) AS opened,
    countIf(e.clicked_at IS NOT NULL) AS clicked,
    countIf(o.customer != '') AS ordered,
    round(sum(ifNull(o.revenue, 0)), 2) AS ordered_revenue,
    countIf(e.bounced = 1) AS bounced,
    countIf(e.unsubscribed = 1) AS unsubscribed,
    if(delivered > 0, round(opened / delivered, 4), NULL) AS open_rate,
    if(delivered > 0, round(clicked / delivered, 4), NULL) AS click_rate,
    if(clicked > 0, round(ordered / clicked, 4), NULL) AS click_to_order_rate
FROM engagement AS e
LEFT JOIN attributed AS o ON e.campaign_id = o.campaign_id AND e.customer = o.customer
GROUP BY e.campaign_id;

-- Chat conversations: start, whether a person took part, rating.
CREATE TABLE IF NOT EXISTS {db}.conversations_state
(
    conversation_id  String,
    profile_id       AggregateFunction(argMin, String, DateTime64(3, 'UTC')),
    started_at       AggregateFunction(min, DateTime64(3, 'UTC')),
    last_at          AggregateFunction(max, DateTime64(3, 'UTC')),
    human            AggregateFunction(max, UInt8),
    messages         AggregateFunction(countIf, UInt8),
    csat             AggregateFunction(argMaxIf, Nullable(Float64), DateTime64(3, 'UTC'), UInt8),
    topic            AggregateFunction(argMaxIf, String, DateTime64(3, 'UTC'), UInt8)
)
ENGINE = AggregatingMergeTree
ORDER BY conversation_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.conversations_state_mv TO {db}.conversations_state AS
SELECT
    JSONExtractString(properties, 'conversation_id') AS conversation_id,
    argMinState(profile_id, timestamp) AS profile_id,
    minState(timestamp) AS started_at,
    maxState(timestamp) AS last_at,
    maxState(toUInt8(JSONExtractString(properties, 'handled_by') = 'human')) AS human,
    countIfState(event IN ('Message Sent', 'Message Received')) AS messages,
    argMaxIfState(JSONExtract(properties, 'csat', 'Nullable(Float64)'), timestamp, event = 'Conversation Rated') AS csat,
    argMaxIfState(JSONExtractString(properties, 'topic'), timestamp, JSONExtractString(properties, 'topic') != '') AS topic
FROM {db}.events
WHERE channel = 'chat' AND JSONExtractString(properties, 'conversation_id') != ''
GROUP BY conversation_id;

INSERT INTO {db}.conversations_state
SELECT
    JSONExtractString(properties, 'conversation_id') AS conversation_id,
    argMinState(profile_id, timestamp),
    minState(timestamp),
    maxState(timestamp),
    maxState(toUInt8(JSONExtractString(properties, 'handled_by') = 'human')),
    countIfState(event IN ('Message Sent', 'Message Received')),
    argMaxIfState(JSONExtract(properties, 'csat', 'Nullable(Float64)'), timestamp, event = 'Conversation Rated'),
    argMaxIfState(JSONExtractString(properties, 'topic'), timestamp, JSONExtractString(properties, 'topic') != '')
FROM {db}.events
WHERE channel = 'chat' AND JSONExtractString(properties, 'conversation_id') != ''
GROUP BY conversation_id;

-- Complaints: when opened and resolved, category, resolution.
CREATE TABLE IF NOT EXISTS {db}.complaints_state
(
    complaint_id  String,
    profile_id    AggregateFunction(argMin, String, DateTime64(3, 'UTC')),
    opened_at     AggregateFunction(minIf, DateTime64(3, 'UTC'), UInt8),
    resolved_at   AggregateFunction(minIf, DateTime64(3, 'UTC'), UInt8),
    category      AggregateFunction(argMaxIf, String, DateTime64(3, 'UTC'), UInt8),
    resolution    AggregateFunction(argMaxIf, String, DateTime64(3, 'UTC'), UInt8),
    order_id      AggregateFunction(argMaxIf, String, DateTime64(3, 'UTC'), UInt8)
)
ENGINE = AggregatingMergeTree
ORDER BY complaint_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.complaints_state_mv TO {db}.complaints_state AS
SELECT
    JSONExtractString(properties, 'complaint_id') AS complaint_id,
    argMinState(profile_id, timestamp) AS profile_id,
    minIfState(timestamp, event = 'Complaint Opened') AS opened_at,
    minIfState(timestamp, event = 'Complaint Resolved') AS resolved_at,
    argMaxIfState(JSONExtractString(properties, 'category'), timestamp, JSONExtractString(properties, 'category') != '') AS category,
    argMaxIfState(JSONExtractString(properties, 'resolution'), timestamp, JSONExtractString(properties, 'resolution') != '') AS resolution,
    argMaxIfState(JSONExtractString(properties, 'order_id'), timestamp, JSONExtractString(properties, 'order_id') != '') AS order_id
FROM {db}.events
WHERE event IN ('Complaint Opened', 'Complaint Resolved') AND JSONExtractString(properties, 'complaint_id') != ''
GROUP BY complaint_id;

INSERT INTO {db}.complaints_state
SELECT
    JSONExtractString(properties, 'complaint_id') AS complaint_id,
    argMinState(profile_id, timestamp),
    minIfState(timestamp, event = 'Complaint Opened'),
    minIfState(timestamp, event = 'Complaint Resolved'),
    argMaxIfState(JSONExtractString(properties, 'category'), timestamp, JSONExtractString(properties, 'category') != ''),
    argMaxIfState(JSONExtractString(properties, 'resolution'), timestamp, JSONExtractString(properties, 'resolution') != ''),
    argMaxIfState(JSONExtractString(properties, 'order_id'), timestamp, JSONExtractString(properties, 'order_id') != '')
FROM {db}.events
WHERE event IN ('Complaint Opened', 'Complaint Resolved') AND JSONExtractString(properties, 'complaint_id') != ''
GROUP BY complaint_id;

-- One row per conversation and per complaint, for BI tools.
CREATE OR REPLACE VIEW {db}.conversations AS
SELECT
    conversation_id,
    argMinMerge(profile_id) AS profile_id,
    minMerge(started_at) AS started_at,
    maxMerge(last_at) AS last_at,
    if(maxMerge(human) = 1, 'human', 'bot') AS handled_by,
    countIfMerge(messages) AS messages,
    argMaxIfMerge(csat) AS csat,
    argMaxIfMerge(topic) AS topic
FROM {db}.conversations_state
GROUP BY conversation_id;

CREATE OR REPLACE VIEW {db}.complaints AS
SELECT
    complaint_id,
    argMinMerge(profile_id) AS profile_id,
    nullIf(minIfMerge(opened_at), toDateTime64(0, 3, 'UTC')) AS opened_at,
    nullIf(minIfMerge(resolved_at), toDateTime64(0, 3, 'UTC')) AS resolved_at,
    if(resolved_at IS NOT NULL AND opened_at IS NOT NULL,
       round(dateDiff('second', opened_at, resolved_at) / 3600, 2), NULL) AS hours_to_resolve,
    argMaxIfMerge(category) AS category,
    argMaxIfMerge(resolution) AS resolution,
    argMaxIfMerge(order_id) AS order_id
FROM {db}.complaints_state
GROUP BY complaint_id;

-- Service KPIs per day: conversations started, bot-only versus with a person, average rating of the
-- conversations started that day, complaints opened and resolved, hours to resolve (of the
-- complaints resolved that day whose opening is known: the mean, and the median, which for an even
-- number of complaints is the mean of the middle two).
CREATE OR REPLACE VIEW {db}.service_kpi_daily AS
SELECT
    day,
    sum(started) AS conversations,
    sum(bot) AS bot_only,
    sum(human) AS with_human,
    if(conversations > 0, round(bot_only / conversations, 4), NULL) AS bot_share,
    if(conversations > 0, round(with_human / conversations, 4), NULL) AS human_share,
    sum(ratings) AS rated,
    if(rated > 0, round(sum(csat_sum) / rated, 2), NULL) AS csat_average,
    sum(opened) AS complaints_opened,
    sum(resolved) AS complaints_resolved,
    if(sum(timed) > 0, round(sum(hours_sum) / sum(timed), 2), NULL) AS average_hours_to_resolve,
    if(sum(timed) > 0, round(quantileExactInclusiveMerge(0.5)(hours), 2), NULL) AS median_hours_to_resolve
FROM
(
    SELECT toDate(started_at) AS day, count() AS started,
           countIf(handled_by = 'bot') AS bot, countIf(handled_by = 'human') AS human,
           countIf(csat IS NOT NULL) AS ratings, sum(ifNull(csat, 0)) AS csat_sum,
           0 AS opened, 0 AS resolved, 0 AS timed, 0.0 AS hours_sum,
           quantileExactInclusiveStateIf(0.5)(toFloat64(0), toUInt8(0)) AS hours
    FROM {db}.conversations GROUP BY day
    UNION ALL
    SELECT toDate(opened_at) AS day, 0, 0, 0, 0, 0, count(), 0, 0, 0.0,
           quantileExactInclusiveStateIf(0.5)(toFloat64(0), toUInt8(0))
    FROM {db}.complaints WHERE opened_at IS NOT NULL GROUP BY day
    UNION ALL
    SELECT toDate(resolved_at) AS day, 0, 0, 0, 0, 0, 0, count(), countIf(hours_to_resolve IS NOT NULL),
           sum(ifNull(hours_to_resolve, 0)),
           quantileExactInclusiveStateIf(0.5)(ifNull(hours_to_resolve, 0), hours_to_resolve IS NOT NULL)
    FROM {db}.complaints WHERE resolved_at IS NOT NULL GROUP BY day
)
GROUP BY day
ORDER BY day;

-- Customer value refreshes (`cdp analytics refresh`, and on a schedule): progress and the fitted
-- models. Holds no personal data.
CREATE TABLE IF NOT EXISTS {db}.analytics_refreshes
(
    refresh_id   UInt64,
    started_at   DateTime64(3, 'UTC'),
    updated_at   DateTime64(3, 'UTC'),
    status       LowCardinality(String),
    step         UInt8,
    steps        UInt8,
    step_name    String,
    trigger      LowCardinality(String),
    until        Date,
    unit         LowCardinality(String),
    horizon_days UInt32,
    customers    UInt64,
    model        String,
    error        String
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY refresh_id;

-- Customer value per profile with at least one counted order, one partition per refresh (the
-- refresh drops older partitions); `customer_value_latest` is the latest finished refresh.
CREATE TABLE IF NOT EXISTS {db}.customer_value
(
    refresh_id            UInt64,
    profile_id            String,
    computed_at           DateTime64(3, 'UTC'),
    orders                UInt32,
    first_order_at        DateTime64(3, 'UTC'),
    last_order_at         DateTime64(3, 'UTC'),
    days_since_last_order UInt32,
    historical_clv        Float64,
    average_order_value   Float64,
    frequency             UInt32,
    recency               Float64,
    age                   Float64,
    repeat_order_value    Nullable(Float64),
    r_score               UInt8,
    f_score               UInt8,
    m_score               UInt8,
    rfm_score             String,
    abc_class             LowCardinality(String),
    revenue_share         Float64,
    cumulative_share      Float64,
    p_alive               Nullable(Float64),
    churn_risk            Nullable(Float64),
    predicted_purchases   Nullable(Float64),
    expected_order_value  Nullable(Float64),
    predicted_clv         Nullable(Float64),
    attributes            String
)
ENGINE = MergeTree
PARTITION BY refresh_id
ORDER BY profile_id;

CREATE OR REPLACE VIEW {db}.customer_value_latest AS
SELECT * EXCEPT (attributes)
FROM {db}.customer_value
WHERE refresh_id = (SELECT max(refresh_id) FROM {db}.analytics_refreshes FINAL WHERE status = 'done');
