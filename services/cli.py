"""The ``cdp`` command line."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from services.core.settings import Settings

app = typer.Typer(
    help="Customer data platform for online shops: events in, unified profiles and live segments out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
console = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory of the embedded warehouse [env CDP_DATA_DIR]"),
]


from services.access.cli import keys_app, tokens_app  # noqa: E402
from services.admin.cli import profiles_app  # noqa: E402  (after `app`: its help lists it last)
from services.analytics.cli import analytics_app  # noqa: E402
from services.privacy.cli import privacy_app  # noqa: E402
from services.segments.cli import segments_app  # noqa: E402

app.add_typer(profiles_app, name="profiles")
app.add_typer(segments_app, name="segments")
app.add_typer(analytics_app, name="analytics")
app.add_typer(tokens_app, name="tokens")
app.add_typer(keys_app, name="keys")
app.add_typer(privacy_app, name="privacy")


# Library loggers kept at WARNING: urllib3, httpx and clickhouse_connect log request URLs (with query
# parameters) and responses at DEBUG, which can name a person (docs/privacy.md).
_QUIET_LOGGERS = ("faust", "mode", "aiokafka", "urllib3", "httpx", "httpcore", "clickhouse_connect")


def _settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


@app.command()
def up(
    data_dir: DataDir = None,
    http_port: Annotated[int | None, typer.Option(help="Ingest/admin API port [env CDP_HTTP_PORT]")] = None,
    clickhouse_port: Annotated[
        int | None, typer.Option(help="ClickHouse-compatible endpoint port [env CDP_CLICKHOUSE_HTTP_PORT]")
    ] = None,
    broker_port: Annotated[int | None, typer.Option(help="Tansu broker port [env CDP_BROKER_PORT]")] = None,
    demo: Annotated[bool, typer.Option(help="Also stream demo traffic through the platform")] = False,
    demo_customers: Annotated[int, typer.Option(help="Demo: number of customers")] = 1000,
    demo_days: Annotated[int, typer.Option(help="Demo: days of history to replay")] = 90,
    demo_live: Annotated[bool, typer.Option(help="Demo: keep sending live traffic after the history")] = True,
) -> None:
    """Start the single-node platform: broker, warehouse, ingest API and processors on this machine."""
    from services.core.log_hygiene import install_redaction, settings_secrets
    from services.runtime import StartupError, build, data_dir_lock, install_stop_signals, serve

    settings = _settings(
        data_dir=data_dir, http_port=http_port, clickhouse_http_port=clickhouse_port, broker_port=broker_port
    )
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("uvicorn.error", *_QUIET_LOGGERS):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    redaction = install_redaction(settings_secrets(settings))
    try:
        with data_dir_lock(settings.data_dir):
            with console.status("starting the platform...") as status:
                platform = build(settings, on_step=lambda step: status.update(f"{step}..."))
            redaction.add_secrets(
                v for v in dataclasses.asdict(platform.secrets).values() if isinstance(v, str)
            )
            _banner(platform)

            async def main() -> None:
                stop = asyncio.Event()
                install_stop_signals(stop)

                def ready() -> None:
                    console.print("[bold green]ready[/] (Ctrl-C stops)")
                    if demo:
                        _start_demo(platform, demo_customers, demo_days, demo_live, stop)

                def notice(line: str) -> None:  # the single-node broker was lost and rebuilt
                    console.print(line, style="bold yellow", markup=False, highlight=False)

                await serve(platform, stop, on_ready=ready, on_notice=notice)

            asyncio.run(main())
            console.print("stopped cleanly: everything accepted is in the warehouse")
    except StartupError as exc:
        raise _fail(str(exc)) from None
    except Exception as exc:
        from services.core.kafka.exceptions import KafkaAdapterError
        from services.core.warehouse.port import WarehouseError

        if isinstance(exc, KafkaAdapterError | WarehouseError):
            raise _fail(str(exc)) from None
        raise


def _banner(platform: Any) -> None:
    table = Table(title="cdp is up", show_header=False, title_justify="left")
    table.add_column(style="bold cyan")
    table.add_column()
    urls = platform.urls
    table.add_row("tracking API", f"{urls['ingest']}/v1/track | /v1/batch | /v1/webhooks/shop|chat|email")
    table.add_row("health", f"{urls['ingest']}/healthz, /readyz")
    table.add_row("metrics", urls["metrics"])
    table.add_row("kafka", f"{urls['kafka']} (topics cdp.events, cdp.events.dlq, ...)")
    table.add_row(
        "clickhouse", f"{urls['clickhouse']} (BI user '{platform.settings.clickhouse_bi_user}', read-only)"
    )
    table.add_row("data dir", str(platform.settings.data_dir.resolve()))
    key_note = " (generated, kept in the data dir)" if platform.secrets.write_key_generated else ""
    table.add_row("write key", platform.secrets.write_key + key_note)
    if platform.preloaded_ids:
        table.add_row("restart", f"remembering {platform.preloaded_ids} recent messageIds for de-duplication")
    console.print(table)
    console.print('try: [bold]cdp sql "SELECT channel, count() FROM cdp.events GROUP BY channel"[/]')


def _start_demo(platform: Any, customers: int, days: int, live: bool, stop: asyncio.Event) -> None:
    from services.demo.runner import run_demo

    def platform_status() -> str:
        stored = sum(sink.rows_written for sink in platform.sinks if sink.table == "events")
        profiles = sum(sink.rows_written for sink in platform.sinks if sink.table == "profiles")
        return f"[bold]{stored:,}[/] rows in ClickHouse cdp.events, [bold]{profiles:,}[/] profile versions"

    def run() -> None:
        try:
            run_demo(
                platform.urls["ingest"], platform.secrets.write_key, customers=customers, days=days,
                live=live, console=console, should_stop=stop.is_set, platform_status=platform_status,
            )  # fmt: skip
        except Exception as exc:  # the platform keeps running for the user to query
            err.print(f"[red]demo traffic stopped:[/] {exc}")
        else:
            if not live:
                console.print("demo history sent; the platform keeps running (Ctrl-C stops)")

    threading.Thread(target=run, name="demo", daemon=True).start()


@app.command()
def demo(
    url: Annotated[
        str | None, typer.Option(help="Ingest API base URL (default: this machine's cdp up)")
    ] = None,
    write_key: Annotated[
        str | None, typer.Option(help="Write key (default: CDP_WRITE_KEY or the data dir's)")
    ] = None,
    customers: Annotated[int, typer.Option(min=1, help="Number of customers")] = 1000,
    days: Annotated[int, typer.Option(min=1, help="Days of history to replay")] = 90,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same traffic")] = 42,
    live: Annotated[bool, typer.Option(help="Continue with live traffic after the history")] = False,
    rate: Annotated[float, typer.Option(min=0.1, help="Live traffic, events per second")] = 50.0,
    data_dir: DataDir = None,
) -> None:
    """Stream realistic, reproducible shop, chat and email traffic to a running platform."""
    from services.core.secrets import read_existing
    from services.demo.runner import run_demo

    settings = _settings(data_dir=data_dir)
    base_url = url or f"http://{settings.http_host}:{settings.http_port}"
    key = write_key or (settings.write_key.get_secret_value() if settings.write_key else None)
    key = key or read_existing(settings).get("write_key")
    if not key:
        raise _fail(
            "no write key: pass --write-key, set CDP_WRITE_KEY, or run from the directory of 'cdp up'"
        )
    stats = run_demo(base_url, key, customers=customers, days=days, seed=seed, live=live, live_rate=rate,
                     console=console)  # fmt: skip
    if stats.rejected:
        raise typer.Exit(1)


@app.command("run")
def run_service(
    service: Annotated[
        str,
        typer.Argument(help="ingest, identity, segments, broker or warehouse", show_default=False),
    ],
    data_dir: DataDir = None,
    http_port: Annotated[int | None, typer.Option(help="ingest: API port [env CDP_HTTP_PORT]")] = None,
    broker_port: Annotated[
        int | None,
        typer.Option(help="broker: its port; others: this machine's broker, if CDP_KAFKA_BOOTSTRAP is unset"),
    ] = None,
    clickhouse_port: Annotated[
        int | None,
        typer.Option(help="warehouse: its port; others: this machine's, if CDP_CLICKHOUSE_URL is unset"),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="identity, segments: port of /metrics, /healthz, /readyz [env CDP_METRICS_PORT]"),
    ] = None,
    drain_on_stop: Annotated[
        bool, typer.Option(help="identity, segments: on stop, first process what is on the inputs (cdp up)")
    ] = False,
    sinks: Annotated[
        bool, typer.Option(help="identity, segments: write their topics to the warehouse (cdp up: no)")
    ] = True,
) -> None:
    """Run one service of the platform as a process of its own (configured by CDP_* variables).

    \b
    ingest     tracking + admin API (CDP_HTTP_PORT); stateless, run any number
    identity   identity worker + its sinks; replicas share the partitions
    segments   segment processor + its sinks; replicas share the partitions
    broker     stand-in for Kafka: Tansu on CDP_BROKER_PORT (topics in memory)
    warehouse  stand-in for ClickHouse: chDB in CDP_DATA_DIR + HTTP endpoint

    With CDP_KAFKA_BOOTSTRAP and CDP_CLICKHOUSE_URL set, secrets come from the environment;
    without, a service joins this machine's broker and warehouse (docs/operations.md).
    """
    from services.core.service_links import ServiceStartError
    from services.run_command import run_service as run

    settings = _settings(
        data_dir=data_dir, http_port=http_port, broker_port=broker_port, clickhouse_http_port=clickhouse_port,
        metrics_port=metrics_port,
    )  # fmt: skip
    try:
        run(
            service, settings, _print_step, drain_on_stop=drain_on_stop, sinks=sinks,
            quiet_loggers=_QUIET_LOGGERS,
        )  # fmt: skip
    except ServiceStartError as exc:
        raise _fail(str(exc)) from None


@app.command()
def migrate(
    data_dir: DataDir = None,
    clickhouse_port: Annotated[
        int | None, typer.Option(help="This machine's ClickHouse endpoint, if CDP_CLICKHOUSE_URL is unset")
    ] = None,
) -> None:
    """Apply the warehouse migrations not yet applied, then exit (a deploy job before the services).

    Services started with CDP_MIGRATE_ON_START=false wait for it instead of migrating themselves.
    """
    from services.core.service_links import ServiceStartError, warehouse_url
    from services.core.warehouse.connect_adapter import ConnectWarehouse
    from services.core.warehouse.port import WarehouseError
    from services.core.warehouse.setup import prepare_warehouse

    settings = _settings(data_dir=data_dir, clickhouse_http_port=clickhouse_port)
    try:
        warehouse = ConnectWarehouse(warehouse_url(settings), settings.clickhouse_database)
    except ServiceStartError as exc:
        raise _fail(str(exc)) from None
    try:
        if not warehouse.ping():
            raise _fail(
                "the warehouse does not answer: check CDP_CLICKHOUSE_URL (or start 'cdp run warehouse')"
            )
        applied = prepare_warehouse(warehouse, settings, _print_step)
    except WarehouseError as exc:
        raise _fail(f"migration failed: {exc}") from None
    finally:
        warehouse.close()
    if not applied:
        _print_step(f"the schema of {settings.clickhouse_database} is up to date: nothing to apply")


def _print_step(step: str) -> None:
    """One line per step, unwrapped: a URL or variable in it can be copied (or parsed) as printed."""
    console.print(step, soft_wrap=True, markup=False, highlight=False)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help='SQL to run, e.g. "SELECT count() FROM cdp.events"')],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv, tsv or json")] = "table",
    write: Annotated[bool, typer.Option(help="Use the writer user instead of the read-only BI user")] = False,
    data_dir: DataDir = None,
) -> None:
    """Query the warehouse (the running platform's ClickHouse endpoint, or CDP_CLICKHOUSE_URL)."""
    from services.core.sql_client import SqlClientError, run_sql

    settings = _settings(data_dir=data_dir)
    try:
        columns, rows = run_sql(settings, query, write=write)
    except SqlClientError as exc:
        raise _fail(str(exc)) from None
    _print_rows(columns, rows, fmt)


def _print_rows(columns: list[str], rows: list[tuple[Any, ...]], fmt: str) -> None:
    import csv
    import json

    if fmt == "json":
        sys.stdout.write(
            json.dumps([dict(zip(columns, row, strict=True)) for row in rows], default=str, indent=2)
        )
        sys.stdout.write("\n")
    elif fmt in ("csv", "tsv"):
        writer = csv.writer(sys.stdout, delimiter="," if fmt == "csv" else "\t")
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*("" if value is None else str(value) for value in row))
        console.print(table)
        console.print(f"[dim]{len(rows)} row{'s' if len(rows) != 1 else ''}[/]")


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()


if __name__ == "__main__":
    main()
