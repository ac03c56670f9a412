"""`pushops apps|keys|db` as an operator runs them: messages, exit codes, what lands on disk."""

from __future__ import annotations

import asyncio
import os
import pty
import socket
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from storage import queries, workspaces
from storage.crypto import KeyRing, SecretDecryptionError, generate_key
from storage.db import Database
from storage.migrations import head_revision
from storage.models import OneSignalApp, SendState
from tests.plugins.database import DEFAULT_TEAM, OTHER_TEAM, fake_api_key, register_secret
from tests.terminal import read_until


@pytest.fixture
def onesignal(fake_onesignal, cli_env, monkeypatch):
    """The fake OneSignal, its seeded app's key registered and offered in ONESIGNAL_API_KEY."""
    register_secret(fake_onesignal.app.rest_api_key)
    monkeypatch.setenv("ONESIGNAL_API_URL", fake_onesignal.url)
    monkeypatch.setenv("ONESIGNAL_API_KEY", fake_onesignal.app.rest_api_key)
    return fake_onesignal


def _add_args(app_id: str, team: str = DEFAULT_TEAM, name: str = "main") -> list[str]:
    return ["apps", "add", "--team", team, "--name", name, "--app-id", app_id]


async def _apps(database: Database, team_id: str | None = None) -> list[OneSignalApp]:
    async with database.sessions() as session:
        return await workspaces.list_apps(session=session, team_id=team_id)


def _sqlite_files(database: Database) -> list[Path]:
    path = Path(make_url(str(database.engine.url)).database or "")
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]


async def test_apps_add_checks_the_key_with_onesignal_and_stores_it_encrypted(
    database, onesignal, run_cli, keyring
):
    key = onesignal.app.rest_api_key

    result = await run_cli(*_add_args(onesignal.app.id))

    assert result.code == 0, result.stderr
    assert result.stdout == (
        f"Saved app 'main' (default) in workspace {DEFAULT_TEAM}, key checked with OneSignal.\n"
    )
    (check,) = onesignal.requests_to("GET", "/notifications")
    assert check.query["app_id"] == [onesignal.app.id] and check.query["limit"] == ["1"]
    assert check.headers["authorization"] == f"Key {key}"
    (app,) = await _apps(database, DEFAULT_TEAM)
    assert (app.onesignal_app_id, app.is_default, app.added_by.startswith("cli")) == (
        onesignal.app.id,
        True,
        True,
    )
    assert key not in app.api_key_ciphertext
    assert workspaces.decrypt_app_key(app, keyring=keyring).get_secret_value() == key
    await database.dispose()  # let SQLite fold its WAL into the file before we read the bytes
    for path in _sqlite_files(database):
        assert key.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    ("app_id", "key", "message"),
    [
        (
            "seeded",
            "os_v2_app_wrongwrongwrongwrongwrongwrong",
            "OneSignal refused this REST API key",
        ),
        (
            str(uuid.UUID(int=7)),
            None,
            "OneSignal knows no app 00000000-0000-0000-0000-000000000007",
        ),
    ],
    ids=["wrong-key", "unknown-app"],
)
async def test_apps_add_refuses_what_onesignal_refuses(
    database, onesignal, run_cli, app_id, key, message
):
    env = {"ONESIGNAL_API_KEY": register_secret(key)} if key else {}
    app_id = onesignal.app.id if app_id == "seeded" else app_id

    result = await run_cli(*_add_args(app_id), env=env)

    assert result.code == 1
    assert result.stderr.startswith(f"error: {message}")
    assert "(use --no-verify to save it anyway)" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert await _apps(database) == []


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_apps_add_says_when_onesignal_cannot_be_reached(database, onesignal, run_cli):
    url = f"http://127.0.0.1:{_closed_port()}"

    result = await run_cli(*_add_args(onesignal.app.id), env={"ONESIGNAL_API_URL": url})

    assert result.code == 1
    assert result.stderr.startswith(f"error: OneSignal could not be reached at {url}")
    assert await _apps(database) == []


