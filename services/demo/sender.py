"""Posting demo messages to the tracking API as Segment batches, safely and as fast as it takes them.

Batches respect the API's size limits, go out from a small thread pool, and are retried with
backoff on 5xx, 408/429 and connection errors until they land: every message has a messageId, so a
retried batch is de-duplicated by the platform instead of counted twice. 4xx answers are the
client's fault and are counted, with the server's message kept, rather than retried.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
_ENVELOPE_BYTES = 64  # '{"batch":[' + '],"sentAt":"2025-01-01T00:00:00.000Z"}'
_LINGER = 0.5  # with a rate limit, a partial batch waits at most this long
_ERROR_SAMPLES = 10
_FATAL = (401, 403)  # a wrong write key will not get better by sending the rest of the history


class SendGaveUpError(RuntimeError):
    """The server kept failing (or refused the write key); the batch was not delivered."""


@dataclass(frozen=True, slots=True)
class DemoProgress:
    sent: int
    accepted: int
    rejected: int
    retries: int
    errors: int
    elapsed: float
    per_channel: Mapping[str, int]

    @property
    def events_per_second(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(slots=True)
class DemoStats:
    sent: int = 0  # messages posted (a retried message counts once)
    accepted: int = 0
    rejected: int = 0
    retries: int = 0  # batch attempts repeated after a 5xx, 408/429 or connection error
    failed_requests: int = 0  # 4xx answers and messages too large to send
    errors: list[str] = field(default_factory=list)  # the first few error messages
    elapsed: float = 0.0
    per_channel: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False  # stopped by Ctrl-C

    @property
    def events_per_second(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    def merged(self, other: DemoStats) -> DemoStats:
        channels = Counter(self.per_channel)
        channels.update(other.per_channel)
        return DemoStats(
            sent=self.sent + other.sent,
            accepted=self.accepted + other.accepted,
            rejected=self.rejected + other.rejected,
            retries=self.retries + other.retries,
            failed_requests=self.failed_requests + other.failed_requests,
            errors=(self.errors + other.errors)[:_ERROR_SAMPLES],
            elapsed=self.elapsed + other.elapsed,
            per_channel=dict(channels),
            interrupted=self.interrupted or other.interrupted,
        )


@dataclass(slots=True)
class _Batch:
    items: list[bytes] = field(default_factory=list)
    channels: Counter[str] = field(default_factory=Counter)
    size: int = _ENVELOPE_BYTES
    started: float = 0.0

    def body(self) -> bytes:
        # sentAt is set per attempt: the server corrects client clock skew with it, and a retry
        # sent a minute later must not shift the events by that minute.
        sent_at = datetime.now(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
        return b'{"batch":[' + b",".join(self.items) + b'],"sentAt":"' + sent_at.encode() + b'"}'

    def halves(self) -> tuple[_Batch, _Batch]:
        """Two batches without channel counts: the whole batch's counts are added once."""
        middle = len(self.items) // 2
        return _Batch(self.items[:middle]), _Batch(self.items[middle:])


class _Tally:
    """Counters shared by the worker threads; reports every change to ``progress``."""

    def __init__(self, progress: Callable[[DemoProgress], None] | None) -> None:
        self.stats = DemoStats()
        self._progress = progress
        self._lock = threading.Lock()
        self._started = time.monotonic()

    def done(self, batch: _Batch, rejected: int, error: str | None = None) -> None:
        with self._lock:
            stats = self.stats
            stats.sent += len(batch.items)
            stats.accepted += len(batch.items) - rejected
            stats.rejected += rejected
            for channel, count in batch.channels.items():
                stats.per_channel[channel] = stats.per_channel.get(channel, 0) + count
            if error is not None:
                self._error(error)
            self._report()

    def dropped(self, error: str) -> None:
        with self._lock:
            self.stats.rejected += 1
            self._error(error)
            self._report()

    def count_channels(self, channels: Counter[str]) -> None:
        with self._lock:
            for channel, count in channels.items():
                self.stats.per_channel[channel] = self.stats.per_channel.get(channel, 0) + count
            self._report()

    def retried(self) -> None:
        with self._lock:
            self.stats.retries += 1
            self._report()

    def finish(self, interrupted: bool) -> DemoStats:
        with self._lock:
            self.stats.elapsed = time.monotonic() - self._started
            self.stats.interrupted = interrupted
            return replace(
                self.stats, errors=list(self.stats.errors), per_channel=dict(self.stats.per_channel)
            )

    def _error(self, error: str) -> None:
        self.stats.failed_requests += 1
        if len(self.stats.errors) < _ERROR_SAMPLES:
            self.stats.errors.append(error)

    def _report(self) -> None:
        # Called under the lock so snapshots reach the display in order.
        if self._progress is not None:
            s = self.stats
            elapsed = time.monotonic() - self._started
            snapshot = DemoProgress(
                s.sent, s.accepted, s.rejected, s.retries, s.failed_requests, elapsed, dict(s.per_channel)
            )
            self._progress(snapshot)


@dataclass(frozen=True, slots=True)
class _Retry:
    initial_delay: float
    max_delay: float
    give_up_after: float


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    if not isinstance(body, dict):
        return f"HTTP {response.status_code}: {str(body)[:300]}"
    message = str(body.get("message") or body.get("error") or body)
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        message += f" (first: {orjson.dumps(errors[0]).decode()[:300]})"
    return f"HTTP {response.status_code}: {message}"


def _rejected_count(response: httpx.Response, size: int) -> int:
    """A 400 may reject only some events of a batch; the ingest API then says how many."""
    try:
        body = response.json()
    except ValueError:
        return size
    count = body.get("rejected") if isinstance(body, dict) else None
    return count if isinstance(count, int) and 0 <= count <= size else size


