"""Erasure (GDPR Art. 17) in the identity stages: the graph forgets a person, the graph stage drops
their later events, the fold stage forgets their profiles and ends each id with a tombstone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.identity.domain import IdentityGraph
from services.identity.streaming import FoldProcessor, GraphProcessor, Kind, OutRecord, Topic
from services.identity.streaming.kafka_worker import encode
from services.identity.streaming.observations import apply_observation
from services.identity.streaming.records import is_erased_profile
from services.privacy.hashing import IdentifierHasher
from tests.unit.identity.graph_fixtures import anon, customer, email, founded_id, phone, prov
from tests.unit.identity.profile_events import identify, order_completed, page

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
HASHER = IdentifierHasher("test-key")


def now() -> datetime:
    return NOW


def with_ids(record: dict[str, Any], **ids: str) -> dict[str, Any]:
    record["identifiers"] = ids
    return record


def resolved(records: list[OutRecord], kind: Kind) -> list[dict[str, Any]]:
    return [r.value for r in records if r.topic is Topic.RESOLVED and r.value["kind"] == kind]


# -- the graph ----------------------------------------------------------------------------------------


def anna_and_ben() -> tuple[IdentityGraph, dict[str, str]]:
    """Anna: a device merged into her account, her email, and a former split part (a second
    email cut off by an operator); Ben: an account and a device; Carl: an account that also got
    Anna's phone (a shared landline)."""
    graph = IdentityGraph()
    graph.observe([anon("dev-a")], prov("p1"))
    graph.observe([customer("KA"), anon("dev-a")], prov("i1"))  # dev-a's profile is absorbed
    graph.observe([customer("KA"), email("anna@example.de")], prov("o1"))
    graph.observe([customer("KA"), email("anna.old@example.de"), anon("dev-old")], prov("o2"))
    assert graph.split(customer("KA"), email("anna.old@example.de")).status.value == "split"
    graph.observe([customer("KB"), anon("dev-b")], prov("b1"))
    graph.observe([customer("KC"), phone("+4930123456")], prov("c1"))
    ids = {
        "anna": founded_id(customer("KA")),
        "anna_device": founded_id(anon("dev-a")),
        "anna_old": founded_id(email("anna.old@example.de")),
        "ben": founded_id(customer("KB")),
        "carl": founded_id(customer("KC")),
    }
    assert graph.resolve(ids["anna_device"]) == ids["anna"]
    assert graph.resolve(ids["anna_old"]) == ids["anna_old"]
    return graph, ids


ANNA_KEYS = {
    "customer_id:KA", "anonymous_id:dev-a", "email:anna@example.de", "email:anna.old@example.de",
    "anonymous_id:dev-old", "phone:+4930123456",
}  # fmt: skip


def test_erase_forgets_every_profile_identifier_and_link_of_the_person() -> None:
    graph, ids = anna_and_ben()
    before = graph.stats()
    ben_before = graph.identifiers_of_profile(ids["ben"])

    result = graph.erase([ids["anna_device"], ids["anna_old"]], ANNA_KEYS.__contains__)

    # The absorbed id resolves to the current profile first: both components go, with every id.
    assert set(result.erased_profiles) == {ids["anna"], ids["anna_device"], ids["anna_old"]}
    # 5 identifiers of Anna's own and the shared phone; her 3 links (device, email, old device) and
    # the phone's link to Carl.
    assert result.identifiers == 6 and result.links == 4
    for key in ANNA_KEYS:
        assert not graph.knows(key)
    assert graph.profile_of(customer("KA")) is None
    assert all(graph.resolve(pid) is None for pid in result.erased_profiles)
    assert graph.identifiers_of_profile(ids["anna"]) == ()
    # Ben is untouched; Carl lost the phone (it was suppressed) and keeps his id.
    assert graph.identifiers_of_profile(ids["ben"]) == ben_before
    [carl] = result.regrouped
    assert (carl.profile_id, carl.profiles, carl.removed_links) == (ids["carl"], (ids["carl"],), ())
    assert graph.identifiers_of_profile(ids["carl"]) == (customer("KC"),)
    stats = graph.stats()
    assert stats.identifiers == before.identifiers - 6
    assert stats.profiles == before.profiles - 2
    assert stats.links == before.links - 4
    assert stats.forbidden_pairs == 0  # the split's forbidden pair named Anna's identifiers


def test_erased_identifiers_leave_no_trace_and_start_afresh() -> None:
    graph, ids = anna_and_ben()
    graph.erase([ids["anna"], ids["anna_old"]], ANNA_KEYS.__contains__)

    # The raw values are gone from memory, not only from the index.
    blob = bytes(graph._ids._blob)  # the point of the test: private on purpose
    assert b"anna" not in blob and b"KA" not in blob and b"+4930123456" not in blob
    snapshot = graph.snapshot()
    assert not any("anna" in row["identifier"] for row in snapshot.identifiers)
    assert IdentityGraph.restore(snapshot).snapshot() == snapshot

    # Seen again (before any suppression applies), the email is a new identifier of its own.
    result = graph.observe([email("anna@example.de")], prov("late"))
    assert result.profile_id == founded_id(email("anna@example.de"))
    assert result.merges == ()


