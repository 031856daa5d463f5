"""Consent records through the admin API (docs/privacy.md#consent, docs/admin-api.md).

* ``POST /api/v1/privacy/consents`` (admin, privacy officer): record a decision. The body is
  validated (400 with a precise message per mistake), turned into a canonical ``Consent Updated``
  event with source ``api`` and submitted through the ingest pipeline, so it reaches Kafka, the
  profile and the ``consents`` table like any event. 202 with the event's ``messageId``.
* ``GET /api/v1/privacy/consents?email=...`` (admin, privacy officer, analyst): the current consent
  per purpose and the full history from the ``consents`` table. The history is that of the profile
  the identifier belongs to now (the decisions anchored in its identifiers), the current state is
  that history folded exactly as the profile folds it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from schemas.privacy import CONSENT_STATUSES, DEFAULT_CONSENT_PURPOSES
from services.admin.api import PREFIX, LookupRequestError, _answering_warehouse_errors, lookup_parameter
from services.admin.auth import AdminTokens, Principal, require
from services.admin.corrections import CorrectionError, parse_identifier
from services.admin.http import NO_STORE, JSONResponse, json_error, json_ok
from services.admin.profile_rows import utc_text
from services.admin.profiles import InvalidIdentifierError, ProfileReader, why_invalid
from services.admin.roles import PRIVACY_READ, PRIVACY_ROUTES
from services.core.kafka.exceptions import ProduceError
from services.core.warehouse.port import Warehouse
from services.identity.domain.consents import ADMIN_API_SOURCE, EMAIL_MARKETING, GRANTED, Consents
from services.identity.domain.event_time import to_micros
from services.identity.domain.identifiers import DEFAULT_RULES, Identifier, IdentifierRules, IdType
from services.identity.domain.identifiers import normalise_identifier as normalise
from services.ingest.pipeline import IngestPipeline

log = logging.getLogger(__name__)

CONSENTS_PATH = f"{PREFIX}/privacy/consents"
WRITE_CONSENTS = PRIVACY_ROUTES  # admin, privacy officer
READ_CONSENTS = PRIVACY_READ  # analysts read consent history through the BI view instead
MAX_BODY = 64 * 1024
MAX_TEXT = 256
MAX_REASON = 1000
FIELDS = ("identifier", "purpose", "status", "legal_text_version", "double_opt_in", "reason")
REQUIRED = ("identifier", "purpose", "status")
_IDENT_FORMS = '"email:anna@example.de" or {"type": "email", "value": "anna@example.de"}'
NOTE = "submitted like an event: the profile and the consents table show it within seconds"

# The history of a profile: the decisions anchored in its identifiers, each event once.
HISTORY = """
SELECT message_id, profile_id, anchor, purpose, status, double_opt_in, legal_text_version, source, event,
       occurred_at, received_at, list_id, reason
FROM {db}.consents FINAL WHERE anchor IN {keys:Array(String)}
ORDER BY occurred_at, message_id"""


class ConsentRequestError(ValueError):
    """The body is not a valid consent decision; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class ConsentRequest:
    identifier: Identifier
    purpose: str
    status: str
    legal_text_version: str | None
    double_opt_in: bool | None
    reason: str | None

    def event(self, message_id: str, now: datetime, requested_by: str) -> dict[str, Any]:
        """The Segment-spec call ingest turns into the canonical Consent Updated event."""
        properties: dict[str, Any] = {"purpose": self.purpose, "status": self.status}
        for name in ("legal_text_version", "double_opt_in", "reason"):
            if (value := getattr(self, name)) is not None:
                properties[name] = value
        context: dict[str, Any] = {"requestedBy": requested_by}
        if self.purpose == EMAIL_MARKETING:
            context["channel"] = "email"
        call: dict[str, Any] = {
            "type": "track",
            "event": "Consent Updated",
            "messageId": message_id,
            "timestamp": now.isoformat(),
            "properties": properties,
            "context": context,
        }
        kind, value = self.identifier.type, self.identifier.value
        if kind is IdType.CUSTOMER_ID:
            call["userId"] = value
        elif kind is IdType.ANONYMOUS_ID:
            call["anonymousId"] = value
        elif kind in (IdType.EMAIL, IdType.PHONE):
            context["traits"] = {kind.value: value}  # who did it, as the Segment spec puts it
        elif kind is IdType.CHAT_HANDLE:
            properties["chat_handle"] = value
        else:
            properties["recipient_id"] = value
        return call


