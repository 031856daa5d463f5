from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.identity.domain import (
    Identifier,
    IdentifierRules,
    IdType,
    LinkRule,
    identifiers_of,
    normalise_identifier,
    provenance_of,
)
from services.ingest.normalise import NormalisedEvent, normalise
from tests.unit.identity.graph_fixtures import anon, customer, email, phone

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def value(id_type: IdType, raw: str, rules: IdentifierRules | None = None) -> str | None:
    identifier = normalise_identifier(id_type, raw, rules or IdentifierRules())
    return None if identifier is None else identifier.value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("anna@example.de", "anna@example.de"),
        ("  Anna.Mueller@Example.DE \n", "anna.mueller@example.de"),
        ("ANNA+shop@GMX.de", "anna+shop@gmx.de"),
        ("mailto:anna@example.de", "anna@example.de"),
    ],
)
def test_email_is_trimmed_and_lower_cased(raw: str, expected: str) -> None:
    assert value(IdType.EMAIL, raw) == expected


def test_plus_addressing_stays_distinct_by_default() -> None:
    assert value(IdType.EMAIL, "anna+newsletter@example.de") != value(IdType.EMAIL, "anna@example.de")


def test_plus_addressing_folds_when_configured() -> None:
    rules = IdentifierRules(keep_plus_addressing=False)
    assert value(IdType.EMAIL, "Anna+Newsletter@example.de", rules) == "anna@example.de"
    assert value(IdType.EMAIL, "+tag@example.de", rules) is None


@pytest.mark.parametrize(
    "raw", ["anna", "anna@", "@example.de", "anna@example", "anna@@example.de", "an na@example.de",
            "anna@example..de", ".anna@example.de", "anna@.example.de"],
)  # fmt: skip
def test_malformed_email_is_none(raw: str) -> None:
    assert value(IdType.EMAIL, raw) is None


@pytest.mark.parametrize(
    "raw",
    ["0151 23456789", "+49 151 23456789", "0049 151 23456789", "(0151) 2345-6789", "+49 (0)151 23456789",
     "+4915123456789"],
)  # fmt: skip
def test_phone_national_and_international_formats_become_e164(raw: str) -> None:
    assert value(IdType.PHONE, raw) == "+4915123456789"


def test_phone_with_other_country_code_keeps_it() -> None:
    assert value(IdType.PHONE, "+43 664 1234567") == "+436641234567"


def test_phone_default_region_is_configurable() -> None:
    assert value(IdType.PHONE, "0664 1234567", IdentifierRules(default_region="at")) == "+436641234567"


@pytest.mark.parametrize("raw", ["12345", "0000000000", "0123456789", "abc", "+49", "not a phone"])
def test_unparsable_or_invalid_phone_is_none(raw: str) -> None:
    assert value(IdType.PHONE, raw) is None


def test_unknown_phone_region_is_refused_in_config() -> None:
    with pytest.raises(ValidationError):
        IdentifierRules(default_region="XX")


@pytest.mark.parametrize("id_type", list(IdType))
@pytest.mark.parametrize(
    "raw", ["", "   ", "null", " NULL ", "undefined", "None", "anonymous", "0", "-1", "000000", "n/a",
            "00000000-0000-0000-0000-000000000000", "[object Object]", "test@test.de", "TEST@test.DE "],
)  # fmt: skip
def test_blocklisted_junk_never_identifies_anyone(id_type: IdType, raw: str) -> None:
    assert normalise_identifier(id_type, raw) is None


def test_blocklist_is_configurable_and_case_insensitive() -> None:
    rules = IdentifierRules(blocklist=frozenset({"Kiosk-Tablet"}))
    assert value(IdType.ANONYMOUS_ID, " kiosk-tablet ", rules) is None
    assert value(IdType.ANONYMOUS_ID, "null", rules) == "null"  # the defaults were replaced


def test_ids_are_trimmed_but_keep_their_case() -> None:
    assert value(IdType.CUSTOMER_ID, "  K-10023 ") == "K-10023"
    assert value(IdType.CUSTOMER_ID, "k-10023") == "k-10023"
    assert value(IdType.CHAT_HANDLE, "Visitor-AB12") == "Visitor-AB12"
    assert value(IdType.EMAIL_RECIPIENT_ID, " rcp_1f2e ") == "rcp_1f2e"


def test_control_characters_and_oversized_values_are_none() -> None:
    assert value(IdType.ANONYMOUS_ID, "abc\x00def") is None
    assert value(IdType.CUSTOMER_ID, "K" * 513) is None
    assert value(IdType.CUSTOMER_ID, "K" * 512) == "K" * 512


