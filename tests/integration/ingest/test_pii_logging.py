"""The ingest path logs no personal data and no write key, even at DEBUG (docs/privacy.md).

Every kind of request (valid, invalid, malformed, too large, unauthorised, badly signed webhook)
carries a distinctive email and phone number; the log records of every logger, at DEBUG, must
name none of them. The log redaction filter is not installed here: the source itself must not log
them. The metrics must not carry them in labels either.
"""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest
from prometheus_client import generate_latest

from tests.integration.ingest.conftest import SHOPIFY_SECRET, WRITE_KEY, IngestServer
from tests.pii_needles import find_leaks, ingest_calls, person


def test_ingest_logs_and_metrics_hold_no_personal_data_at_debug(
    ingest_server: IngestServer, caplog: pytest.LogCaptureFixture
) -> None:
    run = uuid.uuid4().hex[:8]
    people = [person(run, "ingest", 0)]
    wrong_key = f"wk_typo-{run}"
    caplog.set_level(logging.DEBUG)  # the root logger and every logger below it
    statuses = {}
    for call in ingest_calls(run, people, wrong_key):
        response = httpx.post(
            f"{ingest_server.url}{call.path}", json=call.body, content=call.content, headers=call.headers,
            auth=(call.key or WRITE_KEY, ""), timeout=10,
        )  # fmt: skip
        statuses[call.name] = response.status_code
        assert response.status_code == call.status, (call.name, response.text)
    # The answers may quote input (the client sent it); the logs must not.
    assert statuses["identify"] == 200

    logged = "\n".join(
        f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )  # fmt: skip
    metrics = generate_latest(ingest_server.registry).decode()
    needles = [*people[0].needles, WRITE_KEY, wrong_key, SHOPIFY_SECRET]
    assert find_leaks({"log": logged, "metrics": metrics}, needles) == []
    assert 'cdp_ingest_events_rejected_total{reason="bad_signature",source="webhook-shop"}' in metrics
