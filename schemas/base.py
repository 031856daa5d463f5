"""Shared pydantic bases for everything the platform puts on a topic or reads from a client."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

SCHEMA_VERSION = 1


class Channel(StrEnum):
    """Where an event comes from, in the product's terms."""

    SHOP = "shop"
    CHAT = "chat"
    EMAIL = "email"


class WireModel(BaseModel):
    """camelCase on the wire (as the Segment spec), snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class OpenProperties(BaseModel):
    """Typed properties of a known event: known fields are validated, custom ones pass through."""

    model_config = ConfigDict(extra="allow", frozen=True, str_strip_whitespace=True)