async def test_apps_add_without_verification_asks_onesignal_nothing(database, onesignal, run_cli):
    result = await run_cli(*_add_args(str(uuid.uuid4())), "--no-verify")
    assert result.code == 0 and "key checked" not in result.stdout
    assert onesignal.requests == []
    assert len(await _apps(database)) == 1


async def test_apps_add_never_takes_the_key_from_the_command_line(run_cli, onesignal):
    result = await run_cli(*_add_args(onesignal.app.id), "--key", "os_v2_app_x")
    assert result.code == 2 and "unrecognized arguments: --key" in result.stderr

    missing = await run_cli(*_add_args(onesignal.app.id), env={"ONESIGNAL_API_KEY": None})
    assert missing.code == 1
    assert missing.stderr == (
        "error: No REST API key: set ONESIGNAL_API_KEY, or run in a terminal to be asked for it.\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--team", "acme", "--name", "main"], "'acme' is not a Slack workspace id"),
        (["--team", DEFAULT_TEAM, "--name", "my app"], "'my app' is not a usable app name"),
    ],
)
async def test_apps_add_refuses_bad_input_clearly(run_cli, args, message):
    result = await run_cli("apps", "add", *args, "--app-id", str(uuid.uuid4()), "--no-verify")
    assert result.code == 1 and result.stderr.startswith(f"error: {message}")


async def test_apps_add_refuses_a_bad_app_id_and_a_duplicate_name(
    database, run_cli, storage_factory
):
    await storage_factory.app(name="main")
    bad = await run_cli(
        "apps",
        "add",
        "--team",
        DEFAULT_TEAM,
        "--name",
        "x",
        "--app-id",
        "123",
        "--no-verify",
        env={"ONESIGNAL_API_KEY": fake_api_key()},
    )
    assert bad.code == 1 and "'123' is not a OneSignal app id" in bad.stderr

    twice = await run_cli(
        *_add_args(str(uuid.uuid4())), "--no-verify", env={"ONESIGNAL_API_KEY": fake_api_key()}
    )
    assert twice.code == 1
    assert twice.stderr == (
        f"error: Workspace {DEFAULT_TEAM} already has an app named 'main': "
        "add --replace to replace its app id and key.\n"
    )

    new_key = fake_api_key()
    replaced = await run_cli(
        *_add_args(str(uuid.uuid4())),
        "--no-verify",
        "--replace",
        env={"ONESIGNAL_API_KEY": new_key},
    )
    assert replaced.code == 0
    async with database.sessions() as session:
        credentials = await workspaces.get_app_credentials(
            session=session, keyring=storage_factory.keyring, team_id=DEFAULT_TEAM, name="main"
        )
    assert credentials.api_key.get_secret_value() == new_key


async def test_apps_add_refuses_a_key_carrying_a_comment_by_name(database, run_cli):
    key = fake_api_key()

    result = await run_cli(
        *_add_args(str(uuid.uuid4())),
        "--no-verify",
        env={"ONESIGNAL_API_KEY": f"{key}   # the app's REST API key", "PORT": "abc"},
    )

    assert result.code == 1
    assert result.stderr == (
        "error: invalid settings: ONESIGNAL_API_KEY carries a comment (from '#' on); PORT is "
        "not a whole number. `pushops check` says how to fix each.\n"
    )
    assert await _apps(database) == []


def _key_file(cli_env: dict[str, str]) -> Path:
    return Path(cli_env["PUSHOPS_DATA_DIR"]) / "secret.key"


@pytest.mark.parametrize("failure", ["wrong-key", "duplicate", "no-key-given"])
async def test_a_failed_apps_add_writes_no_key_file(
    onesignal, run_cli, cli_env, storage_factory, failure
):
    if failure == "duplicate":
        await storage_factory.app(name="main")
    env: dict[str, str | None] = {"PUSHOPS_SECRET_KEY": None}
    if failure == "wrong-key":
        env["ONESIGNAL_API_KEY"] = fake_api_key()
    if failure == "no-key-given":
        env["ONESIGNAL_API_KEY"] = None

    result = await run_cli(*_add_args(onesignal.app.id), env=env)

    assert result.code == 1 and result.stderr.startswith("error: ")
    assert not _key_file(cli_env).exists()
    assert not _key_file(cli_env).parent.exists()


