"""Export and erasure in the running platform (issue 6's acceptance), as a data-protection officer
would check them: a person whose profile was merged from three profiles (an anonymous visitor, a
newsletter subscriber, a customer account) is exported, then erased; afterwards every table of the
warehouse and every compacted topic is scanned for their identifiers and finds none, later events
carrying them are dropped at ingest and counted, and another customer is untouched."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from schemas import topics
from services.core.kafka.broker import free_port
from tests.e2e.cdp_process import CDP, CdpProcess, wait_for

RUN = uuid.uuid4().hex[:8]
ERIKA_EMAIL = f"erika.{RUN}@example.de"
ERIKA_PHONE_DIGITS = "1705550123"
ERIKA_PHONE = f"+49 {ERIKA_PHONE_DIGITS[:3]} {ERIKA_PHONE_DIGITS[3:]}"
ERIKA_CUSTOMER = f"C-ERIKA-{RUN}"
ERIKA_ANON = f"anon-erika-{RUN}"
BERT_EMAIL = f"bert.{RUN}@example.org"
BERT_CUSTOMER = f"C-BERT-{RUN}"
SEGMENT = f"buyers_{RUN}"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CdpProcess]:
    root = tmp_path_factory.mktemp("privacy")
    handle = CdpProcess(root / "data", free_port(), free_port(), free_port(), "privacy-write-key")
    handle.start()
    yield handle
    if handle.process is not None:
        handle.stop()


def iso(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")


def send(platform: CdpProcess, events: list[dict[str, Any]]) -> None:
    response = platform.post("/v1/batch", {"batch": events})
    assert response.status_code == 200, response.text


def lookup(platform: CdpProcess, **identifier: str) -> dict[str, Any] | None:
    response = platform.admin("GET", "/api/v1/profiles/lookup", params=identifier)
    return None if response.status_code == 404 else response.json()


def metric(platform: CdpProcess, name: str) -> float:
    text = httpx.get(f"{platform.url}/metrics", timeout=10).text
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


Record = tuple[int, int, bytes | None, bytes | None]


def read_topics(bootstrap: str, names: list[str], quiet: float = 1.5) -> dict[str, list[Record]]:
    """Every record of each topic as (partition, offset, key, value): one consumer over all of
    them, read until quiet."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"scan-{uuid.uuid4()}", "enable.auto.commit": False,
    })  # fmt: skip
    try:
        metadata = consumer.list_topics(timeout=10).topics
        consumer.assign([TopicPartition(t, p, 0) for t in names for p in metadata[t].partitions])
        records: dict[str, list[Record]] = {name: [] for name in names}
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            for message in consumer.consume(5000, 0.2):
                if message.error() is None:
                    records[str(message.topic())].append(
                        (message.partition() or 0, message.offset() or 0, message.key(), message.value())
                    )
                    last = time.monotonic()
        return records
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str) -> list[Record]:
    return read_topics(bootstrap, [topic])[topic]


def all_topics(bootstrap: str) -> list[str]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"list-{uuid.uuid4()}"})
    try:
        return sorted(name for name in consumer.list_topics(timeout=10).topics if not name.startswith("__"))
    finally:
        consumer.close()


def tables_holding(platform: CdpProcess, needles: list[str]) -> dict[str, int]:
    """Every table of ``cdp`` (not views) whose rows contain any needle, case-insensitively."""
    client = platform.clickhouse()
    tables = client.query(
        "SELECT name FROM system.tables WHERE database = 'cdp' AND engine NOT LIKE '%View' AND engine != 'Null'"
    ).result_rows
    found = {}
    for (table,) in tables:
        count = client.query(
            f"SELECT count() FROM cdp.`{table}` WHERE multiSearchAnyCaseInsensitive(formatRow('TSV', *), "
            "{needles:Array(String)})",
            parameters={"needles": needles},
        ).result_rows[0][0]
        if count:
            found[table] = count
    return found


