"""The streaming identity stages: what each processor emits, and the proof that the pipeline,
scaled out over partitions and workers with any interleaving, redelivery and crashes, ends with
exactly the profiles that folding each final profile's events in one place gives."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.identity.domain import IdentityGraph, LinkLimits, ProfileState, identifiers_of
from services.identity.streaming import (
    FoldProcessor,
    GraphProcessor,
    Kind,
    OutRecord,
    StaleObservationError,
    Topic,
)
from services.identity.streaming.simulation import (
    Faults,
    PipelineSimulation,
    fold_by_final_profile,
    run_sequentially,
)
from tests.bench.profile_fold import canonical_events
from tests.unit.identity.graph_fixtures import anon, customer, email, founded_id
from tests.unit.identity.profile_events import event, identify, order_completed, page
from tests.unit.identity.streaming_scenarios import TABLET, Person, build, shop_histories

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TIGHT = LinkLimits(email=1, anonymous_id=2)
SIM = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LAYOUTS = st.sampled_from([(1, 1), (4, 1), (4, 2)])
FAULTS = st.sampled_from([Faults(), Faults(redeliver=0.05), Faults(redeliver=0.05, crash=0.02)])


def now() -> datetime:
    return NOW


def with_ids(record: dict[str, Any], **ids: str) -> dict[str, Any]:
    record["identifiers"] = ids
    return record


def of(records: list[OutRecord], topic: Topic) -> list[OutRecord]:
    return [r for r in records if r.topic is topic]


def resolved(records: list[OutRecord], kind: Kind) -> list[dict[str, Any]]:
    return [r.value for r in records if r.topic is Topic.RESOLVED and r.value["kind"] == kind]


# -- the proof ----------------------------------------------------------------------------------------


def _end(profile_id: str, next_of: dict[str, str | None]) -> str | None:
    seen = set()
    current: str | None = profile_id
    while current in next_of:
        assert current not in seen, f"redirect cycle through {current}"
        seen.add(current)
        current = next_of[current]
    return current


def assert_converged(sim: PipelineSimulation, limits: LinkLimits | None = None) -> None:
    reference = run_sequentially(sim.observations, now, limits)
    graph = reference.graph
    truth = {pid: s.to_snapshot() for pid, s in fold_by_final_profile(graph, sim.observed_events()).items()}
    live = sim.live_profiles()

    # The fold stage holds exactly the final profiles, each equal to folding its events in one place.
    assert {pid: p.state.to_snapshot() for pid, p in live.items()} == truth
    assert {pid: p.state.to_snapshot() for pid, p in reference.fold.live.items()} == truth
    # Identifiers as the graph has them; positions as the single worker has them.
    for pid, profile in live.items():
        assert profile.identifiers == {i.key for i in graph.identifiers_of_profile(pid)}
    assert {pid: p.position for pid, p in live.items()} == {
        pid: p.position for pid, p in reference.fold.live.items()
    }
    # The graph worker, restarts and replays included, decided what the single worker decided.
    for observed in sim.observed_events():
        for identifier in identifiers_of(observed):
            assert sim.graph.profile_of(identifier) == graph.profile_of(identifier)

    # Every id merged away redirects, hop by hop over the instances, to its live profile.
    former = {pid: f.merged_into for pid, f in sim.former_profiles().items()}
    for pid in truth:
        for absorbed in graph.absorbed_profile_ids(pid):
            assert _end(absorbed, former) == pid
    for pid, merged_into in former.items():
        expected = graph.resolve(pid)
        assert _end(pid, former) == (expected if merged_into is not None else None)
        assert merged_into is not None or expected not in truth

    # The compacted profiles topic says the same: live profiles, and where merged ids went.
    latest = sim.latest_profiles()
    assert {pid: v["snapshot"] for pid, v in latest.items() if v["live"]} == truth
    for pid, value in latest.items():
        if value["live"]:
            assert value["identifiers"] == [i.key for i in graph.identifiers_of_profile(pid)]
    merged_into = {pid: v["mergedInto"] for pid, v in latest.items() if not v["live"]}
    for pid in merged_into:
        end = _end(pid, merged_into)
        assert end == graph.resolve(pid) if end is not None else graph.resolve(pid) not in truth

    # Versions strictly increase per profile id over the topic.
    last: dict[str, int] = {}
    for key, value in sim.outputs[Topic.PROFILES]:
        assert value["version"] > last.get(key, 0)
        last[key] = value["version"]

    # Events naming nobody are kept aside, and only they.
    nobody = {e["messageId"] for e in sim.observed_events() if not identifiers_of(e)}
    assert {key for key, _ in sim.outputs[Topic.UNRESOLVED]} == nobody


@SIM
@given(
    history=shop_histories(),
    layout=LAYOUTS,
    seed=st.integers(0, 2**32),
    limits=st.sampled_from([None, TIGHT]),
    faults=FAULTS,
)
def test_scaled_out_pipeline_equals_folding_each_final_profile(
    history: list[dict[str, Any]],
    layout: tuple[int, int],
    seed: int,
    limits: LinkLimits | None,
    faults: Faults,
) -> None:
    partitions, instances = layout
    sim = PipelineSimulation(
        partitions=partitions, fold_instances=instances, seed=seed, now=now, limits=limits, faults=faults
    )
    for record in history:
        sim.publish(record)
    sim.run()
    assert_converged(sim, limits)


@SIM
@given(
    history=shop_histories(max_people=3),
    seed=st.integers(0, 2**32),
    faults=FAULTS,
    limits=st.sampled_from([None, TIGHT]),
    data=st.data(),
)
def test_splits_and_detaches_through_the_pipeline_rebuild_every_part(
    history: list[dict[str, Any]], seed: int, faults: Faults, limits: LinkLimits | None, data: st.DataObject
) -> None:
    """Operator corrections land at random moments while the fold stage lags: records in flight
    (transfers, forwarded events) must not bring a removed part back."""
    sim = PipelineSimulation(partitions=4, fold_instances=2, seed=seed, now=now, limits=limits, faults=faults)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(history)), min_size=1, max_size=3)))
    for start, cut in pairwise([0, *cuts]):
        for record in history[start:cut]:
            sim.publish(record)
        sim.run(steps=data.draw(st.integers(0, 4 * cut)))
        if data.draw(st.booleans()):
            sim.settle_graph()
        seen = [i for record in history[:cut] for i in identifiers_of(record)]
        links = [link for i in seen for link in sim.graph.links_of_profile(sim.graph.profile_of(i) or "")]
        if links and data.draw(st.booleans()):
            link = data.draw(st.sampled_from(links))
            sim.request_split(link.a, link.b)
        elif seen:
            sim.request_detach(data.draw(st.sampled_from(seen)))
    for record in history[cuts[-1] :]:
        sim.publish(record)
    sim.run()
    assert_converged(sim, limits)


def _shop_record(message_id: str, kind: str, ids: dict[str, str], **fields: Any) -> dict[str, Any]:
    chat = fields.get("event") == "Conversation Started"
    return {
        "schemaVersion": 1, "messageId": message_id, "type": kind, "channel": "chat" if chat else "shop",
        "source": "chat-widget" if chat else "web", "identifiers": ids, "properties": {}, "traits": {},
        "context": {"channel": "chat" if chat else "shop"}, "timestamp": "2026-11-01T12:00:00Z",
        "receivedAt": "2026-11-01T12:01:00Z", **fields,
    }  # fmt: skip


def test_a_transfer_forwarded_through_a_merge_after_a_detach_still_reaches_the_survivor() -> None:
    """Found by the property above: chat-0's first event sits in a profile whose transfer is still in
    flight when that profile merges (position 9) into the account rebuilt by the detach (position 7).
    The forwarded transfer carries position 6 but joined the account after its rebuild: it is kept."""
    device, chat = {"anonymousId": "dev-0-0"}, {"chatHandle": "chat-0"}
    talk = {"event": "Conversation Started", "properties": {"conversation_id": "c-0", "handled_by": "bot"}}
    before = [
        _shop_record("m-0-7", "identify", {**device, "customerId": "C0", "email": "p0.0@example.de"},
                     traits={"first_name": "Name0", "city": "Berlin"}),
        *(_shop_record(f"m-0-{n}", "page", device, name="Startseite") for n in (1, 2, 3, 4)),
        _shop_record("m-0-5", "track", {**chat, "email": "p0.1@example.de"}, **talk),
        _shop_record("m-0-9", "track", chat, **talk),
    ]  # fmt: skip
    after = [
        _shop_record("m-0-0", "page", device, name="Startseite"),
        _shop_record("m-0-8", "identify", {"anonymousId": "tablet-family", "customerId": "C0",
                     "email": "p0.1@example.de"}, traits={"first_name": "Name0", "city": "Köln"}),
        *(_shop_record(f"m-0-{n}", "page", device, name="Startseite") for n in (6, 10)),
    ]  # fmt: skip
    sim = PipelineSimulation(partitions=4, fold_instances=2, seed=1, now=now)
    for record in before:
        sim.publish(record)
    sim.settle_graph()
    sim.request_detach(email("p0.0@example.de"))
    for record in after:
        sim.publish(record)
    sim.run()
    [account] = sim.live_profiles().values()
    assert len(account.state.recent.occurrences("Conversation Started")) == 2
    assert_converged(sim)


def chain_history() -> list[dict[str, Any]]:
    """A device alone, then an email alone, then both on an order (device -> email), then the account
    with the device (email -> account): a chain of two merges."""
    return [
        with_ids(page(0, message_id="c1"), anonymousId="dev-1"),
        with_ids(event("Email Opened", 5, message_id="c2"), email="anna@example.de", emailRecipientId="r1"),
        with_ids(
            order_completed("o1", 20.0, 10, message_id="c3"), email="anna@example.de", anonymousId="dev-1"
        ),
        with_ids(identify(15, {"first_name": "Anna"}, message_id="c4"), customerId="K1", anonymousId="dev-1"),
        with_ids(page(20, message_id="c5"), anonymousId="dev-1"),
        with_ids(event("Email Opened", 25, message_id="c6"), email="anna@example.de"),
    ]


@SIM
@given(seed=st.integers(0, 2**32), layout=LAYOUTS, faults=FAULTS)
def test_chained_merges_end_in_the_last_survivor(seed: int, layout: tuple[int, int], faults: Faults) -> None:
    sim = PipelineSimulation(
        partitions=layout[0], fold_instances=layout[1], seed=seed, now=now, faults=faults
    )
    for record in chain_history():
        sim.publish(record)
        sim.settle_graph()  # fix the observation order; the fold stage lags at random
    sim.run()
    device, mail, account = (
        founded_id(anon("dev-1")),
        founded_id(email("anna@example.de")),
        founded_id(customer("K1")),
    )
    merges = {(v["absorbed"], v["survivor"]) for _, v in sim.outputs[Topic.MERGES]}
    assert merges == {(device, mail), (mail, account)}
    assert set(sim.live_profiles()) == {account}
    assert sim.live_profiles()[account].state.orders.attributes(NOW)["orders_count"] == 1
    assert sim.latest_profiles()[device]["mergedInto"] == mail
    assert_converged(sim)


@SIM
@given(seed=st.integers(0, 2**32), faults=FAULTS, cut=st.sampled_from([("K1", "dev-1"), ("email", "dev-1")]))
def test_a_split_overtakes_transfers_still_in_flight(seed: int, faults: Faults, cut: tuple[str, str]) -> None:
    """The split lands while the fold stage lags: transfers and forwarded events of the undone merges
    may reach the survivor after its rebuild, and must not bring the other part back."""
    sim = PipelineSimulation(partitions=4, fold_instances=2, seed=seed, now=now, faults=faults)
    for record in chain_history():
        sim.publish(record)
        sim.settle_graph()
    a = customer("K1") if cut[0] == "K1" else email("anna@example.de")
    sim.request_split(a, anon("dev-1"))
    sim.publish(with_ids(page(30, message_id="after"), anonymousId="dev-1"))
    sim.publish(with_ids(event("Email Opened", 35, message_id="after-2"), email="anna@example.de"))
    sim.run()
    # A redelivered request finds the link gone: it is audited as not_linked and changes nothing.
    assert next(v["status"] for _, v in sim.outputs[Topic.SPLITS]) == "split"
    assert set(sim.live_profiles()) == {founded_id(customer("K1")), founded_id(email("anna@example.de"))}
    assert_converged(sim)


@SIM
@given(seed=st.integers(0, 2**32), layout=LAYOUTS, order=st.permutations(range(6)))
def test_shared_tablet_keeps_two_customers_apart(
    seed: int, layout: tuple[int, int], order: list[int]
) -> None:
    one = Person(1, "K1", ("one@example.de",), (TABLET,), "chat-1", "rcp-1", None)
    two = Person(2, "K2", ("two@example.de",), (TABLET,), "chat-2", "rcp-2", None)
    history = [build(kind, who, k, 10 * k, 0) for k, (kind, who) in
               enumerate([("identify", one), ("identify", two), ("order", one), ("order", two),
                          ("page", one), ("email", two)])]  # fmt: skip
    sim = PipelineSimulation(partitions=layout[0], fold_instances=layout[1], seed=seed, now=now)
    for n in order:
        sim.publish(history[n])
    sim.run()
    accounts = {founded_id(customer("K1")), founded_id(customer("K2"))}
    assert accounts <= set(sim.live_profiles())
    assert not any({v["absorbed"], v["survivor"]} == accounts for _, v in sim.outputs[Topic.MERGES])
    reasons = {v["reason"] for _, v in sim.outputs[Topic.REFUSALS]}
    assert reasons == {"customer_id_conflict"}
    assert_converged(sim)


@pytest.mark.parametrize(("seed", "faults"), [(1, Faults()), (2, Faults(redeliver=0.02, crash=0.005))])
def test_demo_traffic_through_four_partitions_and_two_workers(seed: int, faults: Faults) -> None:
    sim = PipelineSimulation(partitions=4, fold_instances=2, seed=seed, now=now, faults=faults)
    for record in canonical_events(40, 30):
        sim.publish(record)
    sim.run()
    assert len(sim.live_profiles()) >= 20
    assert sim.outputs[Topic.MERGES]
    assert_converged(sim)


# -- the graph stage ----------------------------------------------------------------------------------


def test_event_record_carries_profile_position_and_identifiers() -> None:
    records = GraphProcessor(IdentityGraph()).process(
        with_ids(order_completed("o1", 10.0, 0), customerId="K1", email="Anna@Example.de")
    )
    [record] = records
    pid = founded_id(customer("K1"))
    assert record.topic is Topic.RESOLVED
    assert record.key == pid
    assert record.value["kind"] == "event"
    assert record.value["position"] == 0
    assert record.value["identifiers"] == ["customer_id:K1", "email:anna@example.de"]
    assert record.value["event"]["properties"]["order_id"] == "o1"


def test_merge_goes_to_the_absorbed_partition_and_to_the_merges_topic() -> None:
    graph = GraphProcessor(IdentityGraph())
    graph.process(with_ids(page(0, message_id="p1"), anonymousId="dev-1"))
    records = graph.process(
        with_ids(identify(5, {}, message_id="i1"), anonymousId="dev-1", customerId="K1"), position=7
    )
    device, account = founded_id(anon("dev-1")), founded_id(customer("K1"))
    [control] = resolved(records, Kind.MERGE)
    [public] = of(records, Topic.MERGES)
    assert control["profileId"] == device
    assert public.key == device
    assert public.value == {
        "schemaVersion": 1, "survivor": account, "absorbed": device, "position": 7,
        "linkA": "customer_id:K1", "linkB": "anonymous_id:dev-1", "rule": "identify",
        "messageId": "i1", "event": "identify", "timestamp": "2026-11-01T12:05:00Z",
    }  # fmt: skip
    assert resolved(records, Kind.EVENT)[0]["profileId"] == account


def test_an_event_naming_nobody_is_unresolved_and_creates_no_profile() -> None:
    graph = GraphProcessor(IdentityGraph())
    [record] = graph.process(
        with_ids(page(0, message_id="j1"), anonymousId="undefined", email="test@test.de")
    )
    assert record.topic is Topic.UNRESOLVED
    assert record.key == "j1"
    assert record.value["reason"] == "no_identifier"
    assert graph.graph.profile_count() == 0


def test_a_malformed_event_is_set_aside_instead_of_stopping_the_partition() -> None:
    broken = with_ids(page(0, message_id="x1"), customerId="K1")
    broken["timestamp"] = "yesterday"
    [record] = GraphProcessor(IdentityGraph()).process(broken)
    assert record.topic is Topic.UNRESOLVED
    assert record.value["reason"] == "malformed_event"


def test_an_observation_older_than_the_graph_state_is_refused() -> None:
    """Replaying it against a later state could decide differently (a limit freed by a split)."""
    graph = GraphProcessor(IdentityGraph(), position=5)
    graph.process(with_ids(page(0), anonymousId="dev-1"), position=5)
    with pytest.raises(StaleObservationError):
        graph.process(with_ids(page(0), anonymousId="dev-1"), position=5)
    assert graph.process(with_ids(page(1), anonymousId="dev-1"), position=9)[0].value["position"] == 9


def test_a_refused_link_is_recorded_and_its_identifier_left_off_the_event() -> None:
    graph = GraphProcessor(IdentityGraph())
    graph.process(with_ids(identify(0, {}, message_id="i1"), customerId="K1", anonymousId=TABLET))
    records = graph.process(with_ids(identify(5, {}, message_id="i2"), customerId="K2", anonymousId=TABLET))
    [refusal] = of(records, Topic.REFUSALS)
    assert refusal.key == "i2"
    assert refusal.value["reason"] == "customer_id_conflict"
    assert (refusal.value["a"], refusal.value["b"]) == ("customer_id:K2", f"anonymous_id:{TABLET}")
    assert resolved(records, Kind.EVENT)[0]["identifiers"] == ["customer_id:K2"]
    assert not of(records, Topic.MERGES)


def test_a_split_rebuilds_every_part_and_redirects_the_absorbed_ids() -> None:
    graph = GraphProcessor(IdentityGraph())
    graph.process(with_ids(page(0, message_id="p1"), anonymousId="dev-1"))
    graph.process(with_ids(identify(5, {}, message_id="i1"), anonymousId="dev-1", customerId="K1"))
    graph.process(with_ids(page(6, message_id="p2"), anonymousId="dev-2"))
    graph.process(with_ids(page(7, message_id="p3"), anonymousId="dev-2", email="a@example.de"))
    graph.process(
        with_ids(order_completed("o", 1.0, 9, message_id="o1"), customerId="K1", email="a@example.de")
    )
    records = graph.split(customer("K1"), email("a@example.de"), "wrong person")
    account, mail, dev2 = (
        founded_id(customer("K1")),
        founded_id(email("a@example.de")),
        founded_id(anon("dev-2")),
    )
    splits = {v["profileId"]: v["identifiers"] for v in resolved(records, Kind.SPLIT)}
    assert splits == {
        account: ["customer_id:K1", "anonymous_id:dev-1"],
        mail: ["email:a@example.de", "anonymous_id:dev-2"],
    }
    redirects = {v["profileId"]: v["mergedInto"] for v in resolved(records, Kind.REDIRECT)}
    assert redirects == {founded_id(anon("dev-1")): account, dev2: mail}
    [audit] = of(records, Topic.SPLITS)
    assert audit.value["status"] == "split"
    assert audit.value["reason"] == "wrong person"


def test_a_split_that_leaves_the_profile_connected_only_audits() -> None:
    graph = GraphProcessor(IdentityGraph())
    graph.process(with_ids(identify(5, {}, message_id="i1"), anonymousId="dev-1", customerId="K1"))
    graph.process(with_ids(page(6, message_id="p1"), anonymousId="dev-1", email="a@example.de"))
    graph.process(
        with_ids(order_completed("o", 1.0, 9, message_id="o1"), customerId="K1", email="a@example.de")
    )
    records = graph.split(customer("K1"), email("a@example.de"))
    assert [r.topic for r in records] == [Topic.SPLITS]
    assert records[0].value["status"] == "still_connected"


# -- the fold stage -----------------------------------------------------------------------------------


def event_value(profile_id: str, record: dict[str, Any], position: int, *ids: str) -> dict[str, Any]:
    return {
        "kind": "event",
        "profileId": profile_id,
        "position": position,
        "identifiers": list(ids),
        "event": record,
    }


def merge_value(absorbed: str, survivor: str, position: int) -> dict[str, Any]:
    return {
        "kind": "merge",
        "profileId": absorbed,
        "survivor": survivor,
        "absorbed": absorbed,
        "position": position,
    }


def test_a_burst_for_one_profile_publishes_one_record() -> None:
    fold = FoldProcessor(now)
    for n in range(1000):
        fold.process(
            event_value(
                "p_a", with_ids(page(n / 100, message_id=f"m{n}"), customerId="K1"), n, "customer_id:K1"
            )
        )
    [record] = fold.flush()
    assert record.topic is Topic.PROFILES
    assert record.key == "p_a"
    assert record.value["live"] is True
    assert record.value["identifiers"] == ["customer_id:K1"]
    assert record.value["attributes"]["active_days"] == 1
    assert record.value["version"] == 999
    assert fold.flush() == []


def test_a_merge_moves_the_state_and_later_events_follow_it() -> None:
    fold = FoldProcessor(now)
    fold.process(event_value("p_q", with_ids(page(0, message_id="m1"), anonymousId="d"), 1, "anonymous_id:d"))
    records = fold.process(merge_value("p_q", "p_s", 2))
    [transfer] = resolved(records, Kind.TRANSFER)
    assert (transfer["profileId"], transfer["from"], transfer["identifiers"]) == (
        "p_s",
        "p_q",
        ["anonymous_id:d"],
    )
    [retired] = of(records, Topic.PROFILES)
    assert (retired.value["live"], retired.value["mergedInto"]) == (False, "p_s")
    late = fold.process(
        event_value("p_q", with_ids(page(3, message_id="m2"), anonymousId="d"), 1, "anonymous_id:d")
    )
    assert [(r.key, r.value["kind"], r.value["forwardedFrom"]) for r in late] == [("p_s", "event", "p_q")]
    assert fold.flush() == []


def test_a_transfer_applied_twice_changes_nothing() -> None:
    source = FoldProcessor(now)
    for n, name in enumerate(["Order Completed", "Conversation Started"]):
        props = {"order_id": "o1", "revenue": 5.0, "conversation_id": "c1"}
        source.process(event_value("p_q", with_ids(event(name, n, properties=props), email="a@b.de"), n))
    [transfer] = resolved(source.process(merge_value("p_q", "p_s", 5)), Kind.TRANSFER)
    target = FoldProcessor(now)
    target.process(event_value("p_s", with_ids(page(9), customerId="K1"), 4))
    target.process(transfer)
    once = target.live["p_s"].state.to_snapshot()
    target.process(transfer)
    assert target.live["p_s"].state.to_snapshot() == once


def test_a_transfer_to_a_survivor_absorbed_meanwhile_is_forwarded() -> None:
    fold = FoldProcessor(now)
    fold.process(event_value("p_b", with_ids(page(0), email="b@x.de"), 1))
    fold.process(merge_value("p_b", "p_c", 3))
    transfer = {"kind": "transfer", "profileId": "p_b", "from": "p_a", "position": 2,
                "identifiers": [], "snapshot": ProfileState().to_snapshot()}  # fmt: skip
    [onward] = fold.process(transfer)
    assert (onward.key, onward.value["from"]) == ("p_c", "p_a")


def test_a_record_overtaken_by_a_split_is_dropped() -> None:
    stored = [with_ids(page(0, message_id="m1"), customerId="K1")]
    fold = FoldProcessor(now, events_of=lambda keys: stored)
    fold.process({"kind": "split", "profileId": "p_k", "position": 10, "identifiers": ["customer_id:K1"]})
    stale = event_value("p_k", with_ids(page(1, message_id="m2"), anonymousId="d"), 8, "anonymous_id:d")
    assert fold.process(stale) == []
    assert fold.overtaken == 1
    assert fold.live["p_k"].identifiers == {"customer_id:K1"}
    assert fold.live["p_k"].state.to_snapshot() == folded(stored)


def test_a_record_forwarded_through_a_merge_after_the_split_is_kept() -> None:
    """The rebuild at 7 covers what was p_k's at 7, not p_b's: p_b's transfer (position 5) forwarded
    over p_b's merge at 9 is kept, one forwarded over a merge before the rebuild is dropped."""
    stored = [with_ids(page(0, message_id="m1"), customerId="K1")]
    fold = FoldProcessor(now, events_of=lambda keys: stored)
    fold.process(event_value("p_a", with_ids(page(1, message_id="m2"), anonymousId="a"), 2, "anonymous_id:a"))
    fold.process(merge_value("p_a", "p_k", 3))  # p_a joined p_k before the split
    fold.process({"kind": "split", "profileId": "p_k", "position": 7, "identifiers": ["customer_id:K1"]})
    fold.process(event_value("p_b", with_ids(page(2, message_id="m3"), email="b@x.de"), 4, "email:b@x.de"))
    [merged, _] = fold.process(merge_value("p_b", "p_k", 9))
    fold.process(merged.value)
    late = {"kind": "transfer", "profileId": "p_b", "from": "p_c", "position": 5, "identifiers": ["chat_handle:c"],
            "snapshot": folded([with_ids(event("Conversation Started", 3, message_id="m4"), chatHandle="c")])}  # fmt: skip
    [kept] = fold.process(late)
    assert (kept.key, kept.value["forwardedAt"], kept.value["forwardedFrom"]) == ("p_k", 9, "p_b")
    stale = event_value("p_a", with_ids(page(3, message_id="m5"), anonymousId="a"), 2, "anonymous_id:a")
    [dropped] = fold.process(stale)
    assert dropped.value["forwardedAt"] == 3
    assert fold.process(kept.value) == []
    assert fold.process(dropped.value) == []
    assert fold.overtaken == 1
    assert fold.live["p_k"].identifiers == {"customer_id:K1", "email:b@x.de", "chat_handle:c"}
    assert len(fold.live["p_k"].state.recent.occurrences("Conversation Started")) == 1


