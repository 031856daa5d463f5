-- The identity pipeline (docs/design/identity-streaming.md): events reach the warehouse through
-- the identity processor (cdp.identity.resolved and cdp.identity.unresolved), stamped with their
-- position in the one total order of identity decisions and with their identifier keys.

-- Which topic a row came from: two sinks write events, each resumes after its own offsets.
ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS kafka_topic LowCardinality(String) DEFAULT '' AFTER kafka_cluster;

-- The graph position of the decision that resolved the event (-1: stored before the identity
-- pipeline existed). A restart replays `events` in this order to rebuild the identity graph.
ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS position Int64 DEFAULT if(JSONHas(_raw, 'position'), JSONExtractInt(_raw, 'position'), -1) AFTER profile_id;

-- The event's normalised identifier keys that belong to its profile (e.g. email:anna@example.de).
ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS identity_keys Array(String) DEFAULT if(JSONType(_raw, 'identifiers') = 'Array', JSONExtract(_raw, 'identifiers', 'Array(String)'), []) AFTER position;

ALTER TABLE {db}.events ADD INDEX IF NOT EXISTS events_identity_keys identity_keys TYPE bloom_filter(0.01) GRANULARITY 1;

-- Operator corrections (split, detach) in the order the identity graph applied them.
CREATE TABLE IF NOT EXISTS {db}.identity_corrections
(
    _raw           String EPHEMERAL,
    action         LowCardinality(String) DEFAULT JSONExtractString(_raw, 'action'),
    subject        String DEFAULT JSONExtractString(_raw, 'subject'),
    reason         String DEFAULT JSONExtractString(_raw, 'reason'),
    status         LowCardinality(String) DEFAULT JSONExtractString(_raw, 'status'),
    profile_id     String DEFAULT JSONExtractString(_raw, 'profileId'),
    profiles       Array(String) DEFAULT JSONExtract(_raw, 'profiles', 'Array(String)'),
    removed_links  String DEFAULT if(JSONHas(_raw, 'removedLinks'), JSONExtractRaw(_raw, 'removedLinks'), '[]'),
    position       Int64 DEFAULT JSONExtractInt(_raw, 'position'),
    request_id     String DEFAULT JSONExtractString(_raw, 'requestId'),
    requested_by   String DEFAULT JSONExtractString(_raw, 'requestedBy'),
    requested_at   Nullable(DateTime64(3, 'UTC')) DEFAULT parseDateTime64BestEffortOrNull(JSONExtractString(_raw, 'requestedAt'), 3, 'UTC'),
    applied_at     DateTime64(3, 'UTC') DEFAULT now64(3),
    kafka_cluster  LowCardinality(String) DEFAULT '',
    kafka_partition UInt32 DEFAULT 0,
    kafka_offset   UInt64 DEFAULT 0
)
ENGINE = ReplacingMergeTree
ORDER BY position;

-- Where each run of the identity graph starts numbering: positions stay increasing across
-- restarts of the single-node stack, whose broker starts empty (a new cluster id each time).
CREATE TABLE IF NOT EXISTS {db}.identity_epochs
(
    kafka_cluster  String,
    epoch          Int64,
    started_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(started_at)
ORDER BY kafka_cluster;

-- Landing table for the identifier assignments on cdp.identity.resolved (events, transfers of
-- merged profiles, split parts); the view below unfolds them into `identities`.
CREATE TABLE IF NOT EXISTS {db}.identity_assignments
(
    _raw            String EPHEMERAL,
    profile_id      String DEFAULT JSONExtractString(_raw, 'profileId'),
    position        Int64 DEFAULT JSONExtractInt(_raw, 'position'),
    identifiers     Array(String) DEFAULT JSONExtract(_raw, 'identifiers', 'Array(String)'),
    kafka_cluster   LowCardinality(String) DEFAULT '',
    kafka_partition UInt32 DEFAULT 0,
    kafka_offset    UInt64 DEFAULT 0
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.identity_assignments_mv TO {db}.identities AS
SELECT identifier, splitByChar(':', identifier)[1] AS id_type,
       substring(identifier, length(splitByChar(':', identifier)[1]) + 2) AS value,
       profile_id, toUInt64(greatest(position, 0)) AS version,
       kafka_cluster, kafka_partition, kafka_offset
FROM {db}.identity_assignments ARRAY JOIN identifiers AS identifier;
