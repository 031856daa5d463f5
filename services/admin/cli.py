"""``cdp profiles``: the profile 360 of a running platform (``get``, as a summary or as JSON) and
identity corrections (``split``, ``detach``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from services.admin.client import AdminClient, ProfileRef

profiles_app = typer.Typer(no_args_is_help=True)
console = Console()
err = Console(stderr=True)

IDENT_HELP = (
    "email:anna@example.de, phone:+49..., customer_id:C1, anonymous_id:..., chat_handle:..., "
    "email_recipient_id:..., profile_id:p_..., or a bare value (with @: email; + or digits: phone; "
    "p_...: profile id; else customer id)"
)
TYPED_HELP = (
    "A typed identifier: email:anna@example.de, phone:+49..., customer_id:C1, anonymous_id:..., "
    "chat_handle:..., email_recipient_id:..."
)
REASON_HELP = "Why (kept for audit with the correction), e.g. 'shared family tablet'; at most 500 characters"
UrlOption = Annotated[str | None, typer.Option(help="Admin API base URL (default: this machine's cdp up)")]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory of cdp up, for its admin token")
]


@profiles_app.callback()
def profiles() -> None:
    """Unified customer profiles (profile 360) of the running platform and identity corrections,
    through its admin API."""


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(1)


@profiles_app.command("get")
def get(
    ident: Annotated[str, typer.Argument(help=IDENT_HELP, show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the profile as JSON")] = False,
    events: Annotated[int, typer.Option(min=0, help="Recent events shown in the summary")] = 10,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Show one person's unified profile: identities, attributes, recent events across channels."""
    # Imported here: `cdp --help` and the other commands need neither httpx nor phonenumbers.
    from services.admin.client import AdminClientError, parse_ident

    try:
        ref = parse_ident(ident)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    try:
        with _client(url, data_dir) as client:
            profile = client.profile(ref)
    except AdminClientError as exc:
        raise _fail(_with_hint(str(exc), ref, exc.status)) from None
    if profile is None:
        raise _fail(f"no profile found for {ref}")
    if as_json:
        typer.echo(orjson.dumps(profile, option=orjson.OPT_INDENT_2).decode())
    else:
        print_summary(profile, events)


@profiles_app.command("split")
def split(
    ident_a: Annotated[str, typer.Argument(metavar="IDENT_A", help=TYPED_HELP, show_default=False)],
    ident_b: Annotated[
        str, typer.Argument(metavar="IDENT_B", help="The other typed identifier", show_default=False)
    ],
    reason: Annotated[str, typer.Option("--reason", help=REASON_HELP, show_default=False)],
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Unlink two identifiers that wrongly joined two people (a shared tablet, a mistyped email)."""
    body = {"a": _typed_identifier(ident_a), "b": _typed_identifier(ident_b), "reason": reason}
    answer = _correct("split", body, url, data_dir)
    console.print(f"[bold green]accepted[/]: split request {answer['requestId']}")
    console.print(f"{escape(answer['a'])} and {escape(answer['b'])} will be unlinked.")
    _print_next(answer["a"], answer["b"])


@profiles_app.command("detach")
def detach(
    ident: Annotated[str, typer.Argument(metavar="IDENT", help=TYPED_HELP, show_default=False)],
    reason: Annotated[str, typer.Option("--reason", help=REASON_HELP, show_default=False)],
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Cut one identifier (a shared device's anonymous id, say) loose from its profile."""
    body = {"identifier": _typed_identifier(ident), "reason": reason}
    answer = _correct("detach", body, url, data_dir)
    console.print(f"[bold green]accepted[/]: detach request {answer['requestId']}")
    console.print(f"{escape(answer['identifier'])} will be cut loose from its profile.")
    _print_next(answer["identifier"])


def _typed_identifier(text: str) -> dict[str, str]:
    """``{"type": ..., "value": ...}`` of a ``type:value`` IDENT; bare values are not guessed here."""
    from services.admin.client import parse_ident

    try:
        ref = parse_ident(text)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if ref.id_type is None and not ref.guessed:
        raise _fail(
            "a profile id cannot be split or detached: pass the identifiers (type:value) that wrongly "
            f"joined; 'cdp profiles get {ref.value}' lists them"
        )
    if ref.guessed or ref.id_type is None:
        raise _fail(
            f"{text.strip()!r} has no type (it would be read as {ref}): split and detach need a typed "
            "identifier, type:value, e.g. email:anna@example.de, anonymous_id:..., customer_id:C100042"
        )
    return {"type": ref.id_type.value, "value": ref.value}


def _correct(kind: str, body: dict[str, Any], url: str | None, data_dir: Path | None) -> dict[str, Any]:
    from services.admin.client import AdminClientError

    try:
        with _client(url, data_dir) as client:
            return client.correct(kind, body)
    except AdminClientError as exc:
        raise _fail(str(exc)) from None


def _print_next(*keys: str) -> None:
    console.print(
        "The identity processor applies corrections in order with the events; the profiles show the "
        "result shortly. Check with:"
    )
    for key in keys:
        console.print(f"  cdp profiles get {escape(key)}")


def _client(url: str | None, data_dir: Path | None, timeout: float = 10.0) -> AdminClient:
    """A client for the platform at ``url`` with its admin token; exits with 1 when there is none."""
    from services.admin.client import AdminClient, admin_token, default_base_url
    from services.core.settings import Settings

    settings = Settings(data_dir=data_dir) if data_dir else Settings()
    token = admin_token(settings)
    if not token:
        raise _fail(
            f"no admin token: set CDP_ADMIN_TOKEN, or run where 'cdp up' keeps its data ({settings.data_dir})"
        )
    return AdminClient(url or default_base_url(settings), token, timeout=timeout)


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
