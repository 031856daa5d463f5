import pytest

from services.identity.domain import (
    IdentityGraph,
    LinkLimits,
    LinkRule,
    ObserveResult,
    RefusalReason,
    SplitStatus,
)
from tests.unit.identity.graph_fixtures import anon, chat, customer, email, founded_id, phone, prov, recipient


def resolved(result: ObserveResult) -> str:
    assert result.profile_id is not None
    return result.profile_id


def test_lone_new_identifier_creates_a_profile() -> None:
    graph = IdentityGraph()
    result = graph.observe([anon("dev-1")], prov())
    assert result.new_identifiers == (anon("dev-1"),)
    assert result.profile_id is not None
    assert result.profile_id.startswith("p_")
    assert graph.profile_of(anon("dev-1")) == result.profile_id
    assert graph.stats().profiles == 1


def test_event_without_identifiers_resolves_to_no_profile() -> None:
    assert IdentityGraph().observe([], prov()).profile_id is None


def test_identifiers_on_one_event_form_one_profile() -> None:
    graph = IdentityGraph()
    result = graph.observe(
        [anon("dev-1"), customer("K-1"), email("anna@example.de")], prov(rule=LinkRule.IDENTIFY)
    )
    profile_id = resolved(result)
    assert graph.identifiers_of_profile(profile_id) == (
        customer("K-1"),
        email("anna@example.de"),
        anon("dev-1"),
    )
    assert len(result.new_links) == 2
    assert result.merges == ()  # nothing that had an id was absorbed: three newcomers
    assert graph.stats().profiles == 1


def test_links_are_a_star_from_the_best_ranked_identifier_with_provenance() -> None:
    graph = IdentityGraph()
    profile_id = resolved(
        graph.observe([anon("dev-1"), email("anna@example.de"), customer("K-1")], prov("m-9"))
    )
    links = graph.links_of_profile(profile_id)
    assert {(link.a, link.b) for link in links} == {
        (customer("K-1"), email("anna@example.de")),
        (customer("K-1"), anon("dev-1")),
    }
    assert {link.provenance.message_id for link in links} == {"m-9"}


def test_connected_identifiers_across_events_are_one_profile() -> None:
    graph = IdentityGraph()
    graph.observe([anon("dev-1"), email("anna@example.de")], prov("m1"))
    graph.observe([email("anna@example.de"), phone("+4915123456789")], prov("m2"))
    graph.observe([phone("+4915123456789"), chat("visitor-1")], prov("m3"))
    assert len({graph.profile_of(i) for i in (anon("dev-1"), chat("visitor-1"))}) == 1
    assert graph.stats().profiles == 1


def test_repeated_event_changes_nothing_and_keeps_first_provenance() -> None:
    graph = IdentityGraph()
    first = graph.observe([customer("K-1"), anon("dev-1")], prov("m1"))
    again = graph.observe([customer("K-1"), anon("dev-1")], prov("m2"))
    assert again == ObserveResult(first.profile_id)
    assert not again.changed
    assert [link.provenance.message_id for link in graph.links_of_profile(resolved(first))] == ["m1"]


def test_profile_id_is_derived_from_the_best_ranked_identifier() -> None:
    graph = IdentityGraph()
    graph.observe([anon("dev-1")], prov("m1"))
    result = graph.observe([anon("dev-1"), email("anna@example.de")], prov("m2"))
    assert result.profile_id == founded_id(email("anna@example.de"))


def test_profile_ids_are_stable_across_replays_and_depend_on_the_salt() -> None:
    events = [[anon("a"), email("e@x.de")], [email("e@x.de"), customer("K")]]
    ids = []
    for salt in (b"", b"", b"secret"):
        graph = IdentityGraph(profile_id_salt=salt)
        for n, identifiers in enumerate(events):
            graph.observe(identifiers, prov(f"m{n}"))
        ids.append(graph.profile_of(anon("a")))
    assert ids[0] == ids[1] != ids[2]


