"""Whatever arrives, adapters fail only with PayloadError / SignatureError, and what they map is valid."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.webhooks import (
    PayloadError,
    SendGridProvider,
    ShopifyProvider,
    SignatureError,
    WebhookProvider,
    ZendeskProvider,
)

NOW = datetime(2025, 1, 10, 12, 0, tzinfo=UTC)
MessageCheck = Callable[[list[dict[str, Any]]], Any]
SAMPLES = Path(__file__).parent / "samples"
SHOPIFY_TOPICS = {
    "shopify_order.json": ["orders/create", "orders/paid", "orders/cancelled"],
    "shopify_refund.json": ["refunds/create"],
    "shopify_checkout.json": ["checkouts/create"],
    "shopify_customer.json": ["customers/create", "customers/update"],
}
PROVIDERS: dict[str, WebhookProvider] = {
    "shopify": ShopifyProvider(),
    "sendgrid": SendGridProvider(clock=lambda: NOW, customer_id_arg="customer_id"),
    "zendesk": ZendeskProvider(clock=lambda: NOW),
}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(
        ["", " ", "EUR", "paid", "SOLVED", "beschwerde", "2025-01-10T12:00:00Z", "12.50", "-1"]
    ),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)


def map_or_payload_error(
    provider: WebhookProvider, headers: dict[str, str], body: bytes, valid_messages: MessageCheck
) -> None:
    try:
        result = provider.map_payload(headers, body)
    except PayloadError as error:
        failure = error
    else:
        valid_messages(result.messages)
        return
    assert failure.path


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from paths(child, (*prefix, index))


def replaced(document: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copied = copy.deepcopy(document)
    parent = copied
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = new
    return copied


def sample(name: str) -> Any:
    return orjson.loads((SAMPLES / name).read_bytes())


@st.composite
def mutated_samples(draw: st.DrawFn) -> tuple[str, dict[str, str], bytes]:
    """A documented sample with one value anywhere in it replaced by arbitrary JSON."""
    name = draw(st.sampled_from(sorted(p.name for p in SAMPLES.glob("*.json"))))
    document = sample(name)
    path = draw(st.sampled_from(list(paths(document))))
    body = orjson.dumps(replaced(document, path, draw(json_values)))
    provider = name.split("_", 1)[0]
    headers = (
        {"X-Shopify-Topic": draw(st.sampled_from(SHOPIFY_TOPICS[name]))} if provider == "shopify" else {}
    )
    return provider, headers, body


@FUZZ
@given(case=mutated_samples())
def test_mutated_documented_payloads_map_or_fail_with_a_path(
    case: tuple[str, dict[str, str], bytes], valid_messages: MessageCheck
) -> None:
    provider, headers, body = case
    map_or_payload_error(PROVIDERS[provider], headers, body, valid_messages)


@FUZZ
@given(
    provider=st.sampled_from(sorted(PROVIDERS)),
    topic=st.sampled_from([t for topics in SHOPIFY_TOPICS.values() for t in topics]) | st.text(max_size=20),
    document=json_values,
)
def test_arbitrary_json_maps_or_fails_with_a_path(
    provider: str, topic: str, document: Any, valid_messages: MessageCheck
) -> None:
    map_or_payload_error(
        PROVIDERS[provider], {"X-Shopify-Topic": topic}, orjson.dumps(document), valid_messages
    )


@FUZZ
@given(provider=st.sampled_from(sorted(PROVIDERS)), body=st.binary(max_size=200))
def test_arbitrary_bytes_map_or_fail_with_a_path(
    provider: str, body: bytes, valid_messages: MessageCheck
) -> None:
    map_or_payload_error(PROVIDERS[provider], {"X-Shopify-Topic": "orders/paid"}, body, valid_messages)


def sendgrid_public_key() -> str:
    der = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(der).decode()


SECRETS = {"shopify": "shpss_secret", "sendgrid": sendgrid_public_key(), "zendesk": "zendesk-secret"}
SIGNATURE_HEADERS = [
    "X-Shopify-Hmac-Sha256",
    "X-Twilio-Email-Event-Webhook-Signature",
    "X-Twilio-Email-Event-Webhook-Timestamp",
    "X-Zendesk-Webhook-Signature",
    "X-Zendesk-Webhook-Signature-Timestamp",
]
header_values = (
    st.text(max_size=40)
    | st.binary(min_size=0, max_size=72).map(lambda raw: base64.b64encode(raw).decode())
    | st.sampled_from(["1736510400", "2025-01-10T12:00:00Z", "99999999999999999999", "-5", "0"])
)


@FUZZ
@given(
    provider=st.sampled_from(sorted(PROVIDERS)),
    headers=st.dictionaries(st.sampled_from(SIGNATURE_HEADERS), header_values),
    body=st.binary(max_size=100),
)
def test_forged_requests_fail_only_with_signature_error(
    provider: str, headers: dict[str, str], body: bytes
) -> None:
    with pytest.raises(SignatureError) as error:
        PROVIDERS[provider].verify(headers, body, SECRETS[provider])
    assert error.value.reason
