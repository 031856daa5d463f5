"""Signature checks shared by the providers: headers, base64, HMAC, replay window."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import datetime, timedelta

from services.ingest.webhooks.base import ProviderConfigError, SignatureError


def required_header(headers: dict[str, str], name: str) -> str:
    """``headers`` has lower-case keys; ``name`` is spelled as the provider documents it."""
    value = headers.get(name.lower(), "").strip()
    if not value:
        raise SignatureError(f"missing header {name}")
    return value


def base64_signature(value: str, header: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"header {header} is not valid base64") from None


def require_secret(secret: str, provider: str) -> bytes:
    if not secret:
        raise ProviderConfigError(f"no {provider} webhook secret is configured")
    return secret.encode()


def check_hmac_sha256(key: bytes, signed: bytes, signature: bytes, header: str) -> None:
    expected = hmac.new(key, signed, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise SignatureError(f"signature in {header} does not match the body")


def check_fresh(signed_at: datetime, now: datetime, tolerance: timedelta, header: str) -> None:
    """Refuse old (replayed) and far-future timestamps; a valid signature alone does not stop replays."""
    age = now - signed_at
    if age > tolerance:
        raise SignatureError(
            f"stale timestamp in {header}: signed {int(age.total_seconds())} s ago, "
            f"tolerance is {int(tolerance.total_seconds())} s"
        )
    if -age > tolerance:
        raise SignatureError(
            f"timestamp in {header} is {int(-age.total_seconds())} s in the future, "
            f"tolerance is {int(tolerance.total_seconds())} s"
        )
