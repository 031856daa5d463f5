"""Records written to the platform's topics by something other than the platform (poison), and the
byte-level readers that recognise a repeated identity decision."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from services.core.kafka.dead_letters import DLQ_PAYLOAD_LIMIT, topic_dead_letter
from services.identity.streaming.forwarder import INVALID_EVENT, MALFORMED_JSON, event_problem
from services.identity.streaming.records import (
    event_record,
    is_profile_record,
    stored_message_id,
    stored_position,
    unresolved_record,
)
from services.ingest.normalise import NormalisedEvent, normalise


def canonical() -> bytes:
    outcome = normalise(
        {"type": "track", "event": "Order Completed", "userId": "C1", "messageId": "m-1",
         "properties": {"order_id": "o-1", "revenue": 10.0, "position": 3, "messageId": "inner"}},
        received_at=datetime.now(UTC), default_source="api",
    )  # fmt: skip
    assert isinstance(outcome, NormalisedEvent)
    return outcome.to_json()


def problem(value: bytes) -> tuple[str, str]:
    found = event_problem(value)
    assert found is not None
    return found


def test_what_ingest_writes_passes_and_anything_else_has_its_reason() -> None:
    assert event_problem(canonical()) is None
    assert problem(b"\x00 not json {")[0] == MALFORMED_JSON
    reason, detail = problem(b'{"messageId": "m-2", "type": "track", "timestamp": "soon"}')
    assert reason == INVALID_EVENT
    assert "timestamp" in detail and "receivedAt" in detail
    assert problem(b"[1, 2]")[0] == INVALID_EVENT


def test_a_dead_letter_keeps_the_payload_and_says_where_it_was() -> None:
    letter = orjson.loads(topic_dead_letter(b"\xffgarbage", MALFORMED_JSON, "not JSON", topic="cdp.events",
                                            partition=2, offset=17))  # fmt: skip
    assert (letter["reason"], letter["source"], letter["endpoint"]) == (MALFORMED_JSON, "kafka", "cdp.events")
    assert letter["errors"] == [{"path": "$", "message": "cdp.events partition 2 offset 17: not JSON"}]
    assert letter["payload"] == "\ufffdgarbage" and letter["payloadTruncated"] is False
    big = orjson.loads(topic_dead_letter(b"x" * (DLQ_PAYLOAD_LIMIT + 1), MALFORMED_JSON, "", topic="t",
                                         partition=0, offset=0))  # fmt: skip
    assert len(big["payload"]) == DLQ_PAYLOAD_LIMIT and big["payloadTruncated"] is True


def test_position_and_message_id_are_read_from_the_record_not_from_the_event_inside() -> None:
    event = orjson.loads(canonical())
    resolved = orjson.dumps(event_record("p_1", 41, ["customer_id:C1"], event).value)
    unresolved = orjson.dumps(unresolved_record(event, 42, "malformed_event", 'said "position":7').value)
    assert (stored_position(resolved), stored_message_id(resolved)) == (41, b"m-1")
    assert (stored_position(unresolved), stored_message_id(unresolved)) == (42, b"m-1")
    assert stored_position(b'{"kind":"merge"}') is None and stored_message_id(b"{}") is None


def test_a_profile_record_names_a_profile_and_an_integer_version() -> None:
    assert is_profile_record({"profileId": "p_1", "version": 3, "live": True})
    for value in ({"profileId": "p_1", "version": "3"}, {"profileId": "", "version": 1}, {"version": 1},
                  {"profileId": "p_1", "version": True}, [1], None):  # fmt: skip
        assert not is_profile_record(value), value