class _Poster:
    def __init__(self, client: httpx.Client, tally: _Tally, retry: _Retry, stop: threading.Event) -> None:
        self.client = client
        self.tally = tally
        self.retry = retry
        self.stop = stop
        self._jitter = random.Random()

    def post(self, batch: _Batch) -> None:
        delay = self.retry.initial_delay
        failing_since: float | None = None
        while True:
            wait_at_least = 0.0
            try:
                response = self.client.post("/v1/batch", content=batch.body())
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status < 300:
                    self.tally.done(batch, rejected=0)
                    return
                if status == 413 and len(batch.items) > 1:
                    # The server's limit is lower than ours: split until it fits.
                    for half in batch.halves():
                        self.post(half)
                    self.tally.count_channels(batch.channels)
                    return
                if status in _FATAL:
                    raise SendGaveUpError(f"the server refused the write key: {_error_message(response)}")
                if 400 <= status < 500 and status not in (408, 429):
                    rejected = _rejected_count(response, len(batch.items))
                    self.tally.done(batch, rejected=rejected, error=_error_message(response))
                    return
                problem = _error_message(response)
                wait_at_least = _retry_after(response)
            now = time.monotonic()
            failing_since = now if failing_since is None else failing_since
            if now - failing_since > self.retry.give_up_after:
                raise SendGaveUpError(f"gave up after {now - failing_since:.0f} s of failures: {problem}")
            if self.stop.is_set():
                raise SendGaveUpError(f"stopped while retrying: {problem}")
            self.tally.retried()
            self.stop.wait(max(wait_at_least, delay * self._jitter.uniform(0.5, 1.0)))
            delay = min(delay * 2, self.retry.max_delay)


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(float(response.headers.get("retry-after", "0")), 60.0)
    except ValueError:
        return 0.0


def _batches(
    messages: Iterable[dict[str, Any]], batch_size: int, rate: float | None, tally: _Tally
) -> Iterator[_Batch]:
    """Serialised batches within the count and byte limits, paced to ``rate`` messages/s if set."""
    batch = _Batch()
    started = time.monotonic()
    for message in _paced(messages, rate, started):
        item = orjson.dumps(message)
        if len(item) > MAX_EVENT_BYTES:
            tally.dropped(f"message {message.get('messageId')} is {len(item)} bytes, over the 32 KB limit")
            continue
        if batch.items and batch.size + len(item) + 1 > MAX_BATCH_BYTES:
            yield batch
            batch = _Batch()
        if not batch.items:
            batch.started = time.monotonic()
        batch.items.append(item)
        batch.size += len(item) + 1
        context = message.get("context")
        batch.channels[str(context.get("channel")) if isinstance(context, dict) else "None"] += 1
        full = len(batch.items) >= batch_size
        if full or (rate is not None and time.monotonic() - batch.started >= _LINGER):
            yield batch
            batch = _Batch()
    if batch.items:
        yield batch


def _paced(
    messages: Iterable[dict[str, Any]], rate: float | None, started: float
) -> Iterator[dict[str, Any]]:
    # Pull each message only when it is due, so a live generator's clock stamps it at send time.
    for n, message in enumerate(messages):
        if rate is not None:
            pause = started + n / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        yield message


def send(
    messages: Iterable[dict[str, Any]],
    base_url: str,
    write_key: str,
    batch_size: int = 100,
    concurrency: int = 4,
    rate: float | None = None,
    progress: Callable[[DemoProgress], None] | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
    retry_delay: float = 0.25,
    max_retry_delay: float = 10.0,
    give_up_after: float = 300.0,
    timeout: float = 30.0,
    should_stop: Callable[[], bool] | None = None,
) -> DemoStats:
    """Post ``messages`` as ``POST {base_url}/v1/batch``; Ctrl-C stops cleanly (in-flight batches land).

    ``should_stop`` lets a caller in another thread end the run the same way (checked per message).
    """
    if batch_size < 1 or concurrency < 1:
        raise ValueError("batch_size and concurrency must be at least 1")
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive")
    tally = _Tally(progress)
    stop = threading.Event()
    client = httpx.Client(
        base_url=base_url.rstrip("/"),
        auth=httpx.BasicAuth(write_key, ""),
        headers={"Content-Type": "application/json"},
        timeout=timeout,
        transport=transport,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    )
    poster = _Poster(client, tally, _Retry(retry_delay, max_retry_delay, give_up_after), stop)
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="cdp-demo-send")
    in_flight: set[Future[None]] = set()
    interrupted = False
    if should_stop is not None:
        messages = _until(messages, should_stop)
    try:
        try:
            for batch in _batches(messages, batch_size, rate, tally):
                # Bounded hand-over: the generator never runs far ahead of the server.
                while len(in_flight) >= 2 * concurrency:
                    finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    _raise_failures(finished)
                in_flight.add(pool.submit(poster.post, batch))
        except KeyboardInterrupt:
            interrupted = True
        finished, in_flight = wait(in_flight)
        _raise_failures(finished)
    except BaseException:
        # A give-up or a second Ctrl-C: stop the retry loops, do not wait for queued batches.
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        client.close()
        raise
    pool.shutdown(wait=True)
    client.close()
    return tally.finish(interrupted or (should_stop is not None and should_stop()))


def _until(messages: Iterable[dict[str, Any]], should_stop: Callable[[], bool]) -> Iterator[dict[str, Any]]:
    for message in messages:
        if should_stop():
            return
        yield message


def _raise_failures(finished: set[Future[None]]) -> None:
    for future in finished:
        exc = future.exception()
        if exc is not None:
            raise exc
