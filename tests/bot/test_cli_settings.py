"""`pushops roles|policy|export-settings|import-settings` as an operator runs them: what they
print, the rows and audit events they write (those of /push setup), and their refusals."""

from __future__ import annotations

import asyncio
import io
import os
import pty
import sys
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from bot.policy import ApprovalPolicy
from storage import workspaces
from storage.crypto import KeyRing
from storage.db import Database
from storage.models import AuditEvent, Member, OneSignalApp, Workspace
from tests.plugins.database import DEFAULT_TEAM, OTHER_TEAM, fake_api_key, register_secret
from tests.terminal import read_until


@pytest.fixture
async def workspace(storage_factory):
    return await storage_factory.workspace()


async def _members(database: Database) -> list[tuple[str, str, str]]:
    async with database.sessions() as session:
        members = await workspaces.list_members(session=session, team_id=DEFAULT_TEAM)
    return [(m.subject_id, m.role.value, m.added_by) for m in members]


async def _audit(database: Database) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(actor, action, target, details) of the workspace's events, oldest first."""
    async with database.sessions() as session:
        events = await session.scalars(
            sa.select(AuditEvent).where(AuditEvent.team_id == DEFAULT_TEAM).order_by(AuditEvent.seq)
        )
        return [(e.actor, e.action, e.target, dict(e.details)) for e in events]


async def _workspace(database: Database) -> Workspace:
    async with database.sessions() as session:
        found = await workspaces.get_workspace(session=session, team_id=DEFAULT_TEAM)
    assert found is not None
    return found


def _role(action: str, role: str, who: str, *extra: str) -> list[str]:
    return ["roles", action, "--team", DEFAULT_TEAM, "--role", role, "--user", who, *extra]


# --- roles ------------------------------------------------------------------------------------


async def test_roles_add_and_remove_write_the_rows_and_audit_events_of_setup(
    database, workspace, run_cli
):
    given = await run_cli(*_role("add", "sender", "U0BOB", "--actor", "alice"))
    again = await run_cli(*_role("add", "sender", "U0BOB", "--actor", "alice"))
    group = await run_cli(
        "roles", "add", "--team", DEFAULT_TEAM, "--role", "approver", "--group", "S0LEADS"
    )
    listed = await run_cli("roles", "list", "--team", DEFAULT_TEAM)

    assert (
        given.code == 0 and given.stdout == f"U0BOB now holds the sender role in {DEFAULT_TEAM}.\n"
    )
    assert (
        again.stdout == f"Nothing changed: U0BOB already held the sender role in {DEFAULT_TEAM}.\n"
    )
    assert group.code == 0
    assert (await _members(database))[0] == ("S0LEADS", "approver", group_actor := _os_actor())
    assert ("U0BOB", "sender", "cli:alice") in await _members(database)
    assert listed.stdout.splitlines()[0].split() == ["ROLE", "HOLDER", "KIND", "GIVEN", "BY"]
    assert "U0BOB" in listed.stdout and "S0LEADS" in listed.stdout and "group" in listed.stdout

    taken = await run_cli(*_role("remove", "sender", "U0BOB", "--actor", "alice"))
    not_held = await run_cli(*_role("remove", "sender", "U0BOB", "--actor", "alice"))

    assert taken.stdout == f"U0BOB no longer holds the sender role in {DEFAULT_TEAM}.\n"
    assert not_held.stdout.startswith("Nothing changed: U0BOB did not hold")
    assert await _members(database) == [("S0LEADS", "approver", group_actor)]
    assert await _audit(database) == [
        ("cli:alice", "member.added", "U0BOB", {"role": "sender"}),
        (group_actor, "member.added", "S0LEADS", {"role": "approver"}),
        ("cli:alice", "member.removed", "U0BOB", {"role": "sender"}),
    ]
    verified = await run_cli("audit", "verify", "--team", DEFAULT_TEAM)
    assert verified.code == 0, verified.stderr


async def test_roles_list_with_a_role_lists_that_roles_holders_only(database, workspace, run_cli):
    for args in (_role("add", "sender", "U0BOB"), _role("add", "approver", "U0CAROL")):
        assert (await run_cli(*args)).code == 0

    senders = await run_cli("roles", "list", "--team", DEFAULT_TEAM, "--role", "sender")
    responders = await run_cli("roles", "list", "--team", DEFAULT_TEAM, "--role", "responder")

    assert senders.code == 0, senders.stderr
    assert [line.split()[:3] for line in senders.stdout.splitlines()[1:]] == [
        ["sender", "U0BOB", "user"]
    ]
    assert responders.stdout == f"Nobody holds the responder role in {DEFAULT_TEAM}.\n"