def test_erase_of_unknown_ids_changes_nothing() -> None:
    graph, _ids = anna_and_ben()
    before = graph.snapshot()
    result = graph.erase(["p_00000000000000000000ff", "not-an-id"])
    assert (result.erased_profiles, result.regrouped, result.identifiers, result.changed) == (
        (),
        (),
        0,
        False,
    )
    assert graph.snapshot() == before


# -- the graph stage ----------------------------------------------------------------------------------


def anna_events() -> list[dict[str, Any]]:
    return [
        with_ids(page(0, message_id="a1"), anonymousId="dev-a"),
        with_ids(identify(1, {"email": "anna@example.de"}, message_id="a2"), anonymousId="dev-a",
                 customerId="KA", email="anna@example.de"),
        with_ids(order_completed("o-a", 20.0, 2, message_id="a3"), customerId="KA"),
    ]  # fmt: skip


def erase_observation(profile_ids: list[str], keys: set[str]) -> dict[str, Any]:
    return {
        "schemaVersion": 1, "kind": "erase", "requestId": "req-1", "requestedAt": "2026-11-23T10:00:00.000Z",
        "requestedBy": "dpo", "profileIds": profile_ids, "suppress": HASHER.hashes(sorted(keys)),
    }  # fmt: skip


def test_the_graph_stage_erases_and_drops_later_events_of_the_person() -> None:
    stage = GraphProcessor(IdentityGraph(), hasher=HASHER)
    for record in anna_events():
        apply_observation(stage, record)
    apply_observation(stage, with_ids(page(3, message_id="b1"), customerId="KB"))
    anna, device = founded_id(customer("KA")), founded_id(anon("dev-a"))
    keys = {"anonymous_id:dev-a", "customer_id:KA", "email:anna@example.de"}

    records = apply_observation(stage, erase_observation([anna], keys))

    [audit] = [r for r in records if r.topic is Topic.SPLITS]
    assert audit.key == "req-1"
    assert audit.value["action"] == "erase" and audit.value["status"] == "erased"
    assert (audit.value["subject"], audit.value["reason"]) == ("req-1", "erasure request")
    assert (audit.value["requestId"], audit.value["requestedBy"]) == ("req-1", "dpo")
    assert audit.value["profiles"] == [] and audit.value["removedLinks"] == []
    # One erase record per id: the listed one and the absorbed one the graph knew.
    erases = resolved(records, Kind.ERASE)
    assert {(v["profileId"], v["position"]) for v in erases} == {(anna, 4), (device, 4)}
    assert {r.topic for r in records} == {Topic.SPLITS, Topic.RESOLVED}
    text = b"".join(value for _, _, value in encode(records) if value is not None)
    assert b"anna" not in text and b"KA" not in text and b"dev-a" not in text

    # Later events carrying any of her identifiers are dropped without a trace; positions advance.
    assert apply_observation(stage, with_ids(page(4, message_id="a4"), email="anna@example.de")) == []
    assert (
        apply_observation(stage, with_ids(page(5, message_id="a5"), anonymousId="dev-a", email="x@y.de"))
        == []
    )
    assert stage.suppressed_events == 2
    assert stage.next_position == 7
    [ben] = apply_observation(stage, with_ids(page(6, message_id="b2"), customerId="KB"))
    assert (ben.value["kind"], ben.value["position"]) == ("event", 7)
    # A refund of her order (it names only the order) no longer finds her profile.
    refund = with_ids(order_completed("o-a", 20.0, 7, message_id="a6"), other="")
    refund["event"] = "Order Refunded"
    [unresolved] = apply_observation(stage, refund)
    assert unresolved.topic is Topic.UNRESOLVED


def test_without_suppressed_hashes_events_are_not_hashed() -> None:
    class CountingHasher(IdentifierHasher):
        calls = 0

        def hash(self, identifier_key: str) -> str:
            CountingHasher.calls += 1
            return super().hash(identifier_key)

    stage = GraphProcessor(IdentityGraph(), hasher=CountingHasher("k"))
    for record in anna_events():
        stage.process(record)
    assert CountingHasher.calls == 0
    stage.suppress([HASHER.hash("email:nobody@example.de")])
    stage.process(with_ids(page(9, message_id="x"), customerId="KX"))
    assert CountingHasher.calls == 1


def test_a_suppressed_identifier_linked_into_someone_else_is_cut_out_and_rebuilt() -> None:
    stage = GraphProcessor(IdentityGraph(), hasher=HASHER, unstored_from=0)
    apply_observation(stage, with_ids(page(0, message_id="c1"), customerId="KC", phone="+4930123456"))
    apply_observation(stage, with_ids(page(1, message_id="a1"), email="anna@example.de"))
    apply_observation(stage, with_ids(page(2, message_id="a2"), email="anna@example.de"))  # kept
    records = apply_observation(stage, erase_observation([], {"phone:+4930123456"}))
    carl = founded_id(customer("KC"))
    [part] = resolved(records, Kind.SPLIT)
    assert (part["profileId"], part["identifiers"]) == (carl, ["customer_id:KC"])
    assert resolved(records, Kind.ERASE) == []  # the phone never named a profile of its own
    # Positions that leave no row are counted for the rebuild's wait on the warehouse.
    apply_observation(stage, with_ids(page(3, message_id="c2"), phone="+4930123456"))
    assert stage.unstored == 1
    apply_observation(stage, {"kind": "split", "a": "customer_id:KC", "b": "email:x@y.de"})
    records = apply_observation(stage, erase_observation([carl], set()))
    assert {v["profileId"] for v in resolved(records, Kind.ERASE)} == {carl}


