"""The segment processor's decisions without Kafka: versions, timers, restore and backfill."""

from __future__ import annotations

from typing import Any

from services.identity.domain.event_time import to_micros
from services.identity.domain.profile_state import ProfileState
from services.segments.domain.definition import SegmentCatalog, load_documents
from services.segments.domain.membership import MemberState
from services.segments.streaming.processor import SegmentProcessor, membership_rows, state_from_rows

NOW = to_micros("2026-11-22T12:00:00Z")
SECOND = 1_000_000

CATALOG_YAML = """
- id: recent_buyers
  name: Ordered in the last 60 s
  rule: {event: Order Completed, within: 60s}
  activation: {consent: email_marketing}
"""

EVERYONE_YAML = """
- id: everyone
  name: Everyone
  rule: {attribute: orders_count, op: exists}
"""


def catalog(text: str = CATALOG_YAML) -> SegmentCatalog:
    empty = SegmentCatalog()
    return empty.with_changes(empty.plan(load_documents(text), "2026-11-22T00:00:00Z"))


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


def record(profile_id: str, version: int, events: list[dict[str, Any]], live: bool = True) -> dict[str, Any]:
    state = ProfileState()
    for event in events:
        state.apply(event)
    from datetime import UTC, datetime

    return {"profileId": profile_id, "version": version, "live": live, "traits": state.traits(),
            "attributes": state.attributes(datetime.now(UTC)), "snapshot": state.to_snapshot(),
            "cause": {"messageId": events[-1]["messageId"], "receivedAt": "2026-11-22T12:00:00Z"} if events else None}  # fmt: skip


def order(n: int, at: str = "2026-11-22T11:59:30Z") -> dict[str, Any]:
    return {"type": "track", "event": "Order Completed", "messageId": f"m{n}", "timestamp": at,
            "properties": {"order_id": f"o{n}", "revenue": 10}}  # fmt: skip


def subscribed(n: int) -> dict[str, Any]:
    return {"type": "track", "event": "Subscribed", "messageId": f"s{n}", "timestamp": "2026-11-22T11:00:00Z",
            "properties": {}}  # fmt: skip


def actions(output: Any) -> list[tuple[str, str, bool, int]]:
    return [(t.action, t.reason, t.activation, t.seq) for t in output.transitions]


def test_a_newer_version_is_evaluated_once_and_older_or_equal_ones_are_ignored() -> None:
    processor = SegmentProcessor(catalog(), Clock())
    first = processor.profile(record("p1", 3, [subscribed(1), order(1)]))
    assert first is not None
    assert actions(first) == [("entered", "event", False, 1), ("entered", "event", True, 1)]
    assert first.cause == {"messageId": "m1", "receivedAt": "2026-11-22T12:00:00Z"}
    assert first.state["segments"] == {"recent_buyers": [True, True, 1, 1, 1]}
    assert processor.profile(record("p1", 3, [order(1)])) is None
    assert processor.profile(record("p1", 2, [])) is None
    assert processor.members() == {"recent_buyers": 1}


def test_the_timer_exits_the_profile_when_the_window_passes() -> None:
    clock = Clock()
    processor = SegmentProcessor(catalog(), clock)
    processor.profile(record("p1", 1, [subscribed(1), order(1, "2026-11-22T11:59:30Z")]))
    boundary = to_micros("2026-11-22T11:59:30Z") + 60 * SECOND + 1
    assert processor.next_due() == boundary
    clock.now = boundary - 1
    assert processor.due(clock.now) == []
    clock.now = boundary + SECOND // 2
    due = processor.due(clock.now)
    assert due == [("p1", boundary)]
    output = processor.reevaluate("p1", "time", boundary)
    assert output is not None
    assert actions(output) == [("exited", "time", False, 2), ("exited", "time", True, 2)]
    assert output.due == boundary
    assert processor.next_due() is None


def test_consent_withdrawal_exits_only_the_activation_feed() -> None:
    processor = SegmentProcessor(catalog(), Clock())
    processor.profile(record("p1", 1, [subscribed(1), order(1)]))
    unsubscribe = {"type": "track", "event": "Unsubscribed", "messageId": "u1",
                   "timestamp": "2026-11-22T11:59:40Z", "properties": {}}  # fmt: skip
    output = processor.profile(record("p1", 2, [subscribed(1), order(1), unsubscribe]))
    assert output is not None
    assert actions(output) == [("exited", "consent", True, 2)]


def test_a_retired_profile_exits_with_reason_merged() -> None:
    processor = SegmentProcessor(catalog(), Clock())
    processor.profile(record("p1", 1, [subscribed(1), order(1)]))
    output = processor.profile(record("p1", 2, [], live=False))
    assert output is not None
    assert actions(output) == [("exited", "merged", False, 2), ("exited", "merged", True, 2)]


