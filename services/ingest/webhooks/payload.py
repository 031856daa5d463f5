"""Reading provider JSON with the path of every value, so a wrong field is reported where it is."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from services.ingest.webhooks.base import PayloadError

MAX_ID_LENGTH = 256


def parse_json(body: bytes) -> JsonNode:
    try:
        return JsonNode(orjson.loads(body), "")
    except orjson.JSONDecodeError as exc:
        raise PayloadError("$", f"body is not valid JSON: {exc}") from None


@dataclass(frozen=True, slots=True)
class JsonNode:
    """A decoded JSON value and its path (``line_items[2].price``; ``""`` is the document root)."""

    value: Any
    path: str

    @property
    def shown_path(self) -> str:
        return self.path or "$"

    def fail(self, message: str) -> PayloadError:
        return PayloadError(self.shown_path, message)

    @property
    def missing(self) -> bool:
        return self.value is None

    def field(self, key: str) -> JsonNode:
        """The member ``key`` (a missing member reads as JSON null); this node must be an object."""
        child_path = f"{self.path}.{key}" if self.path else key
        return JsonNode(self.mapping().get(key), child_path)

    def mapping(self) -> Mapping[str, Any]:
        if not isinstance(self.value, dict):
            raise self.fail(f"expected an object, got {_kind(self.value)}")
        return self.value

    def items(self) -> Iterator[JsonNode]:
        """The elements of an array (null reads as empty)."""
        if self.value is None:
            return iter(())
        if not isinstance(self.value, list):
            raise self.fail(f"expected an array, got {_kind(self.value)}")
        return (JsonNode(item, f"{self.path}[{index}]") for index, item in enumerate(self.value))

    def text(self) -> str:
        value = self.text_or_none()
        if value is None:
            raise self.fail("required text is missing")
        return value

    def text_or_none(self) -> str | None:
        """A string, with blanks read as absent."""
        if self.value is None:
            return None
        if not isinstance(self.value, str):
            raise self.fail(f"expected a string, got {_kind(self.value)}")
        return self.value.strip() or None

    def ident(self) -> str:
        value = self.ident_or_none()
        if value is None:
            raise self.fail("required id is missing")
        return value

    def ident_or_none(self) -> str | None:
        """An id sent as a string or an integer, as a string."""
        if isinstance(self.value, int) and not isinstance(self.value, bool):
            return str(self.value)
        if self.value is not None and not isinstance(self.value, str):
            raise self.fail(f"expected an id (string or integer), got {_kind(self.value)}")
        value = self.text_or_none()
        if value is not None and len(value) > MAX_ID_LENGTH:
            raise self.fail(f"id longer than {MAX_ID_LENGTH} characters")
        return value

    def flag_or_none(self) -> bool | None:
        if self.value is None or isinstance(self.value, bool):
            return self.value
        raise self.fail(f"expected a boolean, got {_kind(self.value)}")

    def count(self) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise self.fail(f"expected an integer, got {_kind(self.value)}")
        return self.value

    def money(self) -> float:
        value = self.money_or_none()
        if value is None:
            raise self.fail("required amount is missing")
        return value

    def money_or_none(self) -> float | None:
        """A non-negative amount; providers send decimal strings (``"59.99"``) or numbers."""
        if self.value is None or self.value == "":
            return None
        if isinstance(self.value, bool) or not isinstance(self.value, str | int | float):
            raise self.fail(f"expected an amount, got {_kind(self.value)}")
        try:
            amount = float(Decimal(str(self.value).strip()))
        except (InvalidOperation, ValueError, OverflowError):
            raise self.fail(f"not a decimal amount: {str(self.value)[:40]!r}") from None
        if not math.isfinite(amount) or amount < 0:
            raise self.fail(f"amount must be finite and not negative, got {self.value!r}")
        return amount

    def iso_time(self) -> datetime:
        value = self.iso_time_or_none()
        if value is None:
            raise self.fail("required timestamp is missing")
        return value

    def iso_time_or_none(self) -> datetime | None:
        text = self.text_or_none()
        if text is None:
            return None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise self.fail(f"not an ISO 8601 timestamp: {text[:40]!r}") from None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)

    def unix_time(self) -> datetime:
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise self.fail(f"expected a unix timestamp, got {_kind(self.value)}")
        try:
            return datetime.fromtimestamp(self.value, UTC)
        except (OverflowError, OSError, ValueError):
            raise self.fail(f"unix timestamp out of range: {self.value!r}") from None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )
