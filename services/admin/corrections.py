"""Identity corrections: split two identifiers that wrongly joined two people, or detach one.

The admin API does not change the identity graph itself. It validates the request, turns it into a
record and hands it to ``submit``, which the platform wires to the single-partition topic
``cdp.identity.observations``: the identity processor applies corrections there in the same total
order as the events, so a correction never races an event that arrives at the same moment.

Record (``schemaVersion`` 1)::

    {"schemaVersion": 1, "kind": "split", "a": "email:anna@example.de", "b": "anonymous_id:tab-1",
     "reason": "shared family tablet", "requestId": "<uuid4 hex>",
     "requestedAt": "2026-11-22T18:38:41.020Z", "requestedBy": "admin"}

A detach carries ``"identifier"`` instead of ``"a"`` and ``"b"``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import orjson
from starlette.requests import Request
from starlette.responses import Response

from schemas.topics import IDENTITY_OBSERVATIONS
from services.admin.auth import Principal
from services.admin.http import NO_STORE, JSONResponse, json_error
from services.admin.profile_rows import utc_text
from services.admin.profiles import why_invalid
from services.identity.domain.identifiers import (
    DEFAULT_RULES,
    Identifier,
    IdentifierRules,
    IdType,
    normalise_identifier,
)

if TYPE_CHECKING:
    from services.core.kafka.producer import AsyncProducer

log = logging.getLogger(__name__)

Submit = Callable[[dict[str, Any]], Awaitable[None]]
Kind = Literal["split", "detach"]

SCHEMA_VERSION = 1
MAX_REASON = 500
MAX_BODY = 16 * 1024
INVALID_REQUEST = "invalid_request"
INVALID_IDENTIFIER = "invalid_identifier"

FIELDS: dict[Kind, tuple[str, ...]] = {"split": ("a", "b"), "detach": ("identifier",)}
_TYPES: dict[str, IdType] = {id_type.value: id_type for id_type in IdType}
_TYPE_NAMES = ", ".join(_TYPES)
_IDENT_FORMS = '{"type": "email", "value": "anna@example.de"} or "email:anna@example.de"'
NOTE = (
    "queued for the identity processor, which applies corrections in order with the events; "
    "the profiles show the result shortly"
)


class CorrectionError(ValueError):
    """The request is not a valid correction; ``code`` is the API error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Correction:
    """A validated correction: ``identifiers`` by body field (``a`` and ``b``, or ``identifier``)."""

    kind: Kind
    identifiers: Mapping[str, Identifier]
    reason: str

    def keys(self) -> dict[str, str]:
        return {field: identifier.key for field, identifier in self.identifiers.items()}

    def record(self, *, request_id: str, requested_at: datetime, requested_by: str) -> dict[str, Any]:
        """The record for ``cdp.identity.observations``."""
        return {
            "schemaVersion": SCHEMA_VERSION,
            "kind": self.kind,
            **self.keys(),
            "reason": self.reason,
            "requestId": request_id,
            "requestedAt": utc_text(requested_at),
            "requestedBy": requested_by,
        }


def parse_identifier(field: str, raw: object, rules: IdentifierRules = DEFAULT_RULES) -> Identifier:
    """The normalised identifier of ``{"type": ..., "value": ...}`` or ``"type:value"``."""
    if isinstance(raw, str):
        type_name, sep, value = raw.partition(":")
        if not sep:
            raise CorrectionError(
                INVALID_IDENTIFIER,
                f"{field} {raw!r} has no type: write type:value, e.g. email:anna@example.de "
                f"(types: {_TYPE_NAMES})",
            )
    elif isinstance(raw, dict):
        if set(raw) != {"type", "value"}:
            got = ", ".join(sorted(raw)) or "none"
            raise CorrectionError(
                INVALID_REQUEST, f"{field} needs exactly the keys type and value, got {got}"
            )
        type_name, value = raw["type"], raw["value"]
        if not isinstance(type_name, str) or not isinstance(value, str):
            raise CorrectionError(INVALID_REQUEST, f"{field}.type and {field}.value must be strings")
    else:
        raise CorrectionError(INVALID_REQUEST, f"{field} must be an identifier: {_IDENT_FORMS}")
    type_name = type_name.strip().lower()
    id_type = _TYPES.get(type_name)
    if id_type is None:
        if type_name in ("profile_id", "profile"):
            raise CorrectionError(
                INVALID_IDENTIFIER,
                f"{field}: a profile id cannot be split or detached; give the identifiers "
                "(email, phone, ...) that wrongly joined",
            )
        raise CorrectionError(
            INVALID_IDENTIFIER, f"{field}: unknown identifier type {type_name!r}; one of {_TYPE_NAMES}"
        )
    if not value.strip():
        raise CorrectionError(INVALID_IDENTIFIER, f"{field}: {id_type} has no value")
    identifier = normalise_identifier(id_type, value, rules)
    if identifier is None:
        raise CorrectionError(
            INVALID_IDENTIFIER, f"{field}: {id_type} {value!r} is {why_invalid(id_type, rules)}"
        )
    return identifier


