"""``cdp profiles split`` and ``cdp profiles detach`` against a served admin API."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from services.admin.cli import profiles_app
from services.core.kafka.broker import free_port
from tests.integration.admin.admin_story import TOKEN
from tests.integration.admin.conftest import RecordingSubmit


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .env, no .cdp-data of a developer's own cdp up
    monkeypatch.setenv("CDP_ADMIN_TOKEN", TOKEN)
    return CliRunner()


def flat(text: str) -> str:
    return " ".join(text.split())


def test_split(cli_env, corrections_url, submitted: RecordingSubmit):
    args = [
        "split",
        "email:ANNA@example.de",
        "anonymous_id:family-tablet",
        "--reason",
        "shared family tablet",
    ]
    result = cli_env.invoke(profiles_app, [*args, "--url", corrections_url])
    assert result.exit_code == 0, result.output
    [record] = submitted.records
    assert record["kind"] == "split" and record["reason"] == "shared family tablet"
    assert (record["a"], record["b"]) == ("email:anna@example.de", "anonymous_id:family-tablet")
    output = flat(result.stdout)
    assert f"split request {record['requestId']}" in output
    assert "email:anna@example.de and anonymous_id:family-tablet will be unlinked" in output
    assert "cdp profiles get email:anna@example.de" in output and "shortly" in output


def test_detach(cli_env, corrections_url, submitted: RecordingSubmit, tmp_path, monkeypatch):
    monkeypatch.delenv("CDP_ADMIN_TOKEN")  # the token from the data directory, as for get
    data = tmp_path / "data"
    data.mkdir()
    (data / "secrets.json").write_text(f'{{"admin_token": "{TOKEN}"}}')
    args = ["detach", "phone:0151 12345678", "--reason", "the shop's landline"]
    result = cli_env.invoke(profiles_app, [*args, "--url", corrections_url, "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    [record] = submitted.records
    assert record["kind"] == "detach" and record["identifier"] == "phone:+4915112345678"
    output = flat(result.stdout)
    assert f"detach request {record['requestId']}" in output
    assert "phone:+4915112345678 will be cut loose from its profile" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["detach", "p_anna", "--reason", "x"],
         "'p_anna' has no type (it would be read as profile p_anna): split and detach need a typed identifier"),
        (["detach", "anna@example.de", "--reason", "x"], "has no type (it would be read as email:anna@example.de)"),
        (["split", "email:anna@example.de", "C100042", "--reason", "x"], "'C100042' has no type"),
        (["detach", "profile_id:p_anna", "--reason", "x"],
         "a profile id cannot be split or detached: pass the identifiers (type:value)"),
        (["detach", "email:", "--reason", "x"], "email: needs a value"),
        (["detach", "email:anna", "--reason", "x"], "identifier: email 'anna' is not a usable email address"),
        (["detach", "email:anna@example.de", "--reason", " "], "reason is empty"),
        (["split", "email:anna@example.de", "email:ANNA@example.de", "--reason", "x"], "a and b are the same"),
        (["detach", "email:anna@example.de", "--reason", "x" * 501], "at most 500"),
    ],
)  # fmt: skip
def test_mistakes_fail_clearly(cli_env, corrections_url, submitted: RecordingSubmit, args, message):
    result = cli_env.invoke(profiles_app, [*args, "--url", corrections_url])
    assert result.exit_code == 1, result.output
    assert message in flat(result.stderr)
    assert submitted.records == []


def test_reason_is_required(cli_env, corrections_url, submitted: RecordingSubmit):
    result = cli_env.invoke(profiles_app, ["detach", "email:anna@example.de", "--url", corrections_url])
    assert result.exit_code == 2
    assert "--reason" in result.output
    assert submitted.records == []


def test_a_refused_token_fails_clearly(cli_env, corrections_url, monkeypatch):
    monkeypatch.setenv("CDP_ADMIN_TOKEN", "wrong")
    result = cli_env.invoke(
        profiles_app, ["detach", "email:anna@example.de", "--reason", "x", "--url", corrections_url]
    )
    assert result.exit_code == 1
    assert "refused the admin token" in flat(result.stderr)


def test_a_failing_submit_says_retry(cli_env, corrections_url, submitted: RecordingSubmit):
    submitted.failure = RuntimeError("broker down")
    result = cli_env.invoke(
        profiles_app, ["detach", "email:anna@example.de", "--reason", "x", "--url", corrections_url]
    )
    assert result.exit_code == 1
    assert "the platform answered 503: the detach request could not be queued; retry" in flat(result.stderr)


def test_a_read_only_platform_says_so(cli_env, read_only_url):
    result = cli_env.invoke(
        profiles_app, ["detach", "email:anna@example.de", "--reason", "x", "--url", read_only_url]
    )
    assert result.exit_code == 1
    assert "admin API is read-only" in flat(result.stderr)


def test_says_when_the_platform_is_not_running(cli_env):
    url = f"http://127.0.0.1:{free_port()}"
    result = cli_env.invoke(profiles_app, ["detach", "email:anna@example.de", "--reason", "x", "--url", url])
    assert result.exit_code == 1
    assert "is 'cdp up' running?" in flat(result.stderr)
