"""The tracking API (Segment-compatible) and provider webhooks, as a Starlette app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from schemas.events import EVENT_TYPES
from services.core.kafka.exceptions import ProduceError
from services.core.metrics import IngestMetrics
from services.ingest.auth import KeyRefusal, KeyUse, WriteKeys, basic_auth_user
from services.ingest.http import ClientError, JSONResponse, body_write_key, error_body, parse_json, read_body
from services.ingest.normalise import FieldError, Rejection
from services.ingest.openapi import openapi_document
from services.ingest.pipeline import IngestPipeline, IngestResult
from services.ingest.webhook_routes import WebhookConfig, webhook_endpoint

Check = Callable[[], Awaitable[bool]]
_datetime = TypeAdapter(datetime)


class IngestAPI:
    def __init__(
        self,
        pipeline: IngestPipeline,
        metrics: IngestMetrics,
        write_keys: WriteKeys,
        *,
        max_event_bytes: int,
        max_batch_bytes: int,
        webhooks: WebhookConfig,
        registry: CollectorRegistry,
        readiness: Mapping[str, Check] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.write_keys = write_keys
        self.max_event_bytes = max_event_bytes
        self.max_batch_bytes = max_batch_bytes
        self.webhooks = webhooks
        self.registry = registry
        self.readiness = dict(readiness or {})
        self._openapi = openapi_document()

    def authorise(self, request: Request, body_key: Any = None) -> KeyUse:
        """The write key's id and source; ClientError 401 for a missing, unknown, revoked or expired key."""
        key = basic_auth_user(request.headers.get("authorization"))
        if key is None and isinstance(body_key, str):
            key = body_key
        checked = self.write_keys.check(key)
        if isinstance(checked, KeyRefusal):
            raise ClientError(401, Rejection("unauthorized", (FieldError("", checked.message),)))
        return checked

    async def handle(
        self, request: Request, endpoint: str, work: Callable[[], Awaitable[Response]], source: str = "api"
    ) -> Response:
        started = time.perf_counter()
        try:
            response = await work()
        except ClientError as exc:
            await self.pipeline.dead_letter(exc.payload, exc.rejection, source=source, endpoint=endpoint)
            headers = {"WWW-Authenticate": 'Basic realm="cdp"'} if exc.status == 401 else None
            response = JSONResponse(error_body(exc.rejection), status_code=exc.status, headers=headers)
        except ProduceError as exc:
            response = JSONResponse(
                {"success": False, "error": "unavailable", "message": f"{exc}; nothing was accepted, retry"},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        self.metrics.request_duration.labels(endpoint).observe(time.perf_counter() - started)
        self.metrics.requests.labels(endpoint, str(response.status_code)).inc()
        return response

    # --- tracking API ------------------------------------------------------------------------
    def single(self, event_type: str) -> Callable[[Request], Awaitable[Response]]:
        endpoint = f"/v1/{event_type}"

        async def route(request: Request) -> Response:
            async def work() -> Response:
                body = await read_body(request, self.max_event_bytes)
                key = self.authorise(request, body_write_key(body))
                item = parse_json(body)
                if isinstance(item, dict):
                    item["type"] = event_type
                result = await self.pipeline.ingest([item], source="api", endpoint=endpoint, write_key=key)
                return self.answer(result, single=True)

            return await self.handle(request, endpoint, work)

        return route

    async def batch(self, request: Request) -> Response:
        async def work() -> Response:
            body = await read_body(request, self.max_batch_bytes)
            key = self.authorise(request, body_write_key(body))
            payload = parse_json(body)
            if not isinstance(payload, dict) or not isinstance(payload.get("batch"), list):
                raise ClientError(
                    400,
                    Rejection(
                        "invalid_batch", (FieldError("batch", "expected an object with a 'batch' array"),)
                    ),
                    body,
                )
            items: list[Any] = payload["batch"]
            oversize = [
                (
                    i,
                    Rejection(
                        "too_large",
                        (FieldError(f"batch[{i}]", f"event larger than {self.max_event_bytes // 1024} KB"),),
                    ),
                )
                for i, item in enumerate(items)
                if len(orjson.dumps(item)) > self.max_event_bytes
            ]
            sent_at = _optional_datetime(payload.get("sentAt"), "sentAt", body)
            context = payload.get("context") if isinstance(payload.get("context"), dict) else None
            too_large = {i for i, _ in oversize}
            keep = [i for i in range(len(items)) if i not in too_large]
            result = await self.pipeline.ingest(
                [items[i] for i in keep],
                source="api",
                endpoint="/v1/batch",
                batch_sent_at=sent_at,
                batch_context=context,
                path_prefix="batch",
                write_key=key,
            )
            # Report rejections by their index in the client's batch, not in the filtered list.
            result.rejected = [(keep[i], rej) for i, rej in result.rejected]
            if oversize:
                await self.pipeline.dead_letter_items(items, oversize, source="api", endpoint="/v1/batch")
                result.rejected = sorted(result.rejected + oversize, key=lambda pair: pair[0])
            return self.answer(result, single=False)

        return await self.handle(request, "/v1/batch", work)

    def answer(self, result: IngestResult, *, single: bool) -> Response:
        if not result.rejected:
            return JSONResponse({"success": True})
        if single:
            rejection = result.rejected[0][1]
            return JSONResponse(error_body(rejection), status_code=400)
        first = result.rejected[0][1]
        body = error_body(
            first,
            accepted=result.accepted,
            duplicates=result.duplicates,
            rejected=len(result.rejected),
        )
        body["message"] = (
            f"{len(result.rejected)} of the batch's events were rejected (the others were accepted)"
        )
        body["errors"] = result.errors
        return JSONResponse(body, status_code=400)

    # --- operations --------------------------------------------------------------------------
    async def metrics_endpoint(self, _request: Request) -> Response:
        # Off the event loop: some collectors ask the broker or the worker processes.
        body = await asyncio.to_thread(generate_latest, self.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def openapi(self, _request: Request) -> Response:
        return JSONResponse(self._openapi)

    async def healthz(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, _request: Request) -> Response:
        checks = {name: await check() for name, check in self.readiness.items()}
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


def _optional_datetime(value: Any, path: str, body: bytes) -> datetime | None:
    if value is None:
        return None
    try:
        return _datetime.validate_python(value)
    except ValidationError:
        raise ClientError(
            400, Rejection("invalid_batch", (FieldError(path, "expected an ISO 8601 date-time"),)), body
        ) from None


def create_ingest_app(api: IngestAPI) -> Starlette:
    routes = [
        Route(f"/v1/{event_type}", api.single(event_type), methods=["POST"]) for event_type in EVENT_TYPES
    ]
    routes += [
        Route("/v1/batch", api.batch, methods=["POST"]),
        Route("/v1/webhooks/{channel}", webhook_endpoint(api), methods=["POST"]),
        Route("/metrics", api.metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", api.openapi, methods=["GET"]),
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/readyz", api.readyz, methods=["GET"]),
    ]
    return Starlette(routes=routes)
