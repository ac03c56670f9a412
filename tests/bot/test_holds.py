"""The approval policy asked again when a send is due (bot.delivery.holds): a send scheduled
under an older policy waits for the approvals the policy in force asks for, instead of going
out; an unreadable policy sends nothing; a retry is never held."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from bot.policy import ApprovalPolicy
from storage import workspaces
from storage.models import Send, SendState, utcnow
from tests.bot.deliverykit import kit, seeded_app
from tests.plugins.database import DEFAULT_TEAM


@pytest.fixture
async def app(storage_factory, fake_onesignal):
    return await seeded_app(storage_factory, fake_onesignal)


@pytest.fixture
async def env(database, keyring, fake_onesignal, app):
    async with kit(database, keyring, fake_onesignal, app) as ready:
        yield ready


async def _set_policy(database: Any, settings: Any) -> None:
    async with database.sessions.begin() as session:
        await workspaces.update_workspace(
            session=session, team_id=DEFAULT_TEAM, actor="U0ADMIN", settings={"approvals": settings}
        )


SEGMENTS = ApprovalPolicy(mode="segments", approvals=2, channel_id="C0APPR").to_settings()


async def test_a_due_send_lacking_the_approvals_now_required_waits_for_them(env):
    send = await env.create(due_in=3600)  # scheduled while approvals were off
    await _set_policy(env.database, SEGMENTS)

    result = await env.deliverer.deliver(await _due(env, send))

    assert result is not None and result.state == SendState.PENDING_APPROVAL
    row = await env.row(send)
    assert (row.state, row.approvals_required, row.attempts, row.due_at) == (
        SendState.PENDING_APPROVAL,
        2,
        0,
        None,
    )
    assert env.posted() == []
    [notice] = env.notifier.of("send_held")
    assert notice.send.id == send.id
    assert await env.actions(send) == ["send.created", "send.sending", "send.pending_approval"]


async def test_a_send_with_the_approvals_it_needs_goes_out(env):
    env.fake.add_user(env.fake.app.id, "cust-1")
    send = await env.create(external_ids=["cust-1"])  # a listed user: no approval needed
    await _set_policy(env.database, SEGMENTS)

    result = await env.deliverer.deliver(send)

    assert result is not None and result.state == SendState.SENT
    assert len(env.posted()) == 1 and env.notifier.of("send_held") == []


async def test_an_unreadable_policy_sends_nothing_and_says_why(env):
    send = await env.create()
    await _set_policy(env.database, {"mode": "sometimes"})

    result = await env.deliverer.deliver(send)

    assert result is not None and result.state == SendState.FAILED
    assert "approval policy stored for this workspace is invalid" in (result.last_error or "")
    assert env.posted() == []
    [notice] = env.notifier.of("send_failed")
    assert "Nothing was sent." in (notice.reason or "")


async def test_a_policy_changed_in_setup_is_seen_at_once(env):
    first = await env.create()
    await env.deliverer.deliver(first)  # the policy ("off") is now kept for a few seconds
    await _set_policy(env.database, SEGMENTS)
    env.sends.forget_policy(DEFAULT_TEAM)  # what /push setup does when it saves one

    second = await env.deliverer.deliver(await env.create("Second"))

    assert second is not None and second.state == SendState.PENDING_APPROVAL
    assert len(env.posted()) == 1


async def test_a_retry_is_never_held_back(env):
    env.fake.faults.statuses([503] * 4, path="/notifications")
    send = await env.create()
    first = await env.deliverer.deliver(send)
    assert first is not None and first.state == SendState.SENDING and first.last_error
    await _set_policy(env.database, SEGMENTS)
    env.sends.forget_policy(DEFAULT_TEAM)
    env.fake.faults.clear()

    again = await env.deliverer.deliver(await env.row(send))  # its retry, still claimed here

    assert again is not None and again.state == SendState.SENT
    assert env.notifier.of("send_held") == []


async def _due(env: Any, send: Send) -> Send:
    """The send as if its time had come."""
    async with env.database.sessions.begin() as session:
        await session.execute(sa.update(Send).where(Send.id == send.id).values(due_at=utcnow()))
    return await env.row(send)
