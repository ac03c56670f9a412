"""`/push audit [N]` (admins): the workspace's last N audit events, newest first.

Also the Slack side of audit checkpoints: `SlackCheckpointSink` posts each workspace's
checkpoint to its log channel, and `register` hands it to the services' publisher.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from slack_bolt.async_app import AsyncApp

from bot import const
from bot.checkpoints import Checkpoint
from bot.services import Services
from bot.slack_clients import ClientSource, client_source
from commands._parsing import parse_options
from commands.access import require_admin
from commands.context import CommandContext, CommandError, Subcommand
from commands.help import usage
from commands.outgoing import Outgoing
from commands.views.audit import (
    audit_blocks,
    audit_headline,
    checkpoint_blocks,
    checkpoint_text,
)

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
    await require_admin(
        ctx,
        action=f"read the audit log (`{const.SLASH_COMMAND} audit`)",
        area="audit",
        what="read the audit log",
    )
    count = parse_count(ctx.args)
    events = await ctx.services.workspaces.audit_events(ctx.team_id, limit=count)
    await ctx.reply(audit_headline(len(events), count), blocks=audit_blocks(events, asked=count))


SUBCOMMAND = Subcommand(name=const.SUB_AUDIT, handle=handle)


class SlackCheckpointSink:
    """Audit checkpoints to each workspace's log channel (a `bot.checkpoints.CheckpointSink`).

    A workspace without a log channel has nothing to post; a checkpoint Slack refused (or a
    workspace PushOps is not installed in) is logged and offered again at the next round.
    """

    def __init__(self, clients: ClientSource) -> None:
        self._outgoing = Outgoing(clients)

    async def publish(self, checkpoints: Sequence[Checkpoint]) -> Sequence[Checkpoint]:
        """Post each checkpoint in its workspace's log channel; those taken care of."""
        kept = []
        for checkpoint in checkpoints:
            channel = checkpoint.log_channel_id
            if channel is None or await self._outgoing.post(
                checkpoint.team_id,
                channel,
                checkpoint_text(checkpoint),
                checkpoint_blocks(checkpoint),
            ):
                kept.append(checkpoint)
        return kept


def plug_in(services: Services, clients: ClientSource) -> None:
    """Give the services' checkpoint publisher (when there is one) a `SlackCheckpointSink`."""
    if services.checkpoints is not None:
        services.checkpoints.add_sink(SlackCheckpointSink(clients))


def register(app: AsyncApp, services: Services) -> None:
    """Checkpoints to the log channels through `app`'s client (or installations)."""
    plug_in(services, client_source(app.client, app.installation_store, services.database))
