"""The log redaction filter and error summaries keep personal data and secrets out of log lines."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from services.core.log_hygiene import RedactingFilter, error_summary, redact, settings_secrets
from services.core.settings import Settings
from services.core.warehouse.port import WarehouseError


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, RedactingFilter]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    redacting = RedactingFilter(["wk_super-secret-key"])
    handler.addFilter(redacting)
    logger = logging.getLogger("test.log_hygiene")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream, redacting
    logger.removeHandler(handler)


@pytest.mark.parametrize(
    "text",
    [
        "Anna.Schmidt+shop@Example.DE",
        "anna.schmidt@example.de",
        "anna.schmidt%40example.de",
        "+4915112345678",
        "+49 151 1234 5678",
        "+49-151-12345678",
        "%2B4915112345678",
        "004915112345678",
    ],
)
def test_personal_data_is_masked(text: str) -> None:
    out = redact(f"before {text} after")
    assert text not in out
    assert out.startswith("before <") and out.endswith("> after")


@pytest.mark.parametrize(
    "text",
    [
        "identity graph: replayed 1234567 observations (52 messages) in 1.5 s",
        "continuing on Kafka cluster abc (identity positions from 1763856000000)",
        "2024-03-01 12:00:00.123 retrying in 0.4 s",
        "profile p_0123456789abcdef012345 at offset 120000000000 (100000000000 bytes)",
    ],
)
def test_ordinary_log_text_is_kept(text: str) -> None:
    assert redact(text) == text


def test_filter_masks_message_arguments_tracebacks_and_secrets(
    captured: tuple[logging.Logger, io.StringIO, RedactingFilter],
) -> None:
    logger, stream, redacting = captured
    logger.info("lookup of %s with key %s", "anna@example.de", "wk_super-secret-key")
    try:
        raise ValueError("bad phone +49 151 12345678 for bob@example.com")
    except ValueError:
        logger.exception("failed")
    redacting.add_secrets(["adm_later-token", "short"])
    logger.warning("token adm_later-token, a short word stays short")
    text = stream.getvalue()
    for leaked in (
        "anna@example.de",
        "wk_super-secret-key",
        "12345678",
        "bob@example.com",
        "adm_later-token",
    ):
        assert leaked not in text
    assert "lookup of <email> with key <secret>" in text
    assert "ValueError: bad phone <phone> for <email>" in text
    assert "a short word stays short" in text  # secrets under 6 characters are not masked


def test_error_summary_drops_quoted_input() -> None:
    exc = WarehouseError(
        "Code: 27. DB::Exception: Cannot parse input: expected '\"' before: "
        '\'anna@example.de", "phone": "0151 1234567"}\': (at row 1)\n: While executing ParallelParsing',
        27,
        "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
    )
    summary = error_summary(exc)
    assert (
        summary
        == "WarehouseError CANNOT_PARSE_INPUT_ASSERTION_FAILED 27: Code: 27. DB::Exception: Cannot parse"
    )
    assert error_summary(ConnectionError("connection refused")) == "ConnectionError: connection refused"


def test_settings_secrets_include_passwords_of_urls() -> None:
    settings = Settings(
        write_key=SecretStr("wk_from-env"),
        clickhouse_url="http://cdp:p%40ss-word@127.0.0.1:8123",
    )
    found = settings_secrets(settings)
    assert "wk_from-env" in found and "p@ss-word" in found and "p%40ss-word" in found
