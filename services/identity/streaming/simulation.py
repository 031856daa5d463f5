"""The identity pipeline on an in-memory Kafka: proves the stages correct under scale-out and faults.

Topics are lists of partitions; a keyed record goes to partition ``crc32(key) mod N`` and every
partition is read in order. Each step delivers one record to one consumer picked at random with
per-consumer speeds drawn per run, so any partition may lag far behind any other:

* resolve (one consumer per ``cdp.events`` partition) appends each event to the observations topic,
  whose single partition the one graph processor reads: the interleaving of the resolve consumers
  decides the observation order;
* the fold instances own the ``resolved`` partitions round-robin; a flush publishes their profile
  records and commits their offsets.

Faults: redelivery (a resolve or fold consumer handles its last few records again, as after an
uncommitted batch) and crashes (a fold instance restarts from its committed offsets and the latest
``profiles`` records; the graph worker from the snapshot taken at its committed offset: the graph
never re-reads an observation against a later state, see ``StaleObservationError``). Every value
crosses a JSON round trip, as it would cross Kafka. ``run_sequentially`` is the single-worker
reference over a given observation order, and ``fold_by_final_profile`` the ground truth.
"""

from __future__ import annotations

import json
import random
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from services.identity.domain import (
    GraphSnapshot,
    Identifier,
    IdentityGraph,
    LinkLimits,
    ProfileState,
    identifiers_of,
    provenance_of,
)
from services.identity.streaming.fold_stage import FoldedProfile, FoldProcessor, FormerProfile
from services.identity.streaming.graph_stage import GraphProcessor
from services.identity.streaming.records import OutRecord, Topic, Value

Event = dict[str, Any]
Observation = (
    tuple[Literal["event"], Event]
    | tuple[Literal["split"], tuple[Identifier, Identifier]]
    | tuple[Literal["detach"], Identifier]
)
_MAX_CRASHES = 4


def partition_of(key: str, partitions: int) -> int:
    return zlib.crc32(key.encode()) % partitions


def person_key(event: Mapping[str, Any]) -> str:
    """The key ingest gives an event on ``cdp.events``: the customer id once logged in, else the
    device; so one person's events land on several partitions."""
    ids = event.get("identifiers") or {}
    for name in ("customerId", "anonymousId", "email", "chatHandle", "emailRecipientId", "phone"):
        if isinstance(ids.get(name), str) and ids[name]:
            return str(ids[name])
    return str(event.get("messageId", ""))


