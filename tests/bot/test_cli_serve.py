"""`pushops check` and `pushops serve` refuse bad settings with one clear message."""

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from storage.crypto import KEY_FILE_NAME, generate_key
from tests.fakes.signing import DEFAULT_SIGNING_SECRET
from tests.fakes.slack import DEFAULT_APP_TOKEN, DEFAULT_BOT_TOKEN
from tests.plugins.database import register_secret

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
    assert (
        "PushOps cannot start: SLACK_BOT_TOKEN: Slack refused it (invalid_auth). "
        "Fix: copy the current token from the app's settings page on api.slack.com" in err
    )
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


def test_an_unreadable_value_does_not_hide_the_other_problems(env, capsys):
    env(PORT="abc", PUSHOPS_LOG_LEVEL="LOUD", SLACK_APP_TOKEN="xoxb-not-an-app-token")

    code, _, err = run(capsys, "check")

    assert code == 1
    assert err.startswith("Found 4 problems in the settings:")
    assert "- PORT: " in err
    assert "- SLACK_BOT_TOKEN: no Slack credentials are set." in err
    assert "- SLACK_APP_TOKEN: is not an app-level token" in err
    assert "- PUSHOPS_LOG_LEVEL: is not a log level." in err


def test_check_prints_one_line_per_problem_with_its_fix(env, capsys):
    env(SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN, PORT="abc")

    code, _, err = run(capsys, "check")

    heading, *lines = err.splitlines()
    assert code == 1
    assert heading == "Found 2 problems in the settings:"
    assert [line.split(":")[0] for line in lines] == ["- PORT", "- SLACK_SIGNING_SECRET"]
    assert all(" Fix: " in line for line in lines)


# `docker run --env-file` keeps a line's value verbatim after the `=`: an inline comment and
# the spaces before it become part of the value.
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ONESIGNAL_API_KEY", A_SECRET_VALUE + "         # the app's REST API key"),
        ("ONESIGNAL_APP_ID", GOOD_APP_ID + "   # OneSignal > Settings > Keys & IDs"),
        ("SLACK_APP_TOKEN", "# xapp-... for Socket Mode"),
        ("PORT", "3000 # HTTP"),
    ],
    ids=["api-key", "app-id", "only-a-comment", "number"],
)
def test_a_value_carrying_an_inline_comment_is_refused_by_name(env, capsys, name, value):
    env(
        SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
        SLACK_SIGNING_SECRET=DEFAULT_SIGNING_SECRET,
        ONESIGNAL_APP_ID=GOOD_APP_ID,
        ONESIGNAL_API_KEY=A_SECRET_VALUE,
    )
    env(**{name: value})

    code, out, err = run(capsys, "check")

    assert code == 1, out
    assert err.startswith("Found 1 problem in the settings:")
    assert f"- {name}: carries a comment (from '#' on)" in err
    assert "on its own line" in err
    assert A_SECRET_VALUE not in err and DEFAULT_SIGNING_SECRET not in err


@pytest.mark.parametrize("value", [" " + DEFAULT_BOT_TOKEN, DEFAULT_BOT_TOKEN + "\n", "\t0.0.0.0"])
def test_a_value_with_surrounding_spaces_is_refused_by_name(env, capsys, value):
    name = "HOST" if "0.0.0.0" in value else "SLACK_BOT_TOKEN"
    env(SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN, SLACK_SIGNING_SECRET=DEFAULT_SIGNING_SECRET)
    env(**{name: value})

    code, _, err = run(capsys, "check")

    assert code == 1
    assert f"- {name}: has spaces or line breaks around its value. Fix: remove them" in err
    assert DEFAULT_BOT_TOKEN not in err


def test_serve_refuses_an_inline_comment_before_asking_anyone(env, capsys, fake_slack):
    env(
        SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN + " # from OAuth & Permissions",
        SLACK_SIGNING_SECRET=DEFAULT_SIGNING_SECRET,
        SLACK_API_URL=fake_slack.api_url,
    )

    code, _, err = run(capsys, "serve")

    assert code == 2
    assert err.startswith("PushOps cannot start: 1 problem in the settings:")
    assert "- SLACK_BOT_TOKEN: carries a comment" in err
    assert fake_slack.calls_to("auth.test") == []


