-- Privacy (see docs/privacy.md): the hashed suppression list and the audit of privacy requests.
-- Neither table holds a raw identifier: identifiers appear only as HMAC-SHA256 hashes
-- (services/privacy/hashing.py, key CDP_PRIVACY_HASH_KEY).

-- Identifiers of erased persons. Ingest and the identity processor drop later events carrying one.
CREATE TABLE IF NOT EXISTS {db}.suppressions
(
    identifier_hash  String,
    identifier_type  LowCardinality(String),
    request_id       String,
    added_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(added_at)
ORDER BY identifier_hash;

-- Every privacy request (export, erasure, consent change by API): who, when, what, outcome.
-- subject_hash is the hash of the identifier the request named, so repeated requests about the
-- same person can be correlated without naming them.
CREATE TABLE IF NOT EXISTS {db}.privacy_requests
(
    request_id       String,
    kind             LowCardinality(String),
    status           LowCardinality(String),
    requested_by     String,
    requested_role   LowCardinality(String),
    requested_at     DateTime64(3, 'UTC'),
    completed_at     Nullable(DateTime64(3, 'UTC')),
    duration_seconds Nullable(Float64),
    subject_type     LowCardinality(String),
    subject_hash     String,
    profiles         UInt32 DEFAULT 0,
    identifiers      UInt32 DEFAULT 0,
    step             String DEFAULT '',
    counts           Map(String, UInt64),
    error            String DEFAULT '',
    updated_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY request_id;
