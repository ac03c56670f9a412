"""`/push cancel ID`: the emergency brake. No confirmation; it acts at once and says exactly
what happened (stopped before sending, asked OneSignal to stop it, or too late)."""

from __future__ import annotations

from bot import const
from bot.delivery import CancelOutcome, SendNotFound
from bot.services import Services
from commands._format import escape
from commands._parsing import parse_options
from commands.cards import card_of
from commands.context import CommandContext, CommandError, Subcommand
from commands.help import usage
from commands.sending import cancellable, sends_of
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
    sends_of(ctx.services)
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
        return await sends_of(services).cancel(team_id=team_id, ref=ref, actor=actor)
    except SendNotFound as error:
        raise CommandError(str(error)) from None


SUBCOMMAND = Subcommand(name=const.SUB_CANCEL, handle=handle, before_ack=before_ack)
