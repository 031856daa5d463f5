-- Which profile an event belongs to follows its anchor: the best-ranked of its identifiers (the
-- first identity key). Merges and splits move identifiers between profiles, so "the events of a
-- profile" are the events anchored in its current identifiers (docs/identity.md).
ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS anchor String DEFAULT if(empty(identity_keys), '', identity_keys[1]) AFTER identity_keys;

-- The events of an anchor, newest first, for the profile 360 (its recent events).
CREATE TABLE IF NOT EXISTS {db}.events_by_anchor
(
    anchor      String,
    profile_id  String,
    timestamp   DateTime64(3, 'UTC'),
    message_id  String,
    type        LowCardinality(String),
    event       LowCardinality(String),
    name        String,
    channel     LowCardinality(String),
    source      LowCardinality(String),
    properties  String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree
ORDER BY (anchor, timestamp, message_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.events_by_anchor_mv TO {db}.events_by_anchor AS
SELECT anchor, profile_id, timestamp, message_id, type, event, name, channel, source, properties
FROM {db}.events WHERE anchor != '';

-- Events with the profile they belong to now: the current profile of their anchor (after later
-- merges and splits), else the profile they resolved to, following merges.
CREATE OR REPLACE VIEW {db}.events_current_profile AS
SELECT e.*, if(a.current != '', if(r2.survivor != '', r2.survivor, a.current),
               if(r.survivor != '', r.survivor, e.profile_id)) AS current_profile_id
FROM {db}.events AS e
LEFT JOIN (SELECT identifier, argMax(profile_id, version) AS current FROM {db}.identities GROUP BY identifier) AS a
    ON e.anchor = a.identifier
LEFT JOIN (SELECT absorbed, survivor FROM {db}.profile_redirects FINAL) AS r ON e.profile_id = r.absorbed
LEFT JOIN (SELECT absorbed, survivor FROM {db}.profile_redirects FINAL) AS r2 ON a.current = r2.absorbed;

-- Events stored before this migration: the view above only sees new inserts.
INSERT INTO {db}.events_by_anchor
SELECT anchor, profile_id, timestamp, message_id, type, event, name, channel, source, properties
FROM {db}.events WHERE anchor != '';
