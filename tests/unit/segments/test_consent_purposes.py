"""Consent purposes in segment rules and activation are the configured ones (CDP_CONSENT_PURPOSES)."""

from __future__ import annotations

import pytest

from services.segments.domain.definition import DefinitionError, load_documents, parse_definition
from services.segments.domain.evaluate import ProfileView, consents_of, evaluate
from services.segments.domain.rules import ConsentCondition, RuleError, parse_rule

DOC = """
id: profiling_ok
name: Profiling allowed
rule: {consent: profiling}
activation: {consent: profiling}
"""


def test_default_purposes_without_configuration():
    assert parse_rule({"consent": "analytics"}) == ConsentCondition("analytics", False)
    with pytest.raises(RuleError, match="unknown purpose 'profiling'; use one of email_marketing"):
        parse_rule({"consent": "profiling"})


def test_configured_purposes_in_rules_and_activation():
    with pytest.raises(DefinitionError) as caught:
        load_documents(DOC)
    assert "rule.consent: unknown purpose 'profiling'" in str(caught.value)
    assert "activation.consent: unknown purpose 'profiling'" in str(caught.value)
    (definition,) = load_documents(DOC, purposes=("profiling", "analytics"))
    assert definition.compiled() == ConsentCondition("profiling", False)
    nested = {"all": [{"not": {"consent": "analytics"}}, {"consent": "profiling"}]}
    parse_rule(nested, purposes=("profiling", "analytics"))


def test_stored_definitions_load_whatever_purpose_they_name():
    (definition,) = load_documents(DOC, purposes=("profiling",))
    assert parse_definition(definition.document(), purposes=None).id == "profiling_ok"
    with pytest.raises(DefinitionError, match="expected a purpose name"):
        parse_definition({**definition.document(), "rule": {"consent": "Not A Purpose"}}, purposes=None)


def test_the_folded_consents_attribute_gates_rules():
    attributes = {
        "email_subscription": "subscribed", "email_double_opt_in": True,
        "consents": {
            "personalisation": {"status": "withdrawn", "granted": False, "double_opt_in": False},
            "email_marketing": {"status": "granted", "granted": True, "double_opt_in": False},
        },
    }  # fmt: skip
    consents = consents_of(attributes)
    assert (consents["email_marketing"].granted, consents["email_marketing"].double_opt_in) == (True, False)
    assert consents["personalisation"].granted is False
    view = ProfileView("p_1", attributes=attributes, consents=consents)
    assert evaluate(ConsentCondition("email_marketing", False), view, 0, {}).matches
    assert not evaluate(ConsentCondition("email_marketing", True), view, 0, {}).matches
    assert not evaluate(ConsentCondition("personalisation", False), view, 0, {}).matches
