"""`/push status ID`: OneSignal's delivery counters of a send, per platform, with Refresh."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import const, outbox
from bot.delivery import SendNotFound, StatusReport, utcnow
from bot.services import Services
from commands.access import interaction_ids, may_see_sends
from commands.cancel import one_ref
from commands.cards import card_of
from commands.context import CommandContext, CommandError, Subcommand, refuse
from commands.views.status import SlackRefusal, StatusView, status_blocks, status_text


async def before_ack(ctx: CommandContext) -> object:
    """Check the words before the ack; OneSignal is asked after it."""
    return one_ref(ctx, const.SUB_STATUS)


async def report(services: Services, team_id: str, ref: str) -> StatusView:
    """The status of `ref` as the view draws it; CommandError for an unknown id."""
    try:
        found = await services.recall.status(team_id=team_id, ref=ref)
    except SendNotFound as error:
        raise CommandError(str(error)) from None
    send = found.send
    refused = await _refused(services, send.team_id, send.id) if send is not None else ()
    return view_of(found, ref, refused=refused)


async def _refused(services: Services, team_id: str, send_id: Any) -> tuple[SlackRefusal, ...]:
    """The messages about the send Slack refused for good (from the outbox)."""
    found = await outbox.refusals(services.database, team_id=team_id, send_id=send_id)
    return tuple(SlackRefusal(r.purpose, r.destination, r.reason) for r in found)


def view_of(found: StatusReport, ref: str, *, refused: tuple[SlackRefusal, ...] = ()) -> StatusView:
    """What the status reply shows of a report."""
    return StatusView(
        ref=ref,
        card=card_of(found.send) if found.send is not None else None,
        notification_ids=tuple(found.notification_ids),
        counters=found.counters,
        per_platform=found.per_platform,
        completed_at=found.completed_at,
        canceled=found.canceled,
        timezone=found.send.timezone if found.send is not None else "UTC",
        note=found.note,
        checked_at=utcnow(),
        refused=refused,
    )


async def handle(ctx: CommandContext) -> None:
    """Reply with the counters."""
    ref = str(ctx.prepared) if ctx.prepared is not None else one_ref(ctx, const.SUB_STATUS)
    await may_see_sends(ctx.services, ctx.client, ctx.team_id, ctx.user_id, area="status")
    shown = await report(ctx.services, ctx.team_id, ref)
    await ctx.reply(status_text(shown), blocks=status_blocks(shown))


async def _refresh(
    services: Services, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
) -> None:
    try:
        team_id, user_id = interaction_ids(body, services=services, area="status")
        await may_see_sends(services, client, team_id, user_id, area="status")
        ref = str((body.get("actions") or [{}])[0].get("value") or "")
        shown = await report(services, team_id, ref)
    except CommandError as error:
        await refuse(respond, str(error))
        return
    await respond(text=status_text(shown), blocks=status_blocks(shown), replace_original=True)


def register(app: AsyncApp, services: Services) -> None:
    """Listen to the Refresh button of status replies."""

    async def on_refresh(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        refreshing = _refresh(services, body, respond, client)
        services.after_ack(refreshing, respond=respond, kind="block_actions")

    app.action(const.ACTION_STATUS_REFRESH)(on_refresh)


SUBCOMMAND = Subcommand(name=const.SUB_STATUS, handle=handle, before_ack=before_ack)
