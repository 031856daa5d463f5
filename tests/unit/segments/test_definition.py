"""Definition documents and the catalog: validation with paths, versions, references and cycles."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import yaml

from services.segments.domain.definition import (
    DefinitionError,
    SegmentCatalog,
    SegmentDefinition,
    StoredSegment,
    load_documents,
    parse_definition,
)
from services.segments.domain.rules import InSegment, parse_rule

T1, T2, T3 = "2026-11-01T10:00:00Z", "2026-11-02T10:00:00Z", "2026-11-03T10:00:00Z"


def definition(segment_id: str, rule: dict[str, Any] | None = None, **fields: Any) -> SegmentDefinition:
    return parse_definition(
        {"id": segment_id, "name": segment_id.title(), "rule": rule or {"trait": "plan"}, **fields}
    )


def applied(
    *definitions: SegmentDefinition, catalog: SegmentCatalog | None = None, at: str = T1
) -> SegmentCatalog:
    catalog = catalog or SegmentCatalog()
    return catalog.with_changes(catalog.plan(definitions, at))


# --- catalog versions ---------------------------------------------------------------------------


def test_new_definitions_get_version_one() -> None:
    buyers = definition("buyers", {"attribute": "orders_count", "op": ">=", "value": 1})
    catalog = SegmentCatalog()
    changes = catalog.plan([buyers], T1)
    assert changes == [StoredSegment(buyers, 1, buyers.content_hash(), T1)]
    catalog = catalog.with_changes(changes)
    assert len(catalog) == 1
    assert "buyers" in catalog
    assert "vip" not in catalog
    assert catalog.get("buyers") == changes[0]
    assert catalog.get("vip") is None
    assert catalog.rule("buyers") == buyers.compiled()


def test_applying_the_same_content_again_keeps_the_version() -> None:
    catalog = applied(definition("buyers"), definition("vip"))
    again = catalog.plan([definition("buyers"), definition("vip")], T2)
    assert again == []
    same = catalog.with_changes(again)
    assert [(s.id, s.version, s.updated_at) for s in same.all()] == [("buyers", 1, T1), ("vip", 1, T1)]


def test_changed_content_bumps_the_version_and_leaves_the_others_alone() -> None:
    catalog = applied(definition("buyers"), definition("vip"))
    renamed = definition("buyers", name="Käufer")
    changes = catalog.plan([renamed, definition("vip")], T2)
    assert [(s.id, s.version, s.updated_at) for s in changes] == [("buyers", 2, T2)]
    catalog = catalog.with_changes(changes)
    assert catalog.get("buyers") == StoredSegment(renamed, 2, renamed.content_hash(), T2)
    assert catalog.get("vip") is not None and catalog.get("vip").version == 1  # type: ignore[union-attr]
    ruled = definition("buyers", {"attribute": "orders_count", "op": ">=", "value": 1}, name="Käufer")
    catalog = catalog.with_changes(catalog.plan([ruled], T3))
    assert catalog.get("buyers").version == 3  # type: ignore[union-attr]
    # Back to the first content: still a change, so a new version (versions never go back).
    catalog = catalog.with_changes(catalog.plan([definition("buyers")], T3))
    assert catalog.get("buyers").version == 4  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "change",
    [
        {"description": "new text"},
        {"expose": ["email"]},
        {"activation": {"consent": "email_marketing"}},
        {"rule": {"trait": "plan", "op": "=", "value": "pro"}},
    ],
)
def test_every_field_is_content(change: dict[str, Any]) -> None:
    base = {"id": "vip", "name": "VIP", "rule": {"trait": "plan"}}
    assert parse_definition({**base, **change}).content_hash() != parse_definition(base).content_hash()


def test_content_hash_ignores_key_order() -> None:
    a = parse_definition({"id": "vip", "name": "VIP", "rule": {"trait": "plan", "op": "=", "value": "pro"}})
    b = parse_definition({"rule": {"value": "pro", "op": "=", "trait": "plan"}, "name": "VIP", "id": "vip"})
    assert a.content_hash() == b.content_hash()


def test_with_changes_keeps_the_newer_version() -> None:
    catalog = applied(definition("vip"))
    newer = StoredSegment(definition("vip", name="V2"), 2, "x", T2)
    older = StoredSegment(definition("vip", name="V0"), 0, "y", T2)
    assert catalog.with_changes([newer]).get("vip") == newer
    assert catalog.with_changes([older]).get("vip") == catalog.get("vip")


# --- references and cycles --------------------------------------------------------------------------


def test_order_puts_every_segment_after_the_segments_it_refers_to() -> None:
    catalog = applied(
        definition("a_top", {"all": [{"segment": "m_mid"}, {"segment": "z_base"}]}),
        definition("m_mid", {"not": {"segment": "z_base"}}),
        definition("z_base"),
    )
    assert catalog.order == ["z_base", "m_mid", "a_top"]
    assert [s.id for s in catalog.all()] == catalog.order
    assert catalog.rule("m_mid") == parse_rule({"not": {"segment": "z_base"}})


def test_references_may_point_into_the_same_plan_or_the_catalog() -> None:
    catalog = applied(definition("base"))
    catalog = applied(
        definition("top", {"segment": "base"}), definition("side", {"segment": "top"}), catalog=catalog
    )
    assert catalog.order == ["base", "top", "side"]


def test_unknown_reference_is_refused() -> None:
    catalog = applied(definition("base"))
    with pytest.raises(DefinitionError) as caught:
        catalog.plan(
            [definition("vip", {"any": [{"segment": "nope"}, {"segment": "base"}, {"segment": "gone"}]})], T2
        )
    assert caught.value.problems == [
        "vip.rule: refers to unknown segment 'gone'",
        "vip.rule: refers to unknown segment 'nope'",
    ]
    with pytest.raises(DefinitionError):
        SegmentCatalog([StoredSegment(definition("vip", {"segment": "nope"}), 1, "h", T1)])


def test_a_cycle_is_refused_and_named() -> None:
    catalog = applied(definition("a"), definition("b", {"segment": "a"}))
    with pytest.raises(DefinitionError) as caught:
        catalog.plan([definition("a", {"not": {"segment": "b"}})], T2)
    assert caught.value.problems == ["a.rule: segments refer to each other in a cycle: a -> b -> a"]
    assert catalog.get("a").version == 1  # type: ignore[union-attr]  # nothing changed


def test_a_segment_referring_to_itself_is_a_cycle() -> None:
    with pytest.raises(DefinitionError) as caught:
        SegmentCatalog().plan([definition("loop", {"any": [{"trait": "x"}, {"segment": "loop"}]})], T1)
    assert caught.value.problems == ["loop.rule: segments refer to each other in a cycle: loop -> loop"]


def test_a_longer_cycle_is_named_from_where_it_starts() -> None:
    with pytest.raises(DefinitionError) as caught:
        SegmentCatalog().plan(
            [
                definition("a", {"segment": "b"}),
                definition("b", {"segment": "c"}),
                definition("c", {"segment": "b"}),
            ],
            T1,
        )
    assert caught.value.problems == ["b.rule: segments refer to each other in a cycle: b -> c -> b"]


# --- documents ----------------------------------------------------------------------------------

VIP_YAML = """
id: vip
name: VIP-Kunden
description: Umsatz ab 1.000 Euro
rule:
  all:
    - event: Order Completed
      within: 365d
      measure: revenue
      op: ">="
      value: 1000
    - not: {segment: unhappy}
