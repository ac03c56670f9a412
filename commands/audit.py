"""`/push audit [N]` (admins): the workspace's last N audit events, newest first."""

from __future__ import annotations

from typing import Final

from bot import const
from commands._parsing import parse_options
from commands.access import database_of, require_admin
from commands.context import CommandContext, CommandError, Subcommand
from commands.help import usage
from commands.views.audit import audit_blocks, audit_headline
from storage import queries

DEFAULT_COUNT: Final = 20
MAX_COUNT: Final = 100


def parse_count(args: tuple[str, ...]) -> int:
    """N from `/push audit [N]`: DEFAULT_COUNT when absent, 1 to MAX_COUNT."""
    grammar = usage(const.SUB_AUDIT)
    words = parse_options(args, usage=grammar).positional
    if not words:
        return DEFAULT_COUNT
    if len(words) > 1 or not words[0].isdigit():
        raise CommandError(
            f"Give how many events to show as one number, like `{const.SLASH_COMMAND} audit 50`."
            f"\nUsage: {grammar}"
        )
    count = int(words[0])
    if not 1 <= count <= MAX_COUNT:
        raise CommandError(f"Show between 1 and {MAX_COUNT} events.\nUsage: {grammar}")
    return count


async def handle(ctx: CommandContext) -> None:
    """Refuse non-admins; reply with the events."""
    await require_admin(ctx, action=f"read the audit log (`{const.SLASH_COMMAND} audit`)")
    count = parse_count(ctx.args)
    async with database_of(ctx.services).sessions() as session:
        events = await queries.list_audit_events(session=session, team_id=ctx.team_id, limit=count)
    await ctx.reply(audit_headline(len(events), count), blocks=audit_blocks(events, asked=count))


SUBCOMMAND = Subcommand(name=const.SUB_AUDIT, handle=handle)