def test_a_replayed_split_keeps_what_reached_the_part_after_it() -> None:
    """A graph worker restarted before the split's offset emits the split again: the part was already
    rebuilt at that position, so the replay changes nothing (a transfer applied since is not re-sent)."""
    stored = [with_ids(page(0, message_id="m1"), customerId="K1")]
    fold = FoldProcessor(now, events_of=lambda keys: stored)
    split = {"kind": "split", "profileId": "p_k", "position": 7, "identifiers": ["customer_id:K1"]}
    fold.process(split)
    transfer = {"kind": "transfer", "profileId": "p_k", "from": "p_c", "position": 9, "identifiers": ["chat_handle:c"],
                "snapshot": folded([with_ids(event("Conversation Started", 3, message_id="m2"), chatHandle="c")])}  # fmt: skip
    fold.process(transfer)
    joined = fold.live["p_k"].state.to_snapshot()
    assert fold.process(split) == []
    assert fold.live["p_k"].state.to_snapshot() == joined
    assert fold.live["p_k"].identifiers == {"customer_id:K1", "chat_handle:c"}


def folded(events: list[dict[str, Any]]) -> dict[str, Any]:
    state = ProfileState()
    for record in events:
        state.apply(record)
    return state.to_snapshot()


def test_a_split_part_without_events_is_retired() -> None:
    fold = FoldProcessor(now, events_of=lambda keys: [])
    [record] = fold.process(
        {"kind": "split", "profileId": "p_d", "position": 4, "identifiers": ["anonymous_id:d"]}
    )
    assert (record.value["live"], record.value["mergedInto"], record.value["rebuiltAt"]) == (False, None, 4)
    assert "p_d" not in fold.live