def erika_needles(profile_ids: list[str]) -> list[str]:
    return [ERIKA_EMAIL, ERIKA_CUSTOMER, ERIKA_ANON, ERIKA_PHONE_DIGITS, *profile_ids]


def test_export_then_erase_a_merged_person_leaves_no_trace(platform: CdpProcess) -> None:
    segment = {"id": SEGMENT, "name": "Bought in the last 30 days",
               "rule": {"event": "Order Completed", "within": "30d"}}  # fmt: skip
    assert platform.admin("POST", "/api/v1/segments", content=orjson.dumps(segment)).status_code == 200

    # Three profiles that become one: a visitor, a newsletter subscriber, then the customer account
    # that carries both identifiers. Bert is another customer who must stay untouched.
    send(platform, [
        {"type": "track", "event": "Product Viewed", "anonymousId": ERIKA_ANON, "messageId": f"{RUN}-e1",
         "timestamp": iso(), "properties": {"product_id": "P-1"}},
        {"type": "track", "event": "Subscribed", "messageId": f"{RUN}-e2", "timestamp": iso(),
         "properties": {"email": ERIKA_EMAIL, "list_id": "newsletter", "legal_text_version": "v3"},
         "context": {"traits": {"email": ERIKA_EMAIL}}},
        {"type": "track", "event": "Order Completed", "userId": BERT_CUSTOMER, "messageId": f"{RUN}-b1",
         "timestamp": iso(), "properties": {"order_id": f"{RUN}-ob1", "revenue": 19.0, "currency": "EUR"},
         "context": {"traits": {"email": BERT_EMAIL}}},
    ])  # fmt: skip
    wait_for(lambda: lookup(platform, email=ERIKA_EMAIL), timeout=60)
    send(platform, [
        {"type": "identify", "userId": ERIKA_CUSTOMER, "anonymousId": ERIKA_ANON, "messageId": f"{RUN}-e3",
         "timestamp": iso(), "traits": {"email": ERIKA_EMAIL, "phone": ERIKA_PHONE, "first_name": "Erika"}},
        {"type": "track", "event": "Order Completed", "userId": ERIKA_CUSTOMER, "messageId": f"{RUN}-e4",
         "timestamp": iso(), "properties": {"order_id": f"{RUN}-oe1", "revenue": 59.9, "currency": "EUR",
                                            "products": [{"product_id": "P-1", "price": 59.9, "quantity": 1}]}},
    ])  # fmt: skip

    def merged() -> dict[str, Any] | None:
        profile = lookup(platform, email=ERIKA_EMAIL)
        return profile if profile and len(profile["merged_from"]) >= 2 else None

    profile = wait_for(merged, timeout=60)
    client = platform.clickhouse()

    def membership_stored() -> bool:
        rows = client.query(
            "SELECT count() FROM cdp.segment_membership FINAL WHERE segment_id = {s:String} AND member",
            parameters={"s": SEGMENT},
        ).result_rows
        return bool(rows[0][0] >= 2)

    wait_for(membership_stored, timeout=60)

    # Art. 15: the export holds every part of the person.
    response = platform.admin("GET", "/api/v1/privacy/export", params={"customer_id": ERIKA_CUSTOMER})
    assert response.status_code == 200, response.text
    document = response.json()
    subject = document["subject"]
    profile_ids = subject["profile_ids"]
    assert len(profile_ids) >= 3, subject
    assert f"email:{ERIKA_EMAIL}" in subject["identifiers"]
    assert {e["message_id"] for e in document["events"]} >= {
        f"{RUN}-e1",
        f"{RUN}-e2",
        f"{RUN}-e3",
        f"{RUN}-e4",
    }
    assert document["identities"] and document["merge_history"] and document["segment_memberships"]
    assert document["profile"] and document["order_events"]
    assert not any(BERT_EMAIL in orjson.dumps(rows).decode() for rows in document.values())

    # Before the erasure the person is everywhere; Bert too.
    assert tables_holding(platform, erika_needles(profile_ids))
    assert tables_holding(platform, [BERT_EMAIL])
    suppressed_before = metric(platform, "cdp_ingest_events_suppressed_total")

    # Art. 17.
    started = time.monotonic()
    response = platform.admin("POST", "/api/v1/privacy/erasures", json={"identifier": f"email:{ERIKA_EMAIL}"})
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]

    def finished() -> dict[str, Any] | None:
        state = platform.admin("GET", f"/api/v1/privacy/erasures/{request_id}").json()
        return state if state["status"] in ("completed", "failed") else None

    state = wait_for(finished, timeout=180, interval=0.5)
    elapsed = time.monotonic() - started
    assert state["status"] == "completed", state
    assert state["profiles"] >= 3 and state["counts"]["events"] >= 4, state
    print(
        f"erasure completed in {elapsed:.1f} s (recorded {state['duration_seconds']:.1f} s): {state['counts']}"
    )

    # Proof: no table holds anything of Erika (privacy_requests and suppressions included), Bert stays.
    assert tables_holding(platform, erika_needles(profile_ids)) == {}
    assert tables_holding(platform, [BERT_EMAIL])
    assert lookup(platform, email=ERIKA_EMAIL) is None
    assert lookup(platform, email=BERT_EMAIL) is not None

    # Compacted topics: the latest record of every key holds nothing of Erika, and each of her
    # profile ids ends in a tombstone.
    needles = [n.lower() for n in erika_needles([])]
    for topic in (topics.PROFILES, topics.SEGMENT_STATE):
        latest: dict[bytes, bytes | None] = {}
        for _, _, key, value in read_topic(platform.bootstrap, topic):
            if key is not None:
                latest[key] = value
        for key, value in latest.items():
            text = (value or b"").decode(errors="replace").lower()
            assert not any(n in text for n in needles), (topic, key)
        for profile_id in profile_ids:
            assert latest.get(profile_id.encode(), b"absent") is None, (topic, profile_id)

    # Later events carrying her identifiers are dropped at ingest and counted; nothing new about her
    # reaches any topic or table. Bert's later event flows.
    offsets = {
        topic: {(p, o) for p, o, _, _ in records}
        for topic, records in read_topics(platform.bootstrap, all_topics(platform.bootstrap)).items()
    }
    send(platform, [
        {"type": "track", "event": "Product Viewed", "userId": ERIKA_CUSTOMER, "messageId": f"{RUN}-e5",
         "timestamp": iso(), "properties": {"product_id": "P-2"}},
        {"type": "identify", "anonymousId": f"{RUN}-new-device", "messageId": f"{RUN}-e6", "timestamp": iso(),
         "traits": {"email": ERIKA_EMAIL.upper()}},
        {"type": "track", "event": "Product Viewed", "userId": BERT_CUSTOMER, "messageId": f"{RUN}-b2",
         "timestamp": iso(), "properties": {"product_id": "P-3"}},
    ])  # fmt: skip

    def bert_stored() -> bool:
        return bool(client.query("SELECT count() FROM cdp.events WHERE message_id = {m:String}",
                                 parameters={"m": f"{RUN}-b2"}).result_rows[0][0])  # fmt: skip

    wait_for(bert_stored, timeout=60)
    assert metric(platform, "cdp_ingest_events_suppressed_total") == suppressed_before + 2
    for topic, records in read_topics(platform.bootstrap, all_topics(platform.bootstrap)).items():
        for partition, offset, key, value in records:
            if (partition, offset) in offsets.get(topic, set()):
                continue
            text = ((key or b"") + b" " + (value or b"")).decode(errors="replace").lower()
            assert not any(n in text for n in needles), (topic, partition, offset, text[:300])
    assert tables_holding(platform, erika_needles(profile_ids)) == {}

    # The audit names the request, not the person; the duration is a metric.
    audit = platform.admin("GET", "/api/v1/privacy/requests").json()["requests"]
    kinds = {(r["kind"], r["status"]) for r in audit}
    assert ("erase", "completed") in kinds and ("export", "completed") in kinds
    assert all(ERIKA_EMAIL not in orjson.dumps(r).decode() for r in audit)
    assert metric(platform, "cdp_privacy_erase_duration_seconds_count") >= 1
    assert profile is not None


