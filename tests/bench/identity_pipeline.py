"""Identity pipeline through Kafka: events/s from ``cdp.events`` to ``cdp.profiles``, per worker.

    .venv/bin/python -m tests.bench.identity_pipeline [--events 50000] [--rounds 3]

Every measurement gets a fresh Tansu broker with the platform's topics (4 partitions). The demo
generator's seeded shop/chat/email traffic goes through the real ingest normaliser and is produced
to ``cdp.events`` keyed as ingest keys it, all of it before any worker starts. Then 1, or 2, worker
processes (``python -m tests.bench.identity_pipeline --worker ...``, one ``IdentityWorker`` each,
the same app id so they split the partitions) are told to start at once, and the clock runs.

The end is measured from outside, through Kafka only: this process reads ``cdp.profiles`` from the
beginning and keeps every record with its Kafka timestamp. A profile record carries no count of
the events folded into it, so "every event is in a profile" is decided against a reference: one
worker folding the same observations in the same order (the observations topic's, as in
``tests/integration/identity``). The clock stops at the earliest record time from which the latest
record of every profile id equals its final state in the reference (snapshot and identifiers; ids
merged away say ``live: false`` and where they went). Events that name no person go to
``cdp.identity.unresolved`` and never reach a profile; the reference handles them the same way,
and their number is reported. The workers' own counters only decide when to stop reading (the
pipeline looks idle); the reported times do not depend on them.

Throughput is N / (first event produced, with the workers running, to that end). The time to the first profile record is reported
apart (faust start, group join, first flush), and the steady rate N / (end - first record) without
it. Not collected by pytest: timings belong to ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_NOT_AVAILABLE, Consumer, Producer, TopicPartition

from schemas import topics
from schemas.topics import IDENTITY_TOPICS, PLATFORM_TOPICS
from services.core.kafka.admin import ensure_topics
from services.core.kafka.batches import split_lines
from services.core.kafka.broker import TansuBroker, free_port
from services.core.kafka.producer import KAFKA_LOG, producer_config
from services.demo.generator import DemoConfig, estimate_total, generate_history
from services.identity.streaming.fold_stage import FoldProcessor
from services.identity.streaming.simulation import run_sequentially
from services.ingest.normalise import NormalisedEvent, normalise

END = datetime(2026, 11, 20, tzinfo=UTC)
DAYS = 90
PARTITIONS = 4
FLOOR_EVENTS_PER_S_PER_WORKER = 10_000
REPO = Path(__file__).resolve().parents[2]
PROTOCOL = "@bench "  # worker -> benchmark lines on the worker's stdout start with this
QUIET_S = 1.5  # idle for this long (no profile record, no counter change) while the counters say done
STALL_S = 30.0  # no progress at all for this long: give the measurement up
MEASURED = (
    "seconds",
    "events_per_s",
    "time_to_first_profile_s",
    "steady_events_per_s",
    "worker_cpu_us_per_event",
)

KeyedRecord = tuple[bytes, bytes]  # key, value as on cdp.events
Published = tuple[float, bytes]  # Kafka timestamp (s since the epoch), value


def canonical_events(events: int, seed: int = 7) -> list[KeyedRecord]:
    """``events`` demo events as ingest puts them on ``cdp.events``: (partition key, canonical JSON).

    The population is sized so the 90-day history holds about ``events``; the history is in
    event-time order, so the cut only drops the last hours."""
    sample = estimate_total(DemoConfig(500, DAYS, seed, END))
    customers = max(1, math.ceil(events / sample * 500 * 1.03))
    received = END + timedelta(hours=1)
    records: list[KeyedRecord] = []
    for message in generate_history(DemoConfig(customers, DAYS, seed, END)):
        event = normalise(message, received_at=received, default_source="bench")
        if isinstance(event, NormalisedEvent):
            records.append((event.key, event.to_json()))
            if len(records) == events:
                break
    return records


# -- the reference and the end condition ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FinalProfile:
    """What the latest ``cdp.profiles`` record of an id says once every event is folded."""

    live: bool
    snapshot: Any = None
    identifiers: frozenset[str] = frozenset()
    merged_into: str | None = None

    def matches(self, value: Mapping[str, Any]) -> bool:
        if not self.live:
            return not value["live"] and value["mergedInto"] == self.merged_into
        return bool(
            value["live"]
            and frozenset(value["identifiers"]) == self.identifiers
            and value["snapshot"] == self.snapshot
        )


def final_profiles(fold: FoldProcessor) -> dict[str, FinalProfile]:
    finals = {pid: FinalProfile(False, merged_into=former.merged_into) for pid, former in fold.former.items()}
    for pid, profile in fold.live.items():
        snapshot = orjson.loads(orjson.dumps(profile.state.to_snapshot()))  # as it crosses Kafka
        finals[pid] = FinalProfile(True, snapshot, frozenset(profile.identifiers))
    return finals


def settled_at(
    published: Mapping[str, Sequence[Published]], finals: Mapping[str, FinalProfile]
) -> tuple[float | None, list[str]]:
    """The earliest time from which the latest record of every profile id shows its final state.

    ``published``: every record per id in topic order. Returns (that time, []), or (None, what is
    wrong) when some id never got there, or an id the reference does not know was published."""
    problems = [f"{pid}: never published" for pid in finals if pid not in published]
    problems += [f"{pid}: not a profile in the reference" for pid in published if pid not in finals]
    latest = 0.0
    for pid, final in finals.items():
        records = published.get(pid)
        if not records:
            continue
        since = None
        for at, value in reversed(records):  # only the final streak of matching records is parsed
            if not final.matches(orjson.loads(value)):
                break
            since = at
        if since is None:
            problems.append(f"{pid}: its latest record is not its final state")
        else:
            latest = max(latest, since)
    return (None, problems) if problems else (latest, [])


# -- Kafka helpers ----------------------------------------------------------------------------------


def consumer(bootstrap: str) -> Consumer:
    return Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"bench-read-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False, "auto.offset.reset": "earliest", "logger": KAFKA_LOG,
    })  # fmt: skip


def read_topics(bootstrap: str, names: Sequence[str], at_least: int = 0, idle: float = 0.5) -> list[bytes]:
    """Every value on the ``names`` topics, in topic, partition and offset order: at least
    ``at_least`` of them, then until nothing came for ``idle`` seconds. (Tansu 0.6 reports the base
    offset of a partition's last batch, plus one, as its high watermark: it cannot say where a
    partition ends.)"""
    reader = consumer(bootstrap)
    try:
        listed = reader.list_topics(timeout=10).topics
        parts = [(topic, p) for topic in names for p in sorted(listed[topic].partitions)]
        reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for topic, p in parts])
        values: dict[tuple[str, int], list[bytes]] = {part: [] for part in parts}
        count = 0
        deadline = time.monotonic() + 120
        last = time.monotonic() + 1.0  # the first fetch after assign takes a moment
        while count < at_least or time.monotonic() - last < idle:
            if time.monotonic() > deadline:
                raise RuntimeError(f"read {count:,} records of {names}, expected at least {at_least:,}")
            for message in reader.consume(10_000, 0.1):
                topic, partition, value = message.topic(), message.partition(), message.value()
                if message.error() is None and topic is not None and partition is not None and value:
                    values[(topic, partition)].append(value)
                    count += 1
                    last = time.monotonic()
        return [value for part in parts for value in values[part]]
    finally:
        reader.close()


def produce_all(bootstrap: str, records: Sequence[KeyedRecord]) -> None:
    producer = Producer(producer_config(bootstrap))
    for key, value in records:
        while True:
            try:
                producer.produce(topics.EVENTS, value, key)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("not every benchmark event reached cdp.events")


class ProfileWatch:
    """``cdp.profiles`` from the beginning: every record with its Kafka (producer) timestamp."""

    def __init__(self, bootstrap: str) -> None:
        self._reader = consumer(bootstrap)
        partitions = self._reader.list_topics(topics.PROFILES, timeout=10).topics[topics.PROFILES].partitions
        self._reader.assign([TopicPartition(topics.PROFILES, p, OFFSET_BEGINNING) for p in partitions])
        self.published: dict[str, list[Published]] = {}
        self.count = 0
        self.first: float | None = None
        self.last_seen = time.monotonic()  # when this process last received a record

    def poll(self, timeout: float) -> int:
        received = 0
        for message in self._reader.consume(10_000, timeout):
            key, value = message.key(), message.value()
            if message.error() is not None or key is None or not value:
                continue
            kind, stamp = message.timestamp()
            at = stamp / 1000 if kind != TIMESTAMP_NOT_AVAILABLE else time.time()
            self.published.setdefault(key.decode(), []).append((at, value))
            self.first = at if self.first is None else min(self.first, at)
            received += 1
        if received:
            self.count += received
            self.last_seen = time.monotonic()
        return received

    def close(self) -> None:
        self._reader.close()


# -- worker processes -------------------------------------------------------------------------------


class WorkerProcess:
    """One ``IdentityWorker`` in its own Python process; talks over stdin/stdout lines."""

    def __init__(self, bootstrap: str, app_id: str, log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in stop)
        command = [sys.executable, "-m", "tests.bench.identity_pipeline", "--worker",
                   "--bootstrap", bootstrap, "--app-id", app_id, "--partitions", str(PARTITIONS)]  # fmt: skip
        self._process = subprocess.Popen(
            command, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self._lines: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.status: dict[str, Any] = {}
        self.started: dict[str, Any] = {}
        self.stopped: dict[str, Any] = {}
        self.memory: dict[str, Any] = {}  # the latest answer to ``measure_memory``
        self.memory_reports = 0
        self._reader = threading.Thread(target=self._read, args=(self._process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stdout: IO[bytes]) -> None:
        for raw in stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith(PROTOCOL):
                kind, _, payload = line[len(PROTOCOL) :].partition(" ")
                self._lines.put((kind, orjson.loads(payload) if payload else {}))
        self._lines.put(("exit", {}))

    def pump(self) -> None:
        """Take in what the worker reported; raise if it exited."""
        while True:
            try:
                kind, payload = self._lines.get_nowait()
            except queue.Empty:
                return
            if kind == "status":
                self.status = payload
            elif kind == "started":
                self.started = payload
            elif kind == "stopped":
                self.stopped = payload
            elif kind == "memory":
                self.memory = payload
                self.memory_reports += 1
            elif kind == "exit" and not self.stopped:
                raise RuntimeError(f"a worker process exited early, see its log:\n{self.log_tail()}")

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                kind, _ = self._lines.get(timeout=0.1)
                if kind == "ready":
                    return
                if kind == "exit":
                    raise RuntimeError(f"a worker process exited at start, see its log:\n{self.log_tail()}")
        raise RuntimeError(f"a worker process was not ready within {timeout:.0f} s")

    def tell(self, command: str) -> None:
        assert self._process.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            self._process.stdin.write(command.encode() + b"\n")
            self._process.stdin.flush()

    def measure_memory(self, timeout: float = 60.0) -> dict[str, Any]:
        """The worker's resident memory and state sizes, measured by the worker itself (after ``go``)."""
        before = self.memory_reports
        self.tell("memory")
        deadline = time.monotonic() + timeout
        while self.memory_reports == before:
            if time.monotonic() > deadline:
                raise RuntimeError(f"a worker process did not report its memory within {timeout:.0f} s")
            time.sleep(0.05)
            self.pump()
        return self.memory

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the worker to stop (faust stops, last flush, producer closed); kill it if it hangs."""
        try:
            self.tell("stop")
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
            self._reader.join(5)
            with contextlib.suppress(RuntimeError):
                self.pump()
        finally:
            if self._process.stdin is not None:
                with contextlib.suppress(OSError):
                    self._process.stdin.close()
            self._log.close()

    def log_tail(self, lines: int = 15) -> str:
        self._log.flush()
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _say(kind: str, payload: Mapping[str, Any] | None = None) -> None:
    sys.stdout.write(PROTOCOL + kind + (" " + orjson.dumps(payload).decode() if payload else "") + "\n")
    sys.stdout.flush()


def _counters(worker: Any) -> dict[str, Any]:
    # Public counters of the worker; read defensively, the worker's internals change.
    names = ("observations_decided", "records_folded", "resolved_sent")
    return {name: getattr(worker, name, None) for name in names}


def resident_bytes() -> int:
    """This process's resident set size (Linux ``/proc/self/statm``)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _memory(worker: Any) -> dict[str, Any]:
    """What ``measure_memory`` reports: RSS after a full garbage collection, and how much state the
    worker holds (live profiles of its fold partitions, identifiers in its graph stage)."""
    gc.collect()
    graph = worker.graph_stage
    return {
        "rss_bytes": resident_bytes(),
        "live_profiles": len(worker.fold_stage.live),
        "identifiers": graph.graph.stats().identifiers if graph is not None else 0,
    }