def test_versions_increase_through_merge_and_revival() -> None:
    fold = FoldProcessor(now, events_of=lambda keys: [with_ids(page(0, message_id="m1"), anonymousId="d")])
    fold.process(event_value("p_q", with_ids(page(0, message_id="m1"), anonymousId="d"), 1, "anonymous_id:d"))
    versions = [r.value["version"] for r in fold.flush()]
    versions += [r.value["version"] for r in of(fold.process(merge_value("p_q", "p_s", 2)), Topic.PROFILES)]
    fold.process({"kind": "split", "profileId": "p_q", "position": 3, "identifiers": ["anonymous_id:d"]})
    versions += [r.value["version"] for r in fold.flush()]
    assert versions == [1, 2, 3]


def test_load_restores_a_profile_from_its_latest_record() -> None:
    fold = FoldProcessor(now)
    fold.process(
        event_value("p_a", with_ids(identify(0, {"city": "Köln"}), customerId="K1"), 6, "customer_id:K1")
    )
    [record] = fold.flush()
    restored = FoldProcessor(now)
    restored.load(record.value)
    assert restored.live["p_a"].state.to_snapshot() == fold.live["p_a"].state.to_snapshot()
    assert restored.live["p_a"].identifiers == {"customer_id:K1"}
    restored.process(event_value("p_a", with_ids(page(1), customerId="K1"), 7, "customer_id:K1"))
    assert [r.value["version"] for r in restored.flush()] == [record.value["version"] + 1]


