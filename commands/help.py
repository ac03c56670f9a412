"""`/push help`: the grammar of every subcommand, as an ephemeral reply."""

from __future__ import annotations

from bot import const
from bot.timeparse import MAX_AHEAD
from commands._format import Block, context, dismiss_actions, escape, section
from commands.context import CommandContext, Subcommand

C = const.SLASH_COMMAND

USAGE: dict[str, str] = {
    const.SUB_HELP: f"{C} help",
    const.SUB_SEND: f"""\
{C} send                           open the compose form
{C} send [options] MESSAGE         preview with Send / Cancel buttons
{C} send --yes [options] MESSAGE   no preview: send (or request approval) now
{C} send --test [options] MESSAGE  only to your own linked external id
                                   (needs approval only when every send does)
    --app NAME         which OneSignal app (default: the workspace default)
    --title TEXT       heading
    --segment NAME     repeatable; audience by segment
    --exclude NAME     repeatable; excluded segment
    --user ID[,ID...]  repeatable; audience by external_id
    --url URL  --image URL
    --at WHEN          2026-12-01 09:00 | 09:00 | 2026-12-01T09:00+01:00 | "tomorrow 9am"
                       (your Slack time zone unless the text names one)
    --in DURATION      90s | 10m | 2h | 1d
                       (--at and --in: at most {MAX_AHEAD.days} days ahead)""",
    const.SUB_CANCEL: f"{C} cancel ID                      a short send id or a OneSignal id",
    const.SUB_USER: f"{C} user EXTERNAL_ID [--app NAME]",
    const.SUB_STATUS: f"{C} status ID",
    const.SUB_ME: f"{C} me [EXTERNAL_ID]               show or set your linked external id",
    const.SUB_LIST: f"{C} list [--app NAME]",
    const.SUB_SETUP: f"{C} setup                          admin: apps, keys, roles, approvals",
    const.SUB_AUDIT: f"{C} audit [N]                      admin: the last N audit events",
}
"""The grammar of each subcommand (DESIGN.md, "The slash command"), keyed by name."""

NOTES = (
    "Words are split like a shell: quote a message to keep it together "
    '(`"Don\'t miss it"`). A send needs an audience (`--segment` or `--user`): '
    "nothing ever goes to everyone by default."
)


def usage(name: str) -> str:
    """The grammar of one subcommand, for error messages."""
    return USAGE[name]


def help_text() -> str:
    """The whole grammar as plain text."""
    return "\n".join(USAGE[name] for name in const.SUBCOMMANDS)


def help_blocks(intro: str | None = None) -> list[Block]:
    """The help reply: an optional intro line, the grammar, the notes, a Dismiss button."""
    blocks: list[Block] = []
    if intro:
        blocks.append(section(intro))
    blocks.append(section(f"*PushOps commands*\n```{escape(help_text())}```"))
    blocks.append(context(NOTES))
    blocks.append(dismiss_actions())
    return blocks


def help_fallback(intro: str | None = None) -> str:
    """The notification text of the help reply."""
    return f"{intro}\n{help_text()}" if intro else help_text()


async def reply_with_help(ctx: CommandContext, intro: str | None = None) -> None:
    """Answer the caller with the help, after `intro` when given."""
    await ctx.reply(help_fallback(intro), blocks=help_blocks(intro))


async def handle(ctx: CommandContext) -> None:
    """`/push help`."""
    await reply_with_help(ctx)


SUBCOMMAND = Subcommand(name=const.SUB_HELP, handle=handle)
