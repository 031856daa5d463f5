"""The segment processor on an erased profile (GDPR Art. 17): every membership exits with reason
``erased``, the state is forgotten and always ends with a tombstone, and nothing brings it back."""

from __future__ import annotations

from typing import Any

from services.segments.domain.membership import MemberState, Reason, exit_all
from services.segments.streaming.processor import SegmentProcessor, transition_value
from tests.unit.segments.test_processor import Clock, actions, catalog, order, record, subscribed


def erased(profile_id: str, version: int) -> dict[str, Any]:
    return {"schemaVersion": 1, "profileId": profile_id, "erased": True, "live": False, "version": version,
            "position": version, "rebuiltAt": None, "mergedInto": None, "identifiers": [], "traits": {},
            "attributes": {}, "snapshot": None}  # fmt: skip


def test_an_erased_profile_exits_every_segment_and_its_state_is_tombstoned() -> None:
    processor = SegmentProcessor(catalog(), Clock())
    processor.profile(record("p1", 3, [subscribed(1), order(1)]))
    processor.profile(record("p2", 3, [subscribed(2), order(2)]))
    assert processor.members() == {"recent_buyers": 2}

    output = processor.profile(erased("p1", 4))
    assert output is not None
    assert actions(output) == [("exited", "erased", False, 2), ("exited", "erased", True, 2)]
    assert output.state is None  # the adapter publishes a tombstone
    assert all(transition_value(t, output)["traits"] == {} for t in output.transitions)
    assert processor.members() == {"recent_buyers": 1}
    assert "p1" not in processor.profile_ids()
    # A stale copy of the profile (redelivered, or a time sweep) brings nothing back.
    assert processor.profile(record("p1", 3, [subscribed(1), order(1)]), replay=True) is None
    assert processor.reevaluate("p1", Reason.TIME) is None
    assert processor.values("p1", b'{"rfm_segment": "champions"}') is None
    assert processor.profile_ids() == ["p2"]


def test_the_state_tombstone_comes_also_without_any_state() -> None:
    processor = SegmentProcessor(catalog(), Clock())
    output = processor.profile(erased("p_unknown", 1))
    assert output is not None
    assert (output.transitions, output.state) == ([], None)
    # Repeated (a redelivery, or the coordinator's own tombstone round): again a tombstone.
    again = processor.profile(erased("p_unknown", 1))
    assert again is not None and again.state is None


def test_a_profile_tombstone_forgets_without_transitions() -> None:
    processor = SegmentProcessor(catalog(), Clock())
    processor.profile(record("p1", 3, [subscribed(1), order(1)]))
    processor.deleted("p1")
    assert processor.profile_ids() == [] and processor.members() == {"recent_buyers": 0}
    assert processor.profile(record("p1", 3, [subscribed(1), order(1)])) is None


def test_a_restored_state_tombstone_wins_over_warehouse_rows_and_the_transition_tail() -> None:
    processor = SegmentProcessor(catalog(), Clock())
    # Warehouse rows first, then the state topic: a state record, the erasure's tombstone.
    processor.load_state({"profileId": "p1", "profileVersion": 3,
                          "segments": {"recent_buyers": [True, True, 1, 1, 1]}})  # fmt: skip
    processor.load_tombstone("p1")
    processor.load_transition({"profileId": "p1", "segmentId": "recent_buyers", "action": "exited",
                               "seq": 2, "feed": "membership"})  # fmt: skip
    assert processor.profile_ids() == [] and processor.members() == {"recent_buyers": 0}
    # The profile records before the erase are ignored; its erased record exits nothing (no state).
    assert processor.profile(record("p1", 3, [subscribed(1), order(1)]), replay=True) is None
    output = processor.profile(erased("p1", 4))
    assert output is not None and output.transitions == [] and output.state is None
    # A newer live profile under the id (it names a new profile) is evaluated again.
    revived = processor.profile(record("p1", 9, [subscribed(1), order(1)]))
    assert revived is not None
    assert actions(revived) == [("entered", "event", False, 1), ("entered", "event", True, 1)]


def test_exit_all_ends_memberships_and_activations_only() -> None:
    states = {
        "b": MemberState(member=True, activated=False, seq=3, activation_seq=2, segment_version=2),
        "a": MemberState(member=True, activated=True, seq=1, activation_seq=1, segment_version=1),
        "c": MemberState(member=False, activated=False, seq=2, activation_seq=0, segment_version=1),
    }
    transitions = exit_all("p1", states, Reason.ERASED)
    assert [(t.segment_id, t.activation, t.seq, t.reason) for t in transitions] == [
        ("a", False, 2, "erased"), ("a", True, 2, "erased"), ("b", False, 4, "erased"),
    ]  # fmt: skip
    assert not any(s.member or s.activated for s in states.values())