class EventStore:
    """The warehouse ``events`` table as the fold stage's split rebuild sees it."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._by_identifier: dict[str, list[Event]] = {}

    def add(self, event: Event) -> None:
        self.events.append(event)
        for identifier in identifiers_of(event):
            self._by_identifier.setdefault(identifier.key, []).append(event)

    def __call__(self, keys: Sequence[str]) -> list[Event]:
        return [event for key in keys for event in self._by_identifier.get(key, ())]


@dataclass(frozen=True, slots=True)
class Faults:
    redeliver: float = 0.0
    """Chance per delivery that a resolve or fold consumer first steps back one to three records."""
    crash: float = 0.0
    """Chance per step that a fold instance or the graph worker crashes (at most a few per run)."""


class _Graph:
    """The graph worker: processor, event store feed, and what it restarts from."""

    def __init__(self, limits: LinkLimits | None, store: EventStore) -> None:
        self.limits = limits
        self.store = store
        self.processor = GraphProcessor(IdentityGraph(limits))
        self.committed: tuple[int, GraphSnapshot] = (0, self.processor.graph.snapshot())

    def handle(self, observation: Observation, position: int) -> list[OutRecord]:
        if observation[0] == "split":
            a, b = observation[1]
            return self.processor.split(a, b, "operator", position=position)
        if observation[0] == "detach":
            return self.processor.detach(observation[1], "shared device", position=position)
        event = observation[1]
        records = self.processor.process(event, position=position)
        if records[0].topic is Topic.RESOLVED:
            self.store.add(event)
        return records

    def restart(self) -> int:
        offset, snapshot = self.committed
        self.processor = GraphProcessor(IdentityGraph.restore(snapshot, self.limits), position=offset)
        return offset


class PipelineSimulation:
    def __init__(
        self,
        *,
        partitions: int,
        fold_instances: int,
        seed: int,
        now: Callable[[], datetime],
        limits: LinkLimits | None = None,
        faults: Faults = Faults(),
    ) -> None:
        self.partitions = partitions
        self._rng = random.Random(seed)
        self._now = now
        self._faults = faults
        self.events: list[list[Event]] = [[] for _ in range(partitions)]
        self.observations: list[Observation] = []
        self.resolved: list[list[Value]] = [[] for _ in range(partitions)]
        self.outputs: dict[Topic, list[tuple[str, Value]]] = {topic: [] for topic in Topic}
        self.store = EventStore()
        self._graph = _Graph(limits, self.store)
        self.folds = [FoldProcessor(now, events_of=self.store) for _ in range(fold_instances)]
        self._resolve_at = [0] * partitions
        self._graph_at = 0
        self._fold_at = [0] * partitions
        self._fold_committed = [0] * partitions
        self._crashes = 0
        consumers = [("resolve", p) for p in range(partitions)] + [("graph", 0)]
        consumers += [("fold", p) for p in range(partitions)]
        self._speed = {consumer: self._rng.choice([1, 2, 8, 30]) for consumer in consumers}

    # -- inputs -----------------------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        self.events[partition_of(person_key(event), self.partitions)].append(_wire(event))

    def request_split(self, a: Identifier, b: Identifier) -> None:
        """An operator's split, produced straight onto the observations topic (admin API)."""
        self.observations.append(("split", (a, b)))

    def request_detach(self, identifier: Identifier) -> None:
        self.observations.append(("detach", identifier))

    # -- running ----------------------------------------------------------------------------------

    def run(self, steps: int | None = None) -> None:
        """Deliver ``steps`` records at random, or (None) everything, then flush every instance."""
        done = 0
        while steps is None or done < steps:
            if not self._step(self._ready()):
                break
            done += 1
        if steps is None:
            for instance in range(len(self.folds)):
                self._flush(instance)

    def settle_graph(self) -> None:
        """Let resolve and graph catch up (the fold stage keeps lagging)."""
        while ready := [c for c in self._ready() if c[0] != "fold"]:
            self._step(ready)

    def _ready(self) -> list[tuple[str, int]]:
        ready = [("resolve", p) for p in range(self.partitions) if self._resolve_at[p] < len(self.events[p])]
        if self._graph_at < len(self.observations):
            ready.append(("graph", 0))
        ready += [("fold", p) for p in range(self.partitions) if self._fold_at[p] < len(self.resolved[p])]
        return ready

    def _step(self, ready: list[tuple[str, int]]) -> bool:
        if not ready:
            return False
        rng = self._rng
        if rng.random() < 0.05:
            self._flush(rng.randrange(len(self.folds)))
        if self._crashes < _MAX_CRASHES and rng.random() < self._faults.crash:
            self._crash()
        stage, p = rng.choices(ready, [self._speed[c] for c in ready])[0]
        if stage == "resolve":
            self._resolve_at[p] = self._maybe_back(self._resolve_at[p], 0)
            self.observations.append(("event", self.events[p][self._resolve_at[p]]))
            self._resolve_at[p] += 1
        elif stage == "graph":
            self._emit(self._graph.handle(self.observations[self._graph_at], self._graph_at))
            self._graph_at += 1
            if rng.random() < 0.2:
                self._graph.committed = (self._graph_at, self._graph.processor.graph.snapshot())
        else:
            self._fold_at[p] = self._maybe_back(self._fold_at[p], self._fold_committed[p])
            fold = self.folds[p % len(self.folds)]
            self._emit(fold.process(self.resolved[p][self._fold_at[p]]))
            self._fold_at[p] += 1
        return True

    def _maybe_back(self, cursor: int, floor: int) -> int:
        if self._rng.random() < self._faults.redeliver:
            return max(floor, cursor - self._rng.randint(1, 3))
        return cursor

    def _flush(self, instance: int) -> None:
        self._emit(self.folds[instance].flush())
        for p in self._owned(instance):
            self._fold_committed[p] = self._fold_at[p]

    def _crash(self) -> None:
        self._crashes += 1
        instance = self._rng.randrange(len(self.folds) + 1)
        if instance == len(self.folds):
            self._graph_at = self._graph.restart()
            return
        owned = set(self._owned(instance))
        fold = FoldProcessor(self._now, events_of=self.store)
        for key, value in self.latest_profiles().items():
            if partition_of(key, self.partitions) in owned:
                fold.load(value)
        self.folds[instance] = fold
        for p in owned:
            self._fold_at[p] = self._fold_committed[p]

    def _owned(self, instance: int) -> list[int]:
        return [p for p in range(self.partitions) if p % len(self.folds) == instance]

    def _emit(self, records: Iterable[OutRecord]) -> None:
        for record in records:
            value = _wire(record.value)
            if record.topic is Topic.RESOLVED:
                self.resolved[partition_of(record.key, self.partitions)].append(value)
            else:
                self.outputs[record.topic].append((record.key, value))

    # -- results ----------------------------------------------------------------------------------

    @property
    def graph(self) -> IdentityGraph:
        return self._graph.processor.graph

    def observed_events(self) -> list[Event]:
        return [observation[1] for observation in self.observations if observation[0] == "event"]

    def live_profiles(self) -> dict[str, FoldedProfile]:
        return {pid: profile for fold in self.folds for pid, profile in fold.live.items()}

    def former_profiles(self) -> dict[str, FormerProfile]:
        return {pid: former for fold in self.folds for pid, former in fold.former.items()}

    def latest_profiles(self) -> dict[str, Value]:
        """The compacted ``profiles`` topic: the last record per key."""
        return dict(self.outputs[Topic.PROFILES])


