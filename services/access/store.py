"""API tokens and write keys in the warehouse, stored only as SHA-256 digests.

A token or key is shown once, when it is created; the tables keep its digest. Revoking (and, for a
write key, rotating) writes a newer row of the same id, so the tables are read with ``FINAL``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from services.admin.auth import Principal, Role
from services.core.warehouse.port import Warehouse
from services.ingest.auth import WriteKeyGrant

TOKENS_TABLE = "api_tokens"
KEYS_TABLE = "write_keys"
MAX_GRACE_SECONDS = 30 * 24 * 3600

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.@:/-]{0,99}$")
_SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_ID_RE = re.compile(r"^[a-z]{2,4}_[0-9a-f]{16}$")


class AccessRequestError(ValueError):
    """A request the store refuses (invalid name, role, source, grace period); the message says why."""


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _text(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seconds(value: Any) -> float | None:
    """A DateTime64 as the warehouse returns it (datetime, naive = UTC) in unix seconds."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return float(value)


def valid_id(value: str) -> bool:
    return bool(_ID_RE.match(value))


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


@dataclass(frozen=True, slots=True)
class TokenRecord:
    token_id: str
    name: str
    role: Role
    digest: str
    created_at: float
    created_by: str
    revoked_at: float | None = None
    revoked_by: str = ""

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def public(self) -> dict[str, Any]:
        """What the API shows: never the token, never its digest."""
        return {
            "token_id": self.token_id,
            "name": self.name,
            "role": str(self.role),
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
            "revoked_at": iso(self.revoked_at),
            "revoked_by": self.revoked_by or None,
            "status": "active" if self.active else "revoked",
        }

    def row(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "name": self.name,
            "role": str(self.role),
            "token_sha256": self.digest,
            "created_at": _text(self.created_at),
            "created_by": self.created_by,
            "revoked_at": _text(self.revoked_at),
            "revoked_by": self.revoked_by,
            "updated_at": _now_text(),
        }


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    source: str
    digest: str
    created_at: float
    created_by: str
    revoked_at: float | None = None
    revoked_by: str = ""
    expires_at: float | None = None
    replaced_by: str = ""

    def status(self, now: float | None = None) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None:
            return "expired" if self.expires_at <= (now or time.time()) else "expiring"
        return "active"

    def public(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "source": self.source,
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
            "revoked_at": iso(self.revoked_at),
            "revoked_by": self.revoked_by or None,
            "expires_at": iso(self.expires_at),
            "replaced_by": self.replaced_by or None,
            "status": self.status(),
            "bootstrap": False,
        }

    def row(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "source": self.source,
            "key_sha256": self.digest,
            "created_at": _text(self.created_at),
            "created_by": self.created_by,
            "revoked_at": _text(self.revoked_at),
            "revoked_by": self.revoked_by,
            "expires_at": _text(self.expires_at),
            "replaced_by": self.replaced_by,
            "updated_at": _now_text(),
        }

    def grant(self) -> WriteKeyGrant:
        return WriteKeyGrant(
            self.key_id, self.source, bytes.fromhex(self.digest), self.revoked_at, self.expires_at
        )


_last_update = [0]
_update_lock = threading.Lock()


