from services.core.settings import Settings
from services.core.settings_doc import DOC, render


def test_configuration_doc_lists_every_setting():
    assert DOC.read_text() == render(), (
        "docs/configuration.md is stale: run python -m services.core.settings_doc"
    )


def test_settings_come_from_cdp_prefixed_environment(monkeypatch):
    monkeypatch.setenv("CDP_HTTP_PORT", "9100")
    monkeypatch.setenv("CDP_WRITE_KEY", "wk-top-secret")
    settings = Settings()
    assert settings.http_port == 9100
    assert settings.write_key is not None and settings.write_key.get_secret_value() == "wk-top-secret"
    assert "wk-top-secret" not in repr(settings)
