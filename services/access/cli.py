"""``cdp tokens`` and ``cdp keys``: API tokens and per-source write keys of the running platform,
through its admin API (the admin token as for ``cdp profiles``)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from services.admin.cli import DataDirOption, UrlOption, _client

tokens_app = typer.Typer(no_args_is_help=True)
keys_app = typer.Typer(no_args_is_help=True)
console = Console()
err = Console(stderr=True)

ROLE_HELP = "admin, analyst (read-only), privacy_officer, service_agent (profile lookup only)"


@tokens_app.callback()
def tokens() -> None:
    """Admin API tokens: create (shown once), list, revoke. Each token has one role."""


@keys_app.callback()
def keys() -> None:
    """Ingest write keys per source: create (shown once), list, rotate with a grace period, revoke."""


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(1)


def _call(
    url: str | None, data_dir: Any, method: str, path: str, body: Any = None, passed: tuple[int, ...] = ()
) -> tuple[int, Any]:
    from services.admin.client import AdminClientError

    try:
        with _client(url, data_dir) as client:
            return client.request_json(method, path, body, passed=passed)
    except AdminClientError as exc:
        raise _fail(str(exc)) from None


def _refused(status: int, answer: Any) -> typer.Exit:
    message = answer.get("message", answer) if isinstance(answer, dict) else answer
    return _fail(f"the platform answered {status}: {message}")


@tokens_app.command("create")
def create_token(
    role: Annotated[str, typer.Option(help=ROLE_HELP, show_default=False)],
    name: Annotated[str, typer.Option(help="Who or what uses it, e.g. 'support-team'", show_default=False)],
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create an API token; it is printed once and cannot be shown again."""
    status, answer = _call(url, data_dir, "POST", "/api/v1/tokens", {"name": name, "role": role}, (400,))
    if status != 201:
        raise _refused(status, answer)
    err.print(f"created token {answer['token_id']} ({escape(answer['name'])}, role {answer['role']})")
    err.print("[yellow]the token is shown only now: store it safely[/]")
    typer.echo(answer["token"])


@tokens_app.command("list")
def list_tokens(url: UrlOption = None, data_dir: DataDirOption = None) -> None:
    """Every token with its role and status (never the tokens themselves)."""
    _, answer = _call(url, data_dir, "GET", "/api/v1/tokens")
    table = Table("token id", "name", "role", "status", "created", "by", "revoked")
    for token in answer["tokens"]:
        fields = ("token_id", "name", "role", "status", "created_at", "created_by", "revoked_at")
        table.add_row(*(escape(str(token.get(field) or "-")) for field in fields))
    console.print(table)


@tokens_app.command("revoke")
def revoke_token(
    token_id: Annotated[str, typer.Argument(help="The token id (cdp tokens list)", show_default=False)],
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Revoke a token: refused from the next request on."""
    status, answer = _call(
        url, data_dir, "DELETE", f"/api/v1/tokens/{quote(token_id, safe='')}", None, (404, 409)
    )
    if status != 200:
        raise _refused(status, answer)
    console.print(f"revoked token {answer['token_id']} ({escape(answer['name'])})")


@keys_app.command("create")
def create_key(
    source: Annotated[
        str, typer.Option(help="The source it is for, e.g. webshop, ios-app", show_default=False)
    ],
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create a write key for a source; it is printed once and cannot be shown again."""
    status, answer = _call(url, data_dir, "POST", "/api/v1/write-keys", {"source": source}, (400,))
    if status != 201:
        raise _refused(status, answer)
    err.print(f"created write key {answer['key_id']} for source {escape(answer['source'])}")
    err.print("[yellow]the key is shown only now: configure it in the source[/]")
    typer.echo(answer["write_key"])


@keys_app.command("list")
def list_keys(url: UrlOption = None, data_dir: DataDirOption = None) -> None:
    """Every write key with its source and status (never the keys themselves)."""
    _, answer = _call(url, data_dir, "GET", "/api/v1/write-keys")
    table = Table("key id", "source", "status", "created", "expires", "revoked", "replaced by")
    for key in answer["write_keys"]:
        fields = ("key_id", "source", "status", "created_at", "expires_at", "revoked_at", "replaced_by")
        table.add_row(*(escape(str(key.get(field) or "-")) for field in fields))
    console.print(table)


@keys_app.command("rotate")
def rotate_key(
    key_id: Annotated[str, typer.Argument(help="The key id (cdp keys list)", show_default=False)],
    grace_seconds: Annotated[
        int, typer.Option(min=0, help="How long the old key stays valid, in seconds")
    ] = 3600,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """A new key for the same source; the old one keeps working for the grace period, then expires."""
    path = f"/api/v1/write-keys/{quote(key_id, safe='')}/rotate"
    status, answer = _call(url, data_dir, "POST", path, {"grace_seconds": grace_seconds}, (400, 404, 409))
    if status != 201:
        raise _refused(status, answer)
    old = answer["replaces"]
    err.print(
        f"new write key {answer['key_id']} for source {escape(answer['source'])}; "
        f"the old key {old['key_id']} expires at {old['expires_at']}"
    )
    err.print("[yellow]the key is shown only now: configure it in the source[/]")
    typer.echo(answer["write_key"])


@keys_app.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key id (cdp keys list)", show_default=False)],
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Revoke a write key at once: ingest refuses it (401) from the next request on."""
    path = f"/api/v1/write-keys/{quote(key_id, safe='')}"
    status, answer = _call(url, data_dir, "DELETE", path, None, (404, 409))
    if status != 200:
        raise _refused(status, answer)
    console.print(f"revoked write key {answer['key_id']} (source {escape(answer['source'])})")
