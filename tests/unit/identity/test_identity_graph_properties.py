"""Properties of the identity graph over random events on a small universe of identifiers."""

from collections import Counter
from collections.abc import Iterable, Sequence

from hypothesis import given
from hypothesis import strategies as st

from services.identity.domain import Identifier, IdentityGraph, IdType, LinkLimits
from tests.unit.identity.graph_fixtures import anon, chat, customer, email, founded_id, phone, prov, recipient

# One customer id only: the customer-id conflict rule cannot trigger, so neither can any refusal.
FEW = [customer("K0"), *map(email, ["e0", "e1", "e2"]), *map(phone, ["p0", "p1"]), recipient("r0"),
       chat("c0"), *map(anon, ["a0", "a1", "a2", "a3", "a4"])]  # fmt: skip
NO_LIMITS = LinkLimits(email=1000, phone=1000, email_recipient_id=1000, chat_handle=1000, anonymous_id=1000)

Event = list[Identifier]
events_over = lambda universe: st.lists(  # noqa: E731
    st.lists(st.sampled_from(universe), min_size=1, max_size=4, unique=True), max_size=16
)


def connected_components(events: Iterable[Sequence[Identifier]]) -> dict[Identifier, frozenset[Identifier]]:
    """The reference: identifiers on one event are adjacent; a breadth-first walk groups them."""
    adjacent: dict[Identifier, set[Identifier]] = {}
    for event in events:
        for identifier in event:
            adjacent.setdefault(identifier, set()).update(event)
    component_of: dict[Identifier, frozenset[Identifier]] = {}
    for start in adjacent:
        if start in component_of:
            continue
        reached, queue = {start}, [start]
        for identifier in queue:
            for neighbour in adjacent[identifier] - reached:
                reached.add(neighbour)
                queue.append(neighbour)
        component = frozenset(reached)
        component_of.update(dict.fromkeys(component, component))
    return component_of


def replay(events: Iterable[Event], limits: LinkLimits = NO_LIMITS) -> tuple[IdentityGraph, int]:
    graph, refused = IdentityGraph(limits), 0
    for n, event in enumerate(events):
        refused += len(graph.observe(event, prov(f"m{n}")).refused)
    return graph, refused


def grouping(graph: IdentityGraph, identifiers: Iterable[Identifier]) -> dict[Identifier, str | None]:
    return {identifier: graph.profile_of(identifier) for identifier in identifiers}


@given(events=events_over(FEW), data=st.data())
def test_any_order_of_events_gives_the_same_profiles_and_ids(
    events: list[Event], data: st.DataObject
) -> None:
    shuffled = [data.draw(st.permutations(event)) for event in data.draw(st.permutations(events))]
    expected = connected_components(events)
    (graph, refused), (other, other_refused) = replay(events), replay(shuffled)

    assert refused == other_refused == 0
    assert grouping(graph, FEW) == grouping(other, FEW)
    assert graph.stats() == other.stats()
    assert graph.stats().profiles == len(set(expected.values()))
    for identifier, component in expected.items():
        profile_id = graph.profile_of(identifier)
        assert profile_id is not None
        assert set(graph.identifiers_of_profile(profile_id)) == component
        # The id is a function of the component alone: the id its best-ranked identifier founds.
        assert profile_id == founded_id(min(component, key=lambda i: i.rank_key))
        assert {(link.a, link.b) for link in graph.links_of_profile(profile_id)} == {
            (link.a, link.b) for link in other.links_of_profile(profile_id)
        }


# Several customer ids and tight limits: refusals happen; the safeguards must hold throughout.
MANY = [*map(customer, ["K0", "K1", "K2"]), *map(email, ["e0", "e1", "e2", "e3"]), *map(phone, ["p0", "p1"]),
        *map(recipient, ["r0", "r1"]), *map(chat, ["c0", "c1"]), *map(anon, ["a0", "a1", "a2", "a3", "a4"])]  # fmt: skip
TIGHT = LinkLimits(email=2, phone=1, email_recipient_id=1, chat_handle=1, anonymous_id=3)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("observe"), st.lists(st.sampled_from(MANY), min_size=1, max_size=4, unique=True)),
        st.tuples(st.just("split"), st.lists(st.sampled_from(MANY), min_size=2, max_size=2, unique=True)),
        st.tuples(st.just("detach"), st.lists(st.sampled_from(MANY), min_size=1, max_size=1)),
    ),
    max_size=24,
)


def apply(graph: IdentityGraph, operation: tuple[str, list[Identifier]], n: int) -> None:
    kind, identifiers = operation
    if kind == "observe":
        graph.observe(identifiers, prov(f"m{n}"))
    elif kind == "split":
        graph.split(identifiers[0], identifiers[1], reason="test")
    else:
        graph.detach(identifiers[0], reason="test")


def assert_safeguards_hold(graph: IdentityGraph, seen: set[Identifier]) -> None:
    profiles = {graph.profile_of(identifier) for identifier in seen}
    assert None not in profiles
    assert graph.stats().profiles == len(profiles)
    recorded_links = set()
    for profile_id in profiles:
        assert profile_id is not None
        members = graph.identifiers_of_profile(profile_id)
        counts = Counter(identifier.type for identifier in members)
        assert all(count <= TIGHT.of(id_type) for id_type, count in counts.items())
        assert counts[IdType.CUSTOMER_ID] <= 1
        assert all(graph.profile_of(identifier) == profile_id for identifier in members)
        recorded_links |= {(link.a, link.b) for link in graph.links_of_profile(profile_id)}
    # Links are the source of truth: profiles are exactly the components of the recorded links.
    expected = connected_components([*recorded_links, *([identifier] for identifier in seen)])
    for identifier in seen:
        assert set(graph.identifiers_of_profile(graph.profile_of(identifier) or "")) == expected[identifier]


@given(operations=operations)
def test_safeguards_hold_after_every_event_split_and_detach(
    operations: list[tuple[str, list[Identifier]]],
) -> None:
    graph = IdentityGraph(TIGHT)
    seen: set[Identifier] = set()
    for n, operation in enumerate(operations):
        apply(graph, operation, n)
        if operation[0] == "observe":
            seen.update(operation[1])
        assert_safeguards_hold(graph, seen)


@given(operations=operations, after=st.lists(st.sampled_from(MANY), min_size=1, max_size=4, unique=True))
def test_restore_round_trips_any_graph(operations: list[tuple[str, list[Identifier]]], after: Event) -> None:
    graph = IdentityGraph(TIGHT)
    for n, operation in enumerate(operations):
        apply(graph, operation, n)
    snapshot = graph.snapshot()
    restored = IdentityGraph.restore(snapshot, TIGHT)
    assert restored.snapshot() == snapshot
    assert restored.observe(after, prov("after")) == graph.observe(after, prov("after"))
    assert restored.snapshot() == graph.snapshot()


@given(events=events_over(FEW))
def test_absorbed_ids_keep_resolving_to_the_profile_holding_their_identifier(events: list[Event]) -> None:
    graph = IdentityGraph(NO_LIMITS)
    handed_out: dict[str, Identifier] = {}
    for n, event in enumerate(events):
        result = graph.observe(event, prov(f"m{n}"))
        assert result.profile_id is not None
        for identifier in event:
            profile_id = graph.profile_of(identifier)
            assert profile_id is not None
            best = min(graph.identifiers_of_profile(profile_id), key=lambda i: i.rank_key)
            handed_out[profile_id] = best
    for profile_id, identifier in handed_out.items():
        assert graph.resolve(profile_id) == graph.profile_of(identifier)
