"""Secrets generated on first start and kept in the data directory (mode 0600).

A second ``cdp up`` on the same data directory reuses them, so clients keep working.
Values from the environment (``CDP_WRITE_KEY``, ``CDP_ADMIN_TOKEN``, ...) always win.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import orjson

from services.core.settings import Settings

FILE_NAME = "secrets.json"


@dataclass(frozen=True, slots=True)
class PlatformSecrets:
    write_key: str
    admin_token: str
    clickhouse_writer_password: str
    write_key_generated: bool
    privacy_hash_key: str = ""


def _stored(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    data = orjson.loads(path.read_bytes())
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def load_or_create(settings: Settings) -> PlatformSecrets:
    path = settings.data_dir / FILE_NAME
    stored = _stored(path)
    generated = {
        "write_key": stored.get("write_key") or f"wk_{secrets.token_urlsafe(24)}",
        "admin_token": stored.get("admin_token") or f"adm_{secrets.token_urlsafe(32)}",
        "clickhouse_writer_password": stored.get("clickhouse_writer_password") or secrets.token_urlsafe(24),
        "privacy_hash_key": stored.get("privacy_hash_key") or secrets.token_urlsafe(32),
    }
    if generated != stored:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(orjson.dumps(generated, option=orjson.OPT_INDENT_2))

    def pick(env: object, key: str) -> str:
        value = getattr(env, "get_secret_value", lambda: None)()
        return value if value else generated[key]

    return PlatformSecrets(
        write_key=pick(settings.write_key, "write_key"),
        admin_token=pick(settings.admin_token, "admin_token"),
        clickhouse_writer_password=pick(settings.clickhouse_writer_password, "clickhouse_writer_password"),
        write_key_generated=settings.write_key is None,
        privacy_hash_key=pick(settings.privacy_hash_key, "privacy_hash_key"),
    )


def read_existing(settings: Settings) -> dict[str, str]:
    """Secrets of a data directory, for CLI commands that talk to a running ``cdp up``."""
    return _stored(settings.data_dir / FILE_NAME)
