"""``cdp segments``: apply definitions, list segments, show members, through the admin API."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.admin.cli import DataDirOption, UrlOption, _client

if TYPE_CHECKING:
    from services.admin.client import AdminClient

segments_app = typer.Typer(no_args_is_help=True)
console = Console()
err = Console(stderr=True)


@segments_app.callback()
def segments() -> None:
    """Live segments: apply definitions (YAML/JSON), list them with their sizes, show members."""


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(1)


@segments_app.command("apply")
def apply(
    file: Annotated[
        str, typer.Argument(help="A YAML or JSON file with one definition or a list ('-': stdin)")
    ],
    wait: Annotated[
        bool, typer.Option(help="Wait for the new or changed segments to be evaluated over every profile")
    ] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the backfill")] = 300.0,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create or change segments. A changed definition gets the next version and is evaluated over
    every existing profile (backfill); an unchanged one is left as it is."""
    from services.admin.client import AdminClientError
    from services.segments.domain.definition import DefinitionError, load_documents

    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror}") from None
    try:
        # the platform's checks before any network (the platform also checks the consent purposes)
        load_documents(text, file, purposes=None)
    except DefinitionError as exc:
        raise _fail(f"{file} is not a valid segment definition:\n  " + "\n  ".join(exc.problems)) from None
    try:
        with _client(url, data_dir) as client:
            answer = client.apply_segments(text)
            table = Table("segment", "version", "result")
            for item in answer["applied"]:
                table.add_row(
                    item["id"], str(item["version"] or "-"), "changed" if item["changed"] else "unchanged"
                )
            console.print(table)
            changed = {item["id"]: item["version"] for item in answer["applied"] if item["changed"]}
            if changed and wait:
                _wait_for_backfill(client, changed, timeout)
    except AdminClientError as exc:
        raise _fail(str(exc)) from None


def _wait_for_backfill(client: AdminClient, versions: dict[str, int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        tasks = {sid: progress.add_task(f"backfill {sid} v{v}", total=None) for sid, v in versions.items()}
        pending = set(versions)
        while pending:
            if time.monotonic() > deadline:
                err.print(
                    f"[yellow]still evaluating {', '.join(sorted(pending))} after {timeout:.0f} s; "
                    "check with: cdp segments list[/]"
                )
                return
            for sid in sorted(pending):
                segment = client.get_json(f"/api/v1/segments/{sid}")
                backfill = (segment or {}).get("backfill")
                if segment and segment["version"] == versions[sid] and backfill:
                    progress.update(tasks[sid], total=max(backfill["total"], 1),
                                    completed=backfill["evaluated"] if backfill["total"] else 1)  # fmt: skip
                    if backfill["done"]:
                        pending.discard(sid)
                        progress.update(
                            tasks[sid], description=f"{sid} v{versions[sid]}: {backfill['members']} members"
                        )
            time.sleep(0.5)


def _get(path: str, params: dict[str, str], url: str | None, data_dir: Path | None) -> Any:
    """GET an admin API path (None for 404); exits with the client's message on any other error."""
    from services.admin.client import AdminClientError

    try:
        with _client(url, data_dir) as client:
            return client.get_json(path, params)
    except AdminClientError as exc:
        raise _fail(str(exc)) from None


@segments_app.command("list")
def list_segments(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON")] = False,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Every segment: size, activated (consent-gated) size, version and last change."""
    answer = _get("/api/v1/segments", {}, url, data_dir) or {"segments": []}
    segments: list[dict[str, Any]] = answer["segments"]
    if as_json:
        sys.stdout.write(orjson.dumps(segments, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    table = Table("id", "name", "members", "activated", "version", "last change")
    for s in segments:
        activated = "-" if s["activation"] is None else str(s["activated"])
        table.add_row(s["id"], s["name"], str(s["members"]), activated, str(s["version"]), s["updated_at"])
    console.print(table)
    if not segments:
        console.print("No segments yet: cdp segments apply FILE")


@segments_app.command("members")
def members(
    segment_id: Annotated[
        str, typer.Argument(help="The segment id (see cdp segments list)", show_default=False)
    ],
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many profile ids")] = 100,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many (paging)")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON")] = False,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Current members of a segment (profile ids; cdp profiles get profile_id:ID shows one)."""
    params = {"limit": str(limit), "offset": str(offset)}
    answer = _get(f"/api/v1/segments/{segment_id}/members", params, url, data_dir)
    if answer is None:
        raise _fail(f"no segment {segment_id!r}: cdp segments list shows them")
    if as_json:
        sys.stdout.write(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    for profile_id in answer["profile_ids"]:
        console.print(profile_id)
    shown = len(answer["profile_ids"])
    err.print(f"{shown} of {answer['members']} members shown (offset {offset})")


@segments_app.command("watch")
def watch(
    segment_id: Annotated[
        str | None,
        typer.Argument(help="A segment id: its activation feed cdp.segment.<id>; none: every segment"),
    ] = None,
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest record the broker keeps")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Print entries and exits as they happen, one JSON record per line (like kcat -C -t TOPIC).

    Reads cdp.segment.<id> (the consent-gated activation feed) or, without an id,
    cdp.segments.membership. Ctrl-C stops."""
    import uuid

    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

    from schemas import topics
    from services.core.kafka.producer import KAFKA_LOG
    from services.core.settings import Settings
    from services.identity.process import bootstrap_of

    settings = Settings(data_dir=data_dir) if data_dir else Settings()
    topic = topics.segment_feed(segment_id) if segment_id else topics.SEGMENT_MEMBERSHIP
    bootstrap = bootstrap_of(settings)
    config = {"bootstrap.servers": bootstrap, "group.id": f"cdp-watch-{uuid.uuid4()}",
              "enable.auto.commit": False, "logger": KAFKA_LOG}  # fmt: skip
    consumer = Consumer(config)
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise _fail(f"no topic {topic} on {bootstrap}: is 'cdp up' running, and does the segment exist?")
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in metadata.partitions])
        err.print(f"watching {topic} on {bootstrap} (Ctrl-C stops)")
        while True:
            for message in consumer.consume(1000, 0.5):
                value = message.value()
                if message.error() is None and value:
                    sys.stdout.write(value.decode() + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        if isinstance(exc, typer.Exit):
            raise
        raise _fail(f"cannot read {topic} from {bootstrap}: {exc}") from None
    finally:
        consumer.close()
