-- Every accepted event, one row each, as it left the ingest service (see docs/warehouse.md).
-- kafka_* columns record where the row came from, so the sink resumes exactly after a crash.
CREATE TABLE IF NOT EXISTS {db}.events
(
    message_id          String,
    type                LowCardinality(String),
    event               LowCardinality(String),
    name                String,
    channel             LowCardinality(String),
    source              LowCardinality(String),
    anonymous_id        String,
    user_id             String,
    email               String,
    phone               String,
    chat_handle         String,
    email_recipient_id  String,
    group_id            String,
    previous_id         String,
    order_id            String,
    revenue             Nullable(Float64),
    currency            LowCardinality(String),
    properties          String CODEC(ZSTD(3)),
    traits              String CODEC(ZSTD(3)),
    context             String CODEC(ZSTD(3)),
    timestamp           DateTime64(3, 'UTC'),
    original_timestamp  Nullable(DateTime64(3, 'UTC')),
    sent_at             Nullable(DateTime64(3, 'UTC')),
    received_at         DateTime64(3, 'UTC'),
    schema_version      UInt16,
    kafka_cluster       LowCardinality(String),
    kafka_partition     UInt32,
    kafka_offset        UInt64,
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (channel, event, timestamp, message_id)
SETTINGS non_replicated_deduplication_window = 10000;
