"""`/push cancel ID`: the emergency brake. No confirmation; it acts at once and says exactly
what happened (stopped before sending, asked OneSignal to stop it, or too late)."""

from __future__ import annotations

from typing import Final

from slack_sdk.web.async_client import AsyncWebClient

from bot import const
from bot.delivery import CancelOutcome, Send, SendNotFound
from bot.services import Services
from commands._format import escape
from commands._parsing import parse_options
from commands.access import resolve_actor, why_not
from commands.cards import card_of
from commands.context import CommandContext, CommandError, Subcommand, send_uuid
from commands.denials import Denial, deny, target
from commands.help import usage
from commands.views import sends as views


def one_ref(ctx: CommandContext, name: str) -> str:
    """The single id after `/push <name>`; CommandError with the usage otherwise."""
    words = parse_options(ctx.args, usage=usage(name)).positional
    if len(words) != 1:
        what = "Which send?" if not words else "Give one id at a time."
        raise CommandError(
            f"{what} Give its short id (like `7K3M9Q`) or its OneSignal id; `/push list` "
            f"shows recent sends.\nUsage: {usage(name)}"
        )
    return words[0]


async def before_ack(ctx: CommandContext) -> object:
    """Only the words are checked before the ack; the brake itself acts right after it."""
    return one_ref(ctx, const.SUB_CANCEL)


async def handle(ctx: CommandContext) -> None:
    """Cancel the send, update its messages, and say what happened."""
    ref = str(ctx.prepared) if ctx.prepared is not None else one_ref(ctx, const.SUB_CANCEL)
    await cancellable(ctx.services, ctx.client, ctx.team_id, ctx.user_id, ref)
    outcome = await cancel(ctx.services, team_id=ctx.team_id, ref=ref, actor=ctx.user_id)
    if outcome.send is None:
        await ctx.reply(outcome.message)
        return
    card = card_of(outcome.send)
    await ctx.reply(
        outcome.message, blocks=views.outcome_blocks(card, note=escape(outcome.message))
    )


async def cancel(services: Services, *, team_id: str, ref: str, actor: str) -> CancelOutcome:
    """Cancel `ref`; the notifier updates the send's messages and tells its requester."""
    try:
        return await services.sends.cancel(team_id=team_id, ref=ref, actor=actor)
    except SendNotFound as error:
        raise CommandError(str(error)) from None


NOT_YOURS: Final = (
    "You can cancel only your own sends. Stopping someone else's send, or a notification "
    "PushOps did not send, needs the sender, responder or admin role: ask a PushOps admin "
    "in `/push setup`."
)
NOT_YOURS_GUEST: Final = (
    "Guests of this workspace can cancel only their own sends. Stopping anyone else's needs "
    "the sender or responder role, given to you by name by a PushOps admin in `/push setup`."
)


async def may_cancel(
    services: Services,
    client: AsyncWebClient,
    team_id: str,
    user_id: str,
    send: Send | None,
    *,
    ref: str = "",
) -> None:
    """Refuse (a CommandError, audited as `cancel.denied`) who may not stop `send`.

    Its requester always may. Anyone else's send, or a notification PushOps did not make
    (`send` None, `ref` its id), needs the sender, responder or admin role.
    """
    if send is not None and send.requester_id == user_id:
        return
    actor = await resolve_actor(team_id=team_id, user_id=user_id, client=client, services=services)
    if actor.can_cancel_any():
        return
    aimed = target(send) if send is not None else f"notification {ref}"[:200]
    why = why_not(actor, "not_own_send" if send is not None else "not_a_pushops_send")
    denial = Denial(team_id, user_id, "cancel", "cancel", why, aimed)
    raise deny(services, denial, NOT_YOURS_GUEST if actor.is_guest else NOT_YOURS)


async def cancellable(
    services: Services, client: AsyncWebClient, team_id: str, user_id: str, ref: str
) -> None:
    """`may_cancel` for the send `ref` names (a short or OneSignal id). A ref that names no
    send and is no OneSignal id either passes: cancelling it answers that it is unknown."""
    try:
        send: Send | None = await services.sends.find(team_id=team_id, ref=ref)
    except SendNotFound:
        if send_uuid(ref.strip().strip("`")) is None:
            return
        send = None
    await may_cancel(services, client, team_id, user_id, send, ref=ref)


SUBCOMMAND = Subcommand(name=const.SUB_CANCEL, handle=handle, before_ack=before_ack)
