"""What the send, cancel, status, list and approval scenarios share: PushOps served with a
database, a key ring, the send service and its scheduler, talking to the fake OneSignal
(whose seeded app is the workspace's `default` app), plus ways to click and to look."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bot.delivery import DeliveryPolicy
from bot.policy import ApprovalPolicy
from bot.settings import Settings
from bot.slack_limits import SlackLimits
from storage import queries, workspaces
from storage.crypto import KeyRing
from storage.db import Database
from storage.models import AuditEvent, MemberRole, Send, SendState, utcnow
from tests.fakes import signing
from tests.fakes.onesignal import FakeOneSignal
from tests.fakes.slack import DEFAULT_TEAM_ID, DEFAULT_USER_ID, FakeSlack
from tests.plugins.slack import PushOps, ServeFactory, default_services
from tests.scenario.workspace import onesignal_settings

FAST = DeliveryPolicy(
    backoff=0.2, max_backoff=1.0, lease=2.0, client_retry_delay=0.01, client_retry_max_delay=2.0
)
SEGMENT = "Active Users"  # one of the fake's seeded segments: 600 reachable
LOG_CHANNEL = "C0PUSHLOG"
APPROVALS_CHANNEL = "C0APPROVE"
ALICE = DEFAULT_USER_ID  # a Slack admin in the fake, so she holds every role
BOB = "U0BOB"  # given the approver role by `require_approvals`
CAROL = "U0CAROL"  # no role at all


def settings(fake_slack: FakeSlack, fake_onesignal: FakeOneSignal, tmp_path: Path) -> Settings:
    """Single-workspace settings whose `default` app is the fake OneSignal's seeded app."""
    return onesignal_settings(fake_slack, fake_onesignal, tmp_path)


@contextlib.asynccontextmanager
async def serve_sending(
    serve_pushops: ServeFactory,
    settings: Settings,
    database: Database,
    keyring: KeyRing,
    *,
    policy: DeliveryPolicy = FAST,
    onesignal_timeout: float | None = None,
    slack_limits: SlackLimits | None = None,
    clock: Callable[[], datetime] = utcnow,
    **serve: Any,
) -> AsyncIterator[PushOps]:
    """The real app with storage, the send service and a fast-sweeping scheduler.

    `onesignal_timeout`: the OneSignal pool's timeout (every app's client waits as long).
    `slack_limits`: the Slack rate limits the outbox is paced by (Slack's, by default).
    `clock`: the current time of the app's services (a test turns it to cross months).
    """
    services = default_services(
        settings, database, keyring, policy=policy, sweep_interval=0.5, clock=clock
    )
    if slack_limits is not None:  # before the app is built: its outbox paces by them
        services.slack_limits = slack_limits
    if onesignal_timeout is not None:  # before the first client is made: each takes it
        services.onesignal_http.timeout = httpx.Timeout(onesignal_timeout)
    async with serve_pushops(settings, services=services, **serve) as running:
        yield running


# --- the workspace ------------------------------------------------------------------------------


async def ensure_workspace(database: Database, team_id: str = DEFAULT_TEAM_ID) -> None:
    """The workspace row (the default app's start hook makes it too)."""
    async with database.sessions.begin() as session:
        await workspaces.ensure_workspace(session=session, team_id=team_id)


async def set_log_channel(database: Database, channel: str = LOG_CHANNEL) -> None:
    """Give the default workspace a log channel."""
    async with database.sessions.begin() as session:
        await workspaces.update_workspace(
            session=session, team_id=DEFAULT_TEAM_ID, actor=ALICE, log_channel_id=channel
        )