def _wire(value: Value) -> Value:
    loaded: Value = json.loads(json.dumps(value))
    return loaded


@dataclass(frozen=True, slots=True)
class SequentialRun:
    graph: IdentityGraph
    fold: FoldProcessor
    outputs: list[OutRecord]


def run_sequentially(
    observations: Sequence[Observation], now: Callable[[], datetime], limits: LinkLimits | None = None
) -> SequentialRun:
    """One worker, one partition, every record delivered at once: the reference for an order."""
    store = EventStore()
    graph = _Graph(limits, store)
    fold = FoldProcessor(now, events_of=store)
    outputs: list[OutRecord] = []
    for position, observation in enumerate(observations):
        pending = deque(graph.handle(observation, position))
        while pending:
            record = pending.popleft()
            outputs.append(record)
            if record.topic is Topic.RESOLVED:
                pending.extend(fold.process(_wire(record.value)))
    outputs.extend(fold.flush())
    return SequentialRun(graph.processor.graph, fold, outputs)


def fold_by_final_profile(
    graph: IdentityGraph, events: Iterable[Mapping[str, Any]]
) -> dict[str, ProfileState]:
    """The ground truth: each event folded into the final profile of its best-ranked identifier."""
    states: dict[str, ProfileState] = {}
    for event in events:
        try:
            provenance_of(event)
        except (KeyError, ValueError, TypeError):
            continue
        anchor = identifiers_of(event)[:1]
        profile_id = graph.profile_of(anchor[0]) if anchor else None
        if profile_id is not None:
            states.setdefault(profile_id, ProfileState()).apply(event)
    return states
