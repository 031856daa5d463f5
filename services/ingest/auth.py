"""Write keys: Segment-style HTTP Basic auth (the key is the user name) or ``writeKey`` in the body.

Each key belongs to a *source* (the shop, the app, a provider integration), chosen by the operator
when the key is created (``cdp keys create --source webshop``). The bootstrap key (``CDP_WRITE_KEY``
or the one generated into the data directory) is always valid, for the source ``default``. Keys are
held as SHA-256 digests only; the keys of the warehouse table ``write_keys`` are reloaded every
``CDP_ACCESS_RELOAD_SECONDS`` (``services.access.control``), including revoked and rotated ones,
so a refusal can say why.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass

BOOTSTRAP_KEY_ID = "bootstrap"
BOOTSTRAP_SOURCE = "default"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True, slots=True)
class WriteKeyGrant:
    """One accepted (or formerly accepted) key: its id, source and digest, and when it stopped."""

    key_id: str
    source: str
    digest: bytes
    revoked_at: float | None = None
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class KeyUse:
    """Which key a request was authenticated with: stamped on its events (``context.writeKeySource``)."""

    key_id: str
    source: str


@dataclass(frozen=True, slots=True)
class KeyRefusal:
    reason: str  # missing, unknown, revoked, expired
    message: str


class WriteKeys:
    """Accepted write keys, held as SHA-256 digests so the keys themselves are not kept in memory.

    ``keys`` are fixed (the bootstrap key, source ``default``); ``load`` replaces the others.
    """

    def __init__(
        self, keys: Iterable[str], *, source: str = BOOTSTRAP_SOURCE, key_id: str = BOOTSTRAP_KEY_ID
    ) -> None:
        self._fixed = [WriteKeyGrant(key_id, source, _digest(key)) for key in keys if key]
        self._loaded: list[WriteKeyGrant] = []

    def load(self, grants: Iterable[WriteKeyGrant]) -> None:
        self._loaded = [grant for grant in grants if len(grant.digest) == 32]

    def check(self, key: str | None, now: float | None = None) -> KeyUse | KeyRefusal:
        if not key:
            return KeyRefusal(
                "missing", "missing write key: send it as the HTTP Basic user name (as Segment SDKs do)"
            )
        candidate = _digest(key)
        found: WriteKeyGrant | None = None
        # Compare against every key, so timing tells nothing about which one nearly matched. A fixed
        # (bootstrap) key wins over a loaded row with the same digest.
        for grant in (*self._loaded, *self._fixed):
            if hmac.compare_digest(candidate, grant.digest):
                found = grant
        if found is None:
            return KeyRefusal("unknown", "unknown write key")
        if found.revoked_at is not None:
            return KeyRefusal(
                "revoked",
                f"write key {found.key_id} was revoked: ask the operator for a new key of this source",
            )
        if found.expires_at is not None and found.expires_at <= (time.time() if now is None else now):
            return KeyRefusal(
                "expired",
                f"write key {found.key_id} expired after it was rotated: use the new key of the source "
                f"'{found.source}'",
            )
        return KeyUse(found.key_id, found.source)

    def accepts(self, key: str | None) -> bool:
        return isinstance(self.check(key), KeyUse)


def basic_auth_user(header: str | None) -> str | None:
    """The user name of an ``Authorization: Basic ...`` header, or None when absent or garbled."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, _password = decoded.partition(":")
    return user or None
