"""``cdp analytics``: refresh customer value, fit the models, show the last refresh."""

from __future__ import annotations

import sys
import time
from datetime import date
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.admin.cli import DataDirOption, UrlOption, _client

analytics_app = typer.Typer(no_args_is_help=True)
console = Console()
err = Console(stderr=True)

UntilOption = Annotated[
    str | None, typer.Option(help="Observation end (YYYY-MM-DD): orders after it are left out; default today")
]
UnitOption = Annotated[str | None, typer.Option(help="Time unit of the BG/NBD fit: days or weeks")]


@analytics_app.callback()
def analytics() -> None:
    """Customer value: RFM, ABC classes, historical and predictive CLV, churn risk (BG/NBD)."""


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(1)


def _checked(until: str | None, unit: str | None) -> dict[str, str]:
    fields: dict[str, str] = {}
    if until is not None:
        try:
            fields["until"] = date.fromisoformat(until).isoformat()
        except ValueError:
            raise _fail(f"--until must be a date as YYYY-MM-DD, not {until!r}") from None
    if unit is not None:
        if unit not in ("days", "weeks"):
            raise _fail(f"--unit must be days or weeks, not {unit!r}")
        fields["unit"] = unit
    return fields


@analytics_app.command("refresh")
def refresh(
    until: UntilOption = None,
    unit: UnitOption = None,
    wait: Annotated[bool, typer.Option(help="Follow the refresh until it is done")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to follow it")] = 600.0,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Recompute customer value for every customer now, with a progress bar.

    It also runs on a schedule (CDP_ANALYTICS_REFRESH_SECONDS); segments see the new values as soon
    as it is done."""
    from services.admin.client import AdminClientError

    fields = _checked(until, unit)
    try:
        with _client(url, data_dir) as client:
            status, answer = client.post_json("/api/v1/analytics/refresh", fields, passed=(409,))
            refresh_id = answer["refresh_id"]
            if status == 409:
                err.print(f"[yellow]refresh {refresh_id} is already running; following it[/]")
            else:
                err.print(f"refresh {refresh_id} started")
            if not wait:
                return
            final = _follow(client, refresh_id, timeout)
    except AdminClientError as exc:
        raise _fail(str(exc)) from None
    if final is None:
        raise _fail(f"refresh {refresh_id} still running after {timeout:.0f} s: cdp analytics status")
    if final["status"] != "done":
        raise _fail(f"refresh {refresh_id} failed: {final.get('error')}")
    _print_summary(final)


def _follow(client: Any, refresh_id: int, timeout: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err) as progress:
        task = progress.add_task("starting", total=4)
        while time.monotonic() < deadline:
            status = client.get_json(f"/api/v1/analytics/refreshes/{refresh_id}")
            if status is not None:
                progress.update(
                    task, total=status["steps"], completed=status["step"], description=status["step_name"]
                )
                if status["status"] != "running":
                    return dict(status)
            time.sleep(0.3)
    return None


def _print_summary(status: dict[str, Any]) -> None:
    model = status.get("model") or {}
    console.print(
        f"[green]done[/]: {status['customers']:,} customers scored as of {status['until']} "
        f"(unit {status['unit']}, horizon {status['horizon_days']} days)"
    )
    table = Table("model", "parameters", "log-likelihood", "converged")
    bg, gg = model.get("bgnbd"), model.get("gamma_gamma")
    if bg:
        params = f"r {bg['r']:.4g}  alpha {bg['alpha']:.4g}  a {bg['a']:.4g}  b {bg['b']:.4g}"
        table.add_row("BG/NBD", params, f"{bg['log_likelihood']:.2f}", str(bg["converged"]))
    if gg:
        params = f"p {gg['p']:.4g}  q {gg['q']:.4g}  gamma {gg['gamma']:.4g}"
        table.add_row("Gamma-Gamma", params, f"{gg['log_likelihood']:.2f}", str(gg["converged"]))
    if bg or gg:
        console.print(table)
    for problem in model.get("problems") or []:
        err.print(f"[yellow]note:[/] {escape(problem)}")
    console.print("Query it: SELECT * FROM customer_value_latest (docs/bi/customer_value.md)")


@analytics_app.command("fit")
def fit(
    until: Annotated[str, typer.Option(help="Observation end (YYYY-MM-DD): orders after it are left out")],
    unit: Annotated[str, typer.Option(help="Time unit of the fit: days or weeks")] = "days",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer")] = 300.0,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Fit BG/NBD and Gamma-Gamma on the orders up to --until; print the parameters as JSON.

    The JSON holds r, alpha, a, b (BG/NBD), p, q, gamma (Gamma-Gamma), their log-likelihoods and
    convergence. Nothing is stored."""
    from services.admin.client import AdminClientError

    fields = _checked(until, unit)
    try:
        with _client(url, data_dir, timeout=timeout) as client:
            answer = client.get_json("/api/v1/analytics/fit", fields)
    except AdminClientError as exc:
        raise _fail(str(exc)) from None
    sys.stdout.write(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode() + "\n")
    if not answer.get("converged"):
        err.print("[yellow]the models did not both converge: see converged and problems above[/]")


@analytics_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON")] = False,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """The last customer value refresh: when, how far, the fitted models."""
    from services.admin.client import AdminClientError

    try:
        with _client(url, data_dir) as client:
            answer = client.get_json("/api/v1/analytics/refreshes/latest")
    except AdminClientError as exc:
        raise _fail(str(exc)) from None
    if answer is None:
        raise _fail("no customer value refresh yet: cdp analytics refresh")
    if as_json:
        sys.stdout.write(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    console.print(
        f"refresh {answer['refresh_id']} ({answer['trigger']}): {answer['status']}, "
        f"step {answer['step']}/{answer['steps']} {answer['step_name']}, started {answer['started_at']}"
    )
    if answer["status"] == "done":
        _print_summary(answer)
    elif answer.get("error"):
        err.print(f"[red]{escape(answer['error'])}[/]")