async def test_the_first_apps_add_without_a_secret_key_makes_the_key_file(
    database, onesignal, run_cli, cli_env
):
    result = await run_cli(*_add_args(onesignal.app.id), env={"PUSHOPS_SECRET_KEY": None})

    assert result.code == 0, result.stderr
    key = register_secret(_key_file(cli_env).read_text().strip())
    (app,) = await _apps(database)
    decrypted = workspaces.decrypt_app_key(app, keyring=KeyRing.from_text(key))
    assert decrypted.get_secret_value() == onesignal.app.rest_api_key


async def test_apps_list_masks_every_key(run_cli, storage_factory):
    first_key, second_key = fake_api_key(), fake_api_key()
    await storage_factory.app(name="main", api_key=first_key)
    await storage_factory.app(name="beta", api_key=second_key)
    await storage_factory.app(OTHER_TEAM, name="theirs")

    everything = await run_cli("apps", "list")
    mine = await run_cli("apps", "list", "--team", DEFAULT_TEAM)

    assert everything.code == mine.code == 0
    lines = mine.stdout.splitlines()
    assert lines[0].split() == [
        "TEAM",
        "NAME",
        "DEFAULT",
        "ONESIGNAL",
        "APP",
        "ID",
        "REST",
        "API",
        "KEY",
    ]
    assert [line.split()[1] for line in lines[1:]] == ["main", "beta"]
    assert f"••••{first_key[-4:]}" in lines[1] and f"••••{second_key[-4:]}" in lines[2]
    assert first_key not in mine.stdout and second_key not in mine.stdout
    assert "theirs" in everything.stdout and "theirs" not in mine.stdout


async def test_apps_remove_deletes_the_app_unless_sends_still_need_it(
    database, run_cli, storage_factory
):
    main = await storage_factory.app(name="main")
    beta = await storage_factory.app(name="beta")
    await storage_factory.send(beta, state=SendState.SCHEDULED)

    busy = await run_cli("apps", "remove", "--team", DEFAULT_TEAM, "--name", "beta")
    gone = await run_cli("apps", "remove", "--team", DEFAULT_TEAM, "--name", "main")
    again = await run_cli("apps", "remove", "--team", DEFAULT_TEAM, "--name", "main")

    assert busy.code == 1
    assert "has 1 send not yet delivered; cancel it or wait until it is sent." in busy.stderr
    assert (
        gone.code == 0
        and gone.stdout == f"Removed app 'main' and its key from workspace {DEFAULT_TEAM}.\n"
    )
    assert (
        again.code == 1
        and again.stderr == f"error: No OneSignal app named 'main' in workspace {DEFAULT_TEAM}.\n"
    )
    (left,) = await _apps(database)
    assert left.id == beta.id and left.is_default  # the default moved on
    assert main.id != beta.id


async def test_keys_generate_prints_one_key_and_nothing_else(run_cli):
    result = await run_cli("keys", "generate")
    key = register_secret(result.stdout.strip())
    assert result.code == 0 and result.stderr == ""
    assert result.stdout == key + "\n"
    assert KeyRing.from_text(key).key_ids


async def test_after_rotation_the_old_key_can_go(database, run_cli, storage_factory, secret_key):
    keys = {"main": fake_api_key(), "beta": fake_api_key(), "theirs": fake_api_key()}
    await storage_factory.app(name="main", api_key=keys["main"])
    await storage_factory.app(name="beta", api_key=keys["beta"])
    await storage_factory.app(OTHER_TEAM, name="theirs", api_key=keys["theirs"])
    new_key = register_secret(generate_key())
    new_ring = KeyRing.from_text(new_key)

    rotated = await run_cli("keys", "rotate", env={"PUSHOPS_SECRET_KEY": f"{new_key},{secret_key}"})
    again = await run_cli("keys", "rotate", env={"PUSHOPS_SECRET_KEY": new_key})
    listed = await run_cli("apps", "list", env={"PUSHOPS_SECRET_KEY": new_key})

    assert rotated.code == 0, rotated.stderr
    assert rotated.stdout.startswith(
        f"Re-encrypted 3 secrets under key {new_ring.primary_key_id}; 0 already were."
    )
    old_id = KeyRing.from_text(secret_key).primary_key_id
    assert f"; the old key {old_id} can be removed." in rotated.stdout
    assert (
        again.code == 0
        and "Re-encrypted 0 secrets" in again.stdout
        and "3 already were" in again.stdout
    )
    assert "UNREADABLE" not in listed.stdout
    async with database.sessions() as session:
        for app in await workspaces.list_apps(session=session, team_id=None):
            assert new_ring.is_current(app.api_key_ciphertext, row=str(app.id))
            plain = workspaces.decrypt_app_key(app, keyring=new_ring).get_secret_value()
            assert plain == keys[app.name]
        events = await queries.list_audit_events(session=session, team_id=DEFAULT_TEAM, limit=2)
    assert {event.action for event in events} == {"secret.reencrypted"}


