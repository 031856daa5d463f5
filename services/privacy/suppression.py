"""The suppression list: keyed hashes of erased persons' identifiers; events carrying one are dropped.

Ingest checks every accepted event against it (and the identity processor once more, in the total
order of its decisions, for events accepted before the erasure started). The list lives in the
warehouse table ``suppressions``; each process keeps the hashes in memory, adds the ones its own
erasures write at once and reloads the table every ``CDP_ACCESS_RELOAD_SECONDS`` for the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from services.core.failure_log import FailureLog
from services.core.log_hygiene import error_summary
from services.core.secrets import read_existing
from services.core.settings import Settings
from services.core.warehouse.port import Warehouse, WarehouseError
from services.identity.domain.identifiers import DEFAULT_RULES, IdentifierRules, identifiers_of
from services.privacy.hashing import IdentifierHasher

log = logging.getLogger(__name__)


def stored_hashes(warehouse: Warehouse) -> set[str]:
    """The table ``suppressions``: keyed hashes of every erased person's identifiers."""
    rows = warehouse.query(f"SELECT DISTINCT identifier_hash FROM {warehouse.database}.suppressions")
    return {str(row[0]) for row in rows}


def settings_hasher(settings: Settings) -> IdentifierHasher | None:
    """The suppression list's hasher: ``CDP_PRIVACY_HASH_KEY``, else the data directory's key;
    None when neither is there."""
    secret = settings.privacy_hash_key
    key = secret.get_secret_value() if secret is not None else ""
    key = key or read_existing(settings).get("privacy_hash_key", "")
    return IdentifierHasher(key) if key else None


class SuppressionList:
    """Thread-safe set of suppressed identifier hashes; ``suppresses(event)`` is the ingest check."""

    def __init__(self, hasher: IdentifierHasher, rules: IdentifierRules = DEFAULT_RULES) -> None:
        self._hasher = hasher
        self._rules = rules
        self._hashes: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._hashes)

    def add(self, hashes: Iterable[str]) -> None:
        with self._lock:
            self._hashes = self._hashes | frozenset(hashes)

    def suppresses(self, event: Mapping[str, Any]) -> bool:
        """True when the canonical event carries an identifier of an erased person."""
        hashes = self._hashes
        if not hashes:
            return False  # the common case costs one attribute read
        hash_of = self._hasher.hash
        return any(hash_of(identifier.key) in hashes for identifier in identifiers_of(event, self._rules))

    def load(self, warehouse: Warehouse) -> int:
        """Add the table's content (kept: what this process added, in case a reload races an add)."""
        self.add(stored_hashes(warehouse))
        return len(self._hashes)


class SuppressionReloader:
    """Reloads a ``SuppressionList`` from the warehouse every ``seconds`` in a daemon thread."""

    def __init__(self, suppressions: SuppressionList, warehouse: Warehouse, seconds: float) -> None:
        self._suppressions = suppressions
        self._warehouse = warehouse
        self._seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="suppression-reload", daemon=True)
        self._failures = FailureLog(log, "reloading the suppression list", "keeping the last one, retrying")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._seconds):
            try:
                self._suppressions.load(self._warehouse)
            except WarehouseError as exc:
                self._failures.failed(error_summary(exc))
                continue
            self._failures.succeeded()
