"""``cdp profiles get IDENT``: the profile 360 of a running platform, as a summary or as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from services.admin.client import ProfileRef

profiles_app = typer.Typer(no_args_is_help=True)
console = Console()
err = Console(stderr=True)

IDENT_HELP = (
    "email:anna@example.de, phone:+49..., customer_id:C1, anonymous_id:..., chat_handle:..., "
    "email_recipient_id:..., profile_id:p_..., or a bare value (with @: email; + or digits: phone; "
    "p_...: profile id; else customer id)"
)


@profiles_app.callback()
def profiles() -> None:
    """Unified customer profiles (profile 360) of the running platform, through its admin API."""


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(1)


@profiles_app.command("get")
def get(
    ident: Annotated[str, typer.Argument(help=IDENT_HELP, show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the profile as JSON")] = False,
    events: Annotated[int, typer.Option(min=0, help="Recent events shown in the summary")] = 10,
    url: Annotated[
        str | None, typer.Option(help="Admin API base URL (default: this machine's cdp up)")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Data directory of cdp up, for its admin token")
    ] = None,
) -> None:
    """Show one person's unified profile: identities, attributes, recent events across channels."""
    # Imported here: `cdp --help` and the other commands need neither httpx nor phonenumbers.
    from services.admin.client import (
        AdminClient,
        AdminClientError,
        admin_token,
        default_base_url,
        parse_ident,
    )
    from services.core.settings import Settings

    try:
        ref = parse_ident(ident)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    settings = Settings(data_dir=data_dir) if data_dir else Settings()
    token = admin_token(settings)
    if not token:
        raise _fail(
            f"no admin token: set CDP_ADMIN_TOKEN, or run where 'cdp up' keeps its data ({settings.data_dir})"
        )
    try:
        with AdminClient(url or default_base_url(settings), token) as client:
            profile = client.profile(ref)
    except AdminClientError as exc:
        raise _fail(_with_hint(str(exc), ref, exc.status)) from None
    if profile is None:
        raise _fail(f"no profile found for {ref}")
    if as_json:
        typer.echo(orjson.dumps(profile, option=orjson.OPT_INDENT_2).decode())
    else:
        print_summary(profile, events)


def _with_hint(message: str, ref: ProfileRef, status: int | None) -> str:
    if status == 400 and ref.guessed and ref.id_type == "phone":
        hint = f"read {ref.value!r} as a phone number; for a customer number use customer_id:{ref.value}"
        return f"{message}\n({hint})"
    return message


def print_summary(profile: dict[str, Any], max_events: int) -> None:
    console.print(
        f"[bold]Profile {profile['profile_id']}[/]  [dim]updated {profile.get('updated_at') or '-'}[/]"
    )
    if profile.get("merged_from"):
        console.print(f"[dim]merged from {', '.join(profile['merged_from'])}[/]")
    identities = Table("type", "value", title="identities", title_justify="left")
    for entry in profile.get("identities", []):
        identities.add_row(escape(entry["type"]), escape(entry["value"]))
    console.print(identities)
    for section in ("traits", "attributes"):
        values: dict[str, Any] = profile.get(section) or {}
        table = Table("name", "value", title=section, title_justify="left")
        for name, value in values.items():
            table.add_row(escape(name), _text(value))
        console.print(table if values else f"[bold]{section}[/]: none")
    _print_events(profile.get("recent_events", []), max_events)
    for section in ("consents", "segments"):
        entries = profile.get(section) or []
        console.print(f"[bold]{section}[/]: {len(entries) if entries else 'none recorded yet'}")


def _print_events(recent: list[dict[str, Any]], max_events: int) -> None:
    table = Table("time", "channel", "event", "details", title="recent events", title_justify="left")
    for event in recent[:max_events]:
        label = event.get("event") or " ".join(filter(None, (event.get("type"), event.get("name"))))
        cells = (event["timestamp"], event.get("channel", ""), label)
        table.add_row(*(escape(str(cell)) for cell in cells), _text(event.get("properties"), 70))
    console.print(table if recent else "[bold]recent events[/]: none")
    if len(recent) > max_events:
        console.print(f"[dim]{len(recent) - max_events} more (--events N or --json shows them)[/]")


def _text(value: Any, limit: int = 100) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return escape(text if len(text) <= limit else text[: limit - 1] + "…")