@pytest.mark.parametrize("file_key", ["held", "not-held"])
async def test_keys_rotate_refuses_beside_a_generated_key_file_and_says_what_to_do(
    database, run_cli, cli_env, storage_factory, secret_key, file_key
):
    app = await storage_factory.app(name="main")
    key_file = _key_file(cli_env)
    key_file.parent.mkdir(parents=True)
    in_file = secret_key if file_key == "held" else register_secret(generate_key())
    key_file.write_text(in_file + "\n")
    key_file.chmod(0o600)
    new_key = register_secret(generate_key())

    refused = await run_cli("keys", "rotate", env={"PUSHOPS_SECRET_KEY": f"{new_key},{secret_key}"})

    file_id = KeyRing.from_text(in_file).primary_key_id
    assert refused.code == 1 and refused.stdout == ""
    assert refused.stderr.startswith(f"error: {key_file} holds key {file_id}, generated while")
    assert "after this rotation nothing would be encrypted under it" in refused.stderr
    if file_key == "held":
        assert f"PUSHOPS_SECRET_KEY holds its key too: delete {key_file}, and run" in refused.stderr
    else:
        assert "PUSHOPS_SECRET_KEY does not hold its key" in refused.stderr
    (unchanged,) = await _apps(database)
    assert unchanged.api_key_ciphertext == app.api_key_ciphertext
    assert key_file.read_text() == in_file + "\n"

    key_file.unlink()
    rotated = await run_cli("keys", "rotate", env={"PUSHOPS_SECRET_KEY": f"{new_key},{secret_key}"})
    assert rotated.code == 0, rotated.stderr
    (moved,) = await _apps(database)
    assert KeyRing.from_text(new_key).is_current(moved.api_key_ciphertext, row=str(moved.id))


async def test_keys_rotate_on_the_generated_key_file_says_how_to_rotate_it(
    database, run_cli, cli_env, storage_factory, secret_key
):
    await storage_factory.app(name="main")
    key_file = _key_file(cli_env)
    key_file.parent.mkdir(parents=True)
    key_file.write_text(secret_key + "\n")
    key_file.chmod(0o600)

    result = await run_cli("keys", "rotate", env={"PUSHOPS_SECRET_KEY": None})

    assert result.code == 0, result.stderr
    assert "Re-encrypted 0 secrets" in result.stdout and "1 already were" in result.stdout
    assert (
        f"PUSHOPS_SECRET_KEY is not set: the key is the one PushOps generated in {key_file}. "
        "To rotate it, set PUSHOPS_SECRET_KEY=NEW,<the file's content>, delete the file"
    ) in result.stdout


@pytest.mark.parametrize("argv", [("keys", "rotate"), ("apps", "list")])
async def test_without_any_key_rotate_and_list_say_so_and_make_none(
    run_cli, cli_env, storage_factory, argv
):
    await storage_factory.app(name="main")

    result = await run_cli(*argv, env={"PUSHOPS_SECRET_KEY": None})

    assert result.code == 1
    assert result.stderr == (
        f"error: No key: PUSHOPS_SECRET_KEY is not set and {_key_file(cli_env)} does not "
        "exist. Set PUSHOPS_SECRET_KEY to the key the secrets were saved with.\n"
    )
    assert not _key_file(cli_env).exists()


