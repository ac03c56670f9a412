"""The compose form's preview step: what will go out, shown before it does.

The form's submission stores a draft (`commands.send.form`) and answers Slack with this
preview pushed over the form. Its reach is a OneSignal call, so it is counted after the ack
and filled in by the view's `external_id`. Back is Slack's own close button of the pushed
view: the form shows again as the person left it, and nothing is sent. Send confirms the
draft (compare-and-set, so a second press sends nothing) and takes it on through the same
`go` as every other send; the whole modal closes at once (`response_action: clear`) and what
came of it is told where the form was opened.
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from dataclasses import dataclass, replace
from typing import Any, Final

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from bot import const
from bot.delivery import Send
from bot.services import Services
from commands.access import interaction_ids
from commands.cards import card_of
from commands.context import CommandError, load_send
from commands.outgoing import SLACK_ERRORS
from commands.send.storing import (
    answer_where,
    approvals_note,
    confirm_draft,
    go,
    policy_of,
    reach,
)
from commands.views.preview import PreviewFacts, preview_view

log = logging.getLogger(__name__)

GONE: Final = "This preview is no longer known here; open the form again."


@dataclass(frozen=True)
class PreviewMeta:
    """The preview's `private_metadata`: which draft, and where the form was opened."""

    send_id: uuid.UUID | None = None
    channel: str | None = None

    def dump(self) -> str:
        """As JSON text (a few dozen characters of Slack's 3,000)."""
        return json.dumps({"send": str(self.send_id or ""), "channel": self.channel})

    @classmethod
    def load(cls, text: str) -> PreviewMeta:
        """From the view's metadata; empty when it is not ours."""
        try:
            data = json.loads(text or "{}")
            send_id = uuid.UUID(str(data.get("send")))
        except (ValueError, TypeError, AttributeError):
            return cls()
        channel = data.get("channel")
        return cls(send_id=send_id, channel=channel if isinstance(channel, str) else None)


@dataclass(frozen=True)
class Shown:
    """A preview answered to Slack, whose reach is filled in after the ack."""

    services: Services
    send: Send
    facts: PreviewFacts
    view: dict[str, Any]

    async def fill_in(self, client: AsyncWebClient) -> None:
        """Count the reach and show it in the preview (if it is still open)."""
        facts = replace(self.facts, estimate=await reach(self.services, self.send))
        view = preview_view(card_of(self.send), facts)
        try:
            await client.views_update(external_id=facts.external_id, view=view)
        except SLACK_ERRORS as error:  # closed meanwhile: Back, Send, or the modal's X
            log.info("preview not updated: %s", type(error).__name__)


async def preview_of(services: Services, send: Send, *, channel: str | None) -> Shown:
    """The preview of a stored draft, its reach still being counted (cached reads only)."""
    policy = await policy_of(services, send.team_id)
    facts = PreviewFacts(
        approval=approvals_note(send, policy),
        metadata=PreviewMeta(send_id=send.id, channel=channel).dump(),
        # One per answer: Slack refuses a view whose external id another view holds.
        external_id=f"preview-{send.id.hex}-{secrets.token_hex(4)}",
    )
    return Shown(services, send, facts, preview_view(card_of(send), facts))


async def _send_previewed(services: Services, body: dict[str, Any], client: AsyncWebClient) -> None:
    """The preview's Send, after the ack: confirm the draft once and take it on."""
    meta = PreviewMeta.load((body.get("view") or {}).get("private_metadata") or "")
    team_id, user_id = interaction_ids(body)
    reply = answer_where(services, client, team_id, user_id, meta.channel)
    try:
        team_id, user_id = interaction_ids(body, services=services, area="send")
        draft = await load_send(services, team_id, meta.send_id)
        if draft is None or draft.requester_id != user_id:
            raise CommandError(GONE)
        confirmed = await confirm_draft(
            services, client, team_id=team_id, user_id=user_id, draft=draft
        )
    except CommandError as error:
        await reply(str(error), [])
        return
    if confirmed is None:  # Send pressed again, maybe on another replica: the first one sends
        log.info("preview of %s answered already", draft.short_id)
        return
    await go(services, confirmed, reply)


def register(app: AsyncApp, services: Services) -> None:
    """Listen to the preview's Send (its Back is Slack's own)."""

    async def on_send(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack(response_action="clear")  # the form and its preview close together
        services.after_ack(
            _send_previewed(services, body, client), respond=None, kind="view_submission"
        )

    app.view(const.CALLBACK_COMPOSE_PREVIEW)(on_send)
