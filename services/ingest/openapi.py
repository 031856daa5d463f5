"""The OpenAPI 3.1 description of the ingest API, built from the same models that validate requests."""

from __future__ import annotations

from typing import Any

from schemas.events import EVENT_TYPES, IncomingMessage

_ERROR = {
    "type": "object",
    "required": ["success", "error", "message", "errors"],
    "properties": {
        "success": {"const": False},
        "error": {"type": "string", "description": "machine-readable reason, e.g. invalid_properties"},
        "message": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer", "description": "position in the batch"},
                    "path": {"type": "string", "example": "batch[3].properties.revenue"},
                    "message": {"type": "string"},
                    "reason": {"type": "string"},
                },
            },
        },
        "accepted": {"type": "integer", "description": "batch: events accepted despite the errors"},
        "rejected": {"type": "integer"},
        "duplicates": {"type": "integer"},
    },
}


def _responses(*client_errors: int) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    texts = {
        400: "invalid input; nothing invalid was accepted, valid batch items were",
        401: "missing or unknown write key, or a bad provider signature",
        413: "body or batch item too large",
        503: "Kafka did not acknowledge; nothing was accepted, retry",
    }
    out: dict[str, Any] = {
        "200": {
            "description": "accepted and acknowledged by Kafka",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Success"}}},
        }
    }
    for status in (*client_errors, 503):
        out[str(status)] = {"description": texts[status], **error}
    return out


def _body(ref: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": ref}}}}


def openapi_document() -> dict[str, Any]:
    message = IncomingMessage.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    components = message.pop("$defs", {})
    components["IncomingMessage"] = message
    components["Batch"] = {
        "type": "object",
        "required": ["batch"],
        "properties": {
            "batch": {"type": "array", "items": {"$ref": "#/components/schemas/IncomingMessage"}},
            "sentAt": {"type": "string", "format": "date-time"},
            "context": {"type": "object"},
            "writeKey": {"type": "string"},
        },
    }
    components["Success"] = {"type": "object", "properties": {"success": {"const": True}}}
    components["Error"] = _ERROR
    security: list[dict[str, list[str]]] = [{"writeKey": []}]
    paths: dict[str, Any] = {}
    for event_type in EVENT_TYPES:
        paths[f"/v1/{event_type}"] = {
            "post": {
                "summary": f"Send one {event_type} call (Segment spec)",
                "security": security,
                "requestBody": _body("#/components/schemas/IncomingMessage"),
                "responses": _responses(400, 401, 413),
            }
        }
    paths["/v1/batch"] = {
        "post": {
            "summary": "Send up to 500 KB of calls at once",
            "security": security,
            "requestBody": _body("#/components/schemas/Batch"),
            "responses": _responses(400, 401, 413),
        }
    }
    paths["/v1/webhooks/{channel}"] = {
        "post": {
            "summary": "Canonical JSON or a provider's webhook (Shopify, SendGrid, Zendesk)",
            "parameters": [
                {
                    "name": "channel",
                    "in": "path",
                    "required": True,
                    "schema": {"enum": ["shop", "chat", "email"]},
                },
                {
                    "name": "provider",
                    "in": "query",
                    "required": False,
                    "schema": {"enum": ["shopify", "sendgrid", "zendesk"]},
                },
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {}}}},
            "responses": _responses(400, 401, 413),
        }
    }
    for path, summary in (
        ("/healthz", "The process answers"),
        ("/readyz", "Broker, warehouse and sink are up"),
    ):
        paths[path] = {"get": {"summary": summary, "responses": {"200": {"description": "ok"}}}}
    paths["/metrics"] = {
        "get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text format"}}}
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cdp ingest API",
            "version": "1",
            "description": "Segment-compatible tracking API and provider webhooks. See docs/ingest.md.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "writeKey": {"type": "http", "scheme": "basic", "description": "write key as user name"}
            },
        },
    }