def test_identifier_key_round_trips() -> None:
    identifier = Identifier(IdType.EMAIL, "anna@example.de")
    assert identifier.key == "email:anna@example.de" == str(identifier)
    assert Identifier.parse(identifier.key) == identifier
    assert Identifier.parse("anonymous_id:a:b:c") == anon("a:b:c")
    with pytest.raises(ValueError, match="not an identifier key"):
        Identifier.parse("email")


def test_identifiers_rank_customer_id_first_and_anonymous_id_last() -> None:
    assert [t.rank for t in IdType] == list(range(6))
    assert IdType.CUSTOMER_ID.rank < IdType.EMAIL.rank < IdType.PHONE.rank < IdType.ANONYMOUS_ID.rank


def canonical(raw: dict[str, object]) -> dict[str, object]:
    outcome = normalise(raw, received_at=NOW, default_source="api")
    assert isinstance(outcome, NormalisedEvent), outcome
    return outcome.record


def test_identifiers_of_reads_a_canonical_identify_call() -> None:
    record = canonical(
        {"type": "identify", "userId": "K-1", "anonymousId": "dev-1", "messageId": "m-1",
         "traits": {"email": " Anna@Example.DE", "phone": "0151 23456789"}}
    )  # fmt: skip
    assert identifiers_of(record) == [
        customer("K-1"), email("anna@example.de"), phone("+4915123456789"), anon("dev-1"),
    ]  # fmt: skip


def test_identifiers_of_reads_chat_and_email_tool_ids() -> None:
    event = {
        "type": "track",
        "identifiers": {"chatHandle": "visitor-1", "emailRecipientId": "rcp_9", "email": "x@y.de"},
    }
    assert identifiers_of(event) == [
        email("x@y.de"), Identifier(IdType.EMAIL_RECIPIENT_ID, "rcp_9"), Identifier(IdType.CHAT_HANDLE, "visitor-1"),
    ]  # fmt: skip


def test_identifiers_of_drops_junk_and_repeats() -> None:
    event = {
        "type": "track",
        "identifiers": {"anonymousId": "undefined", "customerId": "null", "email": "a@b.de"},
    }
    assert identifiers_of(event) == [email("a@b.de")]
    assert identifiers_of({"type": "track"}) == []


def test_alias_previous_id_is_an_anonymous_id_by_default() -> None:
    record = canonical({"type": "alias", "previousId": "dev-old", "userId": "K-1", "anonymousId": "dev-new"})
    assert identifiers_of(record) == [customer("K-1"), anon("dev-new"), anon("dev-old")]


def test_alias_previous_id_type_is_configurable() -> None:
    event = {"type": "alias", "previousId": "K-0", "identifiers": {"customerId": "K-1"}}
    rules = IdentifierRules(alias_previous_id_type=IdType.CUSTOMER_ID)
    assert identifiers_of(event, rules) == [customer("K-0"), customer("K-1")]


def test_alias_previous_id_equal_to_anonymous_id_counts_once() -> None:
    event = {
        "type": "alias",
        "previousId": "dev-1",
        "identifiers": {"anonymousId": "dev-1", "customerId": "K-1"},
    }
    assert identifiers_of(event) == [customer("K-1"), anon("dev-1")]


def test_previous_id_counts_only_on_alias_calls() -> None:
    assert identifiers_of(
        {"type": "identify", "previousId": "dev-0", "identifiers": {"customerId": "K"}}
    ) == [customer("K")]


def test_provenance_of_a_wire_event() -> None:
    event = {
        "messageId": "m-7",
        "type": "track",
        "event": "Order Completed",
        "timestamp": "2026-11-22T12:00:00Z",
    }
    provenance = provenance_of(event)
    assert (provenance.message_id, provenance.event, provenance.rule) == (
        "m-7",
        "Order Completed",
        "same_event",
    )
    assert provenance.timestamp == NOW


@pytest.mark.parametrize(
    ("event_type", "rule"),
    [("identify", LinkRule.IDENTIFY), ("alias", LinkRule.ALIAS), ("page", LinkRule.SAME_EVENT)],
)
def test_provenance_rule_follows_the_call_type(event_type: str, rule: LinkRule) -> None:
    provenance = provenance_of({"messageId": "m", "type": event_type, "timestamp": NOW})
    assert provenance.rule is rule
    assert provenance.event == event_type


def test_provenance_takes_naive_timestamps_as_utc() -> None:
    provenance = provenance_of({"messageId": "m", "type": "page", "timestamp": "2026-11-22T12:00:00"})
    assert provenance.timestamp == NOW
