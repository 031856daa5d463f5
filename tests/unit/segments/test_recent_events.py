"""The latest occurrences per event are a join: order, replays and merges do not matter."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.identity.domain.recent_events import NO_AMOUNT, RECENT_PER_EVENT, RecentEvents, message_tag

settings.register_profile("recent-events", max_examples=100, deadline=None)
recent_events = settings.get_profile("recent-events")

# (event name, event time, message id, amount); few names and times, so ties and overflow are common
Record = tuple[str, int, str, int | None]
_records: st.SearchStrategy[Record] = st.tuples(
    st.sampled_from(["Order Completed", "Email Opened"]),
    st.integers(0, 80),
    st.builds(lambda n: f"m{n}", st.integers(0, 150)),
    st.one_of(st.none(), st.integers(0, 5_000_000)),
)
# Short histories, and long ones in which every event overflows the kept occurrences.
_histories = st.one_of(st.lists(_records, max_size=20), st.lists(_records, min_size=110, max_size=150))


def fold(records: list[Record]) -> RecentEvents:
    recent = RecentEvents()
    for record in records:
        recent.record(*record)
    return recent


def expected(records: list[Record]) -> dict[str, list[list[int]]]:
    """The RECENT_PER_EVENT latest distinct occurrences of each event, computed the naive way."""
    by_name: dict[str, set[tuple[int, int, int]]] = {}
    for name, stamp, message_id, amount in records:
        by_name.setdefault(name, set()).add(
            (stamp, message_tag(message_id), NO_AMOUNT if amount is None else amount)
        )
    return {name: [list(o) for o in sorted(by_name[name])[-RECENT_PER_EVENT:]] for name in sorted(by_name)}


@recent_events
@given(st.data())
def test_order_does_not_matter(data: st.DataObject) -> None:
    records = data.draw(_histories)
    shuffled = data.draw(st.permutations(records))
    assert fold(shuffled).snapshot() == fold(records).snapshot()


@recent_events
@given(_histories, st.data())
def test_replays_change_nothing_and_say_so(records: list[Record], data: st.DataObject) -> None:
    recent = fold(records)
    before = recent.snapshot()
    for record in data.draw(st.lists(st.sampled_from(records), max_size=20)) if records else []:
        assert recent.record(*record) is False
    recent.merge(fold(records))
    recent.merge(recent)
    assert recent.snapshot() == before


@recent_events
@given(_histories)
def test_keeps_the_latest_occurrences_ascending(records: list[Record]) -> None:
    recent = fold(records)
    assert recent.snapshot() == expected(records)
    for name in recent.snapshot():
        kept = recent.occurrences(name)
        assert len(kept) <= RECENT_PER_EVENT
        assert kept == sorted(kept)
    assert recent.occurrences("Never Happened") == []


@recent_events
@given(_histories)
def test_record_says_whether_anything_changed(records: list[Record]) -> None:
    recent = RecentEvents()
    for record in records:
        before = recent.snapshot()
        changed = recent.record(*record)
        assert changed is (recent.snapshot() != before)


@recent_events
@given(_histories, _histories)
def test_merge_equals_folding_both(a: list[Record], b: list[Record]) -> None:
    merged = fold(a)
    merged.merge(fold(b))
    assert merged.snapshot() == fold(a + b).snapshot()
    other_way = fold(b)
    other_way.merge(fold(a))
    assert other_way.snapshot() == merged.snapshot()


@recent_events
@given(_histories, _histories, _histories)
def test_merge_is_associative(a: list[Record], b: list[Record], c: list[Record]) -> None:
    left = fold(a)
    left.merge(fold(b))
    left.merge(fold(c))
    bc = fold(b)
    bc.merge(fold(c))
    right = fold(a)
    right.merge(bc)
    assert left.snapshot() == right.snapshot()


@recent_events
@given(_histories)
def test_snapshot_round_trips(records: list[Record]) -> None:
    recent = fold(records)
    restored = RecentEvents.from_snapshot(recent.snapshot())
    assert restored.snapshot() == recent.snapshot()
    for name in recent.snapshot():
        assert restored.occurrences(name) == recent.occurrences(name)
    assert RecentEvents.from_snapshot(None).snapshot() == {}


def test_an_occurrence_older_than_everything_kept_falls_off() -> None:
    recent = fold([("Page Viewed", 100 + n, f"m{n}", None) for n in range(RECENT_PER_EVENT)])
    assert recent.record("Page Viewed", 50, "old", None) is False
    assert recent.occurrences("Page Viewed")[0][0] == 100
    assert recent.record("Page Viewed", 500, "new", 10_000) is True
    kept = recent.occurrences("Page Viewed")
    assert (len(kept), kept[0][0], kept[-1]) == (RECENT_PER_EVENT, 101, (500, message_tag("new"), 10_000))


def test_two_events_of_the_same_instant_are_both_kept() -> None:
    recent = fold([("Order Completed", 7, "a", 1), ("Order Completed", 7, "b", 1)])
    assert len(recent.occurrences("Order Completed")) == 2
