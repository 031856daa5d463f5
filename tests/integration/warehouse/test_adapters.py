"""Choosing and reaching the adapters."""

from __future__ import annotations

import socket

import pytest

from services.core.settings import Settings
from services.core.warehouse.chdb_adapter import ChdbWarehouse
from services.core.warehouse.connect_adapter import ConnectWarehouse
from services.core.warehouse.factory import open_warehouse
from services.core.warehouse.http_access import EndpointUser, EndpointUsers
from services.core.warehouse.http_endpoint import RunningServer
from services.core.warehouse.port import Warehouse, WarehouseError, WarehouseUnavailable
from tests.integration.warehouse_fixtures import WRITER_PASSWORD, WRITER_USER


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_factory_opens_the_embedded_engine_without_a_url(chdb_engine: ChdbWarehouse) -> None:
    warehouse = open_warehouse(Settings(data_dir=chdb_engine.data_dir, clickhouse_database="analytics"))
    try:
        assert isinstance(warehouse, ChdbWarehouse)
        assert isinstance(warehouse, Warehouse)
        assert warehouse.database == "analytics"
        assert warehouse.ping()
    finally:
        warehouse.close()
    assert chdb_engine.ping()  # closing one warehouse leaves the shared engine open


def test_factory_uses_clickhouse_connect_with_a_url(clickhouse_http: RunningServer) -> None:
    url = f"http://{WRITER_USER}:{WRITER_PASSWORD}@{clickhouse_http.host}:{clickhouse_http.port}"
    warehouse = open_warehouse(Settings(clickhouse_url=url, clickhouse_database="analytics"))
    try:
        assert isinstance(warehouse, ConnectWarehouse)
        assert warehouse.query("SELECT currentUser() != ''") == [(1,)]
    finally:
        warehouse.close()


def test_unreachable_server_is_unavailable_not_a_crash() -> None:
    warehouse = ConnectWarehouse(f"http://cdp:pw@127.0.0.1:{closed_port()}", "cdp")
    assert warehouse.ping() is False
    with pytest.raises(WarehouseUnavailable):
        warehouse.query("SELECT 1")
    warehouse.close()


def test_wrong_credentials_are_a_warehouse_error(clickhouse_http: RunningServer) -> None:
    warehouse = ConnectWarehouse(
        f"http://{WRITER_USER}:wrong@{clickhouse_http.host}:{clickhouse_http.port}", "x"
    )
    with pytest.raises(WarehouseError) as raised:
        warehouse.command("SELECT 1")
    assert raised.value.code == 516
    assert not isinstance(raised.value, WarehouseUnavailable)


def test_url_must_be_http() -> None:
    with pytest.raises(WarehouseError, match="http://user:password@host:8123"):
        ConnectWarehouse("clickhouse://localhost", "x")


def test_anonymous_requests_are_the_passwordless_read_only_user() -> None:
    users = EndpointUsers([EndpointUser("bi", "", readonly=True), EndpointUser("cdp", "pw", readonly=False)])
    assert users.authenticate({}, {}).name == "bi"
    assert users.authenticate({}, {"user": "default"}).name == "bi"
    assert users.authenticate({}, {"user": "cdp", "password": "pw"}).name == "cdp"
    with pytest.raises(WarehouseError) as raised:
        users.authenticate({}, {"user": "cdp"})
    assert raised.value.code == 516


def test_anonymous_requests_need_credentials_when_the_read_only_user_has_a_password() -> None:
    users = EndpointUsers(
        [EndpointUser("bi", "secret", readonly=True), EndpointUser("cdp", "", readonly=False)]
    )
    with pytest.raises(WarehouseError) as raised:
        users.authenticate({}, {})
    assert raised.value.code == 194
