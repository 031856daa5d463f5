"""The privacy service of one platform process: suppression list, erasures, routes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from prometheus_client import CollectorRegistry
from starlette.routing import Route

from services.admin.auth import AdminTokens
from services.core.metrics import PrivacyMetrics
from services.core.service_links import is_distributed
from services.core.settings import Settings
from services.core.warehouse.port import Warehouse
from services.identity.config import identifier_rules
from services.privacy.api import PrivacyRoutes, privacy_routes
from services.privacy.erasure import Eraser, ErasureConfig
from services.privacy.hashing import IdentifierHasher
from services.privacy.requests import interrupt_running
from services.privacy.suppression import SuppressionList, SuppressionReloader, settings_hasher


@dataclass
class PrivacyService:
    hasher: IdentifierHasher
    suppressions: SuppressionList
    eraser: Eraser
    metrics: PrivacyMetrics
    reloader: SuppressionReloader
    warehouse: Warehouse
    settings: Settings
    interrupted: list[str]

    def routes(self, tokens: AdminTokens) -> list[Route]:
        rules = identifier_rules(self.settings)
        handlers = PrivacyRoutes(self.warehouse, self.eraser, self.hasher, self.metrics, rules)
        return privacy_routes(handlers, tokens)

    def start(self) -> None:
        self.reloader.start()

    def stop(self) -> None:
        self.reloader.stop()
        self.eraser.stop()


def build_privacy(
    settings: Settings, warehouse: Warehouse, bootstrap: str, registry: CollectorRegistry
) -> PrivacyService:
    """Loads the suppression list and marks erasures a stop interrupted as failed."""
    hasher = settings_hasher(settings)
    if hasher is None:
        raise ValueError("no privacy hash key: set CDP_PRIVACY_HASH_KEY or let cdp up generate it")
    suppressions = SuppressionList(hasher, identifier_rules(settings))
    suppressions.load(warehouse)
    metrics = PrivacyMetrics.create(registry)
    metrics.suppressed_identifiers.set_function(lambda: float(len(suppressions)))
    config = ErasureConfig(
        bootstrap,
        timeout_seconds=settings.privacy_erase_timeout_seconds,
        settle_seconds=2 * settings.sink_flush_seconds + 1.0,
    )
    eraser = Eraser(warehouse, hasher, suppressions, metrics, config)
    reloader = SuppressionReloader(suppressions, warehouse, settings.access_reload_seconds)
    # Distributed: other ingest replicas share the table; their erasures fail themselves at the timeout.
    stale = timedelta(seconds=settings.privacy_erase_timeout_seconds) if is_distributed(settings) else None
    interrupted = interrupt_running(warehouse, stale)
    return PrivacyService(hasher, suppressions, eraser, metrics, reloader, warehouse, settings, interrupted)
