"""A run of failures is logged at its start, as a reminder while it goes on, and at its end: never
once per retry."""

from __future__ import annotations

import logging

import pytest

from services.core.failure_log import FailureLog

LOGGER = "test.failure_log"


def messages(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(record.levelname, record.getMessage()) for record in caplog.records if record.name == LOGGER]


def test_many_failures_log_one_line_and_the_recovery_one_more(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    failures = FailureLog(logging.getLogger(LOGGER), "warehouse insert into events", "retrying")
    for _ in range(50):
        failures.failed("WarehouseUnavailable: connection refused")
    failures.succeeded()
    failures.succeeded()  # nothing was failing any more: nothing to say
    logged = messages(caplog)
    assert logged[0] == (
        "WARNING",
        "warehouse insert into events failed (WarehouseUnavailable: connection refused); retrying",
    )
    assert logged[1][0] == "INFO"
    assert logged[1][1].startswith("warehouse insert into events works again after 50 failed attempts over ")
    assert len(logged) == 2


def test_a_long_outage_is_reminded_of_and_a_new_one_starts_afresh(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    failures = FailureLog(logging.getLogger(LOGGER), "reloading the suppression list", "keeping the last one",
                          remind_seconds=0.0)  # fmt: skip
    failures.failed("a")
    failures.failed("b")
    failures.succeeded()
    failures.failed("c")
    logged = messages(caplog)
    assert [level for level, _ in logged] == ["WARNING", "WARNING", "INFO", "WARNING"]
    assert logged[1][1].startswith("reloading the suppression list still failing after 2 attempts over ")
    assert logged[3][1] == "reloading the suppression list failed (c); keeping the last one"
