"""``cdp privacy consents IDENT`` and ``cdp privacy consent IDENT --purpose ... --status ...``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from services.admin.cli import DataDirOption, UrlOption, _client
from services.privacy.request_cli import IdentArgument, _fail, _identifier

console = Console()
err = Console(stderr=True)

CONSENTS_PATH = "/api/v1/privacy/consents"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return escape(str(value))


def consents(ident: IdentArgument, url: UrlOption = None, data_dir: DataDirOption = None) -> None:
    """One person's consent per purpose now, and every consent decision recorded (the history)."""
    from services.admin.client import AdminClientError

    id_type, value = _identifier(ident)
    try:
        with _client(url, data_dir) as client:
            answer = client.get_json(CONSENTS_PATH, {id_type: value})
    except AdminClientError as exc:
        raise _fail(str(exc)) from None
    if answer is None:
        raise _fail(f"no profile and no consent record has the {id_type} {value!r}")
    console.print(f"[bold]{escape(answer['identifier'])}[/] (profile {escape(str(answer['profile_id']))})")
    current: dict[str, dict[str, Any]] = answer["current"]
    table = Table("purpose", "status", "double opt-in", "legal text", "source", "since", title="current",
                  title_justify="left")  # fmt: skip
    for purpose in [*answer["purposes"], *sorted(set(current) - set(answer["purposes"]))]:
        state = current.get(purpose)
        if state is None:
            table.add_row(escape(purpose), "no decision", "-", "-", "-", "-")
            continue
        table.add_row(
            escape(purpose), _cell(state["status"]), _cell(state["double_opt_in"]),
            _cell(state["legal_text_version"]), _cell(state["source"]), _cell(state["at"]),
        )  # fmt: skip
    console.print(table)
    history = Table("time", "purpose", "status", "double opt-in", "legal text", "source", "event", "reason",
                    title="history", title_justify="left")  # fmt: skip
    for row in answer["history"]:
        names = ("occurred_at", "purpose", "status", "double_opt_in", "legal_text_version", "source", "event",
                 "reason")  # fmt: skip
        history.add_row(*(_cell(row[name]) for name in names))
    console.print(history if answer["history"] else "[bold]history[/]: none recorded yet")


def consent(
    ident: IdentArgument,
    purpose: Annotated[
        str, typer.Option(help="The purpose: one of CDP_CONSENT_PURPOSES, e.g. email_marketing")
    ],
    status: Annotated[str, typer.Option(help="granted, denied or withdrawn")],
    legal_text_version: Annotated[
        str | None, typer.Option(help="Version of the consent text the person saw (required to grant)")
    ] = None,
    double_opt_in: Annotated[
        bool, typer.Option("--double-opt-in", help="The grant is confirmed by double opt-in (email)")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why, e.g. 'phone call of 2026-11-20'")] = None,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Record a person's consent decision for one purpose (source: api)."""
    from services.admin.client import AdminClientError

    id_type, value = _identifier(ident)
    body: dict[str, Any] = {
        "identifier": {"type": id_type, "value": value},
        "purpose": purpose,
        "status": status,
    }
    if legal_text_version is not None:
        body["legal_text_version"] = legal_text_version
    if double_opt_in:
        body["double_opt_in"] = True
    if reason is not None:
        body["reason"] = reason
    try:
        with _client(url, data_dir) as client:
            code, answer = client.post_json(CONSENTS_PATH, body, passed=(400, 409))
    except AdminClientError as exc:
        raise _fail(str(exc)) from None
    if code != 202:
        raise _fail(str(answer.get("message", answer)))
    console.print(
        f"[bold green]recorded[/]: {escape(answer['purpose'])} {escape(answer['consent'])} for "
        f"{escape(answer['identifier'])} (event {escape(answer['messageId'])})"
    )
    console.print(f"see it with: cdp privacy consents {escape(answer['identifier'])}")
