"""What every provider webhook adapter offers, and the errors it may raise.

Adapters are pure: they see headers and the raw body, never a socket or the clock (a provider that
checks timestamps takes a ``clock`` callable).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from schemas.base import Channel

Message = dict[str, Any]
Clock = Callable[[], datetime]


class SignatureError(Exception):
    """The request is not provably from the provider: missing header, bad signature, stale timestamp."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PayloadError(Exception):
    """The body is not the provider's documented shape; ``path`` points at the offending field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class ProviderConfigError(ValueError):
    """The configured secret or key is unusable (a set-up problem, not the caller's fault)."""


@dataclass(frozen=True, slots=True)
class SkippedEvent:
    """A well-formed provider event that has no meaning for the CDP (e.g. SendGrid ``processed``)."""

    path: str
    kind: str
    reason: str


@dataclass(frozen=True, slots=True)
class MappedPayload:
    messages: list[Message] = field(default_factory=list)
    skipped: list[SkippedEvent] = field(default_factory=list)


class WebhookProvider(Protocol):
    """One provider's documented webhook format for one channel."""

    @property
    def name(self) -> str: ...

    @property
    def channel(self) -> Channel: ...

    @property
    def secret_setting(self) -> str:
        """Name of the setting that holds this provider's secret or public key."""
        ...

    def detect(self, headers: Mapping[str, str], body: bytes) -> bool: ...

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str) -> None: ...

    def map_payload(self, headers: Mapping[str, str], body: bytes) -> MappedPayload: ...

    def to_messages(self, headers: Mapping[str, str], body: bytes) -> list[Message]: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


def lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    """HTTP header names are case-insensitive; every adapter looks them up in lower case."""
    return {str(key).lower(): str(value) for key, value in headers.items()}
