from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.core.kafka.broker import free_port
from tests.e2e.cdp_process import CdpProcess


@pytest.fixture(scope="module")
def cdp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CdpProcess]:
    root = tmp_path_factory.mktemp("cdp")
    handle = CdpProcess(
        data_dir=root / "data",
        http_port=free_port(),
        clickhouse_port=free_port(),
        broker_port=free_port(),
        write_key="e2e-write-key",
    )
    handle.start()
    yield handle
    if handle.process is not None:
        handle.stop()
