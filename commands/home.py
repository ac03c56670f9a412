"""The Home tab: published when someone opens it, and again when a send on it changes state.

`app_home_opened` publishes the person's Home (`commands.views.home`) right after the ack;
`bot.home.HomeBoard` then watches the sends it shows and asks for it again when one moves
(debounced, and paced within Slack's `views.publish` limits). Its buttons go through the same
checks as everywhere else: Cancel as the Cancel button of a message (`commands.cancel`),
Approve / Reject as on an approval request (`commands.approvals`), Compose as `/push send`
(only who may send gets the form), Set up PushOps as `/push setup` (admins). What a click did,
or why it was refused, shows on top of the Home published again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import const
from bot.delivery import Send, counters_of
from bot.home import HomeSends
from bot.services import Services
from bot.slack_clients import ClientSource, client_source
from bot.slack_limits import Paced
from commands import approvals
from commands._format import escape
from commands.access import (
    GUEST_SEES_NOTHING,
    interaction_ids,
    require_admin,
    resolve_actor,
    slack_error,
)
from commands.cancel import stop_clicked
from commands.cards import card_of
from commands.context import CommandError
from commands.outgoing import SLACK_ERRORS
from commands.send.form import open_compose
from commands.send.requester import requester
from commands.setup import ACTION as SETUP_ACTION
from commands.setup import load_state
from commands.views import home as views
from commands.views.setup import OPEN_SENDING
from commands.views.setup import home_view as setup_home

log = logging.getLogger(__name__)

PUBLISH_WAIT: Final = 3.0
"""Seconds a publish asked for by a person (an open, a click) may wait for its turn."""


# --- what a Home shows -----------------------------------------------------------------------


async def home_state(
    services: Services,
    client: AsyncWebClient,
    team_id: str,
    user_id: str,
    *,
    notice: str | None = None,
) -> tuple[views.HomeState, HomeSends | None]:
    """The Home of `user_id` (and the sends it shows; None for a guest, who sees none)."""
    actor = await resolve_actor(team_id=team_id, user_id=user_id, client=client, services=services)
    if not actor.can_see_sends():
        return views.HomeState(user_id=user_id, notice=notice or escape(GUEST_SEES_NOTHING)), None
    sends = await services.home.read(team_id=team_id, user_id=user_id, approver=actor.can_approve())
    state = views.HomeState(
        user_id=user_id,
        mine=[card_of(s) for s in sends.mine],
        mine_total=sends.mine_total,
        approvals=[card_of(s) for s in sends.approvals],
        approvals_total=sends.approvals_total,
        recent=[views.RecentSend(card=card_of(s), counters=counters(s)) for s in sends.recent],
        recent_total=sends.recent_total,
        is_admin=actor.is_admin(),
        warnings=await setup_warnings(services, team_id) if actor.is_admin() else (),
        notice=notice,
    )
    return state, sends


def counters(send: Send) -> dict[str, int]:
    """The delivery counters known of `send` without asking OneSignal: how many recipients
    OneSignal counted for its batches when it took them, and its final counters once they
    were read (`converted` is OneSignal's name for clicks)."""
    counts = [b.get("recipients") for b in send.batches if isinstance(b, Mapping)]
    known = [c for c in counts if isinstance(c, int)]
    shown = {"recipients": sum(known)} if known else {}
    final = counters_of(send)
    if final is not None:
        totals = final.totals
        shown |= {
            name: totals[name] for name in ("successful", "failed", "errored") if name in totals
        }
        if "converted" in totals:
            shown["clicked"] = totals["converted"]
    return shown


async def setup_warnings(services: Services, team_id: str) -> list[str]:
    """What `/push setup` warns an admin of, in mrkdwn."""
    setup = await load_state(services, team_id)
    warnings = []
    if not setup.apps:
        warnings.append("No OneSignal app is set up yet: nobody can send.")
    if not setup.senders_named:
        warnings.append(OPEN_SENDING)
    if setup.policy_problem:
        warnings.append(f"The approval policy cannot be used: {escape(setup.policy_problem)}")
    return warnings


# --- publishing ------------------------------------------------------------------------------


async def publish(
    services: Services,
    client: AsyncWebClient,
    team_id: str,
    user_id: str,
    *,
    notice: str | None = None,
    reserved: bool = False,
) -> None:
    """Publish the person's Home, in turn (`reserved`: the turn is taken already)."""
    if not reserved:
        try:
            await asyncio.sleep(services.home.slot(team_id, user_id, within=PUBLISH_WAIT))
        except Paced:  # opened again and again: the Home published last still stands
            log.info("home of %s not published: over its rate", user_id)
            return
    state, sends = await home_state(services, client, team_id, user_id, notice=notice)
    try:
        await client.views_publish(user_id=user_id, view=views.home_view(state))
    except SLACK_ERRORS as error:  # the next open, or the next move, publishes it again
        log.info("home of %s not published: %s", user_id, slack_error(error))
        return
    services.home.published(team_id, user_id, sends.shown() if sends is not None else {})


def _watch(services: Services, clients: ClientSource) -> Callable[[], Awaitable[None]]:
    """The start hook: keep the published Homes current with `clients`."""

    async def refresh(team_id: str, user_id: str) -> None:
        client = await clients(team_id)
        if client is not None:
            await publish(services, client, team_id, user_id, reserved=True)

    async def start() -> None:
        services.home.start(refresh)

    return start


# --- listeners -------------------------------------------------------------------------------


async def _opened(services: Services, body: dict[str, Any], client: AsyncWebClient) -> None:
    event = body.get("event") or {}
    team_id, user_id = str(body.get("team_id") or ""), str(event.get("user") or "")
    if event.get("tab", "home") != "home" or not team_id or not user_id:
        return  # the Messages tab, or a payload that names nobody
    services.home.opened(team_id, user_id)
    await publish(services, client, team_id, user_id)


class _Noted:
    """Collects what a handler made for a message's clicker says, to show on the Home."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def __call__(self, *, text: str = "", **_: Any) -> None:
        self.texts.append(text)


HomeWork = Callable[[Services, dict[str, Any], AsyncWebClient], Awaitable[str | None]]
"""A click on the Home: returns what to say on top of the Home published again."""


async def _cancel(services: Services, body: dict[str, Any], client: AsyncWebClient) -> str:
    _, outcome = await stop_clicked(services, body, client)
    return escape(outcome.message)


def _deciding(approve: bool) -> HomeWork:
    async def decide(services: Services, body: dict[str, Any], client: AsyncWebClient) -> str:
        noted = _Noted()
        handler = approvals.approve_clicked if approve else approvals.reject_clicked
        await handler(services, body, noted, client)
        if noted.texts:
            return escape(" ".join(noted.texts))
        return "Your approval is recorded." if approve else "Rejected: it will not be sent."

    return decide


async def _compose(services: Services, body: dict[str, Any], client: AsyncWebClient) -> None:
    team_id, user_id = interaction_ids(body, services=services, area="send")
    await requester(
        services=services, client=client, team_id=team_id, user_id=user_id,
        what="open the compose form",
    )  # fmt: skip
    trigger = str(body.get("trigger_id") or "")
    await open_compose(services, client, team_id=team_id, trigger_id=trigger, channel=None)


async def _setup(services: Services, body: dict[str, Any], client: AsyncWebClient) -> None:
    team_id, user_id = interaction_ids(body, services=services, area="setup")
    await require_admin(
        team_id=team_id, user_id=user_id, client=client, services=services,
        action=SETUP_ACTION, what="open setup",
    )  # fmt: skip
    state = await load_state(services, team_id)
    await client.views_open(trigger_id=str(body.get("trigger_id") or ""), view=setup_home(state))


async def _clicked(
    services: Services, body: dict[str, Any], client: AsyncWebClient, work: HomeWork
) -> None:
    """Do the click's work; publish the Home again with what it did or why not (a click
    that opened a form says nothing: the Home stays as it is)."""
    try:
        notice = await work(services, body, client)
    except CommandError as error:
        notice = f":warning: {escape(str(error))}"
    except SlackApiError as error:  # the form did not open (the trigger expired, say)
        why = escape(str(error.response.get("error")))
        notice = f":warning: Slack did not open the form ({why}); try again."
    if notice is None:
        return
    team_id, user_id = interaction_ids(body)
    await publish(services, client, team_id, user_id, notice=notice)


CLICKS: Final[Mapping[str, HomeWork]] = {
    const.ACTION_HOME_CANCEL: _cancel,
    const.ACTION_HOME_APPROVE: _deciding(approve=True),
    const.ACTION_HOME_REJECT: _deciding(approve=False),
    const.ACTION_HOME_COMPOSE: _compose,
    const.ACTION_HOME_SETUP: _setup,
}
"""What each button of the Home does."""


def _click_listener(services: Services, work: HomeWork) -> Callable[..., Awaitable[None]]:
    async def on_click(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        services.after_ack(_clicked(services, body, client, work), respond=None, kind="home")

    return on_click


def register(app: AsyncApp, services: Services) -> None:
    """Publish Homes on `app_home_opened`, keep them current, and listen to their buttons."""

    async def on_opened(body: dict[str, Any], client: AsyncWebClient) -> None:
        services.after_ack(_opened(services, body, client), respond=None, kind="event")

    app.event(const.EVENT_APP_HOME_OPENED)(on_opened)
    for action_id, work in CLICKS.items():
        app.action(action_id)(_click_listener(services, work))
    clients = client_source(app.client, app.installation_store, services.database)
    services.on_startup.append(_watch(services, clients))
    services.on_shutdown.append(services.home.stop)
