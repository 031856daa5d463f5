"""The demo sender against httpx's own MockTransport: limits, retries, rejections, pacing."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from services.demo.sender import MAX_BATCH_BYTES, DemoProgress, SendGaveUpError, send

Handler = Callable[[httpx.Request, list[Any]], httpx.Response]


class FakeIngest:
    """Records every batch it is sent; ``answer`` decides the response (default: accept)."""

    def __init__(self, answer: Handler | None = None) -> None:
        self.answer = answer or (lambda _request, _batch: httpx.Response(200, json={"success": True}))
        self.requests: list[httpx.Request] = []
        self.accepted_ids: list[str] = []
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        with self._lock:
            self.calls += 1
            self.requests.append(request)
            response = self.answer(request, body["batch"])
            if response.status_code == 200:
                self.accepted_ids.extend(m["messageId"] for m in body["batch"])
        return response

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def _messages(n: int, channel: str = "shop", padding: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "type": "track",
            "event": "Product Viewed",
            "messageId": f"m-{channel}-{i}",
            "anonymousId": "a-1",
            "properties": {"product_id": "P1", "note": "x" * padding},
            "context": {"channel": channel, "source": "web"},
        }
        for i in range(n)
    ]


def _send(fake: FakeIngest, messages: list[dict[str, Any]], **options: Any) -> Any:
    return send(
        messages, "http://cdp.test/", "wk_demo", transport=fake.transport, retry_delay=0.001, **options
    )


def test_batches_respect_the_count_limit_and_carry_auth_and_sent_at() -> None:
    fake = FakeIngest()
    stats = _send(fake, _messages(150) + _messages(100, "email"), batch_size=100)
    assert sorted(len(orjson.loads(r.content)["batch"]) for r in fake.requests) == [50, 100, 100]
    assert stats.sent == stats.accepted == 250
    assert stats.per_channel == {"shop": 150, "email": 100}
    request = fake.requests[0]
    assert request.url == "http://cdp.test/v1/batch"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"wk_demo:").decode()
    assert orjson.loads(request.content)["sentAt"].endswith("Z")


def test_batches_stay_under_500_kb_and_oversized_events_are_not_sent() -> None:
    fake = FakeIngest()
    too_big = _messages(1, "chat", padding=40_000)
    stats = _send(fake, _messages(60, padding=20_000) + too_big, batch_size=100)
    assert all(len(r.content) <= MAX_BATCH_BYTES for r in fake.requests)
    assert len(fake.requests) >= 3
    assert stats.accepted == 60
    assert stats.rejected == 1
    assert "32 KB" in stats.errors[0]


def test_5xx_and_connection_errors_are_retried_until_every_message_lands() -> None:
    failures = iter(["503", "connect", "500"])

    def flaky(request: httpx.Request, _batch: list[Any]) -> httpx.Response:
        failure = next(failures, None)
        if failure == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        if failure is not None:
            return httpx.Response(int(failure), json={"success": False, "message": "broker down"})
        return httpx.Response(200, json={"success": True})

    fake = FakeIngest(flaky)
    messages = _messages(230)
    stats = _send(fake, messages, batch_size=50, concurrency=3)
    assert stats.retries == 3
    assert stats.accepted == 230
    assert sorted(fake.accepted_ids) == sorted(m["messageId"] for m in messages)


def test_4xx_answers_are_counted_with_the_servers_message() -> None:
    def picky(_request: httpx.Request, batch: list[Any]) -> httpx.Response:
        if batch[0]["messageId"] == "m-shop-0":
            body = {
                "success": False,
                "error": "invalid_event",
                "message": "batch[0].event: required",
                "rejected": 2,
            }
            return httpx.Response(400, json=body)
        return httpx.Response(200, json={"success": True})

    stats = _send(FakeIngest(picky), _messages(30), batch_size=10, concurrency=1)
    assert stats.sent == 30
    assert stats.rejected == 2
    assert stats.accepted == 28
    assert stats.retries == 0
    assert stats.failed_requests == 1
    assert stats.errors == ["HTTP 400: batch[0].event: required"]


def test_a_refused_write_key_stops_the_run() -> None:
    fake = FakeIngest(lambda _r, _b: httpx.Response(401, json={"message": "unknown write key"}))
    with pytest.raises(SendGaveUpError, match="unknown write key"):
        _send(fake, _messages(500), batch_size=10, concurrency=2)
    assert fake.calls < 50


def test_a_server_that_never_recovers_is_given_up_on_loudly() -> None:
    fake = FakeIngest(lambda _r, _b: httpx.Response(503, json={"message": "unavailable"}))
    with pytest.raises(SendGaveUpError, match="unavailable"):
        _send(fake, _messages(10), give_up_after=0.05, max_retry_delay=0.01)


def test_a_payload_too_large_answer_splits_the_batch() -> None:
    def small_limit(request: httpx.Request, _batch: list[Any]) -> httpx.Response:
        if len(request.content) > 3_000:
            return httpx.Response(413, json={"message": "body is larger than 3 KB"})
        return httpx.Response(200, json={"success": True})

    fake = FakeIngest(small_limit)
    stats = _send(fake, _messages(40), batch_size=40)
    assert stats.accepted == stats.sent == 40
    assert stats.per_channel == {"shop": 40}
    assert len(fake.accepted_ids) == 40


def test_rate_limit_paces_the_messages_and_progress_is_reported() -> None:
    seen: list[DemoProgress] = []
    started = time.monotonic()
    stats = _send(FakeIngest(), _messages(30), batch_size=100, rate=200.0, progress=seen.append)
    assert time.monotonic() - started >= 29 / 200
    assert stats.accepted == 30
    assert seen
    assert seen[-1].sent == 30
    assert [p.sent for p in seen] == sorted(p.sent for p in seen)