def test_merge_keeps_the_better_ranked_profile_and_redirects_the_other() -> None:
    graph = IdentityGraph()
    anonymous_profile = resolved(graph.observe([anon("dev-1")], prov("m1")))
    email_profile = resolved(graph.observe([email("anna@example.de")], prov("m2")))
    result = graph.observe(
        [anon("dev-1"), email("anna@example.de")], prov("m3", event="Newsletter Subscribed")
    )
    assert result.profile_id == email_profile
    [merge] = result.merges
    assert (merge.survivor, merge.absorbed) == (email_profile, anonymous_profile)
    assert (merge.link.a, merge.link.b) == (email("anna@example.de"), anon("dev-1"))
    assert (merge.provenance.message_id, merge.rule) == ("m3", LinkRule.SAME_EVENT)
    assert graph.resolve(anonymous_profile) == email_profile
    assert graph.absorbed_profile_ids(email_profile) == (anonymous_profile,)
    assert graph.identifiers_of_profile(anonymous_profile) == graph.identifiers_of_profile(email_profile)


def test_survivor_does_not_depend_on_which_profile_came_first() -> None:
    outcomes = set()
    for order in ([anon("dev-1"), email("anna@example.de")], [email("anna@example.de"), anon("dev-1")]):
        graph = IdentityGraph()
        for n, identifier in enumerate(order):
            graph.observe([identifier], prov(f"m{n}"))
        [merge] = graph.observe([anon("dev-1"), email("anna@example.de")], prov("link")).merges
        outcomes.add((merge.survivor, merge.absorbed))
    assert outcomes == {(founded_id(email("anna@example.de")), founded_id(anon("dev-1")))}


def test_redirects_follow_chains_of_merges() -> None:
    graph = IdentityGraph()
    first = resolved(graph.observe([anon("dev-1")], prov("m1")))
    second = resolved(graph.observe([anon("dev-1"), email("anna@example.de")], prov("m2")))
    third = resolved(graph.observe([email("anna@example.de"), customer("K-1")], prov("m3")))
    assert len({first, second, third}) == 3
    assert graph.resolve(first) == graph.resolve(second) == graph.resolve(third) == third
    assert set(graph.absorbed_profile_ids(third)) == {first, second}


def test_one_event_can_merge_several_profiles() -> None:
    graph = IdentityGraph()
    phone_profile = resolved(graph.observe([phone("+4915123456789")], prov("m1")))
    device_profile = resolved(graph.observe([anon("dev-2")], prov("m2")))
    result = graph.observe([anon("dev-2"), email("anna@example.de"), phone("+4915123456789")], prov("m3"))
    assert result.profile_id == founded_id(email("anna@example.de"))
    assert {(m.survivor, m.absorbed) for m in result.merges} == {
        (result.profile_id, phone_profile),
        (result.profile_id, device_profile),
    }
    assert graph.stats().profiles == 1


def test_ids_that_never_named_a_profile_do_not_resolve() -> None:
    graph = IdentityGraph()
    graph.observe([customer("K-1"), anon("dev-1")], prov())
    assert graph.resolve(founded_id(anon("dev-1"))) is None  # dev-1 joined K-1 at once
    assert graph.resolve(founded_id(anon("unknown"))) is None
    assert graph.resolve("not-a-profile-id") is None
    assert graph.resolve(founded_id(customer("K-1")).upper()) is None
    assert graph.identifiers_of_profile("p_nothing") == ()
    assert graph.links_of_profile("p_nothing") == ()


def test_shared_tablet_never_merges_two_customers() -> None:
    graph = IdentityGraph()
    first = resolved(graph.observe([anon("tablet"), customer("K-1")], prov("login-1", LinkRule.IDENTIFY)))
    result = graph.observe([anon("tablet"), customer("K-2")], prov("login-2", LinkRule.IDENTIFY))
    second = resolved(result)
    assert second != first
    assert second == founded_id(customer("K-2"))  # the event resolves to its customer id's profile
    [refused] = result.refused
    assert (refused.a, refused.b, refused.reason) == (customer("K-2"), anon("tablet"), "customer_id_conflict")
    assert (refused.a_profile, refused.b_profile) == (second, first)
    assert refused.provenance.message_id == "login-2"
    assert graph.profile_of(anon("tablet")) == first
    assert graph.identifiers_of_profile(second) == (customer("K-2"),)
    assert graph.stats().profiles == 2


