"""SendGrid Event Webhook (email channel): a JSON array of events, signed with ECDSA P-256.

Bounces follow SendGrid's ``type``: ``bounce`` is a permanent rejection (hard), ``blocked`` a
temporary one (soft). ``processed``, ``deferred`` and ``dropped`` say nothing about the recipient
and are reported as skipped.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from schemas.base import Channel
from services.ingest.webhooks.base import (
    Clock,
    MappedPayload,
    Message,
    PayloadError,
    ProviderConfigError,
    SignatureError,
    SkippedEvent,
    lower_keys,
    utc_now,
)
from services.ingest.webhooks.payload import parse_json
from services.ingest.webhooks.sendgrid_events import SKIPPED_EVENTS, event_message
from services.ingest.webhooks.signing import base64_signature, check_fresh, required_header

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


@functools.lru_cache(maxsize=8)
def load_public_key(key: str) -> ec.EllipticCurvePublicKey:
    """The verification key from SendGrid's Mail Settings (base64 DER, P-256); check it at start-up."""
    try:
        public_key = load_der_public_key(base64.b64decode(key.strip(), validate=True))
    except (binascii.Error, ValueError, UnsupportedAlgorithm) as exc:
        raise ProviderConfigError(f"the SendGrid verification key is unusable: {exc}") from None
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name != "secp256r1":
        raise ProviderConfigError("the SendGrid verification key is not an ECDSA P-256 public key")
    return public_key


@dataclass(frozen=True, slots=True)
class SendGridProvider:
    name: str = "sendgrid"
    channel: Channel = Channel.EMAIL
    secret_setting: str = "sendgrid_webhook_public_key"
    tolerance: timedelta = timedelta(minutes=10)
    clock: Clock = field(default=utc_now, repr=False)
    # A custom arg holding the shop's customer id, if the shop sends one with every email.
    customer_id_arg: str | None = None

    def detect(self, headers: Mapping[str, str], body: bytes) -> bool:
        if SIGNATURE_HEADER.lower() in lower_keys(headers):
            return True
        return body.lstrip().startswith(b"[") and b'"sg_event_id"' in body

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str) -> None:
        """ECDSA-SHA256 over ``timestamp header + raw body``; the secret is SendGrid's public key."""
        if not secret:
            raise ProviderConfigError("no SendGrid verification key is configured")
        public_key = load_public_key(secret)
        names = lower_keys(headers)
        signature = base64_signature(required_header(names, SIGNATURE_HEADER), SIGNATURE_HEADER)
        timestamp = required_header(names, TIMESTAMP_HEADER)
        try:
            public_key.verify(signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise SignatureError(f"signature in {SIGNATURE_HEADER} does not match the body") from None
        check_fresh(_unix_time(timestamp), self.clock(), self.tolerance, TIMESTAMP_HEADER)

    def map_payload(self, headers: Mapping[str, str], body: bytes) -> MappedPayload:
        root = parse_json(body)
        if not isinstance(root.value, list):
            raise PayloadError("$", "SendGrid posts a JSON array of events")
        result = MappedPayload()
        for node in root.items():
            kind = node.field("event").text()
            if kind in SKIPPED_EVENTS:
                result.skipped.append(SkippedEvent(node.shown_path, kind, SKIPPED_EVENTS[kind]))
                continue
            message = event_message(node, kind, self.customer_id_arg)
            if message is None:
                result.skipped.append(SkippedEvent(node.shown_path, kind, "event type has no CDP meaning"))
            else:
                result.messages.append(message)
        return result

    def to_messages(self, headers: Mapping[str, str], body: bytes) -> list[Message]:
        return self.map_payload(headers, body).messages


def _unix_time(value: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (ValueError, OverflowError, OSError):
        raise SignatureError(f"header {TIMESTAMP_HEADER} is not a unix timestamp") from None
