-- Every accepted event, one row each (see docs/warehouse.md).
-- The sink inserts only the JSON record (`_raw`, not stored) and where it came from on Kafka;
-- ClickHouse derives every column from it at insert time. The kafka_* columns let the sink resume
-- exactly after the last stored record, and insert deduplication makes a replayed batch add no rows.
CREATE TABLE IF NOT EXISTS {db}.events
(
    _raw                String EPHEMERAL,
    -- A record of cdp.identity.resolved nests the canonical event under "event"; cdp.events has it bare.
    _event              String EPHEMERAL if(JSONType(_raw, 'event') = 'Object', JSONExtractRaw(_raw, 'event'), _raw),
    message_id          String DEFAULT JSONExtractString(_event, 'messageId'),
    type                LowCardinality(String) DEFAULT JSONExtractString(_event, 'type'),
    event               LowCardinality(String) DEFAULT JSONExtractString(_event, 'event'),
    name                String DEFAULT JSONExtractString(_event, 'name'),
    channel             LowCardinality(String) DEFAULT JSONExtractString(_event, 'channel'),
    source              LowCardinality(String) DEFAULT JSONExtractString(_event, 'source'),
    anonymous_id        String DEFAULT JSONExtractString(_event, 'identifiers', 'anonymousId'),
    user_id             String DEFAULT JSONExtractString(_event, 'identifiers', 'customerId'),
    email               String DEFAULT JSONExtractString(_event, 'identifiers', 'email'),
    phone               String DEFAULT JSONExtractString(_event, 'identifiers', 'phone'),
    chat_handle         String DEFAULT JSONExtractString(_event, 'identifiers', 'chatHandle'),
    email_recipient_id  String DEFAULT JSONExtractString(_event, 'identifiers', 'emailRecipientId'),
    group_id            String DEFAULT JSONExtractString(_event, 'groupId'),
    previous_id         String DEFAULT JSONExtractString(_event, 'previousId'),
    order_id            String DEFAULT JSONExtractString(_event, 'properties', 'order_id'),
    revenue             Nullable(Float64) DEFAULT if(
                            event IN ('Order Completed', 'Order Refunded', 'Order Cancelled', 'Checkout Started'),
                            JSONExtract(_event, 'properties', 'revenue', 'Nullable(Float64)'), NULL),
    currency            LowCardinality(String) DEFAULT JSONExtractString(_event, 'properties', 'currency'),
    properties          String DEFAULT if(JSONHas(_event, 'properties'), JSONExtractRaw(_event, 'properties'), '{}') CODEC(ZSTD(3)),
    traits              String DEFAULT if(JSONHas(_event, 'traits'), JSONExtractRaw(_event, 'traits'), '{}') CODEC(ZSTD(3)),
    context             String DEFAULT if(JSONHas(_event, 'context'), JSONExtractRaw(_event, 'context'), '{}') CODEC(ZSTD(3)),
    timestamp           DateTime64(3, 'UTC') DEFAULT parseDateTime64BestEffortOrZero(JSONExtractString(_event, 'timestamp'), 3, 'UTC'),
    original_timestamp  Nullable(DateTime64(3, 'UTC')) DEFAULT parseDateTime64BestEffortOrNull(JSONExtractString(_event, 'originalTimestamp'), 3, 'UTC'),
    sent_at             Nullable(DateTime64(3, 'UTC')) DEFAULT parseDateTime64BestEffortOrNull(JSONExtractString(_event, 'sentAt'), 3, 'UTC'),
    received_at         DateTime64(3, 'UTC') DEFAULT parseDateTime64BestEffortOrZero(JSONExtractString(_event, 'receivedAt'), 3, 'UTC'),
    schema_version      UInt16 DEFAULT JSONExtractUInt(_event, 'schemaVersion'),
    kafka_cluster       LowCardinality(String),
    kafka_partition     UInt32,
    kafka_offset        UInt64,
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (channel, event, timestamp, message_id)
SETTINGS non_replicated_deduplication_window = 10000;
