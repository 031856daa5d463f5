"""How a service process finds Kafka and the warehouse, and which secrets it must be given.

Distributed mode = ``CDP_KAFKA_BOOTSTRAP`` and ``CDP_CLICKHOUSE_URL`` both set: every process
then takes its shared secrets from the environment (the same value in every process) and never
from a data directory. Otherwise a process joins this machine's ``cdp up`` (or ``cdp run broker``
and ``cdp run warehouse``): the broker on CDP_BROKER_PORT, the ClickHouse endpoint on
CDP_CLICKHOUSE_HTTP_PORT as the writer user, secrets from the data directory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from urllib.parse import quote

from services.core.kafka.admin import cluster_id
from services.core.kafka.exceptions import BrokerError
from services.core.secrets import read_existing
from services.core.settings import Settings
from services.core.warehouse.connect_adapter import ConnectWarehouse


class ServiceStartError(Exception):
    """A service process cannot start; the message says what to do."""


def is_distributed(settings: Settings) -> bool:
    return bool(settings.kafka_bootstrap and settings.clickhouse_url)


def require_secrets(settings: Settings, names: Iterable[str], service: str) -> None:
    """In distributed mode, refuse to start without the shared secrets this service reads."""
    if not is_distributed(settings):
        return
    missing = []
    for name in names:
        secret = getattr(settings, name)
        if secret is None or not secret.get_secret_value():
            missing.append(f"CDP_{name.upper()}")
    if missing:
        raise ServiceStartError(
            f"{service} needs {', '.join(missing)} in distributed mode (CDP_KAFKA_BOOTSTRAP and "
            "CDP_CLICKHOUSE_URL are set): give every process the same value(s)"
        )


def bootstrap_of(settings: Settings) -> str:
    return settings.kafka_bootstrap or f"127.0.0.1:{settings.broker_port}"


def writer_url(settings: Settings, password: str) -> str:
    """This machine's ClickHouse-compatible endpoint as the writer user."""
    user = quote(settings.clickhouse_writer_user, safe="")
    host, port = settings.clickhouse_http_host, settings.clickhouse_http_port
    return f"http://{user}:{quote(password, safe='')}@{host}:{port}"


def warehouse_url(settings: Settings) -> str:
    """``CDP_CLICKHOUSE_URL``, else the writer user of this machine's endpoint."""
    if settings.clickhouse_url:
        return settings.clickhouse_url
    password = settings.clickhouse_writer_password.get_secret_value()
    password = password or read_existing(settings).get("clickhouse_writer_password", "")
    if not password:
        raise ServiceStartError(
            f"no warehouse: set CDP_CLICKHOUSE_URL, or run next to a 'cdp up' or 'cdp run warehouse' "
            f"whose data dir ({settings.data_dir}) holds the writer password (--data-dir)"
        )
    return writer_url(settings, password)


async def connect(settings: Settings) -> tuple[str, str, ConnectWarehouse]:
    """(bootstrap, cluster id, warehouse) of the platform a service process joins;
    ServiceStartError saying what to do when Kafka or the warehouse cannot be reached."""
    bootstrap = bootstrap_of(settings)
    try:
        cluster = await asyncio.to_thread(cluster_id, bootstrap)
    except Exception as exc:
        problem = str(exc) if isinstance(exc, BrokerError) else f"cannot reach Kafka at {bootstrap} ({exc})"
        raise ServiceStartError(
            f"{problem}: start 'cdp up' or 'cdp run broker' first, or set CDP_KAFKA_BOOTSTRAP"
        ) from None
    warehouse = ConnectWarehouse(warehouse_url(settings), settings.clickhouse_database)
    if not await asyncio.to_thread(warehouse.ping):
        warehouse.close()
        where = "CDP_CLICKHOUSE_URL" if settings.clickhouse_url else f"port {settings.clickhouse_http_port}"
        raise ServiceStartError(
            f"the warehouse does not answer ({where}): start 'cdp up' or 'cdp run warehouse' first, "
            "or check CDP_CLICKHOUSE_URL (host, port, user and password)"
        )
    return bootstrap, cluster, warehouse
