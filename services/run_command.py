"""``cdp run SERVICE``: one service of the platform as a process of its own.

Every service reads its configuration from the environment (``CDP_*``) and stops cleanly on
SIGTERM, SIGINT (Ctrl-C) and SIGHUP.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable, Iterator

from services.core.service_links import ServiceStartError
from services.core.settings import Settings

SERVICES = ("ingest", "identity", "segments", "broker", "warehouse")

Runner = Callable[[asyncio.Event], Awaitable[None]]


def _install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)


@contextlib.contextmanager
def _start_errors() -> Iterator[None]:
    """Every way a service can fail at start, as a ServiceStartError carrying the message."""
    from services.core.kafka.exceptions import KafkaAdapterError
    from services.core.warehouse.port import WarehouseError
    from services.core.warehouse.setup import SchemaMissingError
    from services.runtime import StartupError

    try:
        yield
    except (StartupError, SchemaMissingError, KafkaAdapterError, WarehouseError) as exc:
        raise ServiceStartError(str(exc)) from None


def _runner(
    service: str, settings: Settings, on_step: Callable[[str], None], *, drain_on_stop: bool, sinks: bool
) -> Runner:
    if service == "ingest":
        from services.ingest.process import run_ingest

        return lambda stop: run_ingest(settings, stop, on_step)
    if service == "identity":
        from services.identity.process import run_identity

        return lambda stop: run_identity(
            settings, stop, on_step=on_step, drain_on_stop=drain_on_stop, sinks=sinks
        )
    if service == "segments":
        from services.segments.process import run_segments

        return lambda stop: run_segments(
            settings, stop, on_step=on_step, drain_on_stop=drain_on_stop, sinks=sinks
        )
    from services.stand_ins import run_broker, run_warehouse

    if service == "broker":
        return lambda stop: run_broker(settings, stop, on_step)
    return lambda stop: run_warehouse(settings, stop, on_step)


def run_service(
    service: str,
    settings: Settings,
    on_step: Callable[[str], None],
    *,
    drain_on_stop: bool = False,
    sinks: bool = True,
    quiet_loggers: Iterable[str] = (),
) -> None:
    """Run ``service`` until a stop signal; ServiceStartError (saying what to do) when it cannot start."""
    from services.core.log_hygiene import install_redaction, settings_secrets
    from services.core.secrets import load_or_create, read_existing

    if service not in SERVICES:
        names = ", ".join(f"'cdp run {name}'" for name in SERVICES)
        raise ServiceStartError(f"unknown service {service!r}: {names} are available (cdp run --help)")
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("uvicorn.error", *quiet_loggers):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    redaction = install_redaction([*settings_secrets(settings), *read_existing(settings).values()])
    run = _runner(service, settings, on_step, drain_on_stop=drain_on_stop, sinks=sinks)

    async def main() -> None:
        stop = asyncio.Event()
        _install_stop_signals(stop)
        await run(stop)

    with _start_errors():
        if service != "warehouse":
            asyncio.run(main())
            return
        from services.runtime import data_dir_lock

        with data_dir_lock(settings.data_dir):
            generated = load_or_create(settings)
            redaction.add_secrets(v for v in dataclasses.asdict(generated).values() if isinstance(v, str))
            asyncio.run(main())