def _os_actor() -> str:
    import getpass

    return f"cli:{getpass.getuser()}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            _role("add", "sender", "U0BOB")[:3] + ["T0NOPE", "--role", "sender", "--user", "U0BOB"],
            "error: PushOps knows no workspace T0NOPE",
        ),
        (
            ["roles", "add", "--team", "acme", "--role", "sender", "--user", "U0BOB"],
            "error: 'acme' is not a Slack workspace id",
        ),
        (_role("add", "sender", "bob"), "error: 'bob' is not a Slack user id (U… or W…); --user"),
        (_role("add", "sender", "S0GROUP"), "error: 'S0GROUP' is not a Slack user id"),
        (
            ["roles", "add", "--team", DEFAULT_TEAM, "--role", "sender", "--group", "U0BOB"],
            "error: 'U0BOB' is not a Slack user group id (S…); --group takes one.",
        ),
    ],
    ids=["unknown-team", "bad-team", "bad-user", "group-as-user", "user-as-group"],
)
async def test_roles_refuse_bad_input_with_one_line(database, workspace, run_cli, args, message):
    result = await run_cli(*args)

    assert (result.code, result.stdout) == (1, "")
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert await _members(database) == [] and await _audit(database) == []


async def test_roles_refuse_an_unknown_role_by_listing_the_roles(run_cli, workspace):
    result = await run_cli(*_role("add", "owner", "U0BOB"))

    assert result.code == 2
    assert "invalid choice: 'owner' (choose from admin, sender, approver, responder)" in (
        result.stderr.replace(
            "'admin', 'sender', 'approver', 'responder'", "admin, sender, approver, responder"
        )
    )
    assert "Traceback" not in result.stderr


# --- policy -----------------------------------------------------------------------------------


async def test_policy_set_changes_only_what_is_given_and_is_audited(database, workspace, run_cli):
    first = await run_cli(
        "policy",
        "set",
        "--team",
        DEFAULT_TEAM,
        "--mode",
        "segments",
        "--channel",
        "C0APPROVE",
        "--actor",
        "alice",
    )
    second = await run_cli(
        "policy",
        "set",
        "--team",
        DEFAULT_TEAM,
        "--approvals",
        "2",
        "--log-channel",
        "C0LOG",
        "--actor",
        "alice",
    )
    shown = await run_cli("policy", "show", "--team", DEFAULT_TEAM)

    assert first.code == 0, first.stderr
    assert first.stdout == (
        f"Saved the approval policy of {DEFAULT_TEAM}: sends to segments or to more than 100 "
        "listed users need 1 approval, asked in C0APPROVE.\n"
    )
    assert second.stdout.splitlines()[1] == f"Results of sends in {DEFAULT_TEAM} go to C0LOG."
    row = await _workspace(database)
    assert ApprovalPolicy.from_settings(row.settings) == ApprovalPolicy(
        mode="segments", approvals=2, channel_id="C0APPROVE"
    )
    assert row.log_channel_id == "C0LOG"
    assert [line.split(None, 1) for line in shown.stdout.splitlines()] == [
        ["mode", "segments"],
        ["approvals", "2"],
        ["channel", "C0APPROVE"],
        ["user", "threshold  100"],
        ["log", "channel     C0LOG"],
    ]
    updated = [(a, action, d) for a, action, _, d in await _audit(database)]
    assert updated == [
        ("cli:alice", "workspace.updated", {"settings": ["approvals"]}),
        ("cli:alice", "workspace.updated", {"settings": ["approvals"]}),
        ("cli:alice", "workspace.updated", {"log_channel_id": "C0LOG"}),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "all"], "error: Choose the channel where approvers are asked."),
        (["--approvals", "9"], "error: Approvals needed must be between 1 and 5."),
        (
            ["--channel", "#general"],
            "error: '#general' is not a Slack channel id (like C0123ABCD).",
        ),
        (
            [],
            "error: Nothing to set: give --mode, --approvals, --channel, --user-threshold or "
            "--log-channel.",
        ),
    ],
)
async def test_policy_set_refuses_a_policy_that_cannot_work(
    database, workspace, run_cli, args, message
):
    result = await run_cli("policy", "set", "--team", DEFAULT_TEAM, *args)

    assert (result.code, result.stdout) == (1, "")
    assert result.stderr == message + "\n"
    assert (await _workspace(database)).settings == {} and await _audit(database) == []