async def serve(bootstrap: str, app_id: str, partitions: int) -> None:
    """The worker process: build, wait for ``go``, start, report counters, stop on ``stop``/EOF."""
    from services.core.kafka.producer import AsyncProducer
    from services.identity.streaming.kafka_worker import IdentityWorker

    producer = AsyncProducer(bootstrap)
    try:
        worker = IdentityWorker(bootstrap, producer, partitions=partitions, app_id=app_id)
        began = time.time()
        await worker.start()
        while not worker.is_ready():  # noqa: ASYNC110 (a state of two client libraries, not an event)
            await asyncio.sleep(0.05)
        _say("ready")
        if (await asyncio.to_thread(sys.stdin.readline)).strip() != "go":
            return
        cpu = time.process_time()
        _say("started", {"at": time.time(), "start_s": time.time() - began})
        command = asyncio.ensure_future(asyncio.to_thread(sys.stdin.readline))
        while True:
            _say("status", _counters(worker))
            await asyncio.wait({command}, timeout=0.25)
            if not command.done():
                continue
            if command.result().strip() != "memory":
                break  # "stop", or the benchmark went away (EOF)
            _say("memory", _memory(worker))
            command = asyncio.ensure_future(asyncio.to_thread(sys.stdin.readline))
        cpu = time.process_time() - cpu  # CPU seconds of all its threads from go to stop
        await worker.stop()
        _say("stopped", {**_counters(worker), "cpu_s": cpu})
    finally:
        await asyncio.to_thread(producer.close)


