"""The "Dismiss" button on ephemeral replies: deletes the reply it sits on."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.const import ACTION_DISMISS
from bot.services import Services


async def on_dismiss(ack: AsyncAck, respond: AsyncRespond) -> None:
    """Ack, then ask Slack to delete the ephemeral message that carried the button."""
    await ack()
    await respond(delete_original=True)


def register(app: AsyncApp, services: Services) -> None:
    """Listen to the Dismiss button."""
    del services  # nothing to look up: the button only removes its own message
    app.action(ACTION_DISMISS)(on_dismiss)