def _text(data: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConsentRequestError(f"{name} must be a string")
    text = value.strip()
    if not text:
        raise ConsentRequestError(f"{name} is empty")
    if len(text) > limit:
        raise ConsentRequestError(f"{name} has {len(text)} characters; at most {limit}")
    return text


def parse_consent_request(
    body: bytes,
    purposes: Collection[str] = DEFAULT_CONSENT_PURPOSES,
    rules: IdentifierRules = DEFAULT_RULES,
) -> ConsentRequest:
    """The decision a JSON body records; ConsentRequestError saying what is wrong."""
    if not body.strip():
        raise ConsentRequestError(
            f"the body is empty: send a JSON object with {', '.join(REQUIRED)} (and legal_text_version "
            "to grant)"
        )
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ConsentRequestError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConsentRequestError(f"the body must be a JSON object with {', '.join(REQUIRED)}")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ConsentRequestError(f"unknown field {', '.join(unknown)}: the fields are {', '.join(FIELDS)}")
    missing = [name for name in REQUIRED if data.get(name) is None]
    if missing:
        raise ConsentRequestError(f"{' and '.join(missing)} missing: give {', '.join(REQUIRED)}")
    try:
        identifier = parse_identifier("identifier", data["identifier"], rules)
    except CorrectionError as exc:
        raise ConsentRequestError(str(exc)) from None
    purpose = data["purpose"]
    if not isinstance(purpose, str) or purpose not in purposes:
        raise ConsentRequestError(f"unknown purpose {purpose!r}: use one of {', '.join(purposes)}")
    status = data["status"]
    if not isinstance(status, str) or status not in CONSENT_STATUSES:
        raise ConsentRequestError(f"status must be one of {', '.join(CONSENT_STATUSES)}, not {status!r}")
    version = _text(data, "legal_text_version", MAX_TEXT)
    if status == GRANTED and version is None:
        raise ConsentRequestError(
            "legal_text_version missing: a granted consent names the version of the text the person agreed to"
        )
    double_opt_in = data.get("double_opt_in")
    if double_opt_in is not None and not isinstance(double_opt_in, bool):
        raise ConsentRequestError("double_opt_in must be true or false")
    if double_opt_in and status != GRANTED:
        raise ConsentRequestError(f"double_opt_in true confirms a granted consent; the status is {status}")
    return ConsentRequest(
        identifier, purpose, status, version, double_opt_in, _text(data, "reason", MAX_REASON)
    )


async def _body(request: Request) -> bytes | None:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return bytes(body)


def _history_row(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["double_opt_in"] = bool(out["double_opt_in"])
    for name in ("occurred_at", "received_at"):
        if isinstance(out[name], datetime):
            out[name] = utc_text(out[name])
    for name in ("legal_text_version", "list_id", "reason"):
        out[name] = out[name] or None
    return out


def current_of(history: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The current consent per purpose: ``history`` folded as the profile folds its events."""
    consents = Consents()
    for row in history:
        properties: dict[str, Any] = {
            "purpose": row["purpose"], "status": row["status"], "double_opt_in": row["double_opt_in"],
            "legal_text_version": row["legal_text_version"] or "",
        }  # fmt: skip
        stamp = to_micros(row["occurred_at"].replace("Z", "+00:00"))
        consents.apply("Consent Updated", stamp, row["message_id"], properties, row["source"])
    return consents.current()


class ConsentRoutes:
    def __init__(
        self,
        pipeline: IngestPipeline,
        reader: ProfileReader,
        warehouse: Warehouse,
        *,
        purposes: Collection[str] = DEFAULT_CONSENT_PURPOSES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pipeline = pipeline
        self._reader = reader
        self._warehouse = warehouse
        self._purposes = tuple(purposes)
        self._clock = clock

    async def record(self, request: Request) -> Response:
        body = await _body(request)
        if body is None:
            return json_error(413, "too_large", f"the body is larger than {MAX_BODY} bytes")
        try:
            decision = parse_consent_request(body, self._purposes, self._reader.rules)
        except ConsentRequestError as exc:
            return json_error(400, "invalid_request", str(exc), purposes=list(self._purposes))
        principal: Principal = request.state.principal
        message_id = f"consent-{uuid.uuid4()}"
        call = decision.event(message_id, self._clock(), principal.name)
        try:
            result = await self._pipeline.ingest([call], source=ADMIN_API_SOURCE, endpoint=CONSENTS_PATH)
        except ProduceError as exc:
            log.error("admin API: consent %s could not be written to Kafka: %r", message_id, exc)
            return json_error(
                503, "unavailable", "the consent could not be recorded; retry", {"Retry-After": "1"}
            )
        if result.rejected:
            # The checks above mirror the event schema; a difference is a bug, said plainly.
            problems = "; ".join(rejection.describe() for _, rejection in result.rejected)
            return json_error(400, "invalid_request", f"the consent event was refused: {problems}")
        if getattr(result, "suppressed", 0):
            return json_error(
                409, "suppressed", "the identifier belongs to an erased person: no consent was recorded"
            )
        # No identifier in the log: it is personal data. The message id finds the record.
        log.info("admin API: consent %s (%s %s) recorded by %s", message_id, decision.purpose,
                 decision.status, principal.name)  # fmt: skip
        answer = {
            "status": "accepted",
            "messageId": message_id,
            "identifier": decision.identifier.key,
            "purpose": decision.purpose,
            "consent": decision.status,
            "note": NOTE,
        }
        return JSONResponse(answer, status_code=202, headers=NO_STORE)

    async def read(self, request: Request) -> Response:
        try:
            id_type, value = lookup_parameter(request)
        except LookupRequestError as exc:
            return json_error(400, "invalid_request", str(exc))
        identifier = normalise(id_type, value, self._reader.rules)
        if identifier is None:
            return json_error(
                400,
                "invalid_identifier",
                f"{id_type} {value!r} is {why_invalid(id_type, self._reader.rules)}",
            )
        try:
            answer = await run_in_threadpool(self._consents_of, identifier)
        except InvalidIdentifierError as exc:
            return json_error(400, "invalid_identifier", str(exc))
        if answer is None:
            return json_error(
                404, "not_found", f"no profile and no consent record has the {id_type} {value!r}"
            )
        return json_ok(answer)

    def _consents_of(self, identifier: Identifier) -> dict[str, Any] | None:
        profile = self._reader.lookup(identifier.type, identifier.value)
        keys = [identifier.key]
        if profile is not None:
            keys = sorted({identifier.key, *(f"{i['type']}:{i['value']}" for i in profile["identities"])})
        sql = HISTORY.replace("{db}", self._warehouse.database)
        history = [_history_row(row) for row in self._warehouse.query_dicts(sql, {"keys": keys})]
        if profile is None and not history:
            return None
        return {
            "identifier": identifier.key,
            "profile_id": None if profile is None else profile["profile_id"],
            "purposes": list(self._purposes),
            "current": current_of(history),
            "history": history,
        }


def consent_routes(
    pipeline: IngestPipeline,
    reader: ProfileReader,
    warehouse: Warehouse,
    tokens: AdminTokens,
    purposes: Collection[str] = DEFAULT_CONSENT_PURPOSES,
) -> list[Route]:
    """``POST`` and ``GET /api/v1/privacy/consents``, behind the bearer-token check."""
    routes = ConsentRoutes(pipeline, reader, warehouse, purposes=purposes)
    return [
        Route(CONSENTS_PATH, require(tokens, WRITE_CONSENTS, routes.record), methods=["POST"]),
        Route(
            CONSENTS_PATH,
            require(tokens, READ_CONSENTS, _answering_warehouse_errors(routes.read)),
            methods=["GET"],
        ),
    ]


class RouteProvider(Protocol):
    def routes(self, tokens: AdminTokens) -> list[Route]: ...


@dataclass(frozen=True)
class WithConsentRoutes:
    """The privacy service's routes (export, erasure, ...) and the consent routes, as one route
    provider for ``services.admin.routes.AdminComponents.privacy``."""

    privacy: RouteProvider
    pipeline: IngestPipeline
    reader: ProfileReader
    warehouse: Warehouse
    purposes: tuple[str, ...] = DEFAULT_CONSENT_PURPOSES

    def routes(self, tokens: AdminTokens) -> list[Route]:
        return [
            *self.privacy.routes(tokens),
            *consent_routes(self.pipeline, self.reader, self.warehouse, tokens, self.purposes),
        ]