def test_privacy_routes_refuse_bad_requests_with_clear_messages(platform: CdpProcess) -> None:
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("POST", "/api/v1/privacy/erasures", {"content": b""}, 400, "empty"),
        ("POST", "/api/v1/privacy/erasures", {"json": {"identifier": "nobody"}}, 400, "has no type"),
        (
            "POST",
            "/api/v1/privacy/erasures",
            {"json": {"identifier": "email:x", "extra": 1}},
            400,
            "unknown field",
        ),
        ("POST", "/api/v1/privacy/erasures", {"json": {"identifier": "email:not-an-email"}}, 400, "email"),
        ("GET", "/api/v1/privacy/export", {"params": {}}, 400, "exactly one identifier"),
        (
            "GET",
            "/api/v1/privacy/export",
            {"params": {"email": f"nobody-{RUN}@example.de"}},
            404,
            "nothing is held",
        ),
        ("GET", "/api/v1/privacy/erasures/unknown", {}, 404, "no erasure request"),
        ("GET", "/api/v1/privacy/requests", {"params": {"kind": "delete"}}, 400, "kind must be"),
    ]
    for method, path, kwargs, status, text in cases:
        response = platform.admin(method, path, **kwargs)
        assert response.status_code == status, (path, kwargs, response.text)
        assert text in response.json()["message"], (path, response.text)
    unauthenticated = httpx.post(
        f"{platform.url}/api/v1/privacy/erasures", json={"identifier": "email:a@b.de"}
    )
    assert unauthenticated.status_code == 401


