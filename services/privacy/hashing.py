"""Identifiers as keyed hashes: the suppression list and the privacy audit never hold raw identifiers.

A plain SHA-256 of an email address can be reversed by hashing a list of addresses; an HMAC with
the platform's secret key (``CDP_PRIVACY_HASH_KEY``, generated into the data directory) cannot,
without the key. Every process that checks the suppression list (ingest, the identity processor)
gets the same key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable


class IdentifierHasher:
    """``hash("email:anna@example.de")``: the hex HMAC-SHA256 of a normalised identifier key."""

    __slots__ = ("_key",)

    def __init__(self, key: str | bytes) -> None:
        if not key:
            raise ValueError(
                "the privacy hash key is empty: set CDP_PRIVACY_HASH_KEY or let cdp up generate it"
            )
        self._key = key.encode() if isinstance(key, str) else key

    def hash(self, identifier_key: str) -> str:
        return hmac.new(self._key, identifier_key.encode(), hashlib.sha256).hexdigest()

    def hashes(self, identifier_keys: Iterable[str]) -> list[str]:
        return [self.hash(key) for key in identifier_keys]