# -- one measurement --------------------------------------------------------------------------------


def _looks_done(workers: Sequence[WorkerProcess], events: int) -> bool | None:
    """From the workers' counters: every event decided and every resolved record folded (None: no
    counters to tell)."""
    statuses = [w.status for w in workers]
    if any(not s for s in statuses):
        return False
    names = ("observations_decided", "records_folded", "resolved_sent")
    if any(not isinstance(s.get(name), int) for s in statuses for name in names):
        return None
    decided, folded, sent = (sum(int(s[name]) for s in statuses) for name in names)
    return bool(decided >= events and folded >= sent)


def _progress(workers: Sequence[WorkerProcess]) -> tuple[Any, ...]:
    return tuple(tuple(sorted(w.status.items())) for w in workers)


SETTLE_S = 2.0


def measure(records: Sequence[KeyedRecord], workers: int, log_dir: Path) -> dict[str, Any]:
    """One broker, ``records`` on cdp.events, ``workers`` worker processes: the timings."""
    n = len(records)
    app_id = f"bench-identity-{uuid.uuid4().hex[:8]}"
    wall = time.monotonic()
    with TansuBroker("127.0.0.1", free_port()) as broker:
        bootstrap = broker.bootstrap
        ensure_topics(bootstrap, PLATFORM_TOPICS + IDENTITY_TOPICS, partitions=PARTITIONS, replication=1)
        watch = ProfileWatch(bootstrap)
        procs: list[WorkerProcess] = []
        problem: str | None = None
        try:
            spawned = time.monotonic()
            for i in range(workers):
                procs.append(WorkerProcess(bootstrap, app_id, log_dir / f"{app_id}-{i}.log"))
            for proc in procs:
                proc.wait_ready(120)
            time.sleep(SETTLE_S)  # the consumer groups settle with every member
            ready_s = time.monotonic() - spawned
            for proc in procs:
                proc.tell("go")
            # The clock runs from the first event produced to cdp.events to the final profiles.
            began = time.time()
            produce_all(bootstrap, records)
            deadline = time.monotonic() + max(120.0, n / 1000)
            progress, progressed = _progress(procs), time.monotonic()
            while True:
                watch.poll(0.1)
                for proc in procs:
                    proc.pump()
                now = time.monotonic()
                if _progress(procs) != progress:
                    progress, progressed = _progress(procs), now
                quiet = now - max(watch.last_seen, progressed)
                done = _looks_done(procs, n)
                if watch.count and done is not False and quiet >= (QUIET_S if done else 3 * QUIET_S):
                    break
                if quiet > STALL_S:
                    problem = f"no progress for {STALL_S:.0f} s; counters {[p.status for p in procs]}"
                    break
                if now > deadline:
                    problem = f"not done after {deadline - began:.0f} s"
                    break
        finally:
            for proc in procs:
                proc.tell("stop")
            for proc in procs:
                proc.stop()
            with contextlib.suppress(Exception):
                watch.poll(0.5)  # the stop flush
            watch.close()
        if problem:
            for proc in procs:
                problem += f"\n{proc.log_path}:\n{proc.log_tail()}"
        # The graph stage's input in its order (a redelivered forward batch may add repeats), and
        # the events it found no person in.
        observations = [
            line
            for batch in read_topics(bootstrap, [topics.IDENTITY_OBSERVATIONS], at_least=0 if problem else 1)
            for line in split_lines(batch)
        ]
        unresolved = len(read_topics(bootstrap, [topics.IDENTITY_UNRESOLVED], idle=0.2))
    reference = run_sequentially(
        [("event", orjson.loads(v)) for v in observations], lambda: datetime.now(UTC)
    )
    finals = final_profiles(reference.fold)
    ended, wrong = settled_at(watch.published, finals) if len(observations) >= n else (None, [])
    if len(observations) < n:
        problem = problem or f"{len(observations):,} observations for {n:,} events"
    elif ended is None:
        problem = problem or f"{len(wrong)} profile ids not in their final state, e.g. {wrong[:3]}"
    first = watch.first
    cpu = [p.stopped["cpu_s"] for p in procs if isinstance(p.stopped.get("cpu_s"), float)]
    return {
        "workers": workers,
        "events": n,
        "unresolved_events": unresolved,
        "profiles": len(reference.fold.live),
        "profile_records": watch.count,
        "complete": ended is not None,
        "seconds": None if ended is None else ended - began,
        "events_per_s": None if ended is None else n / (ended - began),
        "time_to_first_profile_s": None if first is None else first - began,
        "steady_events_per_s": None if ended is None or first is None else n / max(ended - first, 1e-3),
        "worker_cpu_us_per_event": sum(cpu) / n * 1e6 if len(cpu) == workers else None,
        "process_ready_s": ready_s,
        "worker_start_s": [p.started.get("start_s") for p in procs],
        "worker_counters": [p.stopped or p.status for p in procs],
        "wall_s": time.monotonic() - wall,
        "problem": problem,
    }