expose: [email, first_name]
activation: {consent: email_marketing, double_opt_in: true}
"""
UNHAPPY = {"id": "unhappy", "name": "Unzufrieden", "rule": {"attribute": "last_csat", "op": "<=", "value": 2}}


def test_load_one_yaml_document() -> None:
    [vip] = load_documents(VIP_YAML)
    assert vip.id == "vip"
    assert vip.name == "VIP-Kunden"
    assert vip.expose == ["email", "first_name"]
    assert vip.activation is not None
    assert (vip.activation.consent, vip.activation.double_opt_in) == ("email_marketing", True)
    assert vip.compiled().rules[1].rule == InSegment("unhappy")  # type: ignore[attr-defined]


def test_load_a_list_and_a_segments_mapping() -> None:
    vip = yaml.safe_load(VIP_YAML)
    as_list = yaml.safe_dump([vip, UNHAPPY], allow_unicode=True)
    as_mapping = yaml.safe_dump({"segments": [vip, UNHAPPY]}, allow_unicode=True)
    assert [d.id for d in load_documents(as_list)] == ["vip", "unhappy"]
    assert load_documents(as_mapping) == load_documents(as_list)
    assert load_documents("[]") == []


def test_load_json() -> None:
    vip = yaml.safe_load(VIP_YAML)
    one = orjson.dumps(vip).decode()
    many = orjson.dumps({"segments": [vip, UNHAPPY]}, option=orjson.OPT_INDENT_2).decode()
    assert load_documents(one) == load_documents(VIP_YAML)
    assert [d.id for d in load_documents(many)] == ["vip", "unhappy"]


def test_a_document_round_trips_through_its_json() -> None:
    [vip] = load_documents(VIP_YAML)
    [again] = load_documents(orjson.dumps(vip.document()).decode())
    assert again == vip
    assert again.content_hash() == vip.content_hash()
    assert vip.document()["activation"] == {"consent": "email_marketing", "double_opt_in": True}


def test_errors_in_a_list_are_prefixed_with_the_position() -> None:
    good = {"id": "ok", "name": "OK", "rule": {"trait": "plan"}}
    bad_rule = {"id": "a", "name": "A", "rule": {"all": [{"trait": "x"}, {"attribute": "y", "op": "~"}]}}
    bad_fields = {"id": "B!", "rule": {"segment": "ok"}, "colour": "red"}
    with pytest.raises(DefinitionError) as caught:
        load_documents(orjson.dumps({"segments": [good, bad_rule, bad_fields, 42]}).decode())
    assert caught.value.problems == [
        "segments[1].rule.all[1].op: unknown operator '~'; use one of =, !=, <, <=, >, >=, in, contains, exists, between",
        "segments[2].id: 'B!' is not a segment id: use 1-63 lower-case letters, digits, '_' or '-', starting with a letter or digit",
        "segments[2].name: Field required",
        "segments[2].colour: Extra inputs are not permitted",
        "segments[3].document: expected a mapping (id, name, rule, ...); got int",
    ]
    assert str(caught.value) == "; ".join(caught.value.problems)


def test_errors_in_a_single_document_have_no_prefix() -> None:
    with pytest.raises(DefinitionError) as caught:
        load_documents("id: vip\nname: VIP\nrule:\n  event: Order Completed\n  within: 3 months\n")
    assert caught.value.problems == [
        "rule.within: '3 months' is not a duration: write a positive whole number and a unit, s (seconds), "
        "m (minutes), h (hours), d (days) or w (weeks), e.g. '90d' or '24h'"
    ]


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"id": "vip", "name": "", "rule": {"trait": "a"}}, "name: String should have at least 1 character"),
        ({"id": "vip", "name": "V", "rule": {"trait": "a"}, "expose": [""]}, "expose: expose lists trait or attribute names"),
        ({"id": "vip", "name": "V", "rule": {"trait": "a"}, "expose": [1]}, "expose.0: Input should be a valid string"),
        ({"id": "vip", "name": "V", "rule": {"trait": "a"}, "activation": {"consent": "sms"}},
         "activation.consent: unknown purpose 'sms'; use one of email_marketing, personalisation, analytics"),
        ({"id": "vip", "name": "V", "rule": {"trait": "a"}, "activation": {"consent": "analytics", "x": 1}},
         "activation.x: Extra inputs are not permitted"),
        ({"id": "-vip", "name": "V", "rule": {"trait": "a"}}, "id: '-vip' is not a segment id"),
        ({"id": "a" * 64, "name": "V", "rule": {"trait": "a"}}, "id: '" + "a" * 64 + "' is not a segment id"),
        ({"id": "vip", "name": "V", "rule": [{"trait": "a"}]}, "rule: expected a mapping"),
        ({"id": "vip", "name": "V"}, "rule: Field required"),
    ],
)  # fmt: skip
def test_definition_problems(document: dict[str, Any], problem: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(document)
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(problem)


def test_not_yaml_at_all() -> None:
    with pytest.raises(DefinitionError) as caught:
        load_documents("id: [vip", source="vip.yaml")
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("vip.yaml: not valid YAML or JSON")


def test_an_empty_document_is_not_a_definition() -> None:
    with pytest.raises(DefinitionError) as caught:
        load_documents("")
    assert caught.value.problems == ["document: expected a mapping (id, name, rule, ...); got NoneType"]
