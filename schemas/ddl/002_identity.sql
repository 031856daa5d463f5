-- Identity resolution and unified profiles (docs/warehouse.md, docs/design/identity-streaming.md).
-- Writers insert the JSON record as `_raw` (not stored); ClickHouse derives the columns.

-- The profile id each event resolved to when it was processed (see events_current_profile).
ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS profile_id String DEFAULT JSONExtractString(_raw, 'profileId') AFTER message_id;

-- Every published version of every profile; `profiles_latest` is the current state.
CREATE TABLE IF NOT EXISTS {db}.profiles
(
    _raw                   String EPHEMERAL,
    profile_id             String DEFAULT JSONExtractString(_raw, 'profileId'),
    version                UInt64 DEFAULT JSONExtractUInt(_raw, 'version'),
    merged_into            String DEFAULT JSONExtractString(_raw, 'mergedInto'),
    -- false for an id that no longer names a profile: merged away, or left empty by a split
    live                   UInt8 DEFAULT if(JSONHas(_raw, 'live'), JSONExtractBool(_raw, 'live'), merged_into = ''),
    identifiers            Array(String) DEFAULT JSONExtract(_raw, 'identifiers', 'Array(String)'),
    traits                 String DEFAULT if(JSONHas(_raw, 'traits'), JSONExtractRaw(_raw, 'traits'), '{}'),
    attributes             String DEFAULT if(JSONHas(_raw, 'attributes'), JSONExtractRaw(_raw, 'attributes'), '{}'),
    snapshot               String DEFAULT if(JSONHas(_raw, 'snapshot'), JSONExtractRaw(_raw, 'snapshot'), '{}') CODEC(ZSTD(3)),
    email                  String DEFAULT JSONExtractString(traits, 'email'),
    first_seen_at          Nullable(DateTime64(3, 'UTC')) DEFAULT parseDateTime64BestEffortOrNull(JSONExtractString(attributes, 'first_seen_at'), 3, 'UTC'),
    last_seen_at           Nullable(DateTime64(3, 'UTC')) DEFAULT parseDateTime64BestEffortOrNull(JSONExtractString(attributes, 'last_seen_at'), 3, 'UTC'),
    preferred_channel      LowCardinality(String) DEFAULT JSONExtractString(attributes, 'preferred_channel'),
    orders_count           UInt32 DEFAULT JSONExtractUInt(attributes, 'orders_count'),
    revenue_net            Float64 DEFAULT JSONExtractFloat(attributes, 'revenue_net'),
    average_order_value    Nullable(Float64) DEFAULT JSONExtract(attributes, 'average_order_value', 'Nullable(Float64)'),
    currency               LowCardinality(String) DEFAULT JSONExtractString(attributes, 'currency'),
    first_order_at         Nullable(DateTime64(3, 'UTC')) DEFAULT parseDateTime64BestEffortOrNull(JSONExtractString(attributes, 'first_order_at'), 3, 'UTC'),
    last_order_at          Nullable(DateTime64(3, 'UTC')) DEFAULT parseDateTime64BestEffortOrNull(JSONExtractString(attributes, 'last_order_at'), 3, 'UTC'),
    email_subscription     LowCardinality(String) DEFAULT JSONExtractString(attributes, 'email_subscription'),
    emails_opened          UInt32 DEFAULT JSONExtractUInt(attributes, 'emails_opened'),
    emails_clicked         UInt32 DEFAULT JSONExtractUInt(attributes, 'emails_clicked'),
    emails_bounced         UInt32 DEFAULT JSONExtractUInt(attributes, 'emails_bounced'),
    chat_conversations     UInt32 DEFAULT JSONExtractUInt(attributes, 'chat_conversations'),
    csat_average           Nullable(Float64) DEFAULT JSONExtract(attributes, 'csat_average', 'Nullable(Float64)'),
    open_complaints        UInt32 DEFAULT JSONExtractUInt(attributes, 'open_complaints'),
    last_complaint_at      Nullable(DateTime64(3, 'UTC')) DEFAULT parseDateTime64BestEffortOrNull(JSONExtractString(attributes, 'last_complaint_at'), 3, 'UTC'),
    updated_at             DateTime64(3, 'UTC') DEFAULT now64(3),
    kafka_cluster  LowCardinality(String) DEFAULT '',
    kafka_partition UInt32 DEFAULT 0,
    kafka_offset   UInt64 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version)