def test_customer_id_conflict_also_guards_merges_through_other_identifiers() -> None:
    graph = IdentityGraph()
    graph.observe([customer("K-1"), email("shared@example.de")], prov("m1"))
    graph.observe([customer("K-2"), anon("dev-2")], prov("m2"))
    result = graph.observe([email("shared@example.de"), anon("dev-2")], prov("m3"))
    assert [r.reason for r in result.refused] == [RefusalReason.CUSTOMER_ID_CONFLICT]
    assert graph.profile_of(customer("K-1")) != graph.profile_of(customer("K-2"))


def test_link_beyond_a_type_limit_is_refused_and_recorded() -> None:
    graph = IdentityGraph(LinkLimits(email=2))
    profile_id = resolved(graph.observe([customer("K-1"), email("a@x.de"), email("b@x.de")], prov("m1")))
    result = graph.observe([customer("K-1"), email("c@x.de")], prov("m2"))
    assert result.profile_id == profile_id
    [refused] = result.refused
    assert (refused.b, refused.reason) == (email("c@x.de"), RefusalReason.LIMIT_EMAIL)
    assert graph.profile_of(email("c@x.de")) == founded_id(email("c@x.de"))  # alone, not silently dropped
    assert len(graph.identifiers_of_profile(profile_id)) == 3


def test_limit_counts_both_profiles_of_a_merge() -> None:
    graph = IdentityGraph(LinkLimits(anonymous_id=3))
    graph.observe([email("e@x.de"), anon("a1"), anon("a2")], prov("m1"))
    graph.observe([phone("+4915123456789"), anon("a3"), anon("a4")], prov("m2"))
    result = graph.observe([email("e@x.de"), phone("+4915123456789")], prov("m3"))
    assert [r.reason for r in result.refused] == ["limit:anonymous_id"]
    assert graph.stats().profiles == 2


def test_refused_link_does_not_stop_the_event_s_other_links() -> None:
    graph = IdentityGraph(LinkLimits(chat_handle=1))
    graph.observe([customer("K-1"), chat("c1")], prov("m1"))
    result = graph.observe([customer("K-1"), chat("c2"), recipient("r1")], prov("m2"))
    assert [(r.b, r.reason) for r in result.refused] == [(chat("c2"), "limit:chat_handle")]
    assert graph.profile_of(recipient("r1")) == result.profile_id == founded_id(customer("K-1"))


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        LinkLimits(email=0)
    with pytest.raises(ValueError, match="customer_id"):
        LinkLimits(customer_id=2)  # type: ignore[arg-type]


def test_split_removes_a_wrong_link_and_revives_the_absorbed_profile() -> None:
    graph = IdentityGraph()
    customer_profile = resolved(graph.observe([customer("K-1"), anon("dev-1")], prov("m1")))
    typo_profile = resolved(graph.observe([email("anna@exmaple.de")], prov("m2")))
    graph.observe([customer("K-1"), email("anna@exmaple.de")], prov("typo"))
    assert graph.resolve(typo_profile) == customer_profile

    result = graph.split(customer("K-1"), email("anna@exmaple.de"), reason="mistyped email")
    assert result.status is SplitStatus.SPLIT
    assert result.profiles == (customer_profile, typo_profile)
    assert [link.provenance.message_id for link in result.removed_links] == ["typo"]
    assert graph.identifiers_of_profile(customer_profile) == (customer("K-1"), anon("dev-1"))
    assert graph.resolve(typo_profile) == typo_profile
    assert graph.stats().profiles == 2