# -- the benchmark ----------------------------------------------------------------------------------


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _line(one: Mapping[str, Any]) -> str:
    if not one["complete"]:
        return f"INCOMPLETE: {one['problem']}"
    return (
        f"{one['events_per_s']:,.0f} events/s ({one['seconds']:.1f} s; first profile after "
        f"{one['time_to_first_profile_s']:.1f} s, then {one['steady_events_per_s']:,.0f} events/s)"
    )


def run(events: int = 50_000, rounds: int = 3) -> dict[str, object]:
    """The numbers ``make bench`` reports: identity + profile events/s with 1 and 2 worker processes."""
    started = time.monotonic()
    records = canonical_events(events)
    print(f"identity pipeline: {len(records):,} demo events generated in {time.monotonic() - started:.1f} s")
    per_round: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cdp-bench-identity-") as tmp:
        for index in range(rounds):
            row: dict[str, Any] = {"round": index + 1}
            for workers, label in ((1, "1_worker"), (2, "2_workers")):
                try:
                    one = measure(records, workers, Path(tmp))
                except Exception as exc:  # one broken measurement must not lose the others
                    one = {"workers": workers, "complete": False, "problem": f"{type(exc).__name__}: {exc}"}
                    one |= dict.fromkeys(MEASURED)
                row[label] = one
                print(f"identity pipeline round {index + 1}/{rounds}, {workers} worker(s): {_line(one)}")
            one_w, two_w = row["1_worker"]["events_per_s"], row["2_workers"]["events_per_s"]
            row["scaling_ratio"] = two_w / one_w if one_w and two_w else None
            per_round.append(row)

    def median_of(label: str, field: str) -> float | None:
        return _median([r[label][field] for r in per_round])

    two = median_of("2_workers", "events_per_s")
    return {
        "name": "identity_pipeline",
        "description": (
            f"{len(records):,} demo events cdp.events -> identity graph -> profile fold -> cdp.profiles, "
            f"1 and 2 IdentityWorker processes on a fresh Tansu ({PARTITIONS} partitions), until the latest "
            "record of every profile shows its final state"
        ),
        "events": len(records),
        "partitions": PARTITIONS,
        "rounds": rounds,
        "complete_rounds": sum(
            1 for r in per_round if r["1_worker"]["complete"] and r["2_workers"]["complete"]
        ),
        "events_per_s_1_worker_median": median_of("1_worker", "events_per_s"),
        "events_per_s_2_workers_median": two,
        "events_per_s_per_worker_2_workers_median": None if two is None else two / 2,
        "scaling_ratio_median": _median([r["scaling_ratio"] for r in per_round]),
        "steady_events_per_s_1_worker_median": median_of("1_worker", "steady_events_per_s"),
        "steady_events_per_s_2_workers_median": median_of("2_workers", "steady_events_per_s"),
        "time_to_first_profile_s_1_worker_median": median_of("1_worker", "time_to_first_profile_s"),
        "time_to_first_profile_s_2_workers_median": median_of("2_workers", "time_to_first_profile_s"),
        "worker_cpu_us_per_event_1_worker_median": median_of("1_worker", "worker_cpu_us_per_event"),
        "worker_cpu_us_per_event_2_workers_median": median_of("2_workers", "worker_cpu_us_per_event"),
        "floor_events_per_s_per_worker": FLOOR_EVENTS_PER_S_PER_WORKER,
        "rounds_detail": per_round,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--worker", action="store_true", help="run one worker process (used by the benchmark)"
    )
    parser.add_argument("--bootstrap", help="with --worker: the broker")
    parser.add_argument("--app-id", help="with --worker: the faust app id (consumer group)")
    parser.add_argument("--partitions", type=int, default=PARTITIONS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(serve(args.bootstrap, args.app_id, args.partitions))
        return
    print(orjson.dumps(run(args.events, args.rounds), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
