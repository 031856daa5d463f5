"""HTTP plumbing shared by the tracking API and the webhooks: bodies, limits, JSON, client errors."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from services.core.kafka.dead_letters import DLQ_PAYLOAD_LIMIT
from services.ingest.normalise import FieldError, Rejection


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ClientError(Exception):
    """A client mistake: answered with ``status`` and dead-lettered with ``rejection``."""

    def __init__(self, status: int, rejection: Rejection, payload: bytes = b"") -> None:
        super().__init__(rejection.describe())
        self.status = status
        self.rejection = rejection
        self.payload = payload


def error_body(rejection: Rejection, **extra: Any) -> dict[str, Any]:
    return {
        "success": False,
        "error": rejection.reason,
        "message": rejection.describe(),
        "errors": [error.as_dict() for error in rejection.errors],
        **extra,
    }


async def read_body(request: Request, limit: int) -> bytes:
    """The body (gunzipped if sent compressed), refusing more than ``limit`` bytes.

    The first MiB of a refused body is kept for the DLQ.
    """
    if request.headers.get("content-encoding", "").lower() == "gzip":
        return _gunzip(await _read_raw(request, limit), limit)
    return await _read_raw(request, limit)


def _too_large(limit: int, body: bytes) -> ClientError:
    message = f"body is larger than {limit // 1024} KB; split it into smaller requests"
    return ClientError(413, Rejection("too_large", (FieldError("", message),)), body)


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        plain = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ClientError(
            400, Rejection("malformed_body", (FieldError("", f"invalid gzip body: {exc}"),)), body
        ) from None
    if len(plain) > limit or inflater.unconsumed_tail:
        raise _too_large(limit, plain)
    return plain


async def _read_raw(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        if size < DLQ_PAYLOAD_LIMIT:
            chunks.append(chunk)
        size += len(chunk)
        if size > max(limit, DLQ_PAYLOAD_LIMIT):
            break
    body = b"".join(chunks)
    if size > limit or (declared and declared.isdigit() and int(declared) > limit):
        raise _too_large(limit, body)
    return body


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise ClientError(400, Rejection("malformed_json", (FieldError("", "the body is empty"),)), body)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ClientError(
            400, Rejection("malformed_json", (FieldError("", f"invalid JSON: {exc}"),)), body
        ) from None


def body_write_key(body: bytes) -> Any:
    # Segment lets a batch carry its write key in the body; find it without a full parse.
    if b'"writeKey"' not in body:
        return None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return payload.get("writeKey") if isinstance(payload, dict) else None
