"""Customer value refreshes: summarise in the warehouse, fit in Python, score in the warehouse.

``fit_models`` answers ``cdp analytics fit`` and changes nothing. ``run_refresh`` writes one
``customer_value`` partition and records its progress in ``analytics_refreshes``; readers
(``customer_value_latest``, the segment processor, the profile 360) switch to it when it is done,
and older partitions are dropped. ``RefreshRunner`` lets one refresh at a time run in the background
of the process serving the admin API, on demand and on a schedule.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import orjson

from services.analytics import sql
from services.analytics.domain import bgnbd, gamma_gamma
from services.analytics.domain.value import MIN_REPEAT_CUSTOMERS, FittedModels, ValueOptions
from services.core.failure_log import FailureLog
from services.core.log_hygiene import error_summary
from services.core.metrics import AnalyticsMetrics
from services.core.warehouse.port import Warehouse, WarehouseError

log = logging.getLogger(__name__)

STEPS = ("summarising orders", "fitting the models", "scoring customers", "publishing")
KEEP_PARTITIONS = 2  # the current refresh and the one before (a reader may still be on it)

Progress = Callable[[int, str], None]


class RefreshBusyError(RuntimeError):
    """Another refresh is running."""


def _fit(warehouse: Warehouse, work: str, options: ValueOptions) -> FittedModels:
    rows = warehouse.query(sql.fit_input_sql(work))
    problems: list[str] = []
    days = options.unit_days
    x = np.array([float(r[0]) for r in rows])
    t_x = np.array([float(r[1]) / days for r in rows])
    big_t = np.array([float(r[2]) / days for r in rows])
    weights = np.array([float(r[3]) for r in rows])
    customers = int(weights.sum())
    repeaters = int(weights[x > 0].sum())
    frequency_model = None
    if repeaters < MIN_REPEAT_CUSTOMERS:
        problems.append(
            f"BG/NBD not fitted: {repeaters} customers with repeat purchases, at least "
            f"{MIN_REPEAT_CUSTOMERS} needed"
        )
    else:
        frequency_model = bgnbd.fit(x, t_x, big_t, weights)
    spend_rows = warehouse.query(sql.spend_input_sql(work))
    spend_model = None
    spenders = sum(int(r[2]) for r in spend_rows)
    if spenders < MIN_REPEAT_CUSTOMERS:
        problems.append(
            f"Gamma-Gamma not fitted: {spenders} customers with repeat purchases of positive value, at least "
            f"{MIN_REPEAT_CUSTOMERS} needed"
        )
    else:
        spend_model = gamma_gamma.fit(
            [float(r[0]) for r in spend_rows],
            [float(r[1]) for r in spend_rows],
            [float(r[2]) for r in spend_rows],
        )
    if frequency_model is not None and not frequency_model.converged:
        problems.append(f"BG/NBD did not converge ({frequency_model.message}): no predictions this time")
    if spend_model is not None and not spend_model.converged:
        problems.append(
            f"Gamma-Gamma did not converge ({spend_model.message}): expected order values are own averages"
        )
    elif spend_model is not None and spend_model.params.q <= 1:
        problems.append("Gamma-Gamma q <= 1: no finite mean spend; expected order values are own averages")
    return FittedModels(
        options.until, options.unit, customers, repeaters, frequency_model, spend_model, tuple(problems)
    )


def fit_models(warehouse: Warehouse, options: ValueOptions) -> FittedModels:
    """Fit BG/NBD and Gamma-Gamma on the orders up to ``options.until`` (nothing is stored)."""
    work = sql.work_table(warehouse.database, _new_id())
    try:
        warehouse.command(sql.summary_sql(warehouse.database, work, options))
        return _fit(warehouse, work, options)
    finally:
        warehouse.command(f"DROP TABLE IF EXISTS {work}")


@dataclass(slots=True)
class _Record:
    refresh_id: int
    trigger: str
    options: ValueOptions
    started: datetime
    step: int = 0
    status: str = "running"
    customers: int = 0
    model: dict[str, Any] | None = None
    error: str = ""

    def row(self) -> bytes:
        return orjson.dumps({
            "refresh_id": self.refresh_id,
            "started_at": _stamp(self.started),
            "updated_at": _stamp(datetime.now(UTC)),
            "status": self.status,
            "step": self.step,
            "steps": len(STEPS),
            "step_name": STEPS[min(self.step, len(STEPS) - 1)] if self.status == "running" else self.status,
            "trigger": self.trigger,
            "until": self.options.until.isoformat(),
            "unit": self.options.unit,
            "horizon_days": self.options.horizon_days,
            "customers": self.customers,
            "model": orjson.dumps(self.model).decode() if self.model is not None else "",
            "error": self.error,
        })  # fmt: skip


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


_last_id = 0
_id_lock = threading.Lock()


def _new_id() -> int:
    """Milliseconds since the epoch, strictly increasing within the process."""
    global _last_id
    with _id_lock:
        _last_id = max(_last_id + 1, int(time.time() * 1000))
        return _last_id


def _save(warehouse: Warehouse, record: _Record) -> None:
    warehouse.insert_json_rows("analytics_refreshes", record.row())


def run_refresh(
    warehouse: Warehouse,
    options: ValueOptions,
    *,
    trigger: str = "api",
    refresh_id: int | None = None,
    on_progress: Progress = lambda _step, _name: None,
) -> dict[str, Any]:
    """One whole refresh; returns its status document. A failure is recorded and raised."""
    record = _Record(refresh_id or _new_id(), trigger, options, datetime.now(UTC))
    db = warehouse.database
    work = sql.work_table(db, record.refresh_id)

    def step(index: int) -> None:
        record.step = index
        _save(warehouse, record)
        on_progress(index, STEPS[index])

    try:
        step(0)
        warehouse.command(sql.summary_sql(db, work, options))
        step(1)
        models = _fit(warehouse, work, options)
        record.customers = models.customers
        record.model = models.as_json()
        step(2)
        frequency = models.bgnbd.params if models.bgnbd is not None and models.bgnbd.converged else None
        spend = models.gamma_gamma
        spend_params = spend.params if spend is not None and spend.converged else None
        warehouse.command(sql.score_sql(db, work, record.refresh_id, options, frequency, spend_params))
        step(3)
        record.status, record.step = "done", len(STEPS)
        _save(warehouse, record)
        on_progress(len(STEPS), "done")
        _drop_old_partitions(warehouse, record.refresh_id)
    except Exception as exc:
        record.status, record.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
        try:
            _save(warehouse, record)
            warehouse.command(f"ALTER TABLE {db}.customer_value DROP PARTITION {record.refresh_id}")
        except Exception:
            log.warning("analytics: could not record the failed refresh %s", record.refresh_id, exc_info=True)
        raise
    finally:
        try:
            warehouse.command(f"DROP TABLE IF EXISTS {work}")
        except Exception:
            log.warning("analytics: could not drop %s", work, exc_info=True)
    return refresh_status(warehouse, record.refresh_id) or {}


def _drop_old_partitions(warehouse: Warehouse, current: int) -> None:
    db = warehouse.database
    done = {
        int(r[0])
        for r in warehouse.query(
            f"SELECT refresh_id FROM {db}.analytics_refreshes FINAL WHERE status = 'done'"
        )
    }
    present = sorted(
        int(r[0]) for r in warehouse.query(f"SELECT DISTINCT refresh_id FROM {db}.customer_value")
    )
    keep = set(sorted(done & set(present))[-KEEP_PARTITIONS:]) | {current}
    for refresh_id in present:
        if refresh_id not in keep:
            warehouse.command(f"ALTER TABLE {db}.customer_value DROP PARTITION {refresh_id}")


def refresh_status(warehouse: Warehouse, refresh_id: int | None = None) -> dict[str, Any] | None:
    """One refresh's status document (the latest one without ``refresh_id``), or None."""
    where = "" if refresh_id is None else f"WHERE refresh_id = {int(refresh_id)}"
    table = f"{warehouse.database}.analytics_refreshes"
    rows = warehouse.query_dicts(f"SELECT * FROM {table} FINAL {where} ORDER BY refresh_id DESC LIMIT 1")
    if not rows:
        return None
    row = rows[0]
    return {
        "refresh_id": int(row["refresh_id"]),
        "status": row["status"],
        "step": int(row["step"]),
        "steps": int(row["steps"]),
        "step_name": row["step_name"],
        "trigger": row["trigger"],
        "until": row["until"].isoformat() if isinstance(row["until"], date) else str(row["until"]),
        "unit": row["unit"],
        "horizon_days": int(row["horizon_days"]),
        "customers": int(row["customers"]),
        "started_at": row["started_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        "model": orjson.loads(row["model"]) if row["model"] else None,
        "error": row["error"] or None,
    }


def interrupt_running(warehouse: Warehouse, older_than: timedelta | None = None) -> list[int]:
    """Mark refreshes a stopped process left running as failed and drop what they wrote.

    ``older_than``: only those whose last step is longer ago than that (several replicas share the
    table: a refresh with a recent step may be running in another replica)."""
    db = warehouse.database
    stale = "" if older_than is None else " AND updated_at < now64(3) - toIntervalSecond({stale:UInt32})"
    rows = warehouse.query_dicts(
        f"SELECT * FROM {db}.analytics_refreshes FINAL WHERE status = 'running'{stale}",
        {} if older_than is None else {"stale": int(older_than.total_seconds())},
    )
    for row in rows:
        refresh_id = int(row["refresh_id"])
        warehouse.command(f"DROP TABLE IF EXISTS {sql.work_table(db, refresh_id)}")
        warehouse.command(f"ALTER TABLE {db}.customer_value DROP PARTITION {refresh_id}")
        row.update(status="failed", error="interrupted: the process running it stopped",
                   updated_at=_stamp(datetime.now(UTC)), started_at=_stamp(row["started_at"]),
                   until=row["until"].isoformat())  # fmt: skip
        warehouse.insert_json_rows("analytics_refreshes", orjson.dumps(row))
    return [int(r["refresh_id"]) for r in rows]


class RefreshRunner:
    """Runs one refresh at a time in a background thread (API requests and the schedule)."""

    def __init__(
        self,
        warehouse: Warehouse,
        defaults: Callable[[date], ValueOptions],
        metrics: AnalyticsMetrics | None = None,
    ) -> None:
        self._warehouse = warehouse
        self._defaults = defaults
        self._metrics = metrics
        self._lock = threading.Lock()
        self._current: int | None = None
        self._threads: list[threading.Thread] = []

    @property
    def warehouse(self) -> Warehouse:
        return self._warehouse

    @property
    def running(self) -> int | None:
        return self._current

    def options(self, until: date | None = None, unit: str | None = None) -> ValueOptions:
        base = self._defaults(until or datetime.now(UTC).date())
        return base if unit is None else replace(base, unit=unit)

    def start(self, options: ValueOptions, trigger: str) -> int:
        """Start a refresh in the background and return its id, or RefreshBusyError."""
        if not self._lock.acquire(blocking=False):
            raise RefreshBusyError(f"refresh {self._current} is running")
        refresh_id = _new_id()
        self._current = refresh_id
        thread = threading.Thread(
            target=self._run, args=(options, trigger, refresh_id), name=f"refresh-{refresh_id}", daemon=True
        )
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        try:
            _save(self._warehouse, _Record(refresh_id, trigger, options, datetime.now(UTC)))
            thread.start()
        except Exception:
            self._current = None
            self._lock.release()
            raise
        return refresh_id

    def _run(self, options: ValueOptions, trigger: str, refresh_id: int) -> None:
        started = time.monotonic()
        outcome = "failed"
        try:
            status = run_refresh(self._warehouse, options, trigger=trigger, refresh_id=refresh_id)
            outcome = "done"
            if self._metrics is not None:
                self._metrics.customers.set(status.get("customers", 0))
                self._metrics.last_success.set(time.time())
        except Exception:
            log.exception("analytics: refresh %s failed", refresh_id)
        finally:
            if self._metrics is not None:
                self._metrics.refreshes.labels(outcome, trigger).inc()
                self._metrics.refresh_duration.set(time.monotonic() - started)
            self._current = None
            self._lock.release()

    def join(self, timeout: float | None = None) -> None:
        for thread in list(self._threads):
            thread.join(timeout)

    def schedule(self, every: float, stop: threading.Event, first_check: float = 30.0) -> threading.Thread:
        """Refresh whenever the last finished refresh is ``every`` seconds old (or there is none),
        checking after ``first_check`` seconds and then every ``min(every, 60)`` seconds."""

        def loop() -> None:
            self._report_schedule(every)
            wait = first_check
            failures = FailureLog(log, "analytics: checking the refresh schedule", "trying again later")
            while not stop.wait(wait):
                wait = min(every, 60.0)
                if self.running is not None:
                    continue
                try:
                    due = self._due(every)
                except WarehouseError as exc:
                    failures.failed(error_summary(exc))
                    continue
                failures.succeeded()
                try:
                    if due:
                        self.start(self.options(), "schedule")
                except RefreshBusyError:
                    continue
                except Exception:
                    log.warning("analytics: cannot start the scheduled refresh", exc_info=True)

        thread = threading.Thread(target=loop, name="analytics-schedule", daemon=True)
        thread.start()
        return thread

    def _report_schedule(self, every: float) -> None:
        """The schedule's interval, and when the last refresh succeeded (also before this process)."""
        if self._metrics is None:
            return
        self._metrics.refresh_interval.set(every)
        try:
            rows = self._warehouse.query(
                f"SELECT max(updated_at) FROM {self._warehouse.database}.analytics_refreshes FINAL"
                " WHERE status = 'done'"
            )
        except Exception:
            log.debug("analytics: cannot read when the last refresh succeeded", exc_info=True)
            return
        last = rows[0][0] if rows else None
        if last is not None and last.year >= 2000:  # the warehouse holds this process's refreshes too
            self._metrics.last_success.set(last.timestamp())

    def _due(self, every: float) -> bool:
        rows = self._warehouse.query(
            f"SELECT max(started_at) FROM {self._warehouse.database}.analytics_refreshes FINAL"
            " WHERE status = 'done' OR (status = 'failed' AND trigger = 'schedule')"
        )
        last = rows[0][0] if rows else None
        if last is None or last.year < 2000:
            return True
        return bool((datetime.now(UTC) - last).total_seconds() >= every)