async def test_a_ciphertext_copied_to_another_workspace_does_not_decrypt(
    database, run_cli, storage_factory, secret_key
):
    mine = await storage_factory.app(name="main")
    theirs = await storage_factory.app(OTHER_TEAM, name="theirs")
    async with database.engine.begin() as connection:
        await connection.execute(
            sa.update(OneSignalApp)
            .where(OneSignalApp.id == theirs.id)
            .values(api_key_ciphertext=mine.api_key_ciphertext)
        )

    async with database.sessions() as session:
        with pytest.raises(SecretDecryptionError) as caught:
            await workspaces.get_app_credentials(
                session=session, keyring=storage_factory.keyring, team_id=OTHER_TEAM, name="theirs"
            )
    listed = await run_cli("apps", "list", "--team", OTHER_TEAM)
    new_key = register_secret(generate_key())
    rotated = await run_cli("keys", "rotate", env={"PUSHOPS_SECRET_KEY": f"{new_key},{secret_key}"})

    reason = (
        f"Cannot decrypt the onesignal_api_key of workspace {OTHER_TEAM}: "
        f"it does not belong to workspace {OTHER_TEAM} as onesignal_api_key, or it was altered."
    )
    assert str(caught.value) == reason
    assert listed.code == 0 and f"UNREADABLE ({reason})" in listed.stdout
    assert rotated.code == 1
    assert rotated.stdout.startswith("Re-encrypted 1 secret under")  # ours; theirs is left as is
    assert f"error: app 'theirs': {reason}" in rotated.stderr


async def test_commands_on_a_database_not_upgraded_say_how_to_fix_it(run_cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = await run_cli("apps", "list", env={"DATABASE_URL": url})
    assert result.code == 1
    assert result.stderr.endswith(
        f"is at revision none, this PushOps needs {head_revision()}: run `pushops db upgrade`.\n"
    )

    upgraded = await run_cli("db", "upgrade", env={"DATABASE_URL": url})
    assert upgraded.code == 0 and f"from empty to {head_revision()}" in upgraded.stdout
    assert (await run_cli("apps", "list", env={"DATABASE_URL": url})).code == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@localhost/pushops", "DATABASE_URL names a mysql database"),
        ("not a url", "DATABASE_URL is not a database URL"),
    ],
)
async def test_an_unusable_database_url_is_explained(run_cli, url, message):
    result = await run_cli("db", "upgrade", env={"DATABASE_URL": url})
    assert result.code == 1 and result.stderr.startswith(f"error: {message}")


async def test_apps_add_prompts_for_the_key_without_echo_in_a_terminal(
    sqlite_database, secret_key, tmp_path
):
    key = fake_api_key()
    url = str(sqlite_database.engine.url.set(drivername="sqlite"))
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": url, "PUSHOPS_SECRET_KEY": secret_key}
    argv = [sys.executable, "-m", "bot", *_add_args(str(uuid.uuid4())), "--no-verify"]
    pid, terminal = pty.fork()
    if pid == 0:  # the child: a real terminal as its controlling tty
        os.chdir(tmp_path)
        os.execve(sys.executable, argv, env)
    try:
        prompt = await asyncio.to_thread(read_until, terminal, b"(not echoed): ")
        os.write(terminal, key.encode() + b"\n")
        rest = await asyncio.to_thread(read_until, terminal, b"Saved app")
        rest += await asyncio.to_thread(read_until, terminal, b"\n", 5.0)
    finally:
        _, status = await asyncio.to_thread(os.waitpid, pid, 0)
        os.close(terminal)

    assert b"OneSignal REST API key (not echoed): " in prompt
    assert os.waitstatus_to_exitcode(status) == 0
    assert key.encode() not in prompt + rest  # not echoed
    assert b"Saved app 'main' (default) in workspace T0000TEST." in rest
    async with sqlite_database.sessions() as session:
        credentials = await workspaces.get_app_credentials(
            session=session, keyring=KeyRing.from_text(secret_key), team_id=DEFAULT_TEAM
        )
    assert credentials.api_key.get_secret_value() == key
