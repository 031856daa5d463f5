-- Every accepted event, one row each (see docs/warehouse.md).
-- The sink inserts only the canonical JSON record (`_raw`, not stored) and where it came from on
-- Kafka; ClickHouse derives every column from `_raw` at insert time. The kafka_* columns let the
-- sink resume exactly after the last stored record, and insert deduplication makes a replayed
-- batch add no rows.
CREATE TABLE IF NOT EXISTS {db}.events
(
    _raw                String EPHEMERAL,
    message_id          String DEFAULT JSONExtractString(_raw, 'messageId'),
    type                LowCardinality(String) DEFAULT JSONExtractString(_raw, 'type'),
    event               LowCardinality(String) DEFAULT JSONExtractString(_raw, 'event'),
    name                String DEFAULT JSONExtractString(_raw, 'name'),
    channel             LowCardinality(String) DEFAULT JSONExtractString(_raw, 'channel'),
    source              LowCardinality(String) DEFAULT JSONExtractString(_raw, 'source'),
    anonymous_id        String DEFAULT JSONExtractString(_raw, 'identifiers', 'anonymousId'),
    user_id             String DEFAULT JSONExtractString(_raw, 'identifiers', 'customerId'),
    email               String DEFAULT JSONExtractString(_raw, 'identifiers', 'email'),
    phone               String DEFAULT JSONExtractString(_raw, 'identifiers', 'phone'),
    chat_handle         String DEFAULT JSONExtractString(_raw, 'identifiers', 'chatHandle'),
    email_recipient_id  String DEFAULT JSONExtractString(_raw, 'identifiers', 'emailRecipientId'),
    group_id            String DEFAULT JSONExtractString(_raw, 'groupId'),
    previous_id         String DEFAULT JSONExtractString(_raw, 'previousId'),
    order_id            String DEFAULT JSONExtractString(_raw, 'properties', 'order_id'),
    revenue             Nullable(Float64) DEFAULT if(
                            event IN ('Order Completed', 'Order Refunded', 'Order Cancelled', 'Checkout Started'),
                            JSONExtract(_raw, 'properties', 'revenue', 'Nullable(Float64)'), NULL),
    currency            LowCardinality(String) DEFAULT JSONExtractString(_raw, 'properties', 'currency'),
    properties          String DEFAULT if(JSONHas(_raw, 'properties'), JSONExtractRaw(_raw, 'properties'), '{}') CODEC(ZSTD(3)),
    traits              String DEFAULT if(JSONHas(_raw, 'traits'), JSONExtractRaw(_raw, 'traits'), '{}') CODEC(ZSTD(3)),
    context             String DEFAULT if(JSONHas(_raw, 'context'), JSONExtractRaw(_raw, 'context'), '{}') CODEC(ZSTD(3)),
    timestamp           DateTime64(3, 'UTC') DEFAULT parseDateTime64BestEffortOrZero(JSONExtractString(_raw, 'timestamp'), 3, 'UTC'),
    original_timestamp  Nullable(DateTime64(3, 'UTC')) DEFAULT parseDateTime64BestEffortOrNull(JSONExtractString(_raw, 'originalTimestamp'), 3, 'UTC'),
    sent_at             Nullable(DateTime64(3, 'UTC')) DEFAULT parseDateTime64BestEffortOrNull(JSONExtractString(_raw, 'sentAt'), 3, 'UTC'),
    received_at         DateTime64(3, 'UTC') DEFAULT parseDateTime64BestEffortOrZero(JSONExtractString(_raw, 'receivedAt'), 3, 'UTC'),
    schema_version      UInt16 DEFAULT JSONExtractUInt(_raw, 'schemaVersion'),
    kafka_cluster       LowCardinality(String),
    kafka_partition     UInt32,
    kafka_offset        UInt64,
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (channel, event, timestamp, message_id)
SETTINGS non_replicated_deduplication_window = 10000;
