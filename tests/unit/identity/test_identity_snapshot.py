import dataclasses

import orjson
import pytest

from services.identity.domain import GraphSnapshot, IdentityGraph, LinkLimits, LinkRule
from tests.unit.identity.graph_fixtures import anon, customer, email, phone, prov


def busy_graph() -> IdentityGraph:
    """Merges, a refusal, a split, a detach and redirects: every kind of snapshot row."""
    graph = IdentityGraph(LinkLimits(email=2))
    graph.observe([anon("a1")], prov("m1"))
    graph.observe([anon("a1"), email("e1@x.de")], prov("m2"))
    graph.observe([email("e1@x.de"), customer("K-1")], prov("m3", LinkRule.IDENTIFY))
    graph.observe([customer("K-1"), email("e2@x.de"), email("e3@x.de")], prov("m4"))  # e3: limit
    graph.observe([anon("tablet"), customer("K-1")], prov("m5", LinkRule.IDENTIFY))
    graph.observe([anon("tablet"), customer("K-2")], prov("m6", LinkRule.IDENTIFY))  # conflict
    graph.observe([phone("+4915123456789"), anon("a9")], prov("m7", LinkRule.ALIAS))
    graph.observe([customer("K-1"), phone("+4915123456789")], prov("m8"))
    graph.split(customer("K-1"), phone("+4915123456789"), reason="typo")
    graph.detach(anon("tablet"), reason="kiosk")
    return graph


def test_restore_gives_an_identical_graph() -> None:
    graph = busy_graph()
    snapshot = graph.snapshot()
    restored = IdentityGraph.restore(snapshot, LinkLimits(email=2))
    assert restored.snapshot() == snapshot
    assert restored.stats() == graph.stats()
    for row in snapshot.identifiers:
        profile_id = row["profile_id"]
        assert restored.identifiers_of_profile(profile_id) == graph.identifiers_of_profile(profile_id)
        assert restored.links_of_profile(profile_id) == graph.links_of_profile(profile_id)
    for redirect in snapshot.redirects:
        assert restored.resolve(redirect["absorbed"]) == redirect["survivor"]


def test_restored_graph_decides_the_next_events_like_the_original() -> None:
    graph = busy_graph()
    restored = IdentityGraph.restore(graph.snapshot(), LinkLimits(email=2))
    events = [
        [customer("K-1"), phone("+4915123456789")],  # split pair
        [anon("tablet"), email("new@x.de")],  # detached
        [customer("K-1"), email("e4@x.de")],  # email limit
        [anon("a9"), anon("a1")],  # merge
    ]
    for n, identifiers in enumerate(events):
        assert restored.observe(identifiers, prov(f"n{n}")) == graph.observe(identifiers, prov(f"n{n}"))
    assert restored.snapshot() == graph.snapshot()


def test_snapshot_rows_are_plain_json() -> None:
    snapshot = busy_graph().snapshot()
    rows = orjson.loads(orjson.dumps(dataclasses.asdict(snapshot)))
    again = GraphSnapshot(**{kind: tuple(kind_rows) for kind, kind_rows in rows.items()})
    assert IdentityGraph.restore(again, LinkLimits(email=2)).snapshot() == snapshot
    assert {row["rule"] for row in rows["links"]} == {"same_event", "identify", "alias"}
    assert rows["forbidden_pairs"] == [
        {"a": "customer_id:K-1", "b": "phone:+4915123456789", "reason": "typo"}
    ]
    assert rows["detached"] == [{"identifier": "anonymous_id:tablet", "reason": "kiosk"}]


def test_restore_keeps_profiles_even_if_limits_were_lowered() -> None:
    graph = IdentityGraph()
    graph.observe([customer("K-1"), email("a@x.de"), email("b@x.de"), email("c@x.de")], prov())
    restored = IdentityGraph.restore(graph.snapshot(), LinkLimits(email=1))
    assert restored.stats().profiles == 1
    assert restored.observe([customer("K-1"), email("d@x.de")], prov()).refused


def test_restore_with_another_salt_is_refused() -> None:
    snapshot = busy_graph().snapshot()
    with pytest.raises(ValueError, match="snapshot inconsistent"):
        IdentityGraph.restore(snapshot, profile_id_salt=b"other")


def test_restore_refuses_a_corrupt_snapshot() -> None:
    snapshot = busy_graph().snapshot()
    first = {**snapshot.identifiers[0], "profile_id": snapshot.identifiers[-1]["profile_id"]}
    with pytest.raises(ValueError, match="snapshot inconsistent"):
        IdentityGraph.restore(dataclasses.replace(snapshot, identifiers=(first, *snapshot.identifiers[1:])))
    dangling = {**snapshot.links[0], "b": "email:nobody@x.de"}
    with pytest.raises(ValueError, match="does not list"):
        IdentityGraph.restore(dataclasses.replace(snapshot, links=(dangling, *snapshot.links[1:])))
    with pytest.raises(ValueError, match="listed twice"):
        IdentityGraph.restore(dataclasses.replace(snapshot, identifiers=snapshot.identifiers * 2))
