"""`/push diagnostics` (admins): the workspace's redacted diagnostics document (bot.diagnostics)
as a JSON file in the admin's DM with PushOps, through Slack's upload flow
(files.getUploadURLExternal, the upload, files.completeUploadExternal)."""

from __future__ import annotations

from datetime import UTC, datetime

from slack_sdk.errors import SlackApiError

from bot import const
from bot.diagnostics import for_workspace
from commands.access import require_admin
from commands.context import CommandContext, CommandError, Subcommand

TITLE = "PushOps diagnostics"


async def handle(ctx: CommandContext) -> None:
    """Refuse non-admins; build the document, upload it to the admin's DM, say where it is."""
    await require_admin(
        ctx,
        action=f"download diagnostics (`{const.SLASH_COMMAND} diagnostics`)",
        area="diagnostics",
        what="download diagnostics",
    )
    if ctx.args:
        raise CommandError(f"`{const.SLASH_COMMAND} diagnostics` takes nothing after it.")
    text = await for_workspace(ctx.services, team_id=ctx.team_id, actor=ctx.user_id)
    try:
        opened = await ctx.client.conversations_open(users=ctx.user_id)
        channel = str(opened["channel"]["id"])
        await ctx.client.files_upload_v2(
            channel=channel,
            content=text,
            filename=f"pushops-diagnostics-{ctx.team_id}-{datetime.now(UTC):%Y%m%dT%H%MZ}.json",
            title=TITLE,
            initial_comment="Diagnostics of PushOps in this workspace: secrets are left out, "
            "so the file can be handed to whoever helps.",
        )
    except SlackApiError as error:
        reason = error.response.get("error", "an error")
        raise CommandError(
            f"Slack refused the file ({reason}); the app may lack the files:write scope: "
            "reinstall it from its manifest."
        ) from None
    await ctx.reply("Diagnostics are in your DM with PushOps, as a JSON file without secrets.")


SUBCOMMAND = Subcommand(name=const.SUB_DIAGNOSTICS, handle=handle)