def test_an_unreadable_erase_record_keeps_nothing_but_its_request_id() -> None:
    stage = GraphProcessor(IdentityGraph(), hasher=HASHER)
    [record] = apply_observation(
        stage, {"kind": "erase", "requestId": "r", "profileIds": "p_x", "suppress": []}
    )
    assert record.topic is Topic.UNRESOLVED
    assert record.value["event"] == {"kind": "erase", "requestId": "r"}
    assert stage.next_position == 1


def test_void_positions_of_a_replay_are_used_up() -> None:
    stage = GraphProcessor(IdentityGraph())
    assert apply_observation(stage, {"kind": "void"}, 5) == []
    assert stage.next_position == 6


# -- the fold stage -----------------------------------------------------------------------------------


def event_value(profile_id: str, record: dict[str, Any], position: int, *ids: str) -> dict[str, Any]:
    return {"kind": "event", "profileId": profile_id, "position": position, "identifiers": list(ids),
            "event": record}  # fmt: skip


def erase_value(profile_id: str, position: int) -> dict[str, Any]:
    return {"kind": "erase", "profileId": profile_id, "position": position, "requestId": "req-1"}


def test_the_fold_stage_forgets_an_erased_profile_and_ends_it_with_a_tombstone() -> None:
    fold = FoldProcessor(now, events_of=lambda keys: [])
    fold.process(event_value("p_a", with_ids(page(0, message_id="m1"), customerId="KA"), 1, "customer_id:KA"))
    [live] = fold.flush()
    assert live.value["version"] == 1

    erased, tombstone = fold.process(erase_value("p_a", 5))
    assert (erased.topic, erased.key, tombstone.topic, tombstone.key) == (
        Topic.PROFILES, "p_a", Topic.PROFILES, "p_a",
    )  # fmt: skip
    assert erased.value["erased"] is True and erased.value["live"] is False
    assert erased.value["version"] == 5  # above the last one published
    assert (erased.value["identifiers"], erased.value["traits"], erased.value["attributes"]) == ([], {}, {})
    assert erased.value["snapshot"] is None
    assert tombstone.tombstone
    [(_, _, erased_bytes), (_, key, value)] = encode([erased, tombstone])
    assert (key, value) == (b"p_a", None)
    assert is_erased_profile(erased_bytes) and is_erased_profile(None)
    assert "p_a" not in fold.live and "p_a" not in fold.former
    assert fold.flush() == []

    # Anything that reaches the id later is dropped: an event, a transfer in flight, a split part.
    late = event_value("p_a", with_ids(page(2, message_id="m2"), customerId="KA"), 6, "customer_id:KA")
    transfer = {"kind": "transfer", "profileId": "p_a", "from": "p_dev", "position": 3,
                "identifiers": ["anonymous_id:d"], "snapshot": {}}  # fmt: skip
    split = {"kind": "split", "profileId": "p_a", "position": 7, "identifiers": ["customer_id:KA"]}
    assert [fold.process(r) for r in (late, transfer, split)] == [[], [], []]
    assert fold.dropped_erased == 3
    assert fold.flush() == [] and "p_a" not in fold.live


def test_an_absorbed_id_is_erased_and_forwards_nothing_any_more() -> None:
    fold = FoldProcessor(now)
    fold.process(event_value("p_d", with_ids(page(0, message_id="m1"), anonymousId="d"), 1, "anonymous_id:d"))
    fold.process({"kind": "merge", "profileId": "p_d", "survivor": "p_a", "position": 2})
    assert fold.former["p_d"].merged_into == "p_a"
    erased, _tombstone = fold.process(erase_value("p_d", 4))
    assert erased.value["version"] == 4
    assert fold.process(event_value("p_d", with_ids(page(1, message_id="m2"), anonymousId="d"), 5)) == []


def test_a_loaded_tombstone_or_erased_record_is_no_profile() -> None:
    fold = FoldProcessor(now)
    fold.load({"profileId": "p_a", "erased": True, "version": 7})
    fold.load({"profileId": "p_b", "erased": True, "version": 0})  # a tombstone without its record
    assert fold.erased == {"p_a": 7, "p_b": 0}
    assert fold.process(event_value("p_a", with_ids(page(1, message_id="m"), customerId="K"), 9)) == []
    # A repeated erase publishes again, with a higher version.
    erased, _ = fold.process(erase_value("p_a", 3))
    assert erased.value["version"] == 8
    assert fold.forget(lambda pid: pid != "p_a") == 1
    assert "p_a" not in fold.erased