def cdp_privacy(platform: CdpProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CDP, "privacy", *args], env={**platform.env(), "COLUMNS": "160"},
                          capture_output=True, text=True,
                          timeout=240, check=False)  # fmt: skip


def test_the_cli_exports_and_erases_with_progress_and_the_audit_lists_both(
    platform: CdpProcess, tmp_path: Path
) -> None:
    email = f"carla.{RUN}@example.de"
    send(platform, [
        {"type": "identify", "userId": f"C-CARLA-{RUN}", "messageId": f"{RUN}-c1", "timestamp": iso(),
         "traits": {"email": email}},
        {"type": "track", "event": "Order Completed", "userId": f"C-CARLA-{RUN}", "messageId": f"{RUN}-c2",
         "timestamp": iso(), "properties": {"order_id": f"{RUN}-oc1", "revenue": 12.5, "currency": "EUR"}},
    ])  # fmt: skip
    wait_for(lambda: lookup(platform, email=email), timeout=60)
    target = tmp_path / "carla.json"
    exported = cdp_privacy(platform, "export", email, "-o", str(target))
    assert exported.returncode == 0, exported.stderr
    document = orjson.loads(target.read_bytes())
    assert f"email:{email}" in document["subject"]["identifiers"] and document["events"]
    assert "wrote" in exported.stderr

    erased = cdp_privacy(platform, "erase", f"email:{email}", "--yes")
    assert erased.returncode == 0, erased.stderr
    assert "erased in" in erased.stderr and "events" in erased.stderr, erased.stderr
    assert lookup(platform, email=email) is None
    assert tables_holding(platform, [email, f"C-CARLA-{RUN}"]) == {}

    missing = cdp_privacy(platform, "export", email)
    assert missing.returncode == 1 and "nothing is held" in missing.stderr
    listed = cdp_privacy(platform, "requests", "--kind", "erase")
    assert listed.returncode == 0 and "completed" in listed.stdout and email not in listed.stdout
    as_json = cdp_privacy(platform, "requests", "--json")
    rows = [orjson.loads(line) for line in as_json.stdout.splitlines()]
    assert {(r["kind"], r["status"]) for r in rows} >= {("export", "completed"), ("erase", "completed")}
    assert all(email not in line for line in as_json.stdout.splitlines())
