"""Shared fixtures for the provider webhook tests: documented sample payloads and message checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.catalog import CATALOG
from schemas.events import IncomingMessage

SAMPLES = Path(__file__).parent / "samples"

MessageCheck = Callable[[list[dict[str, Any]]], list[IncomingMessage]]


@pytest.fixture(scope="session")
def sample_bytes() -> Callable[[str], bytes]:
    def load(name: str) -> bytes:
        return (SAMPLES / name).read_bytes()

    return load


@pytest.fixture(scope="session")
def sample_json() -> Callable[[str], Any]:
    def load(name: str) -> Any:
        return orjson.loads((SAMPLES / name).read_bytes())

    return load


def check_messages(messages: list[dict[str, Any]]) -> list[IncomingMessage]:
    """Each message is a valid Segment call whose properties satisfy the catalog's model."""
    parsed = []
    for message in messages:
        orjson.dumps(message)
        incoming = IncomingMessage.model_validate(message)
        assert incoming.message_id, message
        assert incoming.timestamp is not None
        assert incoming.timestamp.tzinfo is not None
        if incoming.type == "track":
            spec = CATALOG[incoming.event or ""]
            assert incoming.context.channel == spec.channel.value
            spec.properties.model_validate(incoming.properties)
        parsed.append(incoming)
    return parsed


@pytest.fixture(scope="session")
def valid_messages() -> MessageCheck:
    return check_messages
