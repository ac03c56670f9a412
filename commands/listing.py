"""`/push list [--app NAME]`: the workspace's scheduled sends, soonest first, each with a Cancel
button, then its recent ones, latest first."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import const
from bot.services import Services
from commands._format import Block, escape, unknown_app_text
from commands._parsing import parse_options
from commands.access import interaction_ids, may_see_sends
from commands.cancel import cancel, may_cancel
from commands.cards import card_of
from commands.context import (
    CommandContext,
    CommandError,
    Subcommand,
    button_send_id,
    load_send,
    refuse,
)
from commands.denials import Denial, deny
from commands.help import usage
from commands.send.storing import app_names
from commands.views import sends as send_views
from commands.views.listing import MAX_SHOWN, list_blocks, list_text


async def before_ack(ctx: CommandContext) -> object:
    """Check the words before the ack: the app's name, if any."""
    options = parse_options(ctx.args, single=("--app",), usage=usage(const.SUB_LIST))
    if options.positional:
        raise CommandError(f"`list` takes only --app NAME.\nUsage: {usage(const.SUB_LIST)}")
    return options.one("--app")


async def _check_app(services: Services, team_id: str, app: str) -> None:
    names = await app_names(services, team_id)
    if app not in names:
        raise CommandError(unknown_app_text(app, names))


async def listing(services: Services, team_id: str, app: str | None) -> tuple[str, list[Block]]:
    """The list's text and blocks, optionally of one app: scheduled sends soonest first (the
    next to go out on top), then recent ones latest first."""
    if app is not None:
        await _check_app(services, team_id, app)
    # One more than is shown tells the list that there are more.
    upcoming, finished = await services.recall.recent(
        team_id=team_id, limit=MAX_SHOWN + 1, app_name=app
    )
    scheduled = [card_of(s) for s in upcoming]
    recent = [card_of(s) for s in finished]
    return list_text(scheduled, recent), list_blocks(scheduled, recent, app=app)


async def handle(ctx: CommandContext) -> None:
    """Reply with the list."""
    app = ctx.prepared if isinstance(ctx.prepared, str) else None
    await may_see_sends(ctx.services, ctx.client, ctx.team_id, ctx.user_id, area="list")
    text, blocks = await listing(ctx.services, ctx.team_id, app)
    await ctx.reply(text, blocks=blocks)


async def _cancel_clicked(
    services: Services, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
) -> None:
    """A Cancel in the list: cancel at once, say what happened, show the list again."""
    try:
        team_id, user_id = interaction_ids(body, services=services, area="cancel")
        send = await load_send(services, team_id, button_send_id(body))
        if send is None:  # a button PushOps made names a send of this workspace
            denial = Denial(team_id, user_id, "cancel", "cancel", "unknown_send")
            raise deny(services, denial, "That send is not known here; `/push list` again.")
        await may_cancel(services, client, team_id, user_id, send)
        outcome = await cancel(services, team_id=team_id, ref=send.short_id, actor=user_id)
    except CommandError as error:
        await refuse(respond, str(error))
        return
    card = card_of(outcome.send or send)
    await respond(
        text=outcome.message,
        blocks=send_views.outcome_blocks(card, note=escape(outcome.message)),
        replace_original=False,
        response_type="ephemeral",
    )
    text, blocks = await listing(services, team_id, None)
    await respond(text=text, blocks=blocks, replace_original=True)


def register(app: AsyncApp, services: Services) -> None:
    """Listen to the Cancel buttons of the list."""

    async def on_cancel(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        services.after_ack(
            _cancel_clicked(services, body, respond, client), respond=respond, kind="block_actions"
        )

    app.action(const.ACTION_LIST_CANCEL)(on_cancel)


SUBCOMMAND = Subcommand(name=const.SUB_LIST, handle=handle, before_ack=before_ack)