ORDER BY profile_id;

CREATE VIEW IF NOT EXISTS {db}.profiles_latest AS
SELECT * EXCEPT (snapshot) FROM {db}.profiles FINAL WHERE live;

-- Every identifier and the profile it belongs to now (rewritten when its profile merges or splits).
CREATE TABLE IF NOT EXISTS {db}.identities
(
    _raw           String EPHEMERAL,
    identifier     String DEFAULT JSONExtractString(_raw, 'identifier'),
    id_type        LowCardinality(String) DEFAULT splitByChar(':', identifier)[1],
    value          String DEFAULT substring(identifier, length(id_type) + 2),
    profile_id     String DEFAULT JSONExtractString(_raw, 'profileId'),
    version        UInt64 DEFAULT JSONExtractUInt(_raw, 'version'),
    first_seen_at  Nullable(DateTime64(3, 'UTC')) DEFAULT parseDateTime64BestEffortOrNull(JSONExtractString(_raw, 'firstSeenAt'), 3, 'UTC'),
    updated_at     DateTime64(3, 'UTC') DEFAULT now64(3),
    kafka_cluster  LowCardinality(String) DEFAULT '',
    kafka_partition UInt32 DEFAULT 0,
    kafka_offset   UInt64 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version)
ORDER BY identifier;

-- The profile 360 lookup finds a profile's identifiers and absorbed ids by profile id.
ALTER TABLE {db}.identities ADD INDEX IF NOT EXISTS identities_profile_id profile_id TYPE bloom_filter(0.01) GRANULARITY 1;