def test_every_record_kind_appears_in_a_busy_run() -> None:
    """Guards the proof against testing nothing: a rich run exercises every path."""
    sim = PipelineSimulation(partitions=4, fold_instances=2, seed=3, now=now)
    for record in chain_history():
        sim.publish(record)
        sim.settle_graph()
    sim.request_split(customer("K1"), anon("dev-1"))
    sim.publish(with_ids(page(30, message_id="after"), anonymousId="dev-1"))
    sim.run()
    kinds = Counter(value["kind"] for partition in sim.resolved for value in partition)
    assert set(kinds) == {"event", "merge", "transfer", "split", "redirect"}
    assert_converged(sim)


def test_an_order_follow_up_naming_only_its_order_belongs_to_the_order_s_profile() -> None:
    from datetime import UTC, datetime

    import orjson

    from services.identity.streaming.records import Topic
    from services.identity.streaming.simulation import run_sequentially
    from services.ingest.normalise import NormalisedEvent, normalise

    now = datetime(2026, 11, 22, tzinfo=UTC)
    raw = [
        {"type": "track", "event": "Order Completed", "userId": "C-1", "messageId": "m1",
         "properties": {"order_id": "O-1", "revenue": 100.0, "email": "anna@example.de"}},
        # A refund as Shopify sends it: the order id, no person.
        {"type": "track", "event": "Order Refunded", "messageId": "m2",
         "properties": {"order_id": "O-1", "revenue": 40.0}},
        # A refund of an order nobody has seen stays unresolved.
        {"type": "track", "event": "Order Refunded", "messageId": "m3", "properties": {"order_id": "O-9"}},
    ]  # fmt: skip
    events = []
    for message in raw:
        event = normalise(message, received_at=now, default_source="test")
        assert isinstance(event, NormalisedEvent), event
        events.append(orjson.loads(event.to_json()))
    run = run_sequentially([("event", e) for e in events], lambda: now)
    resolved = [r for r in run.outputs if r.topic is Topic.RESOLVED and r.value["kind"] == "event"]
    assert [r.value["event"]["messageId"] for r in resolved] == ["m1", "m2"]
    assert resolved[1].value["profileId"] == resolved[0].value["profileId"]
    assert resolved[1].value["identifiers"] == ["customer_id:C-1"]
    assert [r.value["event"]["messageId"] for r in run.outputs if r.topic is Topic.UNRESOLVED] == ["m3"]
    (profile,) = run.fold.live.values()
    assert profile.state.attributes(now)["revenue_net"] == 60.0
