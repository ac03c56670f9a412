"""`pushops check` and `pushops serve` refuse bad settings with one clear message."""

import logging
import os

import pytest

from bot.cli import main
from tests.fakes.signing import DEFAULT_SIGNING_SECRET
from tests.fakes.slack import DEFAULT_APP_TOKEN, DEFAULT_BOT_TOKEN

GOOD_APP_ID = "1b2c3d4e-0000-4000-8000-00000000abcd"
A_SECRET_VALUE = "os_v2_app_verysecretvalue123"


@pytest.fixture
def restore_logging():
    """`serve` configures the root logger; put it back as pytest had it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def env(monkeypatch, tmp_path, restore_logging):
    """An environment with no PushOps setting, in a folder without a .env file."""
    for name in list(os.environ):
        if name.startswith(("SLACK_", "ONESIGNAL_", "PUSHOPS_")) or name in (
            "DATABASE_URL",
            "HOST",
            "PORT",
        ):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PUSHOPS_DATA_DIR", str(tmp_path / "data"))

    def set_env(**values):
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_env


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_accepts_a_complete_single_workspace_setup(env, capsys):
    env(SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN, SLACK_SIGNING_SECRET=DEFAULT_SIGNING_SECRET)

    code, out, err = run(capsys, "check")

    assert code == 0, err
    assert out.startswith("Settings OK: HTTP on 0.0.0.0:3000, single workspace")


def test_check_without_any_slack_credentials_names_both_ways_to_fix_it(env, capsys):
    code, out, err = run(capsys, "check")

    assert code == 1
    assert "SLACK_BOT_TOKEN: no Slack credentials are set." in err
    assert "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET" in err
    assert "Traceback" not in err


def test_check_refuses_a_bot_token_together_with_oauth_credentials(env, capsys):
    env(
        SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
        SLACK_CLIENT_ID="1111.2222",
        SLACK_CLIENT_SECRET="abcdef0123456789",
        SLACK_SIGNING_SECRET=DEFAULT_SIGNING_SECRET,
    )

    code, _, err = run(capsys, "check")

    assert code == 1
    assert "both a bot token and OAuth credentials are set" in err


@pytest.mark.parametrize(
    ("given", "missing"),
    [("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"), ("SLACK_CLIENT_SECRET", "SLACK_CLIENT_ID")],
)
def test_check_names_the_missing_half_of_oauth_credentials_beside_a_bot_token(
    env, capsys, given, missing
):
    env(
        SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
        SLACK_SIGNING_SECRET=DEFAULT_SIGNING_SECRET,
        **{given: "1111.2222"},
    )

    code, _, err = run(capsys, "check")

    assert code == 1
    assert err.startswith("Found 1 problem in the settings:")
    assert f"- {missing}: {given} is set without {missing}" in err
    assert f"set {missing}" in err and f"unset {given}" in err  # both ways out
    assert "both a bot token and OAuth credentials are set" not in err


def test_check_lists_every_problem_with_its_fix_in_one_message(env, capsys):
    env(
        SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
        SLACK_APP_TOKEN="xoxb-not-an-app-token",
        ONESIGNAL_APP_ID=GOOD_APP_ID,
    )

    code, _, err = run(capsys, "check")

    assert code == 1
    assert err.startswith("Found 2 problems in the settings:")
    assert "- SLACK_APP_TOKEN: is not an app-level token (those start with xapp-)." in err
    assert "- ONESIGNAL_API_KEY: ONESIGNAL_APP_ID is set without its API key." in err
    assert err.count("Fix: ") == 2


def test_http_mode_needs_the_signing_secret_socket_mode_does_not(env, capsys):
    env(SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN)
    code, _, err = run(capsys, "check")
    assert code == 1
    assert "SLACK_SIGNING_SECRET: is not set" in err

    env(SLACK_APP_TOKEN=DEFAULT_APP_TOKEN)
    code, out, err = run(capsys, "check")
    assert code == 0, err
    assert "Socket Mode" in out


def test_check_never_prints_a_secret(env, capsys):
    env(
        SLACK_BOT_TOKEN="xoxp-1234-user-token-secret",
        SLACK_SIGNING_SECRET=DEFAULT_SIGNING_SECRET,
        ONESIGNAL_API_KEY=A_SECRET_VALUE,
        PORT="not-a-port",
    )

    code, out, err = run(capsys, "check")

    assert code == 1
    assert "PORT:" in err
    assert A_SECRET_VALUE not in out + err
    assert "xoxp-1234-user-token-secret" not in out + err
    assert "not-a-port" not in err


def test_check_refuses_an_onesignal_app_id_that_is_not_a_uuid(env, capsys):
    env(
        SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
        SLACK_SIGNING_SECRET=DEFAULT_SIGNING_SECRET,
        ONESIGNAL_APP_ID="my-app",
        ONESIGNAL_API_KEY=A_SECRET_VALUE,
    )

    code, _, err = run(capsys, "check")

    assert code == 1
    assert "ONESIGNAL_APP_ID: is not a OneSignal app id" in err


def test_serve_with_bad_settings_stops_before_starting_with_one_message(env, capsys):
    env(SLACK_CLIENT_ID="1111.2222", PUSHOPS_LOG_LEVEL="LOUD")

    code, _, err = run(capsys, "serve")

    assert code == 2
    assert err.startswith("PushOps cannot start: 3 problems in the settings:")
    assert "- SLACK_CLIENT_SECRET: OAuth mode needs both" in err
    assert "- SLACK_SIGNING_SECRET: is not set" in err
    assert "- PUSHOPS_LOG_LEVEL: is not a log level." in err
    assert "Traceback" not in err


def test_serve_stops_clearly_when_slack_refuses_the_bot_token(env, capsys, fake_slack):
    env(
        SLACK_BOT_TOKEN="xoxb-revoked-token-123",
        SLACK_SIGNING_SECRET=DEFAULT_SIGNING_SECRET,
        SLACK_API_URL=fake_slack.api_url,
    )

    code, _, err = run(capsys, "serve")

    assert code == 1
    assert "PushOps cannot start: Slack refused SLACK_BOT_TOKEN (invalid_auth)." in err
    assert "xoxb-revoked-token-123" not in err
    assert fake_slack.calls_to("auth.test")[0].token == "xoxb-revoked-token-123"


def test_serve_stops_clearly_when_the_port_is_taken(env, capsys, fake_slack):
    env(
        SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
        SLACK_SIGNING_SECRET=DEFAULT_SIGNING_SECRET,
        SLACK_API_URL=fake_slack.api_url,
        HOST="127.0.0.1",
        PORT=str(fake_slack.port),
    )

    code, _, err = run(capsys, "serve")

    assert code == 1
    assert f"cannot listen on 127.0.0.1:{fake_slack.port}" in err
    assert "Set PORT (or HOST) to a free one." in err