-- The recorded links (the identity graph's source of truth) with their provenance.
CREATE TABLE IF NOT EXISTS {db}.identity_links
(
    _raw        String EPHEMERAL,
    a           String DEFAULT JSONExtractString(_raw, 'a'),
    b           String DEFAULT JSONExtractString(_raw, 'b'),
    message_id  String DEFAULT JSONExtractString(_raw, 'messageId'),
    event       LowCardinality(String) DEFAULT JSONExtractString(_raw, 'event'),
    event_time  DateTime64(3, 'UTC') DEFAULT parseDateTime64BestEffortOrZero(JSONExtractString(_raw, 'timestamp'), 3, 'UTC'),
    rule        LowCardinality(String) DEFAULT JSONExtractString(_raw, 'rule'),
    removed     UInt8 DEFAULT JSONExtractBool(_raw, 'removed'),
    reason      String DEFAULT JSONExtractString(_raw, 'reason'),
    version     UInt64 DEFAULT JSONExtractUInt(_raw, 'version'),
    updated_at  DateTime64(3, 'UTC') DEFAULT now64(3),
    kafka_cluster  LowCardinality(String) DEFAULT '',
    kafka_partition UInt32 DEFAULT 0,
    kafka_offset   UInt64 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (a, b);

-- Absorbed profile ids and the profile they point to now (chains already followed).
CREATE TABLE IF NOT EXISTS {db}.profile_redirects
(
    _raw       String EPHEMERAL,
    absorbed   String DEFAULT JSONExtractString(_raw, 'absorbed'),
    survivor   String DEFAULT JSONExtractString(_raw, 'survivor'),
    version    UInt64 DEFAULT JSONExtractUInt(_raw, 'version'),
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3),
    kafka_cluster  LowCardinality(String) DEFAULT '',
    kafka_partition UInt32 DEFAULT 0,
    kafka_offset   UInt64 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version)
ORDER BY absorbed;

ALTER TABLE {db}.profile_redirects ADD INDEX IF NOT EXISTS redirects_survivor survivor TYPE bloom_filter(0.01) GRANULARITY 1;

-- Every merge, with the link and the event that caused it.
CREATE TABLE IF NOT EXISTS {db}.identity_merges
(
    _raw        String EPHEMERAL,
    survivor    String DEFAULT JSONExtractString(_raw, 'survivor'),
    absorbed    String DEFAULT JSONExtractString(_raw, 'absorbed'),
    link_a      String DEFAULT JSONExtractString(_raw, 'linkA'),
    link_b      String DEFAULT JSONExtractString(_raw, 'linkB'),
    rule        LowCardinality(String) DEFAULT JSONExtractString(_raw, 'rule'),
    message_id  String DEFAULT JSONExtractString(_raw, 'messageId'),
    event       LowCardinality(String) DEFAULT JSONExtractString(_raw, 'event'),
    event_time  DateTime64(3, 'UTC') DEFAULT parseDateTime64BestEffortOrZero(JSONExtractString(_raw, 'timestamp'), 3, 'UTC'),
    merged_at   DateTime64(3, 'UTC') DEFAULT now64(3),
    kafka_cluster  LowCardinality(String) DEFAULT '',
    kafka_partition UInt32 DEFAULT 0,
    kafka_offset   UInt64 DEFAULT 0
)
ENGINE = MergeTree
ORDER BY (merged_at, survivor)
SETTINGS non_replicated_deduplication_window = 1000;

-- Links the safeguards refused (never silently applied), and pairs/identifiers an operator split off.
CREATE TABLE IF NOT EXISTS {db}.identity_refusals
(
    _raw        String EPHEMERAL,
    a           String DEFAULT JSONExtractString(_raw, 'a'),
    b           String DEFAULT JSONExtractString(_raw, 'b'),
    reason      LowCardinality(String) DEFAULT JSONExtractString(_raw, 'reason'),
    a_profile   String DEFAULT JSONExtractString(_raw, 'aProfile'),
    b_profile   String DEFAULT JSONExtractString(_raw, 'bProfile'),
    message_id  String DEFAULT JSONExtractString(_raw, 'messageId'),
    event_time  DateTime64(3, 'UTC') DEFAULT parseDateTime64BestEffortOrZero(JSONExtractString(_raw, 'timestamp'), 3, 'UTC'),
    refused_at  DateTime64(3, 'UTC') DEFAULT now64(3),
    kafka_cluster  LowCardinality(String) DEFAULT '',
    kafka_partition UInt32 DEFAULT 0,
    kafka_offset   UInt64 DEFAULT 0
)
ENGINE = MergeTree
ORDER BY (refused_at, reason)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {db}.identity_operator_rules
(
    _raw        String EPHEMERAL,
    kind        LowCardinality(String) DEFAULT JSONExtractString(_raw, 'kind'),
    a           String DEFAULT JSONExtractString(_raw, 'a'),
    b           String DEFAULT JSONExtractString(_raw, 'b'),
    reason      String DEFAULT JSONExtractString(_raw, 'reason'),
    created_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY (kind, a, b);

-- The events of a profile, newest first, for the profile 360 lookup.
CREATE TABLE IF NOT EXISTS {db}.events_by_profile
(
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
ORDER BY (profile_id, timestamp, message_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.events_by_profile_mv TO {db}.events_by_profile AS
SELECT profile_id, timestamp, message_id, type, event, name, channel, source, properties
FROM {db}.events WHERE profile_id != '';

-- Events with the profile they belong to now, after later merges.
CREATE VIEW IF NOT EXISTS {db}.events_current_profile AS
SELECT e.*, if(r.survivor = '', e.profile_id, r.survivor) AS current_profile_id
FROM {db}.events AS e
LEFT JOIN (SELECT absorbed, survivor FROM {db}.profile_redirects FINAL) AS r ON e.profile_id = r.absorbed;
