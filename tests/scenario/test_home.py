"""The Home tab: `app_home_opened` publishes the person's Home (their sends yet to go out with
Cancel, approvals waiting for them with Approve / Reject, the workspace's recent sends, Compose,
and for admins the setup shortcut and its warnings); its buttons go through the same checks as
everywhere; it follows the sends it shows; it stays within Block Kit's limits whatever the
numbers."""

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest

from bot import const
from bot.home import HomePolicy
from bot.slack_limits import Limit
from commands.views.setup import OPEN_SENDING
from storage import workspaces
from storage.models import SendState, utcnow
from tests.fakes import signing
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.scenario.sendkit import (
    ALICE,
    BOB,
    CAROL,
    SEGMENT,
    all_sends,
    audit_actions,
    buttons,
    creates,
    only_send,
    require_approvals,
    serve_sending,
    settings,
    text_of,
    wait_for_state,
)

QUICK = HomePolicy(poll=0.1, per_user=Limit(5, 1.0))
"""Homes looked at ten times a second in these tests (Slack's pace otherwise)."""


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        running.services.home.policy = QUICK
        yield running


async def _open_home(app: Any, user: str, *, after: float | None = None) -> dict[str, Any]:
    """`user` opens the Home tab; the Home published for them (newer than `after`)."""
    event = {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home"}
    started = time.time() if after is None else after
    response = await app.post_event(signing.event_callback(event, team_id=DEFAULT_TEAM_ID))
    assert response.status_code == 200
    return await _home_after(app, user, started)


async def _home_after(
    app: Any, user: str, started: float, *, within: float = 5.0, saying: str = ""
) -> dict[str, Any]:
    """The Home of `user` once published after `started` (and showing `saying`)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        home = app.fake.home(user)
        if home is not None and float(home["hash"]) >= started and saying in text_of(home):
            return dict(home)
        await asyncio.sleep(0.02)
    raise AssertionError(f"no Home published for {user} saying {saying!r}: {app.fake.home(user)}")


async def _click_home(
    app: Any, home: dict[str, Any], action_id: str, value: str, user: str
) -> None:
    payload = signing.block_actions(
        action_id=action_id, user_id=user, team_id=DEFAULT_TEAM_ID, response_url="",
        value=value, view={**home, "type": "home"},
    )  # fmt: skip
    response = await app.post_action(payload)
    assert response.status_code == 200


async def test_a_scheduled_send_on_the_home_is_cancelled_from_it(
    app, fake_slack, fake_onesignal, database
):
    await (await app.post_command(f'send --yes --in 1h --segment "{SEGMENT}" Later')).reply()
    send = await only_send(database)

    home = await _open_home(app, ALICE)

    cancel = buttons(home["blocks"])[const.ACTION_HOME_CANCEL]
    assert cancel["value"] == str(send.id) and "confirm" in cancel
    assert f"`{send.short_id}` · scheduled" in text_of(home)
    assert const.ACTION_HOME_COMPOSE in buttons(home["blocks"])
    assert const.ACTION_HOME_SETUP in buttons(home["blocks"])  # Alice is an admin
    assert OPEN_SENDING in text_of(home)  # what /push setup warns of
    started = time.time()

    await _click_home(app, home, const.ACTION_HOME_CANCEL, str(send.id), ALICE)

    after = await _home_after(app, ALICE, started, saying="before it was sent")
    assert f"Stopped `{send.short_id}` before it was sent" in text_of(after)
    assert f"`{send.short_id}` · cancelled" in text_of(after)  # now among the recent ones
    assert const.ACTION_HOME_CANCEL not in buttons(after["blocks"])
    assert (await only_send(database)).state == SendState.CANCELLED
    assert "send.cancelled" in await audit_actions(database)
    await asyncio.sleep(0.3)
    assert creates(fake_onesignal) == []


async def test_an_approver_approves_from_the_home_through_the_same_checks(
    app, fake_slack, fake_onesignal, database
):
    await require_approvals(database, fake_slack)  # BOB approves, CAROL holds no role
    await (await app.post_command(f'send --yes --segment "{SEGMENT}" "Big news"')).reply()
    send = await only_send(database)
    assert send.state == SendState.PENDING_APPROVAL
    alices = await _open_home(app, ALICE)
    assert f"`{send.short_id}` · waiting for approval" in text_of(alices)
    assert const.ACTION_HOME_APPROVE not in buttons(alices["blocks"])  # not her own
    carols = await _open_home(app, CAROL)
    assert const.ACTION_HOME_APPROVE not in buttons(carols["blocks"])

    bobs = await _open_home(app, BOB)
    approve = buttons(bobs["blocks"])[const.ACTION_HOME_APPROVE]
    assert approve["value"] == str(send.id)
    assert f"<@{ALICE}> asks to send `{send.short_id}`" in text_of(bobs)
    started = time.time()
    await _click_home(app, bobs, const.ACTION_HOME_APPROVE, approve["value"], CAROL)
    refused = await _home_after(app, CAROL, started, saying="approvers")
    assert "Only PushOps approvers can approve or reject sends" in text_of(refused)
    assert (await only_send(database)).state == SendState.PENDING_APPROVAL

    await _click_home(app, bobs, const.ACTION_HOME_APPROVE, approve["value"], BOB)

    sent = await wait_for_state(database, send.short_id, SendState.SENT)
    assert [r.json["idempotency_key"] for r in creates(fake_onesignal)] == [str(send.id)]
    after = await _home_after(app, BOB, started, saying="recorded")
    assert const.ACTION_HOME_APPROVE not in buttons(after["blocks"])
    # Alice's Home follows her send out, without her opening it again
    followed = await _home_after(app, ALICE, started, saying="recipients 600")
    assert f"`{send.short_id}` (OneSignal `{sent.notification_id}`) · sent" in text_of(followed)
    assert sent.approvals_received == 1


async def test_a_home_follows_a_send_going_out_at_its_time(app, fake_slack, database):
    await (await app.post_command(f'send --yes --in 1s --segment "{SEGMENT}" Soon')).reply()
    send = await only_send(database)
    home = await _open_home(app, ALICE)
    assert f"`{send.short_id}` · scheduled" in text_of(home)

    followed = await _home_after(app, ALICE, time.time(), saying="· sent ·", within=10.0)

    assert const.ACTION_HOME_CANCEL not in buttons(followed["blocks"])
    assert "Nothing scheduled or waiting" in text_of(followed)
    assert f"`{send.short_id}` (OneSignal" in text_of(followed)


async def test_the_home_of_a_busy_workspace_stays_within_block_kit_limits(
    app, fake_slack, database, storage_factory
):
    await require_approvals(database, fake_slack)
    async with database.sessions() as session:
        default = await workspaces.get_app(session=session, team_id=DEFAULT_TEAM_ID, name="default")
    later = utcnow() + timedelta(hours=2)
    long = {"message": "Z&<" * 600, "title": "T" * 60}
    wide = {"segments": [f"Segment {i} " + "&" * 20 for i in range(40)]}
    for _ in range(40):
        await storage_factory.send(
            default, requester_id=BOB, due_at=later, content=long, audience=wide
        )
    for _ in range(25):
        await storage_factory.send(
            default, requester_id=ALICE, state=SendState.PENDING_APPROVAL, due_at=later,
            content=long, audience=wide,
        )  # fmt: skip
    for _ in range(30):
        await storage_factory.send(default, state=SendState.CANCELLED, content=long)

    bobs = await _open_home(app, BOB)

    assert len(bobs["blocks"]) <= 100
    assert "and 28 more: `/push list`" in text_of(bobs)  # 40 of his own, 12 shown
    assert "and 17 more: `/push list`" in text_of(bobs)  # 25 to approve, 8 shown
    assert "and 15 more: `/push list`" in text_of(bobs)  # 30 recent, 15 shown
    assert fake_slack.take_refusals() == []
    assert len(await all_sends(database)) == 95


async def test_compose_opens_the_form_and_setup_is_for_admins_only(app, fake_slack, database):
    await require_approvals(database, fake_slack)  # CAROL: a member without a role
    alices = await _open_home(app, ALICE)

    await _click_home(app, alices, const.ACTION_HOME_COMPOSE, "compose", ALICE)
    compose = await fake_slack.wait_for("views.open")
    await _click_home(app, alices, const.ACTION_HOME_SETUP, "setup", ALICE)
    setup = await fake_slack.wait_for("views.open", count=2)

    assert compose.args["view"]["callback_id"] == const.CALLBACK_COMPOSE
    assert setup.args["view"]["callback_id"] == const.CALLBACK_SETUP
    carols = await _open_home(app, CAROL)
    assert const.ACTION_HOME_SETUP not in buttons(carols["blocks"])
    started = time.time()
    await _click_home(app, alices, const.ACTION_HOME_SETUP, "setup", CAROL)  # a forged click
    refused = await _home_after(app, CAROL, started, saying="admins")
    assert "Only PushOps admins" in text_of(refused)
    assert len(fake_slack.calls_to("views.open")) == 2


async def test_a_refresh_slack_refuses_is_tried_again(app, fake_slack, database):
    for text in ("First", "Second"):
        await (await app.post_command(f'send --yes --in 1h --segment "{SEGMENT}" {text}')).reply()
    first, second = await all_sends(database)
    await _open_home(app, ALICE)
    down = [True]
    fake_slack.fail(
        "views.publish", "internal_error", status=500, times=1000, where=lambda _: down[0]
    )
    await (await app.post_command(f"cancel {first.short_id}")).reply()
    refused = await fake_slack.wait_for("views.publish", count=2)  # the refresh
    assert refused.status == 500
    await asyncio.sleep(0.5)
    assert app.fake.home(ALICE) is not None and "Nothing scheduled" not in text_of(
        app.fake.home(ALICE)
    )
    down[0] = False  # Slack is back

    await (await app.post_command(f"cancel {second.short_id}")).reply()

    home = await _home_after(app, ALICE, time.time() - 0.2, saying="Nothing scheduled")
    assert f"`{first.short_id}` · cancelled" in text_of(home)
    assert f"`{second.short_id}` · cancelled" in text_of(home)
