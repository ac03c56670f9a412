"""`/push audit [N]` (admins): the workspace's last N audit events, readable, newest first."""

import json

import pytest

from storage import queries, workspaces
from storage.audit_chain import Checkpoint
from storage.models import SendState
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.plugins.slack import default_services
from tests.scenario.sendkit import (
    LOG_CHANNEL,
    SEGMENT,
    all_sends,
    serve_sending,
    set_log_channel,
    wait_for_state,
)
from tests.scenario.workspace import onesignal_settings, serve_with_storage


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    settings = onesignal_settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_with_storage(serve_pushops, settings, database, keyring) as running:
        yield running


@pytest.fixture
async def sending(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    settings = onesignal_settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, settings, database, keyring) as running:
        yield running


async def _events(database, count, team_id=DEFAULT_TEAM_ID, actor="U0BOB"):
    async with database.sessions.begin() as session:
        await workspaces.ensure_workspace(session=session, team_id=team_id)
        for i in range(count):
            await queries.append_audit(
                session=session,
                team_id=team_id,
                actor=actor,
                action="test.event",
                target=f"thing {i}",
                details={"n": i, "note": "<!here>"},
            )


def _shown(reply):
    return json.dumps(reply["blocks"], ensure_ascii=False)


async def test_audit_shows_the_last_20_events_newest_first(app, database):
    await _events(database, 25)  # after app.added of the settings' default app: 26 events

    reply = await (await app.post_command("audit")).reply()

    shown = _shown(reply)
    assert reply["response_type"] == "ephemeral"
    assert reply["text"] == "The last 20 audit events of this workspace, newest first:"
    assert shown.index("`#26`") < shown.index("`#7`")
    assert "`#6`" not in shown
    assert "<@U0BOB> · *test.event* · thing 24 · n: 24, note: &lt;!here&gt;" in shown
    assert "<!here>" not in shown


async def test_audit_n_shows_n_and_says_when_there_are_fewer(app, database):
    await _events(database, 3)

    three = await (await app.post_command("audit 3")).reply()
    all_of_them = await (await app.post_command("audit 100")).reply()

    assert three["text"] == "The last 3 audit events of this workspace, newest first:"
    assert all_of_them["text"] == "All 4 audit events of this workspace, newest first:"
    assert "`#1` · " in _shown(all_of_them)
    assert "`settings` · *app.added* · app default · OneSignal app id `" in _shown(all_of_them)


async def test_one_event_is_counted_in_the_singular(app, database):
    last = await (await app.post_command("audit 1")).reply()
    only = await (await app.post_command("audit")).reply()  # one event: the app's adding

    assert last["text"] == "The last audit event of this workspace:"
    assert only["text"] == "The only audit event of this workspace:"


async def test_audit_of_one_workspace_never_shows_anothers(app, database):
    await _events(database, 2, team_id="T0OTHER", actor="U0SPY")

    reply = await (await app.post_command("audit 100")).reply()

    assert "U0SPY" not in _shown(reply)


async def test_a_hundred_events_fit_in_one_reply(app, database):
    await _events(database, 120)

    reply = await (await app.post_command("audit 100")).reply()

    sections = [b for b in reply["blocks"] if b["type"] == "section"]
    assert len(reply["blocks"]) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in sections)
    assert _shown(reply).count("*test.event*") == 100


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("audit 0", "Show between 1 and 100 events."),
        ("audit 101", "Show between 1 and 100 events."),
        ("audit many", "Give how many events to show as one number"),
        ("audit 5 6", "Give how many events to show as one number"),
        ("audit --all", "Unknown option --all"),
    ],
)
async def test_bad_input_is_answered(app, text, answer):
    reply = await (await app.post_command(text)).reply()

    assert answer in reply["text"]
    assert "/push audit [N]" in reply["text"]


async def test_a_non_admin_is_refused(app, fake_slack, database):
    fake_slack.add_user("U0BOB")

    reply = await (await app.post_command("audit", user="U0BOB")).reply()

    assert reply["text"].startswith(
        "Only PushOps admins can read the audit log (`/push audit`). Ask a Slack workspace admin"
    )
    assert "blocks" not in reply or not any("app.added" in json.dumps(b) for b in reply["blocks"])


def _slack_date(moment):
    """A time as the audit reply shows it: in the reader's zone, UTC in the fallback."""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


