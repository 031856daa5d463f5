-- Access control (see docs/access.md): admin API tokens and per-source ingest write keys, stored
-- only as SHA-256 digests, and the audit log of every admin API call. The platform reloads tokens
-- and keys from here every CDP_ACCESS_RELOAD_SECONDS. A revocation or a rotation writes a newer
-- row of the same id (read with FINAL).

CREATE TABLE IF NOT EXISTS {db}.api_tokens
(
    token_id      String,
    name          String,
    role          LowCardinality(String),
    token_sha256  String,
    created_at    DateTime64(3, 'UTC'),
    created_by    String,
    revoked_at    Nullable(DateTime64(3, 'UTC')),
    revoked_by    String DEFAULT '',
    updated_at    DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY token_id;

CREATE TABLE IF NOT EXISTS {db}.write_keys
(
    key_id        String,
    source        String,
    key_sha256    String,
    created_at    DateTime64(3, 'UTC'),
    created_by    String,
    revoked_at    Nullable(DateTime64(3, 'UTC')),
    revoked_by    String DEFAULT '',
    expires_at    Nullable(DateTime64(3, 'UTC')),
    replaced_by   String DEFAULT '',
    updated_at    DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY key_id;

-- One row per admin API call, allowed or refused. route is the route template
-- (/api/v1/profiles/{profile_id}), never the concrete path or query string.
CREATE TABLE IF NOT EXISTS {db}.admin_audit
(
    at          DateTime64(3, 'UTC'),
    request_id  String,
    principal   String,
    role        LowCardinality(String),
    token_id    String,
    method      LowCardinality(String),
    route       LowCardinality(String),
    status      UInt16,
    outcome     LowCardinality(String)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (at, request_id);
