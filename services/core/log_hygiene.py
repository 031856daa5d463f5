"""Keep personal data and secrets out of the logs (docs/privacy.md#pii-hygiene-and-retention).

Log calls name identifier *types*, counts, message ids, request ids and profile ids, never
identifier values, payloads or validation messages (which may quote input). Two helpers back that
up:

- ``error_summary(exc)``: an exception for a log line without the text ClickHouse or a parser
  quotes from its input (``Cannot parse input: ... before: '{"email": ...'``);
- ``RedactingFilter``: a last line of defence on the log handlers of ``cdp up`` and ``cdp run``.
  It masks email addresses, international phone numbers (``+49 151 ...``) and the platform's
  secrets (write key, admin token, ClickHouse passwords, webhook secrets) in every record, its
  arguments and its traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from services.core.settings import Settings

EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
EMAIL_ENCODED = re.compile(r"[A-Za-z0-9._%+\-]+%40[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
# International numbers only: "+" and at least 7 digits, with the usual separators. Bare digit runs
# are left alone (offsets, positions, durations and timestamps look the same).
PHONE = re.compile(r"(?<![\w%+])(?:\+|%2B|00)\d(?:[\s\-/.()]{0,2}\d){6,16}")
MIN_SECRET_LENGTH = 6  # shorter "secrets" (test values) would mask ordinary words
_QUOTED_OR_DATA = re.compile(r"""['"`]|\bbefore:|\bvalue\b|\binput\b""", re.IGNORECASE)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "<secret>")
    text = EMAIL.sub("<email>", text)
    text = EMAIL_ENCODED.sub("<email>", text)
    return PHONE.sub("<phone>", text)


def error_summary(exc: BaseException, limit: int = 200) -> str:
    """``exc`` for a log line: its type, ClickHouse code and name, and its first line up to the first
    quote (the part of an error message that quotes input data follows it)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    cut = _QUOTED_OR_DATA.search(first)
    text = redact(first[: cut.start()] if cut else first).rstrip(" :,(")[:limit]
    code = getattr(exc, "code", 0)
    name = getattr(exc, "name", "")
    label = type(exc).__name__
    if isinstance(code, int) and code:
        label += f" {name or 'code'} {code}" if name else f" code {code}"
    return f"{label}: {text}" if text else label


class RedactingFilter(logging.Filter):
    """Masks personal data and known secrets in every record that passes a handler."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._formatter = logging.Formatter()
        self.add_secrets(secrets)

    def add_secrets(self, secrets: Iterable[str]) -> None:
        self._secrets |= {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        # Longest first: a secret that contains another is masked whole.
        self._ordered = sorted(self._secrets, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the template, drop the arguments
            message = str(record.msg)
        record.msg, record.args = redact(message, self._ordered), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._ordered)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._ordered)
        return True


def settings_secrets(settings: Settings) -> list[str]:
    """Every secret value in ``settings``: SecretStr fields and the password of a ClickHouse URL."""
    found = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr) and value.get_secret_value():
            found.append(value.get_secret_value())
    if settings.clickhouse_url:
        password = urlsplit(settings.clickhouse_url).password
        if password:
            found += [password, unquote(password)]
    return found


def install_redaction(secrets: Iterable[str] = ()) -> RedactingFilter:
    """Put one ``RedactingFilter`` on every handler of the root logger (after ``basicConfig``)."""
    root = logging.getLogger()
    for handler in root.handlers:
        for existing in handler.filters:
            if isinstance(existing, RedactingFilter):
                existing.add_secrets(secrets)
                return existing
    redacting = RedactingFilter(secrets)
    for handler in root.handlers:
        handler.addFilter(redacting)
    return redacting
