"""``cdp demo``: wait for the server, replay the history with a live display, then optional live traffic."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from services.demo.generator import DemoConfig, estimate_total, generate_history, generate_live
from services.demo.sender import DemoProgress, DemoStats, send

READY_TIMEOUT = 60.0
_CHANNELS = ("shop", "chat", "email")


class ServerNotReadyError(RuntimeError):
    """``GET /readyz`` did not answer 200 in time."""


def wait_until_ready(base_url: str, console: Console, timeout: float = READY_TIMEOUT) -> None:
    url = f"{base_url}/readyz"
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    with console.status(f"Waiting for {url} ..."):
        while True:
            try:
                response = httpx.get(url, timeout=2.0)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            if time.monotonic() >= deadline:
                raise ServerNotReadyError(
                    f"{url} did not answer 200 within {timeout:.0f} s (last answer: {last}). "
                    "Is `cdp up` running, and is the base URL right?"
                )
            time.sleep(0.5)


def _wall_clock() -> Iterator[datetime]:
    while True:
        yield datetime.now(UTC)


class _DemoProgress(Progress):
    """A progress bar with a second line: outcomes, channels and what the platform reports."""

    def __init__(self, console: Console, status: Callable[[], str]) -> None:
        self._status = status  # before Progress.__init__, which may already render
        super().__init__(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} events/s"),
            TimeElapsedColumn(),
            console=console,
        )

    def get_renderables(self) -> Iterator[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        yield Text.from_markup(self._status())


def _outcome(p: DemoProgress) -> str:
    channels = " ".join(f"{c} {p.per_channel.get(c, 0):,}" for c in _CHANNELS)
    return (
        f"  [green]{p.accepted:,} accepted[/] [red]{p.rejected:,} rejected[/] "
        f"[yellow]{p.retries:,} retries[/] {p.errors:,} errors · {channels}"
    )


def _send_with_display(
    console: Console,
    label: str,
    messages: Iterable[dict[str, Any]],
    expected: int | None,
    platform_status: Callable[[], str] | None = None,
    **send_options: Any,
) -> DemoStats:
    latest = ["  starting ..."]

    def status() -> str:
        extra = f" · {platform_status()}" if platform_status else ""
        return latest[0] + extra

    with _DemoProgress(console, status) as bar:
        task: TaskID = bar.add_task(label, total=expected, rate="0")

        def show(p: DemoProgress) -> None:
            total = max(expected, p.sent) if expected is not None else None
            latest[0] = _outcome(p)
            bar.update(task, completed=p.sent, total=total, rate=f"{p.events_per_second:,.0f}")

        stats = send(messages, progress=show, **send_options)
        bar.update(task, total=stats.sent if expected is not None else None, completed=stats.sent)
    return stats


def _summary(stats: DemoStats) -> Table:
    table = Table(title="cdp demo", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("events sent", f"{stats.sent:,}")
    table.add_row("accepted", f"[green]{stats.accepted:,}[/]")
    table.add_row("rejected", f"[red]{stats.rejected:,}[/]" if stats.rejected else "0")
    table.add_row("retries", f"{stats.retries:,}")
    table.add_row("failed requests", f"{stats.failed_requests:,}")
    table.add_row("elapsed", f"{stats.elapsed:,.1f} s")
    table.add_row("events/s", f"{stats.events_per_second:,.0f}")
    for channel, count in sorted(stats.per_channel.items()):
        table.add_row(f"  {channel}", f"{count:,}")
    return table


def run_demo(
    base_url: str,
    write_key: str,
    customers: int = 1000,
    days: int = 90,
    seed: int = 42,
    live: bool = False,
    live_rate: float = 50.0,
    batch_size: int = 100,
    console: Console | None = None,
    end: datetime | None = None,
    should_stop: Callable[[], bool] | None = None,
    platform_status: Callable[[], str] | None = None,
) -> DemoStats:
    """Replay ``days`` of history of ``customers`` people, then (``live``) keep the shop busy until Ctrl-C.

    The history ends at ``end``, by default today 00:00 UTC: recent enough for recency segments,
    and a rerun on the same day sends the same messageIds, which the platform de-duplicates.
    """
    console = console or Console()
    base_url = base_url.rstrip("/")
    wait_until_ready(base_url, console)
    if end is None:
        end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    config = DemoConfig(customers, days, seed, end)
    with console.status("Estimating the history's size ..."):
        expected = estimate_total(config)
    console.print(
        f"Replaying {days} days of a shop with {customers:,} customers (seed {seed}): "
        f"about {expected:,} events."
    )
    options: dict[str, Any] = {
        "base_url": base_url, "write_key": write_key, "batch_size": batch_size, "should_stop": should_stop,
    }  # fmt: skip
    stats = _send_with_display(
        console, "History", generate_history(config), expected, platform_status, **options
    )
    if live and not stats.interrupted:
        console.print(f"Live traffic at {live_rate:g} events/s (the shop runs fast-forward). Ctrl-C stops.")
        stream = generate_live(config, datetime.now(UTC), _wall_clock())
        live_stats = _send_with_display(
            console, "Live", stream, None, platform_status, rate=live_rate, **options
        )
        stats = stats.merged(live_stats)
    if stats.interrupted:
        console.print("[yellow]Stopped; every batch in flight was delivered first.[/]")
    console.print(_summary(stats))
    for error in stats.errors:
        console.print(f"[red]error:[/] {error}")
    return stats
