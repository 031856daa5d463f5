"""The admin API as the CLI sees it: what an IDENT names, and a small HTTP client with clear errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from services.core.secrets import read_existing
from services.core.settings import Settings
from services.identity.domain.identifiers import IdType

PROFILE_ID_PREFIXES = ("profile_id", "profile")
_TYPES: dict[str, IdType] = {id_type.value: id_type for id_type in IdType}


@dataclass(frozen=True, slots=True)
class ProfileRef:
    """An identifier of a type, or a profile id (``id_type`` None). ``guessed``: typed from its shape."""

    id_type: IdType | None
    value: str
    guessed: bool = False

    def __str__(self) -> str:
        return f"profile {self.value}" if self.id_type is None else f"{self.id_type}:{self.value}"


def _guess(value: str) -> ProfileRef:
    if "@" in value:
        return ProfileRef(IdType.EMAIL, value, guessed=True)
    if value[0] == "+" or value[0].isdigit():
        return ProfileRef(IdType.PHONE, value, guessed=True)
    if value.startswith("p_"):
        return ProfileRef(None, value, guessed=True)
    return ProfileRef(IdType.CUSTOMER_ID, value, guessed=True)


def parse_ident(text: str) -> ProfileRef:
    """``email:anna@example.de``, ``phone:+49...``, ``profile_id:p_...``, or a bare value typed by
    its shape: with ``@`` an email, starting with ``+`` or a digit a phone, ``p_...`` a profile id,
    anything else a customer id. Raises ValueError for an empty value."""
    text = text.strip()
    prefix, sep, rest = text.partition(":")
    if sep and (prefix in _TYPES or prefix in PROFILE_ID_PREFIXES):
        if not rest.strip():
            raise ValueError(f"{prefix}: needs a value, e.g. {prefix}:{_example(prefix)}")
        return ProfileRef(_TYPES.get(prefix), rest.strip())
    if not text:
        raise ValueError("give an identifier, e.g. email:anna@example.de or customer_id:C100042")
    return _guess(text)


def _example(prefix: str) -> str:
    examples = {"email": "anna@example.de", "phone": "+4915112345678", "customer_id": "C100042"}
    return examples.get(prefix, "p_0123456789abcdef012345" if prefix in PROFILE_ID_PREFIXES else "...")


class AdminClientError(Exception):
    """The request could not be answered; the message says what to do. ``status``: HTTP status, if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def default_base_url(settings: Settings) -> str:
    host = settings.http_host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # bound to every interface: loopback reaches it
    return f"http://[{host}]:{settings.http_port}" if ":" in host else f"http://{host}:{settings.http_port}"


def admin_token(settings: Settings) -> str | None:
    """``CDP_ADMIN_TOKEN``, else the token ``cdp up`` generated into the data directory."""
    if settings.admin_token is not None and settings.admin_token.get_secret_value():
        return settings.admin_token.get_secret_value()
    return read_existing(settings).get("admin_token")


class AdminClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0) -> None:
        self._base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self._base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )

    def profile(self, ref: ProfileRef) -> dict[str, Any] | None:
        """The profile, or None when the platform knows no such person."""
        if ref.id_type is None:
            response = self._request("GET", f"/api/v1/profiles/{quote(ref.value, safe='')}", params={})
        else:
            response = self._request("GET", "/api/v1/profiles/lookup", params={ref.id_type.value: ref.value})
        if response.status_code == 404:
            return None
        body: dict[str, Any] = orjson.loads(response.content)
        return body

    def correct(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/v1/profiles/{kind}`` (split or detach); the 202 answer with its requestId."""
        path = f"/api/v1/profiles/{kind}"
        response = self._request("POST", path, content=orjson.dumps(body), passed=(404, 405))
        if response.status_code in (404, 405):  # the routes are not mounted
            raise AdminClientError(
                "this platform's admin API is read-only: identity corrections are not enabled there",
                response.status_code,
            )
        answer: dict[str, Any] = orjson.loads(response.content)
        return answer

    def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET ``path``; None for 404."""
        response = self._request("GET", path, params=params or {})
        return None if response.status_code == 404 else orjson.loads(response.content)

    def post_json(self, path: str, body: Any, passed: tuple[int, ...] = ()) -> tuple[int, Any]:
        """POST ``body`` as JSON to ``path``: the status and the decoded answer (statuses in
        ``passed`` come back instead of raising AdminClientError)."""
        response = self._request("POST", path, content=orjson.dumps(body), passed=passed)
        return response.status_code, orjson.loads(response.content)

    def request_json(
        self, method: str, path: str, body: Any = None, passed: tuple[int, ...] = ()
    ) -> tuple[int, Any]:
        """``method`` on ``path`` with ``body`` as JSON (if any): the status and the decoded answer
        (statuses in ``passed`` come back instead of raising AdminClientError)."""
        content = None if body is None else orjson.dumps(body)
        response = self._request(method, path, content=content, passed=passed)
        return response.status_code, orjson.loads(response.content) if response.content else None

    def apply_segments(self, text: str) -> dict[str, Any]:
        """``POST /api/v1/segments``; AdminClientError listing every problem of a bad document."""
        response = self._request("POST", "/api/v1/segments", content=text.encode(), passed=(400,))
        body: dict[str, Any] = orjson.loads(response.content)
        if response.status_code == 400:
            problems = body.get("problems") or [body.get("message", "invalid definition")]
            raise AdminClientError("the platform refused the definitions:\n  " + "\n  ".join(problems), 400)
        return body

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
        passed: tuple[int, ...] = (404,),
    ) -> httpx.Response:
        """The response; AdminClientError for a transport error or an error status not in ``passed``."""
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            response = self._client.request(method, path, params=params, content=content, headers=headers)
        except httpx.TransportError as exc:
            raise AdminClientError(
                f"cannot reach the platform at {self._base_url} ({exc.__class__.__name__}): "
                "is 'cdp up' running? (or pass --url)"
            ) from None
        if response.status_code == 401:
            raise AdminClientError(
                "the platform refused the admin token: set CDP_ADMIN_TOKEN to the platform's token, "
                "or run where the platform's data directory is (--data-dir)",
                401,
            )
        if response.status_code >= 400 and response.status_code not in passed:
            status = response.status_code
            raise AdminClientError(f"the platform answered {status}: {_message(response)}", status)
        return response

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _message(response: httpx.Response) -> str:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:200] or response.reason_phrase
    return str(body.get("message", body)) if isinstance(body, dict) else str(body)