async def test_a_sends_details_read_as_a_person_says_them(sending, fake_onesignal, database):
    for user in ("cust-1", "cust-2"):
        fake_onesignal.add_user(fake_onesignal.app.id, user)
    await (await sending.post_command(f'send --yes --in 2h --segment "{SEGMENT}" Later')).reply()
    await (await sending.post_command("send --yes --user cust-1,cust-2 Now")).reply()
    later, now = await all_sends(database)
    await wait_for_state(database, now.short_id, SendState.SENT)

    shown = _shown(await (await sending.post_command("audit")).reply())

    assert (
        f"*send.created* · send {later.short_id} · app `default`, scheduled, "
        f"due {_slack_date(later.due_at)}, audience “{SEGMENT}”"
    ) in shown
    assert f"*send.created* · send {now.short_id} · app `default`, scheduled, due " in shown
    assert "audience 2 users by external id" in shown
    assert f"*send.sent* · send {now.short_id} · sending → sent, attempt 1" in shown
    for raw in ("due_at=", "segments=", "null", "send_id", str(later.id)):
        assert raw not in shown


async def test_a_hundred_events_full_of_escaped_characters_fit_in_one_reply(app, database):
    async with database.sessions.begin() as session:
        for i in range(100):
            await queries.append_audit(
                session=session,
                team_id=DEFAULT_TEAM_ID,
                actor="U0BOB",
                action="send.created",
                target=f"{i} " + "&" * 200,
                details={"segments": ["R&D <team> " * 5] * 30, "note": "&" * 60},
            )

    reply = await (await app.post_command("audit 100")).reply()

    assert reply["text"] == "The last 100 audit events of this workspace, newest first:"
    assert len(reply["blocks"]) <= 50
    assert _shown(reply).count("*send.created*") == 100
    assert "`#101` · " in _shown(reply) and "`#2` · " in _shown(reply)
    assert "99 &amp;&amp;" in _shown(reply)
    assert "audience “R&amp;D &lt;team&gt; R&amp;D" in _shown(reply)
    assert "… and 29 more" in _shown(reply)


# --- checkpoints in the log channel ------------------------------------------------------------


@pytest.fixture
async def checkpointing(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    """`serve` with its checkpoint publisher on a short interval (no file: Slack only)."""
    settings = onesignal_settings(
        fake_slack, fake_onesignal, tmp_path, audit_checkpoint_interval=0.05
    )
    services = default_services(settings, database, keyring, checkpoint_actor="worker:serve")
    async with serve_pushops(settings, services=services) as running:
        yield running


async def test_serve_posts_each_moved_checkpoint_to_the_workspace_log_channel(
    checkpointing, fake_slack, database
):
    await _events(database, 1, team_id="T0NOLOG")  # a workspace without a log channel
    await set_log_channel(database)  # audited: DEFAULT_TEAM_ID's head moves

    call = await fake_slack.wait_for(
        "chat.postMessage", where=lambda c: c.args["channel"] == LOG_CHANNEL
    )

    async with database.sessions() as session:
        [head] = await queries.list_audit_events(session=session, team_id=DEFAULT_TEAM_ID, limit=1)
    line = call.args["blocks"][1]["text"]["text"].strip("`")
    checkpoint = Checkpoint.parse(line)
    assert (checkpoint.team_id, checkpoint.seq, checkpoint.mac) == (
        DEFAULT_TEAM_ID,
        head.seq,
        head.mac,
    )
    assert call.args["text"] == (
        f"Audit checkpoint: event #{head.seq} is the latest of this workspace's audit log."
    )
    assert "`pushops audit verify --checkpoints FILE`" in json.dumps(call.args["blocks"])
    async with database.sessions() as session:
        report = await queries.verify_audit_chain(session=session, checkpoints=[checkpoint])
    assert report.ok
    posted = {c.args["channel"] for c in fake_slack.calls_to("chat.postMessage")}
    assert posted == {LOG_CHANNEL}  # nothing for the workspace without one


async def test_a_checkpoint_slack_refused_is_posted_at_the_next_round(
    checkpointing, fake_slack, database
):
    fake_slack.fail("chat.postMessage", "not_in_channel")
    await set_log_channel(database)

    await fake_slack.wait_for("chat.postMessage", count=2)

    calls = fake_slack.calls_to("chat.postMessage")
    assert calls[0].args["text"] == calls[1].args["text"]
