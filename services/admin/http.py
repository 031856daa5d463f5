"""JSON responses of the admin API: orjson bodies, errors as ``{"error": code, "message": text}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

# Profiles are personal data: no proxy or browser cache may keep a copy.
NO_STORE = {"Cache-Control": "no-store"}


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json_ok(content: Any) -> JSONResponse:
    return JSONResponse(content, headers=NO_STORE)


def json_error(
    status: int, error: str, message: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """An error; its message may repeat the identifier asked for, so it is not cached either.
    ``extra`` fields (e.g. ``problems``) are added to the body."""
    body = {"error": error, "message": message, **extra}
    return JSONResponse(body, status_code=status, headers={**NO_STORE, **(headers or {})})
