"""``cdp privacy export|erase|requests``: data-subject requests against a running platform."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.admin.cli import DataDirOption, UrlOption, _client
from services.admin.client import AdminClientError, parse_ident

console = Console()
err = Console(stderr=True)

ERASE_STEPS = ("queued", "resolve", "suppress", "processors", "warehouse", "topics", "verify", "done")
IdentArgument = Annotated[
    str, typer.Argument(help="The person: email:anna@example.de, phone:+49..., customer_id:C1, ...")
]


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(1)


def _identifier(ident: str) -> tuple[str, str]:
    try:
        ref = parse_ident(ident)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if ref.id_type is None:
        raise _fail("give an identifier of the person (email:..., customer_id:...), not a profile id")
    return ref.id_type.value, ref.value


def export(
    ident: IdentArgument,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the JSON to this file (default: stdout)")
    ] = None,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Everything held about one person as JSON (Art. 15): profile, identities, events, consents,
    segment memberships, merge history, orders, ..."""
    id_type, value = _identifier(ident)
    try:
        with _client(url, data_dir) as client:
            document = client.get_json("/api/v1/privacy/export", {id_type: value})
    except AdminClientError as exc:
        raise _fail(str(exc)) from None
    if document is None:
        raise _fail(f"nothing is held about {id_type}:{value}")
    body = orjson.dumps(document, option=orjson.OPT_INDENT_2)
    if output is None:
        sys.stdout.buffer.write(body + b"\n")
        return
    output.write_bytes(body + b"\n")
    counts = ", ".join(
        f"{len(rows)} {name}" for name, rows in document.items() if isinstance(rows, list) and rows
    )
    err.print(f"wrote {output} (request {document.get('request_id')}): {counts or 'no rows'}")


def erase(
    ident: IdentArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    wait: Annotated[bool, typer.Option(help="Follow the erasure until it is done")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to follow it")] = 300.0,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Erase one person everywhere (Art. 17): every table, the processors' state, tombstones on the
    compacted topics; their identifiers go on the suppression list so later events are dropped."""
    id_type, value = _identifier(ident)
    if not yes and not typer.confirm(
        f"Erase {id_type}:{value} and everything linked to it? This cannot be undone"
    ):
        raise typer.Exit(1)
    try:
        with _client(url, data_dir) as client:
            _, answer = client.post_json("/api/v1/privacy/erasures", {"identifier": f"{id_type}:{value}"})
            request_id = answer["request_id"]
            err.print(f"erasure {request_id} queued")
            if not wait:
                console.print(request_id)
                return
            final = _follow(client, request_id, timeout)
    except AdminClientError as exc:
        raise _fail(str(exc)) from None
    _report(final)
    if final.get("status") != "completed":
        raise typer.Exit(1)


def _follow(client: Any, request_id: str, timeout: float) -> dict[str, Any]:
    path = f"/api/v1/privacy/erasures/{request_id}"
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {"status": "running", "step": "queued"}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[step]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("erasing", total=len(ERASE_STEPS) - 1, step="queued")
        while time.monotonic() < deadline:
            found = client.get_json(path)
            if found is not None:
                state = found
                step = str(state.get("step", ""))
                done = ERASE_STEPS.index(step) if step in ERASE_STEPS else 0
                progress.update(task, completed=done, step=step)
                if state.get("status") in ("completed", "failed"):
                    return state
            time.sleep(0.3)
    raise AdminClientError(f"erasure {request_id} is still running after {timeout:.0f} s; check it later")


def _report(state: dict[str, Any]) -> None:
    if state.get("status") == "completed":
        err.print(
            f"[green]erased[/] in {state.get('duration_seconds') or 0:.1f} s: "
            f"{state.get('profiles', 0)} profile id(s), {state.get('identifiers', 0)} identifiers suppressed"
        )
    else:
        err.print(f"[bold red]erasure failed:[/] {escape(str(state.get('error', '')))}")
    counts = state.get("counts") or {}
    if counts:
        table = Table("table", "rows removed")
        for name, n in sorted(counts.items()):
            table.add_row(name, f"{n:,}")
        err.print(table)


def requests(
    kind: Annotated[str | None, typer.Option(help="export or erase")] = None,
    limit: Annotated[int, typer.Option(help="Newest first, at most this many")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Every field as JSON lines")] = False,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """The privacy audit: who asked for which export or erasure, when, and the outcome."""
    params = {"limit": str(limit), **({"kind": kind} if kind else {})}
    try:
        with _client(url, data_dir) as client:
            answer = client.get_json("/api/v1/privacy/requests", params)
    except AdminClientError as exc:
        raise _fail(str(exc)) from None
    rows = (answer or {}).get("requests", [])
    if as_json:
        for row in rows:
            sys.stdout.buffer.write(orjson.dumps(row) + b"\n")
        return
    table = Table("requested at (UTC)", "kind", "status", "by", "profiles", "seconds", "request id")
    for row in rows:
        seconds = row.get("duration_seconds")
        table.add_row(
            str(row["requested_at"])[:19].replace("T", " "), row["kind"], row["status"],
            f"{row['requested_by']} ({row['requested_role']})", str(row["profiles"]),
            "" if seconds is None else f"{seconds:.1f}", row["request_id"][:12],
        )  # fmt: skip
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``export``, ``erase`` and ``requests`` to the ``cdp privacy`` group."""
    app.command("export")(export)
    app.command("erase")(erase)
    app.command("requests")(requests)
