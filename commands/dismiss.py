"""The "Dismiss" button on ephemeral replies: deletes the reply it sits on."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.const import ACTION_DISMISS
from bot.services import Services


async def _delete_original(respond: AsyncRespond) -> None:
    await respond(delete_original=True)


def register(app: AsyncApp, services: Services) -> None:
    """Listen to the Dismiss button: ack, then ask Slack to delete the message carrying it."""

    async def on_dismiss(ack: AsyncAck, respond: AsyncRespond) -> None:
        await ack()
        services.after_ack(_delete_original(respond), respond=respond, kind="block_actions")

    app.action(ACTION_DISMISS)(on_dismiss)
