"""`/push help`: the grammar of every subcommand, as an ephemeral reply.

An admin of a workspace where nobody is named a sender yet (so every member but guests may
send) reads that first, with the button to name senders.
"""

from __future__ import annotations

from bot import const
from bot.timeparse import MAX_AHEAD
from commands._format import Block, context, dismiss_actions, escape, section
from commands.access import resolve_actor, senders_configured
from commands.context import CommandContext, Subcommand
from commands.views.setup import OPEN_SENDING, open_sending_blocks

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
                       (--at and --in: at most {MAX_AHEAD.days} days ahead)
    --template NAME|ID a OneSignal template; its text unless given: --template "Weekly digest"
    --text-XX TEXT  --title-XX TEXT   another language: --text-de "Neue Version" --title-de Neu
                       (XX: a code OneSignal accepts; English is MESSAGE and --title)
    --local-time HH:MM in each user's own time zone: --local-time 09:00 (day: --at/--in)
    --when-active      when each user is usually active (not with --local-time)
    --throttle N       at most N per minute: --throttle 500
    --ttl DURATION     expires for devices offline that long: --ttl 2h
    --priority high|normal  --priority high
    --button "Label|URL"  repeatable, up to 3: --button "Read more|https://example.com"
    --data KEY=VALUE   repeatable; the app's additional data: --data screen=news
    --every RULE       a recurring send: day | weekday | week | month | monday..sunday
                       (with --at for its time: --every monday --at 09:00) or a duration
                       of at least 1h (--every 6h; --at gives its first time)
    --until DATE       the last day of a series: --until 2027-03-31, or
    --times N          how many times it goes out: --times 4""",
    const.SUB_CANCEL: f"{C} cancel ID                      a short send id or a OneSignal id",
    const.SUB_EDIT: f"""\
{C} edit ID                        the form filled from an upcoming send: Save changes
                                   it (same id; approval asked again when the policy does)""",
    const.SUB_USER: f"{C} user EXTERNAL_ID [--app NAME]  senders, responders, admins",
    const.SUB_STATUS: f"{C} status ID",
    const.SUB_ME: f"{C} me [EXTERNAL_ID]               show or set your linked external id",
    const.SUB_LIST: f"{C} list [--app NAME]",
    const.SUB_SERIES: f"""\
{C} series                         recurring sends: pause, resume, stop
{C} series edit ID [--title TEXT] MESSAGE   new text from the next occurrence on
                                   (asks for approval again when the policy does)""",
    const.SUB_SETUP: f"{C} setup                          admin: apps, keys, roles, approvals",
    const.SUB_AUDIT: f"{C} audit [N]                      admin: the last N audit events",
    const.SUB_DIAGNOSTICS: f"{C} diagnostics                  admin: how PushOps runs, as a file",
}
"""The grammar of each subcommand (docs/design.md, "The slash command"), keyed by name."""

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


def help_blocks(intro: str | None = None, *, open_sending: bool = False) -> list[Block]:
    """The help reply: an optional intro line, the grammar, the notes, a Dismiss button;
    `open_sending` (for an admin) first warns that everyone may send, with "Name senders"."""
    blocks: list[Block] = []
    if open_sending:
        blocks += open_sending_blocks(const.ACTION_HELP_NAME_SENDERS)
    if intro:
        blocks.append(section(intro))
    blocks.append(section(f"*PushOps commands*\n```{escape(help_text())}```"))
    blocks.append(context(NOTES))
    blocks.append(dismiss_actions())
    return blocks


def help_fallback(intro: str | None = None, *, open_sending: bool = False) -> str:
    """The notification text of the help reply."""
    lines = [OPEN_SENDING.replace("*", "")] if open_sending else []
    return "\n".join([*lines, *([intro] if intro else []), help_text()])


async def reply_with_help(
    ctx: CommandContext, intro: str | None = None, *, open_sending: bool = False
) -> None:
    """Answer the caller with the help, after `intro` when given."""
    blocks = help_blocks(intro, open_sending=open_sending)
    await ctx.reply(help_fallback(intro, open_sending=open_sending), blocks=blocks)


async def handle(ctx: CommandContext) -> None:
    """`/push help`, with the warning that everyone may send for an admin who can change it."""
    await reply_with_help(ctx, open_sending=await _warn_of_open_sending(ctx))


async def _warn_of_open_sending(ctx: CommandContext) -> bool:
    """Whether the caller is an admin of a workspace where nobody is named a sender yet."""
    if await senders_configured(ctx.services, ctx.team_id):
        return False
    return (await resolve_actor(ctx)).is_admin()


SUBCOMMAND = Subcommand(name=const.SUB_HELP, handle=handle)