def test_a_dotenv_file_with_inline_comments_reads_as_python_dotenv_does(env, capsys, tmp_path):
    # PushOps reads `.env` itself with python-dotenv, which drops an unquoted inline comment;
    # only what reaches the environment verbatim (docker --env-file, a shell) is refused.
    (tmp_path / ".env").write_text(
        f"SLACK_BOT_TOKEN={DEFAULT_BOT_TOKEN}   # Bot User OAuth Token\n"
        f"SLACK_SIGNING_SECRET={DEFAULT_SIGNING_SECRET} # Basic Information\n"
    )

    code, out, err = run(capsys, "check")

    assert code == 0, err
    assert out.startswith("Settings OK")


def _docker_env_file(text: str) -> dict[str, str]:
    """`docker run --env-file` reading `text`: whole-line comments skipped, values verbatim."""
    values = {}
    for line in text.splitlines():
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        name, _, value = stripped.partition("=")
        values[name] = value
    return values


def test_the_readmes_env_examples_survive_docker_env_file():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, flags=re.S)
    examples = [b for b in blocks if re.search(r"^\s*(SLACK|ONESIGNAL)_\w+=", b, flags=re.M)]
    assert len(examples) >= 2  # the Slack and the OneSignal settings

    values = _docker_env_file("\n".join(examples))

    assert {"SLACK_BOT_TOKEN", "ONESIGNAL_APP_ID", "ONESIGNAL_API_KEY"} <= values.keys()
    for name, value in values.items():
        assert "#" not in value and value == value.strip(), f"{name}={value!r}"


@pytest.mark.parametrize(("command", "exit_code"), [("check", 1), ("serve", 2)])
@pytest.mark.parametrize("where", ["under-a-file", "a-file"])
def test_a_data_dir_that_cannot_be_used_is_named_with_its_fix(
    env, capsys, tmp_path, fake_slack, command, exit_code, where
):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("")
    data_dir = a_file / "data" if where == "under-a-file" else a_file
    env(
        SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
        SLACK_SIGNING_SECRET=DEFAULT_SIGNING_SECRET,
        SLACK_API_URL=fake_slack.api_url,
        PUSHOPS_DATA_DIR=str(data_dir),
    )

    code, _, err = run(capsys, command)

    heading, line = err.splitlines()
    assert code == exit_code
    assert heading.endswith("1 problem in the settings:")
    assert line.startswith(f"- PUSHOPS_DATA_DIR: {data_dir} cannot be used: {a_file} is a file")
    assert line.endswith(
        "Fix: set PUSHOPS_DATA_DIR to a folder the user running PushOps may write to."
    )
    assert fake_slack.calls_to("auth.test") == []  # nothing was started


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in any folder")
def test_a_data_dir_without_write_permission_is_named_with_its_fix(env, capsys, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o500)
    env(SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN, SLACK_SIGNING_SECRET=DEFAULT_SIGNING_SECRET)
    env(PUSHOPS_DATA_DIR=str(data_dir))

    code, _, err = run(capsys, "check")

    assert code == 1
    assert f"- PUSHOPS_DATA_DIR: {data_dir} cannot be used: " in err
    assert "Fix: set PUSHOPS_DATA_DIR to a folder the user running PushOps may write to" in err


def test_the_data_dir_is_not_needed_with_a_secret_key_and_another_database(env, capsys, tmp_path):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("")
    env(
        SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
        SLACK_SIGNING_SECRET=DEFAULT_SIGNING_SECRET,
        PUSHOPS_DATA_DIR=str(a_file / "data"),
        PUSHOPS_SECRET_KEY=generate_key(),
        DATABASE_URL=f"sqlite:///{tmp_path / 'elsewhere' / 'pushops.db'}",
    )

    code, out, err = run(capsys, "check")

    assert code == 0, err
    assert out.startswith("Settings OK")


# The child process hides psycopg as an uninstalled package would: `import psycopg` raises
# ModuleNotFoundError once sys.modules maps the name to None (the import system's own rule).
_WITHOUT_PSYCOPG = (
    "import sys; sys.modules['psycopg'] = None; "
    "from bot.cli import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.parametrize(
    ("argv", "exit_code"), [(["check"], 1), (["serve"], 2), (["db", "upgrade"], 1)]
)
def test_postgresql_without_its_driver_says_how_to_install_it(tmp_path, argv, exit_code):
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SLACK_", "ONESIGNAL_", "PUSHOPS_", "DATABASE_URL"))
    }
    environment.update(
        SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
        SLACK_SIGNING_SECRET=DEFAULT_SIGNING_SECRET,
        SLACK_API_URL="http://127.0.0.1:9/api/",
        PUSHOPS_DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL="postgresql://pushops@127.0.0.1:9/pushops",
    )

    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PSYCOPG, *argv],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == exit_code, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "DATABASE_URL" in line]
    assert "PostgreSQL driver (psycopg) is not installed" in line
    assert "pip install 'pushops[postgres]'" in line
    assert len(result.stderr.splitlines()) <= 2