async def test_policy_set_replaces_a_stored_policy_that_does_not_parse(
    database, workspace, run_cli
):
    async with database.sessions.begin() as session:
        await workspaces.update_workspace(
            session=session,
            team_id=DEFAULT_TEAM,
            actor="U0X",
            settings={"approvals": {"mode": "??"}},
        )
    shown = await run_cli("policy", "show", "--team", DEFAULT_TEAM)

    fixed = await run_cli("policy", "set", "--team", DEFAULT_TEAM, "--mode", "off")

    assert shown.code == 1 and "set it again with `pushops policy set`" in shown.stderr
    assert fixed.code == 0, fixed.stderr
    assert ApprovalPolicy.from_settings((await _workspace(database)).settings).mode == "off"


async def test_policy_on_an_unknown_workspace_says_so(database, run_cli):
    result = await run_cli("policy", "show", "--team", "T0NOPE")
    assert result.code == 1 and result.stderr.startswith("error: PushOps knows no workspace T0NOPE")


# --- export and import ------------------------------------------------------------------------


@pytest.fixture
async def configured(storage_factory, database, run_cli):
    """A workspace with an app, two role holders and an approval policy."""
    key = fake_api_key()
    app = await storage_factory.app(api_key=key, make_default=True)
    for args in (_role("add", "admin", "U0ALICE"), _role("add", "sender", "U0BOB")):
        assert (await run_cli(*args)).code == 0
    policy = ["--mode", "all", "--channel", "C0APPROVE", "--log-channel", "C0LOG"]
    assert (await run_cli("policy", "set", "--team", DEFAULT_TEAM, *policy)).code == 0
    return app, key


async def test_export_prints_apps_with_masked_keys_roles_and_policy(configured, run_cli):
    app, key = configured

    result = await run_cli("export-settings", "--team", DEFAULT_TEAM)

    assert result.code == 0, result.stderr
    assert key not in result.stdout and key[:12] not in result.stdout
    body = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    assert body == [
        f"team: {DEFAULT_TEAM}",
        "apps:",
        "- name: main",
        f"  onesignal_app_id: {app.onesignal_app_id}",
        "  default: true",
        f"  key: ••••{key[-4:]}",
        "roles:",
        "  admin:",
        "  - U0ALICE",
        "  sender:",
        "  - U0BOB",
        "  approver: []",
        "  responder: []",
        "policy:",
        "  mode: all",
        "  approvals: 1",
        "  channel: C0APPROVE",
        "  user_threshold: 100",
        "  log_channel: C0LOG",
    ]


async def _state(database: Database) -> tuple[Any, ...]:
    """Everything an import could change: apps, roles, settings, audit."""
    async with database.sessions() as session:
        apps = (await session.scalars(sa.select(OneSignalApp).order_by(OneSignalApp.name))).all()
        members = (await session.scalars(sa.select(Member).order_by(Member.subject_id))).all()
        workspace = await workspaces.get_workspace(session=session, team_id=DEFAULT_TEAM)
        audit = (await session.scalars(sa.select(sa.func.count()).select_from(AuditEvent))).one()
    return (
        [(a.name, a.onesignal_app_id, a.is_default, a.api_key_ciphertext) for a in apps],
        [(m.subject_id, m.role) for m in members],
        workspace and (dict(workspace.settings), workspace.log_channel_id),
        audit,
    )


def _edited(text: str) -> str:
    """The export with the sender role moved to a group, approvals off, an app added."""
    return (
        text.replace("  - U0BOB\n", "  - S0SENDERS\n")
        .replace("mode: all", "mode: 'off'")
        .replace("  responder: []\n", "  responder:\n  - U0CAROL\n")
        .replace("roles:\n", f"- name: promo\n  onesignal_app_id: {PROMO_ID}\nroles:\n")
    )


PROMO_ID = str(uuid.UUID(int=42))