def _now_text() -> str:
    """``updated_at`` in microseconds, strictly increasing within this process: a revocation
    written in the same microsecond as its creation still wins in ReplacingMergeTree."""
    with _update_lock:
        now = max(time.time_ns() // 1000, _last_update[0] + 1)
        _last_update[0] = now
    return (
        datetime.fromtimestamp(now // 1_000_000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        + f".{now % 1_000_000:06d}"
    )


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name.strip()):
        raise AccessRequestError(
            "name: 1 to 100 characters, letters, digits and ' _.@:/-', starting with a letter or digit "
            "(e.g. 'support-team' or 'anna@shop.example')"
        )
    return name.strip()


def check_role(role: Any) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise AccessRequestError(f"role: one of {', '.join(r.value for r in Role)}") from None


def check_source(source: Any) -> str:
    if not isinstance(source, str) or not _SOURCE_RE.match(source):
        raise AccessRequestError(
            "source: 1 to 64 characters, lower-case letters, digits and '_.-', starting with a letter or "
            "digit (e.g. 'webshop', 'ios-app', 'zendesk')"
        )
    return source


class TokenStore:
    def __init__(self, warehouse: Warehouse) -> None:
        self._warehouse = warehouse
        self._lock = threading.Lock()

    def create(self, name: str, role: Role, created_by: str) -> tuple[TokenRecord, str]:
        """A new token: its record and the token itself (shown once, never stored)."""
        secret = f"cdpt_{secrets.token_urlsafe(32)}"
        record = TokenRecord(
            _new_id("tok"), check_name(name), check_role(role), sha256_hex(secret), time.time(), created_by
        )
        self._write(record)
        return record, secret

    def records(self) -> list[TokenRecord]:
        rows = self._warehouse.query_dicts(
            "SELECT token_id, name, role, token_sha256, created_at, created_by, revoked_at, revoked_by "
            f"FROM {self._warehouse.database}.{TOKENS_TABLE} FINAL ORDER BY created_at, token_id"
        )
        records = []
        for row in rows:
            try:
                role = Role(row["role"])
            except ValueError:
                continue  # a role this version does not know grants nothing
            records.append(
                TokenRecord(
                    row["token_id"],
                    row["name"],
                    role,
                    row["token_sha256"],
                    _seconds(row["created_at"]) or 0.0,
                    row["created_by"],
                    _seconds(row["revoked_at"]),
                    row["revoked_by"],
                )
            )
        return records

    def get(self, token_id: str) -> TokenRecord | None:
        return next((record for record in self.records() if record.token_id == token_id), None)

    def revoke(self, token_id: str, revoked_by: str) -> TokenRecord | None:
        """The revoked token (unchanged when it already was), or None when there is no such token."""
        with self._lock:
            record = self.get(token_id)
            if record is None or not record.active:
                return record
            revoked = TokenRecord(
                record.token_id,
                record.name,
                record.role,
                record.digest,
                record.created_at,
                record.created_by,
                time.time(),
                revoked_by,
            )
            self._write(revoked)
            return revoked

    def grants(self) -> list[tuple[bytes, Principal]]:
        return [
            (bytes.fromhex(record.digest), Principal(record.name, record.role, record.token_id))
            for record in self.records()
            if record.active and len(record.digest) == 64
        ]

    def _write(self, record: TokenRecord) -> None:
        self._warehouse.insert_json_rows(TOKENS_TABLE, orjson.dumps(record.row()))


class WriteKeyStore:
    def __init__(self, warehouse: Warehouse) -> None:
        self._warehouse = warehouse
        self._lock = threading.Lock()

    def create(self, source: str, created_by: str) -> tuple[KeyRecord, str]:
        secret = f"wk_{secrets.token_urlsafe(24)}"
        record = KeyRecord(_new_id("key"), check_source(source), sha256_hex(secret), time.time(), created_by)
        self._write(record)
        return record, secret

    def records(self) -> list[KeyRecord]:
        rows = self._warehouse.query_dicts(
            "SELECT key_id, source, key_sha256, created_at, created_by, revoked_at, revoked_by, expires_at, "
            f"replaced_by FROM {self._warehouse.database}.{KEYS_TABLE} FINAL "
            "ORDER BY source, created_at, key_id"
        )
        return [
            KeyRecord(
                row["key_id"],
                row["source"],
                row["key_sha256"],
                _seconds(row["created_at"]) or 0.0,
                row["created_by"],
                _seconds(row["revoked_at"]),
                row["revoked_by"],
                _seconds(row["expires_at"]),
                row["replaced_by"],
            )
            for row in rows
        ]

    def get(self, key_id: str) -> KeyRecord | None:
        return next((record for record in self.records() if record.key_id == key_id), None)

    def rotate(
        self, key_id: str, grace_seconds: float, rotated_by: str
    ) -> tuple[KeyRecord, str, KeyRecord] | None:
        """A new key for the old key's source; the old one expires after ``grace_seconds``.

        None when there is no such key; AccessRequestError when it is revoked or expired already.
        """
        if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
            raise AccessRequestError(f"grace_seconds: 0 to {MAX_GRACE_SECONDS} (30 days)")
        with self._lock:
            old = self.get(key_id)
            if old is None:
                return None
            if old.status() in ("revoked", "expired"):
                raise AccessRequestError(f"write key {key_id} is {old.status()}: create a new key instead")
            new, secret = self.create(old.source, rotated_by)
            expires = time.time() + grace_seconds
            if old.expires_at is not None:
                expires = min(expires, old.expires_at)
            old = KeyRecord(
                old.key_id,
                old.source,
                old.digest,
                old.created_at,
                old.created_by,
                None,
                "",
                expires,
                new.key_id,
            )
            self._write(old)
            return new, secret, old

    def revoke(self, key_id: str, revoked_by: str) -> KeyRecord | None:
        with self._lock:
            record = self.get(key_id)
            if record is None or record.revoked_at is not None:
                return record
            revoked = KeyRecord(
                record.key_id,
                record.source,
                record.digest,
                record.created_at,
                record.created_by,
                time.time(),
                revoked_by,
                record.expires_at,
                record.replaced_by,
            )
            self._write(revoked)
            return revoked

    def grants(self) -> list[WriteKeyGrant]:
        """Every key, revoked and expired ones too: ingest names why such a key is refused."""
        return [record.grant() for record in self.records() if len(record.digest) == 64]

    def _write(self, record: KeyRecord) -> None:
        self._warehouse.insert_json_rows(KEYS_TABLE, orjson.dumps(record.row()))