# --- PUSHOPS_ADMINS, and a key kept with the data ------------------------------------------

OAUTH = {
    "SLACK_CLIENT_ID": "1111.2222",
    "SLACK_CLIENT_SECRET": "abcdef0123456789",
    "SLACK_SIGNING_SECRET": DEFAULT_SIGNING_SECRET,
}


@pytest.mark.parametrize("command", ["check", "serve"])
def test_a_bare_admin_id_in_oauth_mode_is_refused_with_the_fix(env, capsys, command):
    env(**OAUTH, PUSHOPS_ADMINS="T0AAA:U0AAA,U0BARE")

    code, _, err = run(capsys, command)

    assert code == (1 if command == "check" else 2)
    assert (
        "- PUSHOPS_ADMINS: names U0BARE without a workspace: with SLACK_CLIENT_ID and "
        "SLACK_CLIENT_SECRET (many workspaces) each entry is TEAM:USER, an admin of that "
        "workspace only. Fix: write each as TEAM:USER, e.g. T0123ABCD:U0456EFGH."
    ) in err
    assert "Traceback" not in err


def test_team_user_pairs_pass_in_oauth_mode_and_bare_ids_in_single_workspace_mode(env, capsys):
    env(**OAUTH, PUSHOPS_ADMINS="T0AAA:U0AAA, T0BBB:U0BBB")
    code, _, err = run(capsys, "check")
    assert "PUSHOPS_ADMINS" not in err

    env(
        SLACK_CLIENT_ID="",
        SLACK_CLIENT_SECRET="",
        SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
        PUSHOPS_ADMINS="U0ONE,T0AAA:U0TWO",
    )
    code, _, err = run(capsys, "check")
    assert "PUSHOPS_ADMINS" not in err


def test_a_malformed_admin_entry_is_named(env, capsys):
    env(SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN, SLACK_SIGNING_SECRET=DEFAULT_SIGNING_SECRET,
        PUSHOPS_ADMINS="U0OK,T0AAA:,a:b:c")  # fmt: skip

    code, _, err = run(capsys, "check")

    assert code == 1
    assert (
        "- PUSHOPS_ADMINS: has entries that are neither a user id nor TEAM:USER: T0AAA:, a:b:c."
    ) in err


def test_check_says_that_a_copy_of_the_data_directory_carries_the_key_too(env, capsys, tmp_path):
    env(SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN, SLACK_SIGNING_SECRET=DEFAULT_SIGNING_SECRET)

    code, out, err = run(capsys, "check")

    assert code == 0, err
    path = tmp_path / "data" / KEY_FILE_NAME
    assert "Warning: PUSHOPS_SECRET_KEY is not set: the key that decrypts the stored" in out
    assert str(path) in out and "a copy of the data directory carries both" in out

    env(PUSHOPS_SECRET_KEY=register_secret(generate_key()))
    code, out, err = run(capsys, "check")
    assert "Warning: PUSHOPS_SECRET_KEY" not in out


# --- what a serving process holds ----------------------------------------------------------------

# What `pushops serve` imports before it serves: its command's modules, and uvicorn's protocols
# for the server it configures (loaded as uvicorn's `Server` loads them).
_SERVE_IMPORTS = (
    "import sys\n"
    "from bot.cli import build_parser\n"
    "from bot.listener import server_config\n"
    "build_parser('serve')\n"
    "async def asgi(scope, receive, send): pass\n"
    "server_config(asgi).load()\n"
    "print(' '.join(sorted(name for name, module in sys.modules.items() if module)))\n"
)


def test_serve_loads_nothing_an_http_server_never_runs(tmp_path):
    """A WebSocket protocol for uvicorn and the Socket Mode client are memory a serving
    process holds for good, and an HTTP `serve` runs neither (benchmarks/idle_rss.py
    measures it)."""
    result = subprocess.run(
        [sys.executable, "-c", _SERVE_IMPORTS], cwd=tmp_path, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert "bot.cli_serve" in loaded and "uvicorn.protocols.http.auto" in loaded
    unused = (
        *("websockets", "uvicorn.protocols.websockets"),
        *("slack_sdk.socket_mode", "slack_bolt.adapter.socket_mode"),
    )
    assert sorted(name for name in loaded if name.startswith(unused)) == []
