"""The acknowledged events ``cdp up`` tracks until the warehouse holds them, and the loss report
after its single-node broker died (services/ingest/acked.py, services/broker_loss.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson

from services.broker_loss import BrokerLoss
from services.ingest.acked import EARLY_SECONDS, AckedEvents, written_message_ids


def _rows(*message_ids: str) -> list[bytes]:
    """``events`` rows as the sinks write them: a resolved event and a bare (unresolved) one."""
    rows = []
    for i, message_id in enumerate(message_ids):
        event = {"messageId": message_id, "timestamp": "2026-11-04T10:00:00Z", "event": "Order Completed"}
        record = {"kind": "event", "profileId": "p1", "event": event} if i % 2 == 0 else event
        rows.append(
            orjson.dumps({"_raw": record, "kafka_cluster": "c", "kafka_partition": 0, "kafka_offset": i})
        )
    return rows


def test_written_rows_name_their_message_ids_and_unreadable_rows_none() -> None:
    rows = [*_rows("a", "b"), b"not json", orjson.dumps({"_raw": {"messageId": "no-timestamp"}})]
    assert written_message_ids(rows) == ["a", "b"]


def test_what_the_sinks_wrote_is_forgotten_and_the_rest_is_taken() -> None:
    acked = AckedEvents()
    acked.add(["a", "b", "c"], now=100.0)
    acked.note_rows(_rows("b"))
    assert len(acked) == 3  # noted, not settled yet
    acked.settle(now=101.0)
    assert len(acked) == 2
    acked.note_rows(_rows("c"))
    assert acked.take(now=102.0) == (["a"], 0)  # take settles first
    assert len(acked) == 0


def test_an_event_written_before_its_acknowledgement_was_noted_is_not_tracked() -> None:
    acked = AckedEvents()
    acked.note_rows(_rows("a"))
    acked.settle(now=100.0)
    acked.add(["a", "b"], now=100.5)
    assert acked.take(now=101.0) == (["b"], 0)


def test_an_early_write_is_remembered_only_for_a_while() -> None:
    acked = AckedEvents()
    acked.note_rows(_rows("a"))
    acked.settle(now=100.0)
    acked.settle(now=100.0 + EARLY_SECONDS)
    acked.add(["a"], now=100.0 + EARLY_SECONDS)
    assert acked.take(now=200.0) == (["a"], 0)


def test_over_the_limit_the_oldest_are_forgotten_and_counted() -> None:
    acked = AckedEvents(max_entries=2)
    acked.add(["a", "b", "c"], now=1.0)
    assert acked.take(now=2.0) == (["b", "c"], 1)
    assert acked.forgotten == 0


def test_a_loss_report_names_the_message_ids_and_nothing_else(tmp_path: Path) -> None:
    at = datetime(2026, 11, 4, 10, 15, 2, tzinfo=UTC)
    loss = BrokerLoss(at, -9, "cdp-abc", checked=5, lost=["m-1", "m-2"])
    path = loss.write(tmp_path)
    assert path == tmp_path / "lost" / "20261104T101502Z.txt"
    lines = path.read_text().splitlines()
    assert [line for line in lines if not line.startswith("#")] == ["m-1", "m-2"]
    assert "2 events acknowledged to clients never reached the warehouse" in loss.headline()
    assert str(path) in loss.headline()


def test_no_loss_writes_no_file_and_says_so(tmp_path: Path) -> None:
    loss = BrokerLoss(datetime.now(UTC), -9, "cdp-abc", checked=3)
    assert loss.write(tmp_path) is None
    assert not (tmp_path / "lost").exists()
    assert "no acknowledged event was lost" in loss.headline()
