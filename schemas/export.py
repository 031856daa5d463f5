"""Export the JSON Schemas of every wire model into ``schemas/json`` (``make schemas``).

A unit test fails when the committed files drift from the models.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from schemas.catalog import CATALOG, PRIVACY_GROUP
from schemas.events import CanonicalEvent, DeadLetter, IncomingMessage

JSON_DIR = Path(__file__).parent / "json"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _schema(model: type[BaseModel], title: str, topic: str | None = None) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="serialization")
    schema["title"] = title
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    if topic:
        schema["x-kafka-topic"] = topic
    return schema


def all_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema."""
    out = {
        "incoming-message.json": {
            **IncomingMessage.model_json_schema(by_alias=True, mode="validation"),
            "title": "Segment-spec call accepted by the tracking API",
        },
        "canonical-event.json": _schema(CanonicalEvent, "Canonical event", "cdp.events"),
        "dead-letter.json": _schema(DeadLetter, "Rejected input", "cdp.events.dlq"),
    }
    for name, spec in sorted(CATALOG.items()):
        schema = spec.properties.model_json_schema(mode="validation")
        channel = spec.channel.value if spec.channel is not None else None
        schema.update(
            title=f"{name} properties",
            description=spec.description,
            **{"x-event": name, "x-channel": channel or "context.channel, else shop"},
        )
        out[f"events/{channel or PRIVACY_GROUP}/{_slug(name)}.json"] = schema
    return out


def render(schema: dict[str, Any]) -> bytes:
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def export(target: Path = JSON_DIR) -> list[Path]:
    written = []
    for relative, schema in all_schemas().items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render(schema))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in export():
        print(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)