async def test_import_dry_run_shows_the_difference_and_changes_nothing(
    configured, database, run_cli, tmp_path
):
    exported = (await run_cli("export-settings", "--team", DEFAULT_TEAM)).stdout
    path = tmp_path / "settings.yaml"
    path.write_text(_edited(exported))
    before = await _state(database)

    result = await run_cli("import-settings", str(path), "--dry-run")

    assert result.code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"Changes to {DEFAULT_TEAM}:",
        f"  + app promo: onesignal_app_id {PROMO_ID}",
        "  + role sender: S0SENDERS",
        "  + role responder: U0CAROL",
        "  - role sender: U0BOB",
        "  ~ policy mode: all -> off",
        "Dry run: nothing was changed.",
    ]
    assert await _state(database) == before


async def test_import_applies_the_file_through_the_same_service_and_asks_onesignal(
    configured, database, run_cli, tmp_path, fake_onesignal, monkeypatch
):
    promo = fake_onesignal.add_app("Promo")
    register_secret(promo.rest_api_key)
    monkeypatch.setenv("ONESIGNAL_API_URL", fake_onesignal.url)
    exported = (await run_cli("export-settings", "--team", DEFAULT_TEAM)).stdout
    path = tmp_path / "settings.yaml"
    path.write_text(_edited(exported).replace(PROMO_ID, promo.id))
    env = {"ONESIGNAL_API_KEY_PROMO": promo.rest_api_key}

    result = await run_cli("import-settings", str(path), "--actor", "alice", env=env)
    again = await run_cli("import-settings", str(path), env=env)

    assert result.code == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"Applied 5 changes to {DEFAULT_TEAM}."
    (check,) = fake_onesignal.requests_to("GET", "/notifications")
    assert check.query["app_id"] == [promo.id]
    assert again.stdout == f"Nothing to change in {DEFAULT_TEAM}: it already has these settings.\n"
    assert sorted((s, r) for s, r, _ in await _members(database)) == [
        ("S0SENDERS", "sender"),
        ("U0ALICE", "admin"),
        ("U0CAROL", "responder"),
    ]
    assert ApprovalPolicy.from_settings((await _workspace(database)).settings).mode == "off"
    events = [(actor, action, target) for actor, action, target, _ in await _audit(database)]
    assert events[-5:] == [
        ("cli:alice", "app.added", "app promo"),
        ("cli:alice", "member.added", "S0SENDERS"),
        ("cli:alice", "member.added", "U0CAROL"),
        ("cli:alice", "member.removed", "U0BOB"),
        ("cli:alice", "workspace.updated", f"workspace {DEFAULT_TEAM}"),
    ]


async def test_import_refuses_a_key_onesignal_refuses_before_changing_anything(
    configured, database, run_cli, tmp_path, fake_onesignal, monkeypatch
):
    monkeypatch.setenv("ONESIGNAL_API_URL", fake_onesignal.url)
    exported = (await run_cli("export-settings", "--team", DEFAULT_TEAM)).stdout
    path = tmp_path / "settings.yaml"
    path.write_text(_edited(exported).replace(PROMO_ID, fake_onesignal.app.id))
    before = await _state(database)

    result = await run_cli(
        "import-settings", str(path), env={"ONESIGNAL_API_KEY_PROMO": fake_api_key()}
    )

    assert result.code == 1
    assert "OneSignal refused this REST API key" in result.stderr
    assert await _state(database) == before


async def test_import_never_reads_a_key_from_the_file_or_without_one(
    configured, database, run_cli, tmp_path
):
    exported = (await run_cli("export-settings", "--team", DEFAULT_TEAM)).stdout
    leaked = tmp_path / "leaked.yaml"
    leaked.write_text(exported.replace("key: ••••", "key: os_v2_app_"))
    keyless = tmp_path / "keyless.yaml"
    keyless.write_text(_edited(exported))
    before = await _state(database)

    from_file = await run_cli("import-settings", str(leaked))
    no_key = await run_cli("import-settings", str(keyless), env={"ONESIGNAL_API_KEY": None})

    assert from_file.code == 1
    assert from_file.stderr.startswith(
        f"error: {leaked}, line 10: a key is never read from the file"
    )
    assert no_key.code == 1
    assert no_key.stderr == (
        "error: No REST API key of app promo: set ONESIGNAL_API_KEY_PROMO, or run in a "
        "terminal to be asked for it.\n"
    )
    assert await _state(database) == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("team: T0000TEST\nroles: {sender: [U0BOB\n", "line 3: not YAML"),
        ("team: T0000TEST\nroles:\n  owner: [U0BOB]\n", "line 3: unknown key 'owner' in roles"),
        ("team: T0000TEST\nroles:\n  sender: [bob]\n", "line 3: 'bob' is not a Slack user id"),
        ("team: T0000TEST\npolicy:\n  mode: all\n", "line 3: Choose the channel where approvers"),
        ("team: T0000TEST\npolicy:\n  approvals: two\n", "line 3: approvals must be a whole"),
        ("roles: {}\n", "line 1: the document names no workspace"),
        ("- a\n", "line 1: the document must be a mapping"),
        ("team: T0NOPE\nroles: {}\n", "PushOps knows no workspace T0NOPE"),
    ],
    ids=["yaml", "role", "user", "policy", "number", "no-team", "list", "unknown-team"],
)
async def test_import_names_the_line_of_what_is_wrong(
    database, workspace, run_cli, tmp_path, text, message
):
    path = tmp_path / "bad.yaml"
    path.write_text(text)

    result = await run_cli("import-settings", str(path))

    assert (result.code, result.stdout) == (1, "")
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