def test_split_pair_is_not_relinked_by_a_replay() -> None:
    graph = IdentityGraph()
    graph.observe([customer("K-1"), email("anna@exmaple.de")], prov("typo"))
    graph.split(customer("K-1"), email("anna@exmaple.de"))
    result = graph.observe([customer("K-1"), email("anna@exmaple.de")], prov("typo"))
    assert [r.reason for r in result.refused] == [RefusalReason.SPLIT_BY_OPERATOR]
    assert graph.stats().profiles == 2
    assert graph.stats().forbidden_pairs == 1


def test_split_recomputes_from_the_remaining_links() -> None:
    graph = IdentityGraph()
    graph.observe([customer("K-1"), anon("tablet")], prov("m1"))
    graph.observe([email("kid@x.de"), anon("tablet")], prov("m2"))
    graph.observe([email("kid@x.de"), anon("kid-phone")], prov("m3"))
    result = graph.split(customer("K-1"), anon("tablet"))
    assert result.profiles == (founded_id(customer("K-1")), founded_id(email("kid@x.de")))
    assert graph.identifiers_of_profile(founded_id(email("kid@x.de"))) == (
        email("kid@x.de"), anon("kid-phone"), anon("tablet"),
    )  # fmt: skip


def test_split_of_a_redundant_link_leaves_the_profile_connected() -> None:
    graph = IdentityGraph()
    graph.observe([customer("K-1"), email("e@x.de"), anon("a")], prov("m1"))
    graph.observe([email("e@x.de"), anon("a")], prov("m2"))
    result = graph.split(customer("K-1"), email("e@x.de"))
    assert result.status is SplitStatus.STILL_CONNECTED
    assert result.profiles == (founded_id(customer("K-1")),)
    assert graph.profile_of(email("e@x.de")) == founded_id(customer("K-1"))


def test_split_of_an_unknown_link_changes_nothing() -> None:
    graph = IdentityGraph()
    graph.observe([customer("K-1"), anon("a")], prov())
    graph.observe([email("e@x.de")], prov())
    assert graph.split(customer("K-1"), email("e@x.de")).status is SplitStatus.NOT_LINKED
    assert graph.split(customer("K-9"), email("e@x.de")).status is SplitStatus.NOT_LINKED
    assert graph.stats().forbidden_pairs == 0


def test_detach_frees_a_shared_device_and_keeps_it_apart() -> None:
    graph = IdentityGraph()
    graph.observe([customer("K-1"), anon("tablet"), email("anna@x.de")], prov("m1"))
    graph.observe([anon("tablet"), phone("+4915123456789")], prov("m2"))
    result = graph.detach(anon("tablet"), reason="shop kiosk")
    assert result.status is SplitStatus.SPLIT
    assert len(result.removed_links) == 2
    assert set(result.profiles) == {
        founded_id(customer("K-1")), founded_id(phone("+4915123456789")), founded_id(anon("tablet")),
    }  # fmt: skip
    later = graph.observe([customer("K-3"), anon("tablet")], prov("m3"))
    assert [r.reason for r in later.refused] == [RefusalReason.DETACHED_BY_OPERATOR]
    assert later.profile_id == founded_id(customer("K-3"))
    assert graph.stats().detached == 1


def test_detach_of_an_unlinked_identifier_still_keeps_it_apart() -> None:
    graph = IdentityGraph()
    graph.observe([anon("tablet")], prov())
    assert graph.detach(anon("tablet")).status is SplitStatus.NOT_LINKED
    assert graph.detach(anon("never-seen")).profile_id is None
    assert graph.observe([anon("tablet"), email("e@x.de")], prov()).refused


def test_stats_count_identifiers_profiles_and_links() -> None:
    graph = IdentityGraph()
    graph.observe([customer("K-1"), anon("a"), email("e@x.de")], prov())
    graph.observe([anon("b")], prov())
    stats = graph.stats()
    assert (stats.identifiers, stats.profiles, stats.links) == (4, 2, 2)
    assert graph.profile_count() == 2
