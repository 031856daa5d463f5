"""Liveness of a ``cdp run identity|segments`` process: a sink thread that ended never resumes in
that process, so the process must report itself dead and let the orchestrator restart it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from prometheus_client import CollectorRegistry

from services.core.settings import Settings
from services.core.worker_host import WorkerHost


@dataclass
class _Thread:
    alive: bool = True

    def is_alive(self) -> bool:
        return self.alive


def test_a_sink_that_ended_makes_the_running_worker_dead() -> None:
    sinks = [_Thread(), _Thread()]
    host = WorkerHost(
        Settings(), "unused:9092", cast(Any, None), CollectorRegistry(), cast(Any, sinks), print
    )
    assert host._alive()  # starting: sinks not yet judged
    host.worker_started()
    assert host._alive()
    sinks[1].alive = False
    assert not host._alive()
    host.worker_stopping()  # a stop ends the sinks on purpose
    assert host._alive()
