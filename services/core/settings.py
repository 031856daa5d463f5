"""Typed settings for every service, read from the environment (prefix ``CDP_``) and ``.env``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """One settings object for the whole platform.

    Single-node mode is the default: no ``kafka_bootstrap`` means ``cdp up`` starts a Tansu broker,
    no ``clickhouse_url`` means the embedded chDB engine in ``data_dir``.
    """

    model_config = SettingsConfigDict(env_prefix="CDP_", env_file=".env", extra="ignore", frozen=True)

    # --- storage and broker -------------------------------------------------------------------
    data_dir: Path = Field(Path(".cdp-data"), description="Embedded warehouse data directory")
    kafka_bootstrap: str | None = Field(None, description="Kafka bootstrap servers; unset = start Tansu")
    broker_port: int = Field(9092, description="Port of the Tansu broker started in single-node mode")
    topic_partitions: int = Field(4, ge=1, description="Partitions for new topics")
    topic_replication: int = Field(1, ge=1, description="Replication factor for new topics")
    kafka_session_timeout_ms: int = Field(6000, ge=1000, description="Consumer group session timeout")
    clickhouse_url: str | None = Field(
        None, description="ClickHouse server URL (http://user:pass@host:8123); unset = embedded chDB"
    )
    clickhouse_database: str = Field("cdp", description="Warehouse database name")
    migrate_on_start: bool = Field(
        True,
        description="cdp up and cdp run ingest|warehouse apply the warehouse migrations at start; "
        "false: wait for 'cdp migrate' to apply them (one job instead of every replica)",
    )

    # --- HTTP ---------------------------------------------------------------------------------
    http_host: str = Field("127.0.0.1", description="Ingest/admin API bind address")
    http_port: int = Field(8000, description="Ingest/admin API port")
    clickhouse_http_host: str = Field("127.0.0.1", description="ClickHouse-compatible endpoint bind address")
    clickhouse_http_port: int = Field(8123, description="ClickHouse-compatible endpoint port (single-node)")
    clickhouse_bi_user: str = Field("bi", description="Read-only ClickHouse endpoint user for BI tools")
    clickhouse_bi_password: SecretStr = Field(SecretStr(""), description="Password of the read-only BI user")
    clickhouse_writer_user: str = Field("cdp", description="ClickHouse endpoint user allowed to write")
    clickhouse_writer_password: SecretStr = Field(SecretStr(""), description="Password of the writer user")

    # --- ingest -------------------------------------------------------------------------------
    write_key: SecretStr | None = Field(None, description="Tracking API write key; unset = generated")
    admin_token: SecretStr | None = Field(None, description="Bearer token for the admin API")
    max_event_bytes: int = Field(32 * 1024, description="Largest accepted single event body")
    max_batch_bytes: int = Field(500 * 1024, description="Largest accepted batch body")
    dedup_window_seconds: int = Field(24 * 3600, ge=0, description="messageId de-duplication window")
    dedup_max_entries: int = Field(5_000_000, ge=1000, description="messageIds remembered at most")
    max_future_skew_seconds: int = Field(
        24 * 3600, description="Events timed further in the future than this are rejected"
    )
    shopify_webhook_secret: SecretStr | None = Field(None, description="Shopify app secret (HMAC)")
    sendgrid_webhook_public_key: str | None = Field(
        None, description="SendGrid signed event webhook verification key (base64 ECDSA public key)"
    )
    zendesk_webhook_secret: SecretStr | None = Field(None, description="Zendesk webhook signing secret")

    # --- warehouse sink -----------------------------------------------------------------------
    sink_batch_rows: int = Field(50_000, ge=1, description="Rows per warehouse insert at most")
    sink_flush_seconds: float = Field(1.0, gt=0, description="Longest wait before a partial batch is written")

    # --- identity resolution ------------------------------------------------------------------
    identity_max_emails: int = Field(5, ge=1, description="Emails one profile may hold; more are refused")
    identity_max_phones: int = Field(5, ge=1, description="Phone numbers one profile may hold")
    identity_max_chat_handles: int = Field(5, ge=1, description="Chat handles one profile may hold")
    identity_max_email_recipient_ids: int = Field(5, ge=1, description="Email-tool recipient ids per profile")
    identity_max_anonymous_ids: int = Field(100, ge=1, description="Anonymous ids (devices) per profile")
    identity_phone_region: str = Field("DE", description="Region for phone numbers without a country code")
    identity_keep_plus_addressing: bool = Field(
        True, description="Keep anna+shop@x.de distinct from anna@x.de (false: strip the +tag)"
    )
    identity_extra_blocklist: list[str] = Field(
        default_factory=list, description="Junk identifier values never linked, on top of the built-in list"
    )

    # --- segments -----------------------------------------------------------------------------
    segments_library: bool = Field(
        True, description="Apply the built-in segment library when the platform starts with no segments"
    )
    segments_sweep_seconds: float = Field(
        0.5, gt=0, le=30, description="How often time-based segment transitions (window exits) are checked"
    )
    segments_catalog_seconds: float = Field(
        2.0, gt=0, le=300, description="How often the segment processor looks for new or changed definitions"
    )
    segments_worker_id: str = Field(
        "",
        description="Name of this segment processor in segment_backfills; unique per replica; "
        "empty = the host name (the container or pod name)",
    )

    # --- customer analytics -------------------------------------------------------------------
    analytics_refresh_seconds: float = Field(
        3600.0,
        ge=0,
        description="Seconds between customer value (RFM, ABC, CLV, churn) refreshes; 0: on demand only",
    )
    analytics_unit: Literal["days", "weeks"] = Field(
        "days", description="Time unit of the BG/NBD fit of scheduled refreshes"
    )
    analytics_horizon_days: int = Field(
        365, gt=0, le=3650, description="Predictive CLV and expected purchases cover this many days ahead"
    )
    analytics_margin: float = Field(
        1.0, gt=0, le=1, description="Share of net revenue that is margin, applied to predictive CLV"
    )
    analytics_abc_a: float = Field(
        0.80,
        gt=0,
        lt=1,
        description="ABC analysis: class A holds the customers making this share of revenue",
    )
    analytics_abc_b: float = Field(
        0.15,
        gt=0,
        lt=1,
        description="ABC analysis: class B holds the next share of revenue, C the rest",
    )

    # --- privacy and access -------------------------------------------------------------------
    consent_purposes: list[str] = Field(
        default_factory=lambda: ["email_marketing", "personalisation", "analytics"],
        description="Purposes a person can grant or withdraw consent for (segment rules and the consent API)",
    )
    privacy_hash_key: SecretStr | None = Field(
        None,
        description="Key of the hashed suppression list (HMAC-SHA256); unset = generated in the data dir",
    )
    privacy_erase_timeout_seconds: float = Field(
        120.0, gt=0, description="An erasure not completed after this many seconds is marked failed"
    )
    events_ttl_days: int = Field(
        0,
        ge=0,
        description="Delete raw events (events, events_by_anchor) this many days after receipt; 0: keep",
    )
    access_reload_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        description="How often API tokens, write keys and the suppression list are reloaded",
    )

    # --- observability ------------------------------------------------------------------------
    log_level: str = Field("INFO", description="Python log level")
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="cdp run identity, cdp run segments: port of /metrics, /healthz, /readyz; 0: off",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
