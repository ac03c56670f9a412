"""The Slack side of what happens to sends: DMs to the requester, the log channel, approvals.

`SlackNotifier` implements `bot.notifier.Notifier`; `register` plugs it into the services'
relay in `serve`, `plug_in` in `pushops worker`, so whichever process reaches an end of a send
tells it. Every end reaches the requester in a direct message from the app (ephemeral
replies cannot be edited, and a `response_url` dies after 30 minutes), except what they were
just answered about where they acted: a send a command is answering in place (`answering`),
their own cancel. The log channel, when the workspace has one, gets one message per send,
posted when the send is announced and updated in place at every later step; its channel and
ts are kept in the send's `slack_messages`. Every message goes through `Outgoing`.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Final

from slack_bolt.async_app import AsyncApp

from bot.delivery import Audience, SendRejected
from bot.notifier import NotifierRelay
from bot.policy import ApprovalPolicy, PolicyError
from bot.services import Services
from bot.slack_clients import ClientSource, client_source
from commands._format import Block, context, escape
from commands.access import team_facts
from commands.cards import card_of, estimate_text
from commands.outgoing import Outgoing
from commands.views import sends as views
from storage import queries
from storage.models import Send, Workspace

LOG: Final = "log"
APPROVAL: Final = "approval"
"""Purposes of the Slack messages kept in `Send.slack_messages`."""

_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")


def grace_words(seconds: float) -> str:
    """`10 minutes`, `90 seconds`, `2 hours`."""
    for size, unit in ((3600, "hour"), (60, "minute")):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    count = int(seconds)
    return f"{count} second{'s' if count != 1 else ''}"


class SlackNotifier:
    """`bot.notifier.Notifier` in Slack messages (see the module's docstring)."""

    def __init__(self, *, services: Services, clients: ClientSource) -> None:
        self._services = services
        self._slack = Outgoing(clients)
        self._answering: dict[uuid.UUID, list[str]] = {}

    # --- answering in place -----------------------------------------------------------------

    @contextlib.contextmanager
    def answering(self, send_id: uuid.UUID) -> Iterator[list[str]]:
        """While a command replies about this send itself, outcomes skip the requester's DM.

        Yields the list that collects the reasons of failures told meanwhile, for the reply.
        """
        reasons: list[str] = []
        self._answering[send_id] = reasons
        try:
            yield reasons
        finally:
            self._answering.pop(send_id, None)

    # --- the Notifier protocol -------------------------------------------------------------

    async def send_delivered(self, send: Send) -> None:
        """Update the log message; DM the requester unless a command answers in place."""
        await self.announce(send)
        if send.id not in self._answering:
            card = card_of(send)
            await self.tell_requester(send, views.outcome_text(card), views.outcome_blocks(card))

    async def send_failed(self, send: Send, reason: str) -> None:
        """Update the log message; DM the requester (with why) unless answered in place."""
        card = card_of(send, reason=reason)
        await self._update_log(send, card)
        answering = self._answering.get(send.id)
        if answering is not None:
            answering.append(reason)
        else:
            await self.tell_requester(send, views.outcome_text(card), views.outcome_blocks(card))

    async def send_missed(self, send: Send) -> None:
        """Update the log message; ask the requester to send it now or drop it."""
        card = card_of(send)
        await self._update_log(send, card)
        grace = grace_words(self._services.settings.misfire_grace)
        await self.tell_requester(
            send, views.outcome_text(card), views.missed_blocks(card, grace=grace)
        )

    async def send_cancelled(self, send: Send, *, actor: str, outcome: str) -> None:
        """Update the log message and a pending approval request; tell the requester who
        cancelled it and when, unless they did it themselves (they were answered there)."""
        card = card_of(send)
        await self._update_log(send, card)
        who = _who(actor)
        if send.approvals_received < send.approvals_required:  # it was waiting for approval
            await self.close_approval(send, f"Cancelled by {who} before a decision.")
        if actor == send.requester_id:
            return
        moment = send.finished_at  # set by every move to cancelled
        when = f" on {views.describe_time(moment, card.timezone)}" if moment else ""
        await self.tell_requester(
            send,
            f"{who} cancelled {views.ids_text(card)}{when}.",
            views.outcome_blocks(card, note=f"Cancelled by {who}. {escape(outcome)}"),
        )

    async def send_rejected(self, send: Send, *, approver: str) -> None:
        """Close the approval request, update the log message, tell the requester."""
        who = _who(approver)
        await self.close_approval(send, f"Rejected by {who}; it will not be sent.")
        card = card_of(send)
        await self._update_log(send, card)
        await self.tell_requester(
            send,
            f"{who} rejected {views.ids_text(card)}; it will not be sent.",
            views.outcome_blocks(card, note="Rejected by an approver; nothing was sent."),
        )

    async def send_held(self, send: Send) -> None:
        """Ask the approvers; tell the requester why their send did not go out at its time."""
        await self.approval_requested(send)
        card = card_of(send)
        noun = "approval" if send.approvals_required == 1 else "approvals"
        note = (
            f"It was due, but the approval policy now in force asks for "
            f"{send.approvals_required} {noun} first: it goes out once approved, and you get "
            f"a message when it is decided. `/push cancel {send.short_id}` stops it."
        )
        text = f"{views.ids_text(card)} waits for approval. {note}"
        await self.tell_requester(send, text, views.outcome_blocks(card, note=note))

    async def approval_requested(self, send: Send) -> None:
        """Post the request with Approve / Reject to the approvals channel; log it."""
        await self.announce(send)
        workspace = await self._workspace(send.team_id)
        channel = _approvals_channel(workspace)
        card = card_of(send)
        if channel is None:
            await self.tell_requester(
                send,
                f"{views.headline(card)}, but this workspace has no approvals channel. "
                "Ask a PushOps admin to choose one in `/push setup`.",
            )
            return
        estimate = await self._estimate(send)
        refused: list[str] = []
        posted = await self._slack.post(
            send.team_id,
            channel,
            views.outcome_text(card),
            views.approval_request_blocks(card, estimate=estimate),
            refused=refused,
        )
        if posted is None:
            why = refused[-1] if refused else "no installation"
            await self.tell_requester(send, views.approval_not_posted_text(card, channel, why))
            return
        await self._remember(send, APPROVAL, channel, posted)

    async def approval_expired(self, send: Send) -> None:
        """Close the request in the approvals channel, update the log, tell the requester."""
        card = card_of(send)
        await self.close_approval(send, "Nobody decided in time; it expired and was not sent.")
        await self._update_log(send, card)
        await self.tell_requester(send, views.outcome_text(card), views.outcome_blocks(card))

    # --- used by the commands as well ------------------------------------------------------

    async def announce(self, send: Send, *, reason: str | None = None) -> None:
        """Post the send to the log channel, or update the message already posted about it."""
        await self._update_log(send, card_of(send, reason=reason))

    async def close_approval(self, send: Send, outcome: str, *, keep_buttons: bool = False) -> None:
        """Replace the approval request's buttons with `outcome` (mrkdwn).

        With `keep_buttons` (more approvals needed) the request stays open, `outcome` under it.
        """
        where = await self._message(send, APPROVAL)
        if where is None:
            return
        card = card_of(send)
        if keep_buttons:
            blocks = [*views.approval_request_blocks(card), context(outcome)]
        else:
            blocks = views.approval_closed_blocks(card, outcome=outcome)
        await self._slack.update(send.team_id, where, views.outcome_text(card), blocks)

    async def tell_requester(
        self, send: Send, text: str, blocks: Sequence[Block] | None = None
    ) -> None:
        """A direct message from the app to the send's requester."""
        await self.tell(send.team_id, send.requester_id, text, blocks)

    async def tell(
        self, team_id: str, user_id: str, text: str, blocks: Sequence[Block] | None = None
    ) -> None:
        """A direct message from the app to `user_id`; Slack's refusals are logged."""
        await self._slack.direct(team_id, user_id, text, blocks)

    # --- the log channel -------------------------------------------------------------------

    async def _update_log(self, send: Send, card: views.SendCard) -> None:
        """Update the log message about `send`, or post it when there is none yet."""
        # Most workspaces have no log channel: then this costs no read of the database.
        channel = (await team_facts(self._services, send.team_id)).log_channel_id
        if not channel:
            return
        text, blocks = views.outcome_text(card), views.log_blocks(card)
        where = await self._message(send, LOG)
        if where is not None:
            await self._slack.update(send.team_id, where, text, blocks)
            return
        ts = await self._slack.post(send.team_id, channel, text, blocks)
        if ts is not None:
            await self._remember(send, LOG, channel, ts)

    # --- plumbing ----------------------------------------------------------------------------

    async def _message(self, send: Send, purpose: str) -> dict[str, str] | None:
        """Where the `purpose` message about `send` is, read fresh from the database."""
        database = self._services.database
        if database is None:
            return None
        async with database.sessions() as session:
            fresh = await queries.get_send(session=session, team_id=send.team_id, send_id=send.id)
        found: Any = (fresh.slack_messages if fresh is not None else {}).get(purpose)
        if isinstance(found, dict) and found.get("channel") and found.get("ts"):
            return {"channel": str(found["channel"]), "ts": str(found["ts"])}
        return None

    async def _remember(self, send: Send, purpose: str, channel: str, ts: str) -> None:
        database = self._services.database
        if database is None:
            return
        async with database.sessions.begin() as session:
            await queries.set_slack_message(
                session=session,
                team_id=send.team_id,
                send_id=send.id,
                purpose=purpose,
                channel=channel,
                ts=ts,
            )

    async def _workspace(self, team_id: str) -> Workspace | None:
        database = self._services.database
        if database is None:
            return None
        async with database.sessions() as session:
            return await queries.get_workspace(session=session, team_id=team_id)

    async def _estimate(self, send: Send) -> str | None:
        sends = self._services.sends
        if sends is None:
            return None
        try:
            audience = Audience.from_stored(send.audience)
        except (SendRejected, TypeError):
            return None
        estimate = await sends.estimate(
            team_id=send.team_id, app_name=send.app_name, audience=audience
        )
        return estimate_text(estimate)


def _approvals_channel(workspace: Workspace | None) -> str | None:
    if workspace is None:
        return None
    try:
        return ApprovalPolicy.from_settings(workspace.settings).channel_id
    except PolicyError:
        return None


def notifier_of(services: Services) -> SlackNotifier | None:
    """The Slack notifier plugged into the services, if any."""
    relay = getattr(services, "notifier", None)
    target = relay.target if isinstance(relay, NotifierRelay) else relay
    return target if isinstance(target, SlackNotifier) else None


def _who(actor: str) -> str:
    """A Slack user as a mention; anyone else (a worker, a tool) as PushOps."""
    return f"<@{actor}>" if _SLACK_USER.fullmatch(actor) else "PushOps"


def plug_in(services: Services, clients: ClientSource) -> SlackNotifier:
    """Plug a `SlackNotifier` writing with `clients` into the services' notifier relay."""
    notifier = SlackNotifier(services=services, clients=clients)
    services.notifier.target = notifier
    return notifier


def register(app: AsyncApp, services: Services) -> None:
    """Plug a `SlackNotifier` writing with `app`'s client (or installations) into `services`."""
    plug_in(services, client_source(app.client, app.installation_store, services.database))
