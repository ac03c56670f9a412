"""`/push me [EXTERNAL_ID]`: show or set your own linked external id (the audience of
`/push send --test`)."""

from __future__ import annotations

from bot import const
from bot.workspaces import MAX_EXTERNAL_ID_LENGTH, InvalidInput
from commands._format import code
from commands._parsing import parse_options
from commands.context import CommandContext, CommandError, Subcommand
from commands.help import usage

C = const.SLASH_COMMAND


async def handle(ctx: CommandContext) -> None:
    """Show the caller's link, or set it to the one external id given."""
    words = parse_options(ctx.args, usage=usage(const.SUB_ME)).positional
    if len(words) > 1:
        raise CommandError(
            f"Give one external id (quote it if it has spaces).\nUsage: {usage(const.SUB_ME)}"
        )
    if words:
        await _link(ctx, words[0])
    else:
        await _show(ctx)


async def _show(ctx: CommandContext) -> None:
    linked = await ctx.services.workspaces.linked_external_id(ctx.team_id, ctx.user_id)
    await ctx.reply(show_text(linked))


async def _link(ctx: CommandContext, external_id: str) -> None:
    try:
        changed = await ctx.services.workspaces.link_external_id(
            team_id=ctx.team_id,
            enterprise_id=ctx.enterprise_id,
            user_id=ctx.user_id,
            external_id=external_id,
        )
    except InvalidInput as error:
        raise CommandError(f"{error}\nUsage: {usage(const.SUB_ME)}") from None
    await ctx.reply(linked_text(external_id.strip(), changed=changed))


def _id(external_id: str) -> str:
    return code(external_id, limit=MAX_EXTERNAL_ID_LENGTH + 2)


def show_text(linked: str | None) -> str:
    """The answer to `/push me`."""
    if linked is None:
        return (
            f"You have no linked external id yet. Link yours with `{C} me YOUR_EXTERNAL_ID` "
            "(the external id your product gives you in OneSignal); "
            f"`{C} send --test` then sends only to you."
        )
    return (
        f"Your linked external id is {_id(linked)}: `{C} send --test …` sends only to it. "
        f"Change it with `{C} me NEW_ID`."
    )


def linked_text(external_id: str, *, changed: bool) -> str:
    """The answer to `/push me EXTERNAL_ID`."""
    if not changed:
        return f"Your linked external id already is {_id(external_id)}; nothing changed."
    return (
        f"Linked: your external id is now {_id(external_id)}. `{C} send --test …` sends only to it."
    )


SUBCOMMAND = Subcommand(name=const.SUB_ME, handle=handle)
