"""Keeps the platform's tokens and write keys in step with the warehouse.

``reload`` reads ``api_tokens`` and ``write_keys`` and swaps the sets the admin API
(``AdminTokens``) and ingest (``WriteKeys``) check against. It runs every
``CDP_ACCESS_RELOAD_SECONDS`` in a background thread, and at once after a change made through this
process's admin API. A failed reload keeps the previous sets (and the bootstrap token and key are
always valid), so a warehouse hiccup never locks everyone out.
"""

from __future__ import annotations

import logging
import threading
import time

from services.access.store import TokenStore, WriteKeyStore
from services.admin.auth import AdminTokens
from services.core.failure_log import FailureLog
from services.core.log_hygiene import error_summary
from services.core.warehouse.port import Warehouse
from services.ingest.auth import WriteKeys

log = logging.getLogger(__name__)


class AccessControl:
    def __init__(
        self, warehouse: Warehouse, tokens: AdminTokens, write_keys: WriteKeys, *, reload_seconds: float = 5.0
    ) -> None:
        self.warehouse = warehouse
        self.tokens = tokens
        self.write_keys = write_keys
        self.token_store = TokenStore(warehouse)
        self.key_store = WriteKeyStore(warehouse)
        self.reload_seconds = reload_seconds
        self.loaded_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._failures = FailureLog(
            log, "access: reloading tokens and write keys", "keeping the previous ones, retrying"
        )

    def reload(self) -> bool:
        """Load every grant now; False (and the previous sets kept) when the warehouse failed."""
        with self._lock:
            try:
                token_grants = self.token_store.grants()
                key_grants = self.key_store.grants()
            except Exception as exc:
                self._failures.failed(error_summary(exc))
                return False
            self._failures.succeeded()
            self.tokens.load(token_grants)
            self.write_keys.load(key_grants)
            self.loaded_at = time.time()
            return True

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="access-reload", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.reload_seconds):
            self.reload()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
