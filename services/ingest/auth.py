"""Write keys: Segment-style HTTP Basic auth (the key is the user name) or ``writeKey`` in the body."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class WriteKeys:
    """Accepted write keys, held as SHA-256 digests so the keys themselves are not kept in memory."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [_digest(key) for key in keys if key]

    def accepts(self, key: str | None) -> bool:
        if not key:
            return False
        candidate = _digest(key)
        # Compare against every key, so timing tells nothing about which one nearly matched.
        return any([hmac.compare_digest(candidate, digest) for digest in self._digests])


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