async def require_approvals(
    database: Database, fake_slack: FakeSlack, *, approvals: int = 1, mode: str = "segments"
) -> None:
    """Sends to segments need approval in APPROVALS_CHANNEL; BOB approves, CAROL has no role."""
    policy = ApprovalPolicy(mode=mode, approvals=approvals, channel_id=APPROVALS_CHANNEL)  # type: ignore[arg-type]
    async with database.sessions.begin() as session:
        await workspaces.update_workspace(
            session=session,
            team_id=DEFAULT_TEAM_ID,
            actor=ALICE,
            settings={"approvals": policy.to_settings()},
        )
        await workspaces.add_member(
            session=session,
            team_id=DEFAULT_TEAM_ID,
            subject_id=BOB,
            role=MemberRole.APPROVER,
            actor=ALICE,
        )
    fake_slack.add_user(BOB, name="bob", tz="America/New_York")
    fake_slack.add_user(CAROL, name="carol")


# --- looking -------------------------------------------------------------------------------------


async def all_sends(database: Database, team_id: str = DEFAULT_TEAM_ID) -> list[Send]:
    """Every send of the workspace, oldest first."""
    async with database.sessions() as session:
        query = sa.select(Send).where(Send.team_id == team_id).order_by(Send.created_at)
        return list(await session.scalars(query))


async def only_send(database: Database) -> Send:
    """The one send of the default workspace."""
    sends = await all_sends(database)
    assert len(sends) == 1, sends
    return sends[0]


async def wait_for_state(
    database: Database,
    short_id: str,
    *states: SendState,
    within: float = 10.0,
    team_id: str = DEFAULT_TEAM_ID,
) -> Send:
    """The send once it is in one of `states` (waiting up to `within` seconds)."""
    deadline = time.monotonic() + within
    while True:
        async with database.sessions() as session:
            send = await queries.find_send(session=session, team_id=team_id, ref=short_id)
        if send is not None and send.state in states:
            return send
        if time.monotonic() > deadline:
            raise AssertionError(f"send {short_id} is {send and send.state}, not in {states}")
        await asyncio.sleep(0.02)


async def audit_actions(database: Database) -> list[str]:
    """The actions of every audit event, oldest first."""
    async with database.sessions() as session:
        query = sa.select(AuditEvent.action).order_by(AuditEvent.created_at, AuditEvent.seq)
        return list(await session.scalars(query))


def creates(fake: FakeOneSignal) -> list[Any]:
    """The create_notification requests the fake received."""
    return [r for r in fake.requests_to("POST", "/notifications") if r.path == "/notifications"]


def buttons(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """action_id -> button, for every button in `blocks`."""
    found = {}
    for block in blocks:
        for element in [*block.get("elements", []), block.get("accessory") or {}]:
            if element.get("type") == "button":
                found[element["action_id"]] = element
    return found


def text_of(body: dict[str, Any]) -> str:
    """The text and every block text of a message body, as one string."""
    parts = [str(body.get("text") or "")]
    for block in body.get("blocks") or []:
        parts.append(str(block.get("text", {}).get("text", "")))
        parts.extend(str(e.get("text", "")) for e in block.get("elements", []) if "text" in e)
    return "\n".join(parts)


# --- clicking ------------------------------------------------------------------------------------


async def click(
    app: PushOps,
    action_id: str,
    value: str,
    *,
    user: str = ALICE,
    team: str = DEFAULT_TEAM_ID,
    user_team: str | None = None,
    channel: str = "C0GENERAL",
    message: dict[str, Any] | None = None,
) -> str:
    """Click a button as `user`; returns the click's response_url (its replies go there)."""
    response_url = app.fake.new_response_url()
    payload = signing.block_actions(
        action_id=action_id,
        user_id=user,
        team_id=team,
        response_url=response_url,
        value=value,
        channel_id=channel,
        message=message,
    )
    if user_team is not None:
        payload["user"]["team_id"] = user_team
    response = await app.post_action(payload)
    assert response.status_code == 200
    return response_url


def dm_to(user: str) -> Callable[[Any], bool]:
    """A `where=` for chat.postMessage calls into `user`'s DM with the app."""
    return lambda call: call.args.get("channel") == "D" + user.lstrip("U")
