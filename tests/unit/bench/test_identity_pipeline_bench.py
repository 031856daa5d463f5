"""The identity pipeline benchmark's end condition and data, without a broker."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson

from tests.bench.identity_pipeline import FinalProfile, _looks_done, canonical_events, settled_at

SNAPSHOT = {"version": 1, "activity": {"last_seen": 2}}


def live(snapshot: Any = SNAPSHOT, identifiers: tuple[str, ...] = ("email:a@b.de",)) -> bytes:
    record = {"live": True, "mergedInto": None, "identifiers": list(identifiers), "snapshot": snapshot}
    return orjson.dumps(record)


def retired(merged_into: str | None) -> bytes:
    return orjson.dumps({"live": False, "mergedInto": merged_into, "identifiers": [], "snapshot": None})


FINALS = {
    "P1": FinalProfile(True, SNAPSHOT, frozenset({"email:a@b.de"})),
    "P2": FinalProfile(False, merged_into="P1"),
}


def test_settled_at_the_first_record_of_the_final_streak():
    published = {
        "P1": [(1.0, live({"version": 1})), (5.0, live()), (6.0, live())],  # a repeat changes nothing
        "P2": [(2.0, live()), (3.0, retired("P1"))],
    }
    assert settled_at(published, FINALS) == (5.0, [])


def test_not_settled_when_a_latest_record_is_not_final_or_ids_differ():
    behind = {"P1": [(5.0, live()), (7.0, live(identifiers=()))], "P2": [(3.0, retired("P1"))]}
    assert settled_at(behind, FINALS) == (None, ["P1: its latest record is not its final state"])
    when, problems = settled_at({"P1": [(5.0, live())], "P9": [(1.0, live())]}, FINALS)
    assert when is None
    assert problems == ["P2: never published", "P9: not a profile in the reference"]


def test_retired_ids_must_say_where_they_went():
    assert not FINALS["P2"].matches(orjson.loads(retired(None)))
    assert not FINALS["P2"].matches(orjson.loads(live()))


def status(decided: int, folded: int, sent: int) -> SimpleNamespace:
    return SimpleNamespace(
        status={"observations_decided": decided, "records_folded": folded, "resolved_sent": sent}
    )


def test_done_when_every_event_is_decided_and_every_resolved_record_folded():
    assert _looks_done([status(100, 60, 70), status(0, 50, 40)], 100) is True
    assert _looks_done([status(100, 60, 70), status(0, 39, 40)], 100) is False
    assert _looks_done([status(99, 70, 70)], 100) is False
    assert _looks_done([status(100, 70, 70), SimpleNamespace(status={})], 100) is False  # not started
    assert _looks_done([SimpleNamespace(status={"renamed": 1})], 100) is None  # no counters: ask Kafka


def test_canonical_events_are_keyed_like_ingest():
    records = canonical_events(300)
    assert len(records) == 300
    events = [orjson.loads(value) for _, value in records]
    assert len({e["messageId"] for e in events}) == 300
    ids = events[0]["identifiers"]
    assert records[0][0] == (ids.get("customerId") or ids.get("anonymousId") or ids.get("email")).encode()