async def test_import_leaves_out_what_the_file_leaves_out(configured, database, run_cli, tmp_path):
    path = tmp_path / "roles.yaml"
    path.write_text(f"team: {DEFAULT_TEAM}\nroles:\n  admin: [U0ALICE]\n")
    before = await _state(database)

    result = await run_cli("import-settings", str(path))

    assert result.stdout.splitlines()[1:] == [
        "  - role sender: U0BOB",
        "Applied 1 change to T0000TEST.",
    ]
    apps, _, settings, _ = await _state(database)
    assert (apps, settings) == (before[0], before[2])


async def test_export_is_of_one_workspace_only(configured, storage_factory, run_cli):
    await storage_factory.app(team_id=OTHER_TEAM, name="theirs")

    result = await run_cli("export-settings", "--team", DEFAULT_TEAM)

    assert "theirs" not in result.stdout and OTHER_TEAM not in result.stdout


async def test_import_reads_standard_input_for_a_dash(configured, database, run_cli, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(f"team: {DEFAULT_TEAM}\nroles:\n  admin: []\n"))

    result = await run_cli("import-settings", "-", "--dry-run")

    assert result.code == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "  - role admin: U0ALICE",
        "  - role sender: U0BOB",  # a roles section is the whole truth
        "Dry run: nothing was changed.",
    ]


async def test_import_asks_for_each_new_apps_key_without_echo_in_a_terminal(
    sqlite_database, secret_key, tmp_path
):
    keyring = KeyRing.from_text(secret_key)
    async with sqlite_database.sessions.begin() as session:
        await workspaces.ensure_workspace(session=session, team_id=DEFAULT_TEAM)
    ids = {"shop": str(uuid.uuid4()), "news": str(uuid.uuid4())}
    keys = {name: fake_api_key() for name in ids}
    path = tmp_path / "apps.yaml"
    path.write_text(
        f"team: {DEFAULT_TEAM}\napps:\n"
        + "".join(f"- name: {n}\n  onesignal_app_id: {i}\n" for n, i in ids.items())
    )
    url = str(sqlite_database.engine.url.set(drivername="sqlite"))
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": url, "PUSHOPS_SECRET_KEY": secret_key}
    argv = [sys.executable, "-m", "bot", "import-settings", str(path), "--no-verify"]
    pid, terminal = pty.fork()
    if pid == 0:  # the child: a real terminal as its controlling tty
        os.chdir(tmp_path)
        os.execve(sys.executable, argv, env)
    seen = b""
    try:
        for name in ids:
            seen += await asyncio.to_thread(read_until, terminal, b"(not echoed): ")
            os.write(terminal, keys[name].encode() + b"\n")
        seen += await asyncio.to_thread(read_until, terminal, b"Applied")
        seen += await asyncio.to_thread(read_until, terminal, b"\n", 5.0)
    finally:
        _, status = await asyncio.to_thread(os.waitpid, pid, 0)
        os.close(terminal)

    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert b"OneSignal REST API key of app shop (not echoed): " in seen
    assert b"OneSignal REST API key of app news (not echoed): " in seen
    assert not any(key.encode() in seen for key in keys.values())  # not echoed
    assert b"Applied 2 changes to T0000TEST." in seen
    async with sqlite_database.sessions() as session:
        for name, key in keys.items():
            stored = await workspaces.get_app_credentials(
                session=session, keyring=keyring, team_id=DEFAULT_TEAM, name=name
            )
            assert stored.api_key.get_secret_value() == key
