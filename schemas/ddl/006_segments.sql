-- Real-time segments (docs/segments.md). Writers insert the JSON record as `_raw` (not stored).

-- Every applied version of every segment definition; FINAL (or argMax) gives the current one.
CREATE TABLE IF NOT EXISTS {db}.segment_definitions
(
    segment_id    String,
    version       UInt32,
    name          String,
    content_hash  String,
    definition    String,
    deleted       UInt8 DEFAULT 0,
    updated_at    DateTime64(3, 'UTC') DEFAULT now64(3),
    applied_by    String DEFAULT ''
)
ENGINE = ReplacingMergeTree(version)
ORDER BY segment_id;

-- Every transition published on cdp.segments.membership. (segment, profile, seq) names one
-- transition, so a record delivered twice collapses into one row.
CREATE TABLE IF NOT EXISTS {db}.segment_membership_log
(
    _raw             String EPHEMERAL,
    segment_id       LowCardinality(String) DEFAULT JSONExtractString(_raw, 'segmentId'),
    segment_version  UInt32 DEFAULT JSONExtractUInt(_raw, 'segmentVersion'),
    profile_id       String DEFAULT JSONExtractString(_raw, 'profileId'),
    action           LowCardinality(String) DEFAULT JSONExtractString(_raw, 'action'),
    reason           LowCardinality(String) DEFAULT JSONExtractString(_raw, 'reason'),
    seq              UInt32 DEFAULT JSONExtractUInt(_raw, 'seq'),
    at               DateTime64(3, 'UTC') DEFAULT parseDateTime64BestEffortOrZero(JSONExtractString(_raw, 'at'), 3, 'UTC'),
    traits           String DEFAULT if(JSONHas(_raw, 'traits'), JSONExtractRaw(_raw, 'traits'), '{}'),
    cause_message_id String DEFAULT JSONExtractString(_raw, 'cause', 'messageId'),
    cause_received_at Nullable(DateTime64(3, 'UTC')) DEFAULT parseDateTime64BestEffortOrNull(JSONExtractString(_raw, 'cause', 'receivedAt'), 3, 'UTC'),
    kafka_cluster    LowCardinality(String) DEFAULT '',
    kafka_partition  UInt32 DEFAULT 0,
    kafka_offset     UInt64 DEFAULT 0
)
ENGINE = ReplacingMergeTree
ORDER BY (segment_id, profile_id, seq);

-- Current membership per (segment, profile), from the processor's durable state (one row per
-- segment of each cdp.segments.state record). `member` is the full membership analysis sees;
-- `activated` is what the consent-gated cdp.segment.<id> feed shows.
CREATE TABLE IF NOT EXISTS {db}.segment_membership
(
    _raw             String EPHEMERAL,
    segment_id       LowCardinality(String) DEFAULT JSONExtractString(_raw, 'segmentId'),
    profile_id       String DEFAULT JSONExtractString(_raw, 'profileId'),
    member           UInt8 DEFAULT JSONExtractBool(_raw, 'member'),
    activated        UInt8 DEFAULT JSONExtractBool(_raw, 'activated'),
    seq              UInt32 DEFAULT JSONExtractUInt(_raw, 'seq'),
    activation_seq   UInt32 DEFAULT JSONExtractUInt(_raw, 'activationSeq'),
    segment_version  UInt32 DEFAULT JSONExtractUInt(_raw, 'segmentVersion'),
    profile_version  UInt64 DEFAULT JSONExtractUInt(_raw, 'profileVersion'),
    version          UInt64 DEFAULT seq + activation_seq,
    updated_at       DateTime64(3, 'UTC') DEFAULT parseDateTime64BestEffortOrZero(JSONExtractString(_raw, 'at'), 3, 'UTC'),
    kafka_cluster    LowCardinality(String) DEFAULT '',
    kafka_partition  UInt32 DEFAULT 0,
    kafka_offset     UInt64 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (segment_id, profile_id);

-- The profile 360 lists a profile's segments by profile id.
ALTER TABLE {db}.segment_membership ADD INDEX IF NOT EXISTS segment_membership_profile_id profile_id TYPE bloom_filter(0.01) GRANULARITY 1;

-- Progress of the evaluation of a new or changed segment over every existing profile.
CREATE TABLE IF NOT EXISTS {db}.segment_backfills
(
    segment_id       String,
    version          UInt32,
    worker           String,
    evaluated        UInt64,
    total            UInt64,
    members          UInt64,
    done             UInt8,
    updated_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (segment_id, version, worker);
