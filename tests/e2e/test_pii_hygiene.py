"""PII hygiene of the running platform (issue 6): no email, phone number or secret in any log file
or metric, at the default log level, after every kind of request that carries them.

The requests: valid events, invalid ones (dead-lettered), identify calls, an identity refusal (one
customer with more emails and phones than the limit), a webhook with a bad signature, a request
with a wrong write key, profile lookups by email and phone through the admin API, a split and a
detach naming the person. Then the platform stops (so every log is flushed) and the logs of
``cdp up`` (its terminal output), of the broker and of the identity and segment processes, and the
``/metrics`` output, are searched for each email and phone number in every form (as sent,
lower-cased, E.164, URL-encoded), the write key, the admin token, the webhook secret and the
ClickHouse writer password. The write key may appear once: in the banner ``cdp up`` prints for
the user, never in a log file.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from services.core.kafka.broker import free_port
from tests.e2e.cdp_process import ADMIN_TOKEN, SHOPIFY_SECRET, CdpProcess, wait_for
from tests.pii_needles import Person, find_leaks, ingest_calls, person, too_many_emails

pytestmark = pytest.mark.e2e
MASKED = re.compile(r"<(email|phone|secret)>")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CdpProcess]:
    root = tmp_path_factory.mktemp("pii")
    handle = CdpProcess(
        root / "data", free_port(), free_port(), free_port(), f"wk_pii-{uuid.uuid4().hex}",
        extra_env={"CDP_LOG_LEVEL": "INFO"},
    )  # fmt: skip
    handle.start()
    yield handle
    if handle.process is not None:
        handle.stop()


def _rows(cdp: CdpProcess, sql: str, **parameters: Any) -> list[tuple[Any, ...]]:
    client = cdp.clickhouse()
    try:
        return list(client.query(sql, parameters=parameters).result_rows)
    finally:
        client.close()


def _lookup(cdp: CdpProcess, **identifier: str) -> httpx.Response:
    return cdp.admin("GET", "/api/v1/profiles/lookup", params=identifier)


def _send_everything(cdp: CdpProcess, run: str, people: list[Person], wrong_key: str) -> None:
    for call in ingest_calls(run, people, wrong_key):
        kwargs: dict[str, Any] = {"key": call.key}
        if call.content is not None:
            kwargs["content"] = call.content
        if call.headers is not None:
            kwargs["headers"] = call.headers
        response = cdp.post(call.path, call.body, **kwargs)
        assert response.status_code == call.status, (call.name, response.text)
    # One customer with six emails and six phone numbers: past the limit of five, links are refused.
    response = cdp.post("/v1/batch", {"batch": too_many_emails(run, people[1:7])})
    assert response.status_code == 200, response.text

    def refused() -> list[tuple[Any, ...]]:
        return _rows(
            cdp, "SELECT reason FROM cdp.identity_refusals WHERE startsWith(message_id, {p:String})",
            p=f"{run}-many-",
        )  # fmt: skip

    assert ("limit:email",) in wait_for(refused, 90)
    wait_for(lambda: _lookup(cdp, email=people[0].email).status_code == 200, 60)


def _use_the_admin_api(cdp: CdpProcess, run: str, people: list[Person]) -> None:
    p = people[0]
    assert _lookup(cdp, email=p.email).status_code == 200
    assert _lookup(cdp, email=p.email.lower()).status_code == 200
    assert _lookup(cdp, phone=p.phone).status_code == 200
    assert _lookup(cdp, phone=p.e164).status_code == 200
    assert _lookup(cdp, email=people[7].email).status_code == 404  # nobody: the answer names it, no log
    assert cdp.admin("GET", f"/api/v1/profiles/{quote(p.email)}").status_code == 404
    split = cdp.admin(
        "POST", "/api/v1/profiles/split",
        json={"a": f"customer_id:{run}-c1", "b": f"email:{p.email}", "reason": f"{p.email} asked, {p.phone}"},
    )  # fmt: skip
    assert split.status_code == 202, split.text
    detach = cdp.admin(
        "POST", "/api/v1/profiles/detach", json={"identifier": f"phone:{p.phone}", "reason": f"call {p.e164}"}
    )
    assert detach.status_code == 202, detach.text
    invalid = cdp.admin("POST", "/api/v1/profiles/detach", json={"identifier": f"phone:{p.email}"})
    assert invalid.status_code == 400, invalid.text
    requests = [split.json()["requestId"], detach.json()["requestId"]]

    def applied() -> int:
        sql = (
            "SELECT uniqExact(request_id) FROM cdp.identity_corrections WHERE request_id IN {r:Array(String)}"
        )
        return int(_rows(cdp, sql, r=requests)[0][0])

    wait_for(lambda: applied() == 2, 90)


def test_no_personal_data_or_secret_in_any_log_or_metric(platform: CdpProcess) -> None:
    run = uuid.uuid4().hex[:8]
    people = [person(run, f"p{i}", i) for i in range(8)]
    wrong_key = f"wk_typo-{run}"
    _send_everything(platform, run, people, wrong_key)
    _use_the_admin_api(platform, run, people)

    metrics = httpx.get(f"{platform.url}/metrics", timeout=10).text
    for series in ('cdp_identity_refused_links_total{reason="limit:email"}',
                   'cdp_ingest_events_rejected_total{reason="bad_signature"',
                   'cdp_identity_corrections_total{action="detach"'):  # fmt: skip
        assert series in metrics, series
    assert platform.stop() == 0

    data_dir = platform.data_dir
    secrets = json.loads((data_dir / "secrets.json").read_text())
    logs: dict[str, str] = {
        str(path.relative_to(data_dir)): path.read_text(errors="replace")
        for path in sorted(data_dir.rglob("*.log"))
    }
    assert {"logs/identity.log", "logs/segments.log", "logs/tansu.log"} <= logs.keys()
    assert all(name.startswith("logs/") for name in logs), sorted(logs)
    assert "identity worker joined" in logs["logs/identity.log"]  # the worker's log is really there
    terminal = platform.log()
    assert "shutdown:" in terminal  # cdp up's own log (standard error) is in it

    needles = [n for who in people for n in who.needles]
    secret_values = [ADMIN_TOKEN, SHOPIFY_SECRET, wrong_key, secrets["clickhouse_writer_password"],
                     secrets.get("privacy_hash_key", "")]  # fmt: skip
    assert find_leaks(logs, [*needles, *secret_values, platform.write_key]) == []
    assert find_leaks({"metrics": metrics}, [*needles, *secret_values, platform.write_key]) == []
    assert find_leaks({"cdp up output": terminal}, [*needles, *secret_values]) == []

    # The redaction filter on the log handlers is a last line of defence: nothing reached it either.
    masked = [
        line for text in (*logs.values(), terminal) for line in text.splitlines() if MASKED.search(line)
    ]
    assert masked == [], "a log call names personal data or a secret (masked by the redaction filter)"

    # The write key only in the banner printed for the user (standard output), on its own row.
    shown = [line for line in terminal.splitlines() if platform.write_key in line]
    assert len(shown) == 1 and "write key" in shown[0], shown