def parse_reason(raw: object) -> str:
    if raw is None:
        raise CorrectionError(
            INVALID_REQUEST, "reason is missing: say why (e.g. 'shared family tablet'); it is kept for audit"
        )
    if not isinstance(raw, str):
        raise CorrectionError(INVALID_REQUEST, "reason must be a string")
    reason = raw.strip()
    if not reason:
        raise CorrectionError(INVALID_REQUEST, "reason is empty: say why (e.g. 'shared family tablet')")
    if len(reason) > MAX_REASON:
        raise CorrectionError(INVALID_REQUEST, f"reason has {len(reason)} characters; at most {MAX_REASON}")
    return reason


def _expected(kind: Kind) -> str:
    return ", ".join((*FIELDS[kind], "reason"))


def parse_correction(kind: Kind, body: bytes, rules: IdentifierRules = DEFAULT_RULES) -> Correction:
    """The correction a JSON body asks for; raises CorrectionError saying what is wrong."""
    if not body.strip():
        raise CorrectionError(
            INVALID_REQUEST, f"the body is empty: send a JSON object with {_expected(kind)}"
        )
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise CorrectionError(INVALID_REQUEST, f"the body is not valid JSON: {exc}") from None
    fields = FIELDS[kind]
    expected = _expected(kind)
    if not isinstance(data, dict):
        raise CorrectionError(INVALID_REQUEST, f"the body must be a JSON object with {expected}")
    unknown = sorted(set(data) - {*fields, "reason"})
    if unknown:
        raise CorrectionError(INVALID_REQUEST, f"unknown field {', '.join(unknown)}: give {expected}")
    missing = [field for field in fields if field not in data]
    if missing:
        raise CorrectionError(
            INVALID_REQUEST,
            f"{' and '.join(missing)} missing: give {expected} (identifiers as {_IDENT_FORMS})",
        )
    identifiers = {field: parse_identifier(field, data[field], rules) for field in fields}
    if kind == "split" and identifiers["a"] == identifiers["b"]:
        raise CorrectionError(
            INVALID_REQUEST, f"a and b are the same identifier ({identifiers['a']}); a split needs two"
        )
    return Correction(kind, identifiers, parse_reason(data.get("reason")))


async def _body(request: Request) -> bytes | None:
    """The request body, or None when it is larger than MAX_BODY."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return bytes(body)


class CorrectionRoutes:
    """``POST /profiles/split`` and ``/profiles/detach``: validate, submit, answer 202."""

    def __init__(
        self,
        submit: Submit,
        *,
        rules: IdentifierRules = DEFAULT_RULES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._submit = submit
        self._rules = rules
        self._clock = clock

    async def split(self, request: Request) -> Response:
        return await self._accept("split", request)

    async def detach(self, request: Request) -> Response:
        return await self._accept("detach", request)

    async def _accept(self, kind: Kind, request: Request) -> Response:
        body = await _body(request)
        if body is None:
            return json_error(413, "too_large", f"the body is larger than {MAX_BODY} bytes")
        try:
            correction = parse_correction(kind, body, self._rules)
        except CorrectionError as exc:
            return json_error(400, exc.code, str(exc))
        principal: Principal = request.state.principal
        request_id = uuid.uuid4().hex
        record = correction.record(
            request_id=request_id, requested_at=self._clock(), requested_by=principal.name
        )
        try:
            await self._submit(record)
        except Exception as exc:
            # No identifier in the log: they are personal data. The request id finds the request.
            log.error("admin API: could not submit %s request %s: %r", kind, request_id, exc)
            return json_error(
                503, "unavailable", f"the {kind} request could not be queued; retry", {"Retry-After": "1"}
            )
        log.info("admin API: %s request %s by %s queued", kind, request_id, principal.name)
        answer = {
            "status": "accepted",
            "requestId": request_id,
            "kind": kind,
            **correction.keys(),
            "note": NOTE,
        }
        return JSONResponse(answer, status_code=202, headers=NO_STORE)


def kafka_submit(producer: AsyncProducer, topic: str = IDENTITY_OBSERVATIONS) -> Submit:
    """A ``submit`` that produces the record to ``topic`` and returns once Kafka acknowledged it."""

    async def submit(record: dict[str, Any]) -> None:
        # Unkeyed like every observation: the topic has one partition, its order is the order.
        await producer.send([(topic, None, orjson.dumps(record))])

    return submit
