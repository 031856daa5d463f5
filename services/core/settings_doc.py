"""Render docs/configuration.md from the Settings model (``python -m services.core.settings_doc``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from services.core.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"

HEADER = """# Configuration

Every setting is read from an environment variable with the prefix `CDP_` (upper case), or from a
`.env` file in the working directory. Command-line options of `cdp up` (`--data-dir`,
`--http-port`, ...) override the environment. Secrets are never logged; `cdp up` prints only the
write key, in its start banner (docs/privacy.md#pii-hygiene-and-retention).

Single-node mode is the default: leave `CDP_KAFKA_BOOTSTRAP` unset and `cdp up` starts a Tansu
broker; leave `CDP_CLICKHOUSE_URL` unset and it opens the embedded ClickHouse engine in
`CDP_DATA_DIR`. When unset, the write key, the admin token and the ClickHouse writer password are
generated on first start and kept in `CDP_DATA_DIR/secrets.json` (mode 0600).

This page is generated from `services/core/settings.py`; a test fails when it is out of date
(regenerate with `.venv/bin/python -m services.core.settings_doc`).

| variable | default | meaning |
|---|---|---|
"""


def _default(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "(empty)" if not value.get_secret_value() else "(secret)"
    return f"`{value}`"


def render() -> str:
    rows = []
    for name, info in Settings.model_fields.items():
        default = info.get_default(call_default_factory=True)  # lists have a default_factory
        rows.append(f"| `CDP_{name.upper()}` | {_default(default)} | {info.description or ''} |")
    return HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    DOC.write_text(render())
    print(DOC)
