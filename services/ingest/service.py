"""The ingest + admin API and what it needs: ``cdp up`` (``services/runtime.py build``) and
``cdp run ingest`` (``services/ingest/process.py``) both build it here, so the two cannot drift.

The API accepts events into Kafka (no sinks, no processors here) and serves the admin routes
(profile 360, split/detach, segments, analytics, privacy, tokens and write keys), with the
suppression list, the access control reload, the admin audit and the customer value refresh.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from services.access.audit import AuditLog
from services.access.control import AccessControl
from services.admin.auth import AdminTokens
from services.admin.corrections import kafka_submit
from services.admin.profiles import ProfileReader
from services.admin.routes import AdminComponents, check_mounted, platform_admin_routes
from services.analytics.domain.value import OptionError, ValueOptions
from services.analytics.refresh import RefreshRunner, interrupt_running
from services.core.kafka.producer import AsyncProducer
from services.core.metrics import AnalyticsMetrics, IngestMetrics
from services.core.secrets import PlatformSecrets
from services.core.service_links import ServiceStartError, is_distributed
from services.core.settings import Settings
from services.core.warehouse.port import Warehouse
from services.identity.config import identifier_rules
from services.ingest.api import Check, IngestAPI, create_ingest_app
from services.ingest.auth import WriteKeys
from services.ingest.dead_letter_depth import DeadLetterDepth
from services.ingest.dedup import MessageIdWindow
from services.ingest.pipeline import IngestPipeline
from services.ingest.webhook_routes import WebhookConfig
from services.privacy.consent_api import WithConsentRoutes
from services.privacy.suppression import SuppressionList
from services.privacy.wiring import PrivacyService, build_privacy
from services.segments.library import library_definitions
from services.segments.store import apply_definitions, library_applied

SECRETS = ("write_key", "admin_token", "privacy_hash_key")
"""The shared secrets the ingest API reads (required from the environment in distributed mode)."""


@dataclass
class IngestService:
    api: IngestAPI
    app: Starlette
    producer: AsyncProducer
    privacy: PrivacyService
    access: AccessControl
    audit: AuditLog
    analytics: RefreshRunner
    preloaded_ids: int


def value_options(settings: Settings) -> Callable[[date], ValueOptions]:
    def options(until: date) -> ValueOptions:
        return ValueOptions(
            until, settings.analytics_unit, settings.analytics_horizon_days, settings.analytics_margin,
            settings.analytics_abc_a, settings.analytics_abc_b,
        )  # fmt: skip

    return options


def preload_dedup(warehouse: Warehouse, window: MessageIdWindow, settings: Settings) -> int:
    """Remember the messageIds of the window's stored events (de-duplication across restarts)."""
    if settings.dedup_window_seconds <= 0:
        return 0
    rows = warehouse.query(
        f"SELECT message_id, toUnixTimestamp64Milli(received_at) / 1000 FROM {warehouse.database}.events "
        "WHERE received_at > now64(3) - toIntervalSecond({window:UInt32}) "
        "ORDER BY received_at DESC LIMIT {limit:UInt32}",
        {"window": settings.dedup_window_seconds, "limit": settings.dedup_max_entries},
    )
    return window.preload(((str(mid), float(ts)) for mid, ts in rows), time.time())


def apply_segment_library(warehouse: Warehouse, origin: str, on_step: Callable[[str], None]) -> None:
    """The built-in segments, once: when the platform starts with no segment ever defined."""
    if library_applied(warehouse):
        return
    applied = apply_definitions(warehouse, library_definitions(), applied_by=f"{origin} (built-in library)")
    on_step(f"applied the built-in segment library ({len(applied)} segments)")


def _ingest_api(
    settings: Settings, secrets: PlatformSecrets, producer: AsyncProducer, warehouse: Warehouse,
    metrics: IngestMetrics, registry: CollectorRegistry, readiness: Mapping[str, Callable[[], bool]],
    suppressions: SuppressionList,
) -> tuple[IngestAPI, int]:  # fmt: skip
    window = MessageIdWindow(settings.dedup_window_seconds, settings.dedup_max_entries)
    preloaded = preload_dedup(warehouse, window, settings)
    skew = timedelta(seconds=settings.max_future_skew_seconds)
    pipeline = IngestPipeline(
        producer, metrics, window, max_future_skew=skew, suppressions=suppressions,
        consent_purposes=settings.consent_purposes,
    )  # fmt: skip

    def check(probe: Callable[[], bool]) -> Check:
        async def run() -> bool:
            return await asyncio.to_thread(probe)

        return run

    api = IngestAPI(
        pipeline, metrics, WriteKeys([secrets.write_key]),
        max_event_bytes=settings.max_event_bytes, max_batch_bytes=settings.max_batch_bytes,
        webhooks=WebhookConfig.from_settings(settings), registry=registry,
        readiness={name: check(probe) for name, probe in readiness.items()},
    )  # fmt: skip
    return api, preloaded


def build_ingest_service(
    settings: Settings,
    secrets: PlatformSecrets,
    bootstrap: str,
    warehouse: Warehouse,
    registry: CollectorRegistry,
    metrics: IngestMetrics,
    readiness: Mapping[str, Callable[[], bool]],
    *,
    origin: str,
    on_step: Callable[[str], None] = lambda _: None,
) -> IngestService:
    """Every part of the ingest + admin API, loaded and ready to serve (blocking work).
    ``readiness``: the checks of ``/readyz``; ``origin`` names the command in records it writes."""
    try:
        value_options(settings)(date.today())
    except OptionError as exc:
        raise ServiceStartError(f"customer analytics settings: {exc} (CDP_ANALYTICS_ABC_A, _ABC_B)") from None
    if settings.segments_library:
        apply_segment_library(warehouse, origin, on_step)
    producer = AsyncProducer(bootstrap)
    privacy = build_privacy(settings, warehouse, bootstrap, registry)
    if privacy.interrupted:
        on_step(f"marked {len(privacy.interrupted)} interrupted erasure(s) as failed: run them again")
    api, preloaded = _ingest_api(
        settings, secrets, producer, warehouse, metrics, registry, readiness, privacy.suppressions
    )
    DeadLetterDepth(bootstrap).bind(metrics.dlq_depth)  # read at scrape time
    app = create_ingest_app(api)
    audit = AuditLog(warehouse)
    tokens = AdminTokens.single_admin(secrets.admin_token, audit=audit)
    access = AccessControl(warehouse, tokens, api.write_keys, reload_seconds=settings.access_reload_seconds)
    access.reload()
    reader = ProfileReader(warehouse, rules=identifier_rules(settings))
    # Distributed: other ingest replicas share the table, so only refreshes idle for an hour are orphans.
    interrupted = interrupt_running(warehouse, timedelta(hours=1) if is_distributed(settings) else None)
    if interrupted:
        on_step(f"marked {len(interrupted)} interrupted customer value refresh(es) as failed")
    analytics = RefreshRunner(warehouse, value_options(settings), AnalyticsMetrics.create(registry))
    # Every admin route comes from platform_admin_routes: the route enumeration test covers them.
    components = AdminComponents(
        tokens, warehouse, reader, kafka_submit(producer), analytics, access,
        WithConsentRoutes(privacy, api.pipeline, reader, warehouse, tuple(settings.consent_purposes)),
        consent_purposes=tuple(settings.consent_purposes),
    )  # fmt: skip
    admin_api = platform_admin_routes(components)
    app.router.routes.extend(admin_api)
    check_mounted(app.router.routes, admin_api)
    return IngestService(api, app, producer, privacy, access, audit, analytics, preloaded)
