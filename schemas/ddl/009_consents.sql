-- Consent records (docs/privacy.md#consent, docs/bi/consents.md): the full history of every consent
-- decision, one row per event, kept by a materialized view from `events`, and the INSERT that fills
-- it from the events stored before this migration.
--
-- Decisions come from Subscribed (email_marketing granted), Double Opt-In Confirmed (granted and
-- confirmed), Unsubscribed (withdrawn) and Consent Updated (any purpose). `source` says how the
-- decision arrived, as services/identity/domain/consents.py `consent_source` does: `api` for the
-- admin consent API (canonical source 'admin-api', not set by the client in context.source),
-- `webhook` for /v1/webhooks/* (canonical source 'webhook-<channel>' or a provider's name), else
-- `event` (the tracking API).
--
-- The table is a ReplacingMergeTree keyed by the event: a repeated row of the same event (a
-- repeated batch, the backfill meeting the view) collapses into one. Read it with FINAL, or through
-- `consent_history`, which does, and adds the profile each row belongs to now.

CREATE TABLE IF NOT EXISTS {db}.consents
(
    message_id          String,
    -- the profile the event resolved to when it arrived, and its anchor and identifier keys
    profile_id          String,
    anchor              String,
    identity_keys       Array(String),
    purpose             LowCardinality(String),
    status              LowCardinality(String),      -- granted, denied, withdrawn
    double_opt_in       UInt8,                       -- this decision confirms a double opt-in
    legal_text_version  String,
    source              LowCardinality(String),      -- event, webhook, api
    event               LowCardinality(String),
    event_source        LowCardinality(String),      -- the canonical event's source (web, sendgrid, admin-api, ...)
    occurred_at         DateTime64(3, 'UTC'),
    received_at         DateTime64(3, 'UTC'),
    list_id             String,
    reason              String,
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX consents_identity_keys identity_keys TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
ORDER BY (anchor, purpose, occurred_at, message_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.consents_mv TO {db}.consents AS
SELECT
    e.message_id AS message_id,
    e.profile_id AS profile_id,
    e.anchor AS anchor,
    e.identity_keys AS identity_keys,
    if(e.event = 'Consent Updated', JSONExtractString(e.properties, 'purpose'), 'email_marketing') AS purpose,
    multiIf(e.event IN ('Subscribed', 'Double Opt-In Confirmed'), 'granted',
            e.event = 'Unsubscribed', 'withdrawn',
            JSONExtractString(e.properties, 'status')) AS status,
    toUInt8(e.event = 'Double Opt-In Confirmed'
            OR (e.event IN ('Subscribed', 'Consent Updated') AND status = 'granted'
                AND JSONExtractBool(e.properties, 'double_opt_in'))) AS double_opt_in,
    JSONExtractString(e.properties, 'legal_text_version') AS legal_text_version,
    multiIf(e.source = 'admin-api' AND JSONExtractString(e.context, 'source') = '', 'api',
            startsWith(e.source, 'webhook-') OR e.source IN ('shopify', 'sendgrid', 'zendesk'), 'webhook',
            'event') AS source,
    e.event AS event,
    e.source AS event_source,
    e.timestamp AS occurred_at,
    e.received_at AS received_at,
    JSONExtractString(e.properties, 'list_id') AS list_id,
    JSONExtractString(e.properties, 'reason') AS reason
FROM {db}.events AS e
WHERE e.type = 'track'
  AND (e.event IN ('Subscribed', 'Double Opt-In Confirmed', 'Unsubscribed')
       OR (e.event = 'Consent Updated' AND JSONExtractString(e.properties, 'purpose') != ''
           AND JSONExtractString(e.properties, 'status') IN ('granted', 'denied', 'withdrawn')));

-- Events stored before this migration: the view above only sees new inserts.
INSERT INTO {db}.consents
    (message_id, profile_id, anchor, identity_keys, purpose, status, double_opt_in, legal_text_version,
     source, event, event_source, occurred_at, received_at, list_id, reason)
SELECT
    e.message_id,
    e.profile_id,
    e.anchor,
    e.identity_keys,
    if(e.event = 'Consent Updated', JSONExtractString(e.properties, 'purpose'), 'email_marketing') AS purpose,
    multiIf(e.event IN ('Subscribed', 'Double Opt-In Confirmed'), 'granted',
            e.event = 'Unsubscribed', 'withdrawn',
            JSONExtractString(e.properties, 'status')) AS status,
    toUInt8(e.event = 'Double Opt-In Confirmed'
            OR (e.event IN ('Subscribed', 'Consent Updated') AND status = 'granted'
                AND JSONExtractBool(e.properties, 'double_opt_in'))),
    JSONExtractString(e.properties, 'legal_text_version'),
    multiIf(e.source = 'admin-api' AND JSONExtractString(e.context, 'source') = '', 'api',
            startsWith(e.source, 'webhook-') OR e.source IN ('shopify', 'sendgrid', 'zendesk'), 'webhook',
            'event'),
    e.event,
    e.source,
    e.timestamp,
    e.received_at,
    JSONExtractString(e.properties, 'list_id'),
    JSONExtractString(e.properties, 'reason')
FROM {db}.events AS e
WHERE e.type = 'track'
  AND (e.event IN ('Subscribed', 'Double Opt-In Confirmed', 'Unsubscribed')
       OR (e.event = 'Consent Updated' AND JSONExtractString(e.properties, 'purpose') != ''
           AND JSONExtractString(e.properties, 'status') IN ('granted', 'denied', 'withdrawn')));

-- Every consent decision once, with the profile it belongs to now: the current profile of its
-- anchor (after later merges and splits), else the stored profile, following merges (as `orders`).
CREATE OR REPLACE VIEW {db}.consent_history AS
SELECT
    c.message_id AS message_id,
    if(a.current != '', if(r2.survivor != '', r2.survivor, a.current),
       if(r.survivor != '', r.survivor, c.profile_id)) AS current_profile_id,
    c.profile_id AS profile_id,
    c.anchor AS anchor,
    c.identity_keys AS identity_keys,
    c.purpose AS purpose,
    c.status AS status,
    c.double_opt_in AS double_opt_in,
    c.legal_text_version AS legal_text_version,
    c.source AS source,
    c.event AS event,
    c.event_source AS event_source,
    c.occurred_at AS occurred_at,
    c.received_at AS received_at,
    c.list_id AS list_id,
    c.reason AS reason
FROM {db}.consents AS c FINAL
LEFT JOIN
(
    SELECT identifier, argMax(profile_id, version) AS current
    FROM {db}.identities
    WHERE identifier IN (SELECT anchor FROM {db}.consents)
    GROUP BY identifier
) AS a ON c.anchor = a.identifier
LEFT JOIN (SELECT absorbed, survivor FROM {db}.profile_redirects FINAL) AS r ON c.profile_id = r.absorbed
LEFT JOIN (SELECT absorbed, survivor FROM {db}.profile_redirects FINAL) AS r2 ON a.current = r2.absorbed;

-- The current consent per profile and purpose, as the profile's `consents` attribute: the latest
-- decision by event time (then message id); confirmed by double opt-in while a confirmation is
-- later than every denial or withdrawal; a grant shows the legal text of the latest grant naming one.
CREATE OR REPLACE VIEW {db}.consents_latest AS
SELECT
    h.current_profile_id AS profile_id,
    h.purpose AS purpose,
    argMax(h.status, (h.occurred_at, h.message_id)) AS status,
    status = 'granted' AS granted,
    granted AND countIf(h.double_opt_in = 1) > 0
        AND maxIf((h.occurred_at, h.message_id), h.double_opt_in = 1)
            > maxIf((h.occurred_at, h.message_id), h.status != 'granted') AS double_opt_in,
    if(double_opt_in, maxIf(h.occurred_at, h.double_opt_in = 1), NULL) AS double_opt_in_at,
    -- a grant: the text of the latest grant that named one (a confirmation names none)
    if(granted, argMaxIf(h.legal_text_version, (h.occurred_at, h.message_id),
                         h.status = 'granted' AND h.legal_text_version != ''),
       argMax(h.legal_text_version, (h.occurred_at, h.message_id))) AS legal_text_version,
    argMax(h.source, (h.occurred_at, h.message_id)) AS source,
    max(h.occurred_at) AS at,
    count() AS decisions
FROM {db}.consent_history AS h
WHERE h.current_profile_id != ''
GROUP BY h.current_profile_id, h.purpose;