def test_restored_state_prevents_a_repeat_and_the_transition_tail_wins_over_a_stale_state() -> None:
    processor = SegmentProcessor(catalog(), Clock())
    # The state topic says: entered once (seq 1), at profile version 4.
    processor.load_state({"profileId": "p1", "profileVersion": 4,
                          "segments": {"recent_buyers": [True, True, 1, 1, 1]}})  # fmt: skip
    # A crash published an exit (seq 2) whose state record never made it.
    processor.load_transition({"profileId": "p1", "segmentId": "recent_buyers", "action": "exited", "seq": 2,
                               "feed": "membership"})  # fmt: skip
    processor.load_transition(
        {"profileId": "p1", "segmentId": "recent_buyers", "action": "entered", "seq": 1, "feed": "membership"}
    )  # fmt: skip  (older: ignored)
    assert processor.members() == {"recent_buyers": 0}
    # Redelivered versions at or below the state's are skipped.
    assert processor.profile(record("p1", 4, [order(1)])) is None
    # A newer version that still matches re-enters with the next number: nothing repeated, no gap.
    output = processor.profile(record("p1", 5, [subscribed(1), order(1)]))
    assert output is not None
    assert actions(output) == [("entered", "event", False, 3)]


def test_profiles_known_only_from_a_loaded_state_are_not_backfilled() -> None:
    processor = SegmentProcessor(catalog(), Clock())
    processor.load_state({"profileId": "p9", "profileVersion": 2,
                          "segments": {"recent_buyers": [True, False, 1, 0, 1]}})  # fmt: skip
    assert processor.reevaluate("p9", "backfill") is None  # no record seen: never exited by mistake


def test_set_catalog_reports_new_changed_and_removed_segments() -> None:
    processor = SegmentProcessor(catalog(), Clock())
    processor.profile(record("p1", 1, [order(1)]))
    text = CATALOG_YAML.replace("60s", "120s") + EVERYONE_YAML
    current = processor.catalog
    changed = current.with_changes(current.plan(load_documents(text), "2026-11-22T12:00:00Z"))
    assert sorted(processor.set_catalog(changed)) == ["everyone", "recent_buyers"]
    output = processor.reevaluate("p1", "backfill")
    assert output is not None
    assert [(t.segment_id, t.action, t.activation) for t in output.transitions] == [("everyone", "entered", False),
                                                                                    ("everyone", "entered", True)]  # fmt: skip
    assert processor.set_catalog(SegmentCatalog()) == ["everyone", "recent_buyers"]
    output = processor.reevaluate("p1", "backfill")
    assert output is not None
    assert {(t.segment_id, t.reason) for t in output.transitions} == {("everyone", "segment_deleted"),
                                                                      ("recent_buyers", "segment_deleted")}  # fmt: skip


def test_state_rows_round_trip_through_the_warehouse_shape() -> None:
    import orjson

    state = {"profileId": "p1", "profileVersion": 7, "at": "2026-11-22T12:00:00Z",
             "segments": {"a": MemberState(True, False, 3, 2, 4).to_list()}}  # fmt: skip
    rows = [orjson.loads(r) for r in membership_rows(orjson.dumps(state))]
    assert rows == [{"segmentId": "a", "profileId": "p1", "member": True, "activated": False, "seq": 3,
                     "activationSeq": 2, "segmentVersion": 4, "profileVersion": 7, "at": "2026-11-22T12:00:00Z"}]  # fmt: skip
    warehouse_rows = [{"segment_id": "a", "profile_id": "p1", "member": 1, "activated": 0, "seq": 3,
                       "activation_seq": 2, "segment_version": 4, "profile_version": 7}]  # fmt: skip
    assert state_from_rows(warehouse_rows) == {
        "p1": {"profileId": "p1", "profileVersion": 7, "segments": {"a": [True, False, 3, 2, 4]}}
    }


AT_RISK_YAML = """
- id: a_at_risk
  name: A customers likely to churn
  rule:
    all:
      - {attribute: abc_class, op: "=", value: A}
      - {attribute: churn_risk, op: ">", value: 0.6}
"""


def test_customer_value_attributes_enter_and_leave_segments() -> None:
    clock = Clock()
    processor = SegmentProcessor(catalog(AT_RISK_YAML), clock)
    # Values that arrive before the profile wait for it: nothing to evaluate yet.
    assert processor.values("p1", b'{"abc_class":"A","churn_risk":0.7}') is None
    entered = processor.profile(record("p1", 1, [order(1)]))
    assert entered is not None
    assert [(t.segment_id, t.action, t.reason) for t in entered.transitions if not t.activation] == [
        ("a_at_risk", "entered", "event")
    ]
    assert processor.values("p1", b'{"abc_class":"A","churn_risk":0.7}') is None  # unchanged: no work
    left = processor.values("p1", b'{"abc_class":"A","churn_risk":0.4}')
    assert left is not None
    assert [(t.action, t.reason) for t in left.transitions if not t.activation] == [("exited", "value")]
    back = processor.values("p1", b'{"abc_class":"A","churn_risk":0.9}')
    assert back is not None and [t.action for t in back.transitions if not t.activation] == ["entered"]
    assert processor.valued() == ["p1"]
    gone = processor.values("p1", None)  # no longer a customer in the latest refresh
    assert gone is not None and [(t.action, t.reason) for t in gone.transitions if not t.activation] == [
        ("exited", "value")
    ]
    assert processor.valued() == [] and processor.members() == {"a_at_risk": 0}
