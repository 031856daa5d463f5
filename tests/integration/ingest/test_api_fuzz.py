"""Property-based fuzzing of the ingest HTTP API over real TCP with a real broker behind it:
whatever a client sends, the answer is never a 5xx, and every refusal is a JSON error."""

from __future__ import annotations

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.catalog import CATALOG
from schemas.events import EVENT_TYPES
from tests.integration.ingest.conftest import WRITE_KEY, IngestServer

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)  # fmt: skip
property_names = st.sampled_from(["order_id", "revenue", "total", "currency", "products", "csat", "conversation_id",
                                  "complaint_id", "product_id", "price", "quantity", "email", "recipient_id",
                                  "bounce_type", "handled_by", "chat_handle"])  # fmt: skip
times = st.sampled_from(
    ["2026-11-22T10:00:00Z", "2026-11-22", "yesterday", "9999-12-31T23:59:59Z", "1970-01-01T00:00:00Z", ""]
)
events = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(EVENT_TYPES) | json_values,
        "event": st.sampled_from(sorted(CATALOG)) | json_values,
        "userId": st.text(max_size=10) | st.integers(-(2**63), 2**63 - 1) | json_values,
        "anonymousId": st.text(max_size=10) | json_values,
        "messageId": st.text(max_size=10) | json_values,
        "properties": st.dictionaries(property_names, json_values, max_size=6) | json_values,
        "traits": st.dictionaries(st.sampled_from(["email", "phone", "name"]), json_values) | json_values,
        "context": st.fixed_dictionaries({}, optional={"channel": json_values, "traits": json_values})
        | json_values,
        "timestamp": times | json_values,
        "sentAt": times | json_values,
        "previousId": json_values,
        "groupId": json_values,
    },
)
bodies = (
    events.map(orjson.dumps)
    | st.fixed_dictionaries({"batch": st.lists(events, max_size=5)}, optional={"sentAt": times | json_values}).map(orjson.dumps)
    | json_values.map(orjson.dumps)
    | st.binary(max_size=200)
)  # fmt: skip
paths = st.sampled_from(
    [f"/v1/{t}" for t in EVENT_TYPES]
    + ["/v1/batch", "/v1/webhooks/shop", "/v1/webhooks/chat", "/v1/webhooks/email", "/v1/webhooks/fax",
       "/v1/webhooks/shop?provider=shopify", "/v1/webhooks/email?provider=sendgrid", "/v1/webhooks/chat?provider=zendesk",
       "/v1/webhooks/shop?provider=nope"]
)  # fmt: skip
auths = st.sampled_from([(WRITE_KEY, ""), ("wrong", ""), None])
extra_headers = st.sampled_from([{}, {"X-Shopify-Topic": "orders/create", "X-Shopify-Hmac-Sha256": "Zm9v"},
                                 {"Content-Encoding": "gzip"}, {"Content-Type": "text/plain"}])  # fmt: skip


@pytest.fixture(scope="module")
def client(ingest_server: IngestServer):
    with httpx.Client(base_url=ingest_server.url, timeout=30) as http:
        yield http


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=paths, body=bodies, auth=auths, headers=extra_headers)
def test_no_input_gets_a_server_error(client: httpx.Client, path: str, body: bytes, auth, headers) -> None:
    response = client.post(path, content=body, auth=auth, headers=headers)
    assert response.status_code < 500, (path, body, response.text)
    payload = response.json()
    assert isinstance(payload["success"], bool)
    if response.status_code >= 400:
        assert payload["message"], payload
