"""``cdp profiles get IDENT``: what an IDENT names (pure), and the command against a served admin API."""

from __future__ import annotations

import orjson
import pytest
from typer.testing import CliRunner

from services.admin.cli import profiles_app
from services.admin.client import ProfileRef, parse_ident
from services.core.kafka.broker import free_port
from services.identity.domain.identifiers import IdType
from tests.integration.admin.admin_story import TOKEN


@pytest.mark.parametrize(
    ("ident", "expected"),
    [
        ("email:anna@example.de", ProfileRef(IdType.EMAIL, "anna@example.de")),
        ("phone:+4915112345678", ProfileRef(IdType.PHONE, "+4915112345678")),
        ("customer_id:C1", ProfileRef(IdType.CUSTOMER_ID, "C1")),
        ("customer_id:100042", ProfileRef(IdType.CUSTOMER_ID, "100042")),
        ("anonymous_id:a:b:c", ProfileRef(IdType.ANONYMOUS_ID, "a:b:c")),
        ("chat_handle:@anna", ProfileRef(IdType.CHAT_HANDLE, "@anna")),
        ("email_recipient_id:r-77", ProfileRef(IdType.EMAIL_RECIPIENT_ID, "r-77")),
        ("profile_id:p_abc", ProfileRef(None, "p_abc")),
        ("profile:p_abc", ProfileRef(None, "p_abc")),
        ("  email: anna@example.de ", ProfileRef(IdType.EMAIL, "anna@example.de")),
        ("Anna@Example.de", ProfileRef(IdType.EMAIL, "Anna@Example.de", guessed=True)),
        ("mailto:anna@example.de", ProfileRef(IdType.EMAIL, "mailto:anna@example.de", guessed=True)),
        ("+49 151 12345678", ProfileRef(IdType.PHONE, "+49 151 12345678", guessed=True)),
        ("015112345678", ProfileRef(IdType.PHONE, "015112345678", guessed=True)),
        ("p_0123456789abcdef012345", ProfileRef(None, "p_0123456789abcdef012345", guessed=True)),
        ("C100042", ProfileRef(IdType.CUSTOMER_ID, "C100042", guessed=True)),
        ("kunde:17", ProfileRef(IdType.CUSTOMER_ID, "kunde:17", guessed=True)),
    ],
)
def test_ident_names_a_type_or_is_guessed_from_its_shape(ident, expected):
    assert parse_ident(ident) == expected


@pytest.mark.parametrize("ident", ["", "   ", "email:", "profile_id: "])
def test_empty_ident_is_refused(ident):
    with pytest.raises(ValueError, match=r"e\.g\."):
        parse_ident(ident)


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .env, no .cdp-data of a developer's own cdp up
    monkeypatch.setenv("CDP_ADMIN_TOKEN", TOKEN)
    return CliRunner()


def test_get_prints_a_summary(cli_env, admin_url):
    result = cli_env.invoke(profiles_app, ["get", "ANNA@example.de", "--url", admin_url])
    assert result.exit_code == 0, result.output
    for expected in ("p_anna", "C100042", "Schmidt", "Conversation Started", "merged from p_visitor"):
        assert expected in result.output


def test_get_json_is_the_api_response(cli_env, admin_url):
    result = cli_env.invoke(profiles_app, ["get", "customer_id:C100042", "--json", "--url", admin_url])
    assert result.exit_code == 0, result.output
    profile = orjson.loads(result.stdout)
    assert profile["profile_id"] == "p_anna" and profile["merged_from"] == ["p_visitor"]


def test_get_by_profile_id(cli_env, admin_url):
    result = cli_env.invoke(profiles_app, ["get", "p_visitor", "--json", "--url", admin_url])
    assert orjson.loads(result.stdout)["profile_id"] == "p_anna"


def test_token_comes_from_the_data_dir_secrets(cli_env, admin_url, tmp_path, monkeypatch):
    monkeypatch.delenv("CDP_ADMIN_TOKEN")
    data = tmp_path / "data"
    data.mkdir()
    (data / "secrets.json").write_bytes(orjson.dumps({"admin_token": TOKEN}))
    result = cli_env.invoke(profiles_app, ["get", "C100042", "--url", admin_url, "--data-dir", str(data)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "env_token", "message"),
    [
        (["get", "C100042"], "wrong", "refused the admin token"),
        (["get", "C404"], TOKEN, "no profile found for customer_id:C404"),
        (["get", "0123"], TOKEN, "for a customer number use customer_id:0123"),
        (["get", "email:"], TOKEN, "email: needs a value"),
        (["get", "C100042"], None, "no admin token: set CDP_ADMIN_TOKEN"),
    ],
)
def test_get_fails_clearly(cli_env, admin_url, monkeypatch, args, env_token, message):
    if env_token is None:
        monkeypatch.delenv("CDP_ADMIN_TOKEN")
    else:
        monkeypatch.setenv("CDP_ADMIN_TOKEN", env_token)
    result = cli_env.invoke(profiles_app, [*args, "--url", admin_url])
    assert result.exit_code == 1
    assert message in " ".join(result.stderr.split())


def test_get_says_when_the_platform_is_not_running(cli_env):
    result = cli_env.invoke(profiles_app, ["get", "C1", "--url", f"http://127.0.0.1:{free_port()}"])
    assert result.exit_code == 1
    assert "is 'cdp up' running?" in " ".join(result.stderr.split())
